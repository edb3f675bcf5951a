"""The public help center: published articles for customers, no sign-in, callable from other
sites (CORS like the web chat), "was this helpful?" votes (one per visitor and article, by a
visitor cookie) and the shop's branding."""

from __future__ import annotations

import re
import secrets

from aiohttp import web

from hub.api import kb_models as m
from hub.api.keys import ARTICLES, SETTINGS
from hub.config import Settings
from hub.errors import HubError, TooLarge
from hub.http import Handler, KeyedLimit, endpoint, json_response, read_json, read_query
from hub.model import ArticleStatus, article_language
from hub.ports import ArticleFilter

TAGS = ("help center",)
MAX_FEEDBACK_BODY = 1024
FEEDBACK_PER_MINUTE = 10  # per client address; a reader votes a few times, a script many
POPULAR_SHOWN = 5  # suggestions when a search finds nothing
VISITOR_COOKIE = "omnihub_visitor"
VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
VISITOR_COOKIE_DAYS = 365
DEMO_SITE = m.HelpSite(name="ACME Store", color="#243b53", shop_url="/demo")


FEEDBACK_LIMIT = web.AppKey("kb_feedback_limit", KeyedLimit)


def setup(app: web.Application) -> None:
    app[FEEDBACK_LIMIT] = KeyedLimit(FEEDBACK_PER_MINUTE / 60, FEEDBACK_PER_MINUTE)


@endpoint(
    "GET",
    "/api/help/articles",
    "Published articles; with `q`, the best matches for a question",
    tags=TAGS,
    query=m.HelpListQuery,
    response=m.HelpList,
    errors=(422,),
)
async def list_help_articles(request: web.Request) -> web.StreamResponse:
    q = read_query(request, m.HelpListQuery)
    service = request.app[ARTICLES]
    language = article_language(q.lang) if q.lang else None
    if q.q is None:
        if q.order == "popular":
            articles = await service.popular(language, q.limit)
        else:
            flt = ArticleFilter(
                status=(ArticleStatus.PUBLISHED,), language=language, limit=q.limit
            )
            articles = [v.article for v in await service.summaries(flt)]
        return json_response(m.HelpList(articles=[m.help_summary(a) for a in articles]))
    # A question is searched in both languages (each result says its own); `lang` is the
    # reader's, for the suggestions when nothing is found.
    found = await service.help_search(q.q, q.limit)
    popular = [] if found.articles else await service.popular(language, POPULAR_SHOWN)
    return json_response(
        m.HelpList(
            articles=[m.help_summary(a) for a in found.articles],
            suggestion=found.suggestion,
            popular=[m.help_summary(a) for a in popular],
        )
    )


@endpoint(
    "GET",
    "/api/help/articles/{id}",
    "A published article with its body as sanitised HTML",
    tags=TAGS,
    string_params=("id",),
    response=m.HelpArticle,
    errors=(404,),
)
async def get_help_article(request: web.Request) -> web.StreamResponse:
    service = request.app[ARTICLES]
    view = await service.get(request.match_info["id"], published_only=True)
    visitor = _visitor(request)
    vote = await service.vote_of(view.article.id, visitor) if visitor else None
    return json_response(m.help_article(view.article, vote))


@endpoint(
    "POST",
    "/api/help/articles/{id}/feedback",
    "Was this article helpful?",
    tags=TAGS,
    string_params=("id",),
    body=m.FeedbackIn,
    status=204,
    errors=(400, 404, 413, 422, 429),
)
async def post_feedback(request: web.Request) -> web.StreamResponse:
    if request.content_length is not None and request.content_length > MAX_FEEDBACK_BODY:
        raise TooLarge(f"the body is larger than {MAX_FEEDBACK_BODY} bytes", code="body_too_large")
    req = await read_json(request, m.FeedbackIn)
    if not request.app[FEEDBACK_LIMIT].take(request.remote or "?"):
        raise HubError(
            "too much feedback from your address; try later", code="rate_limited", status=429
        )
    # The visitor's one vote: a vote after a reload (the cookie kept) replaces the earlier.
    visitor = _visitor(request) or secrets.token_urlsafe(18)
    await request.app[ARTICLES].feedback(request.match_info["id"], req.helpful, visitor_id=visitor)
    resp = web.Response(status=204)
    resp.set_cookie(
        VISITOR_COOKIE,
        visitor,
        httponly=True,
        samesite="Lax",
        path="/",
        secure=request.app[SETTINGS].secure_cookies,
        max_age=VISITOR_COOKIE_DAYS * 86400,
    )
    return resp


def _visitor(request: web.Request) -> str | None:
    """The help-center visitor id from the cookie, None when missing or malformed."""
    found = request.cookies.get(VISITOR_COOKIE, "")
    return found if VISITOR_ID.match(found) else None


def site(settings: Settings) -> m.HelpSite:
    """The help center's branding: the settings', else the demo shop's with the demo on."""
    fallback = DEMO_SITE if settings.demo else m.HelpSite(name=None, color=None, shop_url=None)
    return m.HelpSite(
        name=settings.help_brand_name or fallback.name,
        color=settings.help_brand_color or fallback.color,
        shop_url=settings.help_shop_url or fallback.shop_url,
    )


@endpoint(
    "GET",
    "/api/help/site",
    "The help center's branding: the shop's name, colour and address",
    tags=TAGS,
    response=m.HelpSite,
)
async def get_help_site(request: web.Request) -> web.StreamResponse:
    return json_response(site(request.app[SETTINGS]))


HANDLERS: list[Handler] = [list_help_articles, get_help_article, post_feedback, get_help_site]
