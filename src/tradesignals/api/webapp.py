"""The web app (built from web/ into the package's ``web`` folder), served by the API itself at ``/``.

It is served from the app's 404 handler, not from a route: a request reaches it only when no API
route matched, so it can never shadow one — whatever routers are added, in whatever order. A path
under a reserved prefix (``/api``, ``/ws``, ``/metrics``, ``/docs``, ``/redoc``, ``/openapi.json``)
keeps the API's JSON 404, as does any method other than GET/HEAD. Any other path is a built file
when one exists, else the app's ``index.html`` (the app routes in the browser). Without a build,
the page says in one line how to make one instead of failing.

The build writes brotli and gzip copies beside each text file (``web/postbuild.mjs``); a client that
accepts one gets it (``Content-Encoding``, ``Vary: Accept-Encoding``), with no work per request.
API answers are left alone: they are small, or streamed, and compressing them would cost CPU on
the hot path for every client.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

import tradesignals

DEFAULT_WEB_DIR = Path(tradesignals.__file__).parent / "web"
RESERVED = ("api", "ws", "metrics", "docs", "redoc", "openapi.json")
NOT_BUILT = "The web app is not built: run `make` in the repository (it needs Node.js 20), then reload.\n"

mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")


def _reserved(path: str) -> bool:
    return path.split("/", 1)[0] in RESERVED


ENCODINGS = (("br", ".br"), ("gzip", ".gz"))
"""Pre-compressed variants, best first."""


def _accepted(header: str) -> set[str]:
    """The codings an ``Accept-Encoding`` header allows (``q=0`` refuses one)."""
    out = set()
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        q = params.strip().removeprefix("q=") if params.strip().startswith("q=") else "1"
        try:
            allowed = float(q) > 0
        except ValueError:
            allowed = False
        if name and allowed:
            out.add(name.strip().lower())
    return out


def _send(request: Request, file: Path, cache: str) -> FileResponse:
    """``file``, or its pre-compressed copy when the client accepts it."""
    headers = {"Cache-Control": cache, "Vary": "Accept-Encoding"}
    media_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
    accepted = _accepted(request.headers.get("accept-encoding", ""))
    for coding, suffix in ENCODINGS:
        packed = file.with_name(file.name + suffix)
        if coding in accepted and packed.is_file():
            headers["Content-Encoding"] = coding
            return FileResponse(packed, media_type=media_type, headers=headers)
    return FileResponse(file, media_type=media_type, headers=headers)


def mount_web(app: FastAPI, web_dir: Path | None = None) -> None:
    """Serve the built app from ``web_dir`` (default: the package's ``web`` folder) at ``/``."""
    root = (web_dir or DEFAULT_WEB_DIR).resolve()

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        path = request.url.path.lstrip("/")
        if request.method not in ("GET", "HEAD") or _reserved(path):
            return await http_exception_handler(request, exc)
        index = root / "index.html"
        if not index.is_file():
            return PlainTextResponse(NOT_BUILT, status_code=503)
        if path:
            file = (root / path).resolve()
            if file.is_relative_to(root) and file.is_file():
                immutable = path.startswith("assets/")
                cache = "public, max-age=31536000, immutable" if immutable else "no-cache"
                return _send(request, file, cache)
            if "." in path.rsplit("/", 1)[-1]:
                return JSONResponse({"detail": f"no file /{path}"}, status_code=404)
        return _send(request, index, "no-cache")

    app.add_exception_handler(404, not_found)
