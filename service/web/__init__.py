"""The page at `/`: discovery for people. Static files, no build step; the browser
calls the same HTTP API as any other client (`GET /accounts`, `GET /accounts/{id}/score`).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from starlette.responses import Response

# File name -> media type; read once: they are small and only change with a release.
_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}
# The page holds no data of its own: a reload must fetch new code after an upgrade.
_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}


def build_page_router() -> APIRouter:
    folder = resources.files(__name__)
    bodies = {name: (folder / name).read_bytes() for name in _FILES}
    router = APIRouter(include_in_schema=False)

    def serve(name: str) -> Response:
        return Response(bodies[name], media_type=_FILES[name], headers=_HEADERS)

    async def page() -> Response:
        return serve("index.html")

    async def script() -> Response:
        return serve("app.js")

    async def style() -> Response:
        return serve("style.css")

    router.add_api_route("/", page, methods=["GET"])
    router.add_api_route("/web/app.js", script, methods=["GET"])
    router.add_api_route("/web/style.css", style, methods=["GET"])
    return router
