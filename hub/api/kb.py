"""Knowledge-base endpoints for signed-in staff (thin: parse, check access, call the service).

Everyone signed in reads and searches; only editors and admins change articles or synonyms.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from hub import formatting
from hub.api import kb_models as m
from hub.api.auth import current_session
from hub.api.keys import ARTICLES
from hub.errors import Forbidden, InvalidRequest
from hub.http import Handler, endpoint, json_response, read_json, read_query
from hub.model import ArticleStatus, Role, article_language
from hub.ports import AgentSession, ArticleFilter, SuggestionFilter
from hub.services.articles import ArticleInput
from hub.services.bot_runner import BotConsole
from hub.services.kb_suggestions import Decided, SuggestionService

EDITORS = frozenset({Role.EDITOR, Role.ADMIN})
BOT_CONSOLE = web.AppKey("bot_console", BotConsole)
SUGGESTIONS = web.AppKey("kb_suggestions", SuggestionService)
TAGS = ("knowledge base",)


async def editor_session(request: web.Request) -> AgentSession:
    """The signed-in agent's session if they may change the knowledge base, else 403."""
    session = await current_session(request)
    if session.agent.role not in EDITORS:
        raise Forbidden("only editors and admins may change the knowledge base")
    return session


def article_id(request: web.Request) -> str:
    return request.match_info["id"]


def _version(request: web.Request) -> int:
    raw = request.match_info["n"]
    if not raw.isdigit() or len(raw) > 9:
        raise InvalidRequest(f"not a version number: {raw!r}")
    return int(raw)


async def _article(request: web.Request, status: int = 200) -> web.Response:
    view = await request.app[ARTICLES].get(article_id(request))
    return json_response(m.article_out(view), status=status)


