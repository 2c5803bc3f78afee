"""The web console: static HTML, CSS and JavaScript shipped in the package
(``broker/admin/ui/``) and served at ``/ui`` by every node's admin listener. The page talks to
the same node's HTTP admin API; it has no build step and loads nothing from elsewhere (the
Content-Security-Policy allows only this origin).
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

__all__ = ["UI_PREFIX", "add_ui_routes"]

UI_PREFIX = "/ui"
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css"}
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def _asset(name: str) -> bytes | None:
    if "/" in name or name.startswith(".") or not any(name.endswith(s) for s in _TYPES):
        return None
    f = resources.files("broker.admin").joinpath("ui", name)
    return f.read_bytes() if f.is_file() else None


def _answer(name: str) -> web.Response:
    body = _asset(name)
    if body is None:
        raise web.HTTPNotFound()
    ctype = _TYPES[name[name.rindex("."):]]
    return web.Response(body=body, content_type=ctype, charset="utf-8", headers=_HEADERS)


async def _index(request: web.Request) -> web.StreamResponse:
    if request.path == UI_PREFIX:
        raise web.HTTPFound(UI_PREFIX + "/")
    return _answer("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    return _answer(request.match_info["name"])


def add_ui_routes(app: web.Application) -> None:
    app.router.add_get(UI_PREFIX, _index)
    app.router.add_get(UI_PREFIX + "/", _index)
    app.router.add_get(UI_PREFIX + "/static/{name}", _static)
