"""A scripted HTTP server on 127.0.0.1 for the REST news adapters (real sockets, real httpx)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class NewsServer:
    """Answers each request with the next scripted (status, headers, body); records every path."""

    def __init__(self) -> None:
        self.script: list[tuple[int, dict[str, str], bytes]] = []
        self.requests: list[str] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                server.headers.append(dict(self.headers.items()))
                if server.script:
                    status, headers, body = server.script.pop(0)
                else:
                    status, headers, body = 200, {}, b'{"status":"OK","results":[],"count":0}'
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def add(self, status: int = 200, body: bytes | str = b"", headers: dict[str, str] | None = None) -> None:
        self.script.append((status, headers or {}, body.encode() if isinstance(body, str) else body))

    def query(self, n: int) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.requests[n]).query)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[NewsServer]:
    s = NewsServer()
    yield s
    s.close()
