"""The public help center: published articles for customers, no sign-in, callable from other
sites (CORS like the web chat), and "was this helpful?" feedback."""

from __future__ import annotations

from aiohttp import web

from hub.api import kb_models as m
from hub.api.keys import ARTICLES
from hub.errors import HubError, TooLarge
from hub.http import Handler, KeyedLimit, endpoint, json_response, read_json, read_query
from hub.model import ArticleStatus, KbSource, article_language
from hub.ports import ArticleFilter

TAGS = ("help center",)
MAX_FEEDBACK_BODY = 1024
FEEDBACK_PER_MINUTE = 10  # per client address; a reader votes a few times, a script many


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
    if q.q is not None:
        result = await service.search(q.q, language, q.limit, KbSource.HELP)
        articles = await service.published([h.article_id for h in result.hits])
    else:
        flt = ArticleFilter(status=(ArticleStatus.PUBLISHED,), language=language, limit=q.limit)
        articles = [v.article for v in await service.summaries(flt)]
    return json_response(m.HelpList(articles=[m.help_summary(a) for a in articles]))


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
    view = await request.app[ARTICLES].get(request.match_info["id"], published_only=True)
    return json_response(m.help_article(view.article))


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
    await request.app[ARTICLES].feedback(request.match_info["id"], req.helpful)
    return web.Response(status=204)


HANDLERS: list[Handler] = [list_help_articles, get_help_article, post_feedback]
