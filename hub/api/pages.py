"""The web pages: landing, demo page with the widget, agent inbox, KB editor, public help
center; static assets."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from hub.api.keys import ARTICLES
from hub.errors import NotFound

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def _page(name: str) -> web.RouteDef:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC_DIR / name, headers={"Cache-Control": "no-cache"})

    return web.get("/" if name == "index.html" else "/" + name.removesuffix(".html"), handler)


async def _help_article(request: web.Request) -> web.StreamResponse:
    """One article of the help center: the same page, which reads the id from its path.

    An article that does not exist (or is not published) answers 404, so search engines and
    link checkers see it is gone; the page then offers a search and popular articles.
    """
    try:
        await request.app[ARTICLES].get(request.match_info["id"], published_only=True)
        status = 200
    except NotFound:
        status = 404
    return web.FileResponse(
        STATIC_DIR / "help.html", status=status, headers={"Cache-Control": "no-cache"}
    )


def routes() -> list[web.AbstractRouteDef]:
    return [
        _page("index.html"),
        _page("demo.html"),
        _page("inbox.html"),
        _page("kb.html"),
        _page("help.html"),
        web.get("/help/articles/{id}", _help_article),
        web.static("/static", STATIC_DIR),
    ]