@endpoint(
    "GET",
    "/api/kb/articles",
    "List articles, most recently changed first",
    tags=TAGS,
    query=m.ListQuery,
    response=m.ArticleList,
    errors=(401, 422),
    auth="agent",
)
async def list_articles(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    q = read_query(request, m.ListQuery)
    flt = ArticleFilter(
        status=(ArticleStatus(q.status),) if q.status else (),
        language=article_language(q.language) if q.language else None,
        tag=q.tag.strip().lower() if q.tag else None,
        text=q.q.strip() or None if q.q else None,
        limit=q.limit,
    )
    views = await request.app[ARTICLES].summaries(flt)
    return json_response(m.ArticleList(articles=[m.article_summary(v) for v in views]))


@endpoint(
    "POST",
    "/api/kb/articles",
    "Create an article (a draft at version 1)",
    tags=TAGS,
    body=m.CreateArticle,
    response=m.ArticleOut,
    status=201,
    errors=(400, 401, 403, 409, 413, 422),
    auth="agent",
)
async def create_article(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    req = await read_json(request, m.CreateArticle)
    item = ArticleInput(req.content(), req.id)
    article = await request.app[ARTICLES].create(item, session.agent.id)
    view = await request.app[ARTICLES].get(article.id)
    return json_response(m.article_out(view), status=201)


@endpoint(
    "GET",
    "/api/kb/articles/{id}",
    "An article with its rendered body and feedback counts",
    tags=TAGS,
    string_params=("id",),
    response=m.ArticleOut,
    errors=(401, 404),
    auth="agent",
)
async def get_article(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    return await _article(request)


@endpoint(
    "PUT",
    "/api/kb/articles/{id}",
    "Save new content; `version` must be the current one (else 409 version_conflict)",
    tags=TAGS,
    string_params=("id",),
    body=m.UpdateArticle,
    response=m.ArticleOut,
    errors=(400, 401, 403, 404, 409, 413, 422),
    auth="agent",
)
async def update_article(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    req = await read_json(request, m.UpdateArticle)
    await request.app[ARTICLES].update(
        article_id(request), req.content(), req.version, session.agent.id
    )
    return await _article(request)


@endpoint(
    "POST",
    "/api/kb/articles/{id}/status",
    "Move through the workflow: draft, in_review, published, archived",
    tags=TAGS,
    string_params=("id",),
    body=m.StatusChange,
    response=m.ArticleOut,
    errors=(400, 401, 403, 404, 409, 422),
    auth="agent",
)
async def change_status(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    req = await read_json(request, m.StatusChange)
    await request.app[ARTICLES].set_status(
        article_id(request), ArticleStatus(req.status), session.agent.id
    )
    return await _article(request)


@endpoint(
    "GET",
    "/api/kb/articles/{id}/versions",
    "The article's versions, newest first",
    tags=TAGS,
    string_params=("id",),
    response=m.VersionList,
    errors=(401, 404),
    auth="agent",
)
async def list_versions(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    views = await request.app[ARTICLES].versions(article_id(request))
    return json_response(m.VersionList(versions=[m.version_summary(v) for v in views]))


@endpoint(
    "GET",
    "/api/kb/articles/{id}/versions/{n}",
    "One version's snapshot, in the article's shape",
    tags=TAGS,
    string_params=("id",),
    response=m.ArticleOut,
    errors=(400, 401, 404),
    auth="agent",
)
async def get_version(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    service = request.app[ARTICLES]
    view = await service.version(article_id(request), _version(request))
    current = await service.get(article_id(request))
    return json_response(m.snapshot_out(current.article, view))


@endpoint(
    "POST",
    "/api/kb/articles/{id}/versions/{n}/restore",
    "Make an old version's content current again (as a new version)",
    tags=TAGS,
    string_params=("id",),
    body=m.Empty,
    response=m.ArticleOut,
    errors=(400, 401, 403, 404),
    auth="agent",
)
async def restore_version(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    await read_json(request, m.Empty)
    await request.app[ARTICLES].restore(article_id(request), _version(request), session.agent.id)
    return await _article(request)


@endpoint(
    "GET",
    "/api/kb/search",
    "Ask the bot: the published articles it finds and the reply it would send on `channel`"
    " (the question is recorded)",
    tags=TAGS,
    query=m.SearchQuery,
    response=m.SearchOut,
    errors=(401, 422),
    auth="agent",
)
async def search(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    q = read_query(request, m.SearchQuery)
    # The bot itself answers, as to a customer's first message on the channel: the console
    # shows exactly the reply the live channel would send (BotConsole).
    asked = await request.app[BOT_CONSOLE].ask(q.q, q.lang, q.channel, q.limit)
    reply = m.BotReplyOut(
        channel=q.channel,
        decision=str(asked.decision.get("decision", "")),
        article_id=asked.decision.get("article_id"),
        messages=[
            m.BotMessageOut(
                text=r.text, html=formatting.html(r.text), choices=[c["title"] for c in r.choices]
            )
            for r in asked.replies
        ],
    )
    return json_response(m.search_out(asked.result).model_copy(update={"reply": reply}))


@endpoint(
    "GET",
    "/api/kb/gaps",
    "Content gaps: escalated or unanswered questions, similar ones grouped",
    tags=TAGS,
    query=m.GapQuery,
    response=m.GapReport,
    errors=(401, 422),
    auth="agent",
)
async def gaps(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    q = read_query(request, m.GapQuery)
    groups = await request.app[ARTICLES].gaps(q.days)
    return json_response(m.GapReport(groups=[m.gap_out(g) for g in groups]))


@endpoint(
    "GET",
    "/api/kb/synonyms",
    "Synonym groups applied to searches",
    tags=TAGS,
    response=m.Synonyms,
    errors=(401,),
    auth="agent",
)
async def get_synonyms(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    return json_response(m.Synonyms(groups=await request.app[ARTICLES].synonyms()))


@endpoint(
    "PUT",
    "/api/kb/synonyms",
    "Replace the synonym groups (takes effect at once, no reindex)",
    tags=TAGS,
    body=m.Synonyms,
    response=m.Synonyms,
    errors=(400, 401, 403, 413, 422),
    auth="agent",
)
async def put_synonyms(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    req = await read_json(request, m.Synonyms)
    groups = await request.app[ARTICLES].set_synonyms(req.groups, session.agent.id)
    return json_response(m.Synonyms(groups=groups))


@endpoint(
    "POST",
    "/api/kb/gaps/draft",
    "Create a draft article from a content-gap cluster: its questions become alternate "
    "questions, the first (most frequent) the title; never published automatically",
    tags=TAGS,
    body=m.ClusterDraft,
    response=m.ArticleOut,
    status=201,
    errors=(400, 401, 403, 413, 422),
    auth="agent",
)
async def draft_from_gap(request: web.Request) -> web.StreamResponse:
    session = await editor_session(request)
    req = await read_json(request, m.ClusterDraft)
    article = await request.app[SUGGESTIONS].draft_from_cluster(
        req.questions, req.language, session.agent.id
    )
    view = await request.app[ARTICLES].get(article.id)
    return json_response(m.article_out(view), status=201)


@endpoint(
    "GET",
    "/api/kb/suggestions",
    "Questions learned from traffic, proposed as alternate questions (newest or most "
    "frequent first), with the open ones counted per article",
    tags=TAGS,
    query=m.SuggestionQuery,
    response=m.SuggestionList,
    errors=(401, 422),
    auth="agent",
)
async def list_suggestions(request: web.Request) -> web.StreamResponse:
    await current_session(request)
    q = read_query(request, m.SuggestionQuery)
    flt = SuggestionFilter(article_id=q.article_id, status=q.status, order=q.order, limit=q.limit)
    found = await request.app[SUGGESTIONS].list(flt)
    return json_response(
        m.SuggestionList(
            suggestions=[m.suggestion_out(v) for v in found.suggestions],
            pending=found.pending,
            total_pending=sum(found.pending.values()),
        )
    )


@endpoint(
    "POST",
    "/api/kb/suggestions/accept",
    "Accept suggestions: each article gets their questions as alternate questions in one new "
    "version (reindexed when published); already decided ones are left alone",
    tags=TAGS,
    body=m.SuggestionIds,
    response=m.Decided,
    errors=(400, 401, 403, 404, 409, 413, 422),
    auth="agent",
)
async def accept_suggestions(request: web.Request) -> web.StreamResponse:
    return await _decide(request, request.app[SUGGESTIONS].accept)


@endpoint(
    "POST",
    "/api/kb/suggestions/reject",
    "Reject suggestions (they are not proposed again); articles do not change",
    tags=TAGS,
    body=m.SuggestionIds,
    response=m.Decided,
    errors=(400, 401, 403, 404, 413, 422),
    auth="agent",
)
async def reject_suggestions(request: web.Request) -> web.StreamResponse:
    return await _decide(request, request.app[SUGGESTIONS].reject)


async def _decide(
    request: web.Request, decide: Callable[[list[int], int], Awaitable[Decided]]
) -> web.Response:
    session = await editor_session(request)
    req = await read_json(request, m.SuggestionIds)
    done = await decide(req.ids, session.agent.id)
    return json_response(m.Decided(count=done.count, articles=done.articles))


HANDLERS: list[Handler] = [
    list_articles,
    create_article,
    get_article,
    update_article,
    change_status,
    list_versions,
    get_version,
    restore_version,
    search,
    gaps,
    draft_from_gap,
    list_suggestions,
    accept_suggestions,
    reject_suggestions,
    get_synonyms,
    put_synonyms,
]
