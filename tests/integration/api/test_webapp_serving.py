"""The API serves the web app at `/` without ever shadowing an API path, and says in one line when
the app is not built."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tradesignals.api.app import create_app
from tradesignals.api.webapp import NOT_BUILT
from tradesignals.wiring import Services


def built(tmp_path: Path) -> Path:
    web = tmp_path / "web"
    (web / "assets").mkdir(parents=True)
    (web / "index.html").write_text('<!doctype html><main id="main"></main>')
    (web / "assets" / "app-1234.js").write_text("console.log(1)")
    (web / "sw.js").write_text("self.addEventListener('fetch', () => {})")
    (tmp_path / "secret.txt").write_text("outside the build")
    return web


def test_app_paths_get_the_shell_and_api_paths_never_do(services: Services, tmp_path: Path) -> None:
    with TestClient(create_app(services, web_dir=built(tmp_path))) as c:
        for path in ("/", "/verify", "/backtests/2026-x", "/deep/link?x=1"):
            r = c.get(path)
            assert r.status_code == 200 and 'id="main"' in r.text and r.headers["cache-control"] == "no-cache"
        asset = c.get("/assets/app-1234.js")
        assert asset.text == "console.log(1)" and "immutable" in asset.headers["cache-control"]
        assert "javascript" in c.get("/sw.js").headers["content-type"]
        for path in ("/api/nope", "/api", "/ws/x", "/metrics/x", "/docs/x", "/openapi.json/x", "/redoc/x"):
            r = c.get(path)
            assert r.status_code == 404 and r.json() == {"detail": "Not Found"}, path
        assert c.get("/api/health").json()["mode"] == "embedded"
        assert c.get("/openapi.json").json()["info"]["title"] == "tradesignals"
        assert c.get("/missing.css").status_code == 404
        assert c.get("/assets/../../secret.txt").status_code in (200, 404)
        assert "outside the build" not in c.get("/assets/../../secret.txt").text
        assert "outside the build" not in c.get("/%2e%2e/secret.txt").text
        assert c.post("/").status_code in (404, 405)
        assert not any(p.startswith("/{") for p in c.get("/openapi.json").json()["paths"])


def test_without_a_build_root_says_how_in_one_line(services: Services, tmp_path: Path) -> None:
    with TestClient(create_app(services, web_dir=tmp_path / "not-built")) as c:
        r = c.get("/")
        assert r.status_code == 503 and r.text == NOT_BUILT and r.text.count("\n") == 1
        assert "make" in r.text
        assert c.get("/api/health").status_code in (200, 503)
        assert c.get("/api/nope").json() == {"detail": "Not Found"}


def test_pre_compressed_copies_are_served_to_clients_that_accept_them(
    services: Services, tmp_path: Path
) -> None:
    """The build's .br/.gz copies (web/postbuild.mjs) go to clients that accept that coding, with the
    original's type and `Vary`; others get the file itself; `q=0` refuses a coding."""
    import gzip

    web = built(tmp_path)
    js = "console.log('a fairly long bundle');\n" * 40
    (web / "assets" / "big-1.js").write_text(js)
    (web / "assets" / "big-1.js.gz").write_bytes(gzip.compress(js.encode()))
    (web / "assets" / "big-1.js.br").write_bytes(b"BROTLI-BYTES")  # read back raw, never decoded
    (web / "index.html.gz").write_bytes(gzip.compress((web / "index.html").read_bytes()))
    with TestClient(create_app(services, web_dir=web)) as c:

        def get(path: str, accept: str) -> tuple[str | None, str, bytes]:
            with c.stream("GET", path, headers={"Accept-Encoding": accept}) as r:
                assert r.status_code == 200 and r.headers["vary"] == "Accept-Encoding"
                return r.headers.get("content-encoding"), r.headers["content-type"], b"".join(r.iter_raw())

        coding, ctype, body = get("/assets/big-1.js", "gzip, deflate, br")
        assert (coding, body) == ("br", b"BROTLI-BYTES") and "javascript" in ctype
        coding, ctype, body = get("/assets/big-1.js", "br;q=0, gzip")
        assert coding == "gzip" and gzip.decompress(body).decode() == js and "javascript" in ctype
        assert get("/assets/big-1.js", "identity")[::2] == (None, js.encode())
        assert get("/assets/big-1.js", "")[::2] == (None, js.encode())
        coding, ctype, body = get("/live", "gzip")  # an app path: the shell, compressed
        assert coding == "gzip" and 'id="main"' in gzip.decompress(body).decode() and "text/html" in ctype
        assert get("/assets/app-1234.js", "gzip, br")[::2] == (None, b"console.log(1)")  # no copy: as is
