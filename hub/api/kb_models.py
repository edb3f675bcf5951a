"""Request and response shapes of the knowledge-base API (docs/api.md, "Knowledge base")."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from hub import formatting, model
from hub.model import Agent, Article, ArticleContent
from hub.ports import KbHit, KbResult
from hub.services.articles import ArticleView, GapGroup, VersionView
from hub.services.kb_suggestions import SuggestionView

Status = Literal["draft", "in_review", "published", "archived"]
Language = Literal["en", "zh"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# --- requests -----------------------------------------------------------------------------------


class ContentIn(_In):
    """Sizes are checked again, with clearer messages, by `hub.model.article_content`."""

    title: str = Field(max_length=model.MAX_TITLE * 2)
    body: str = Field(max_length=model.MAX_BODY * 2)
    questions: list[str] = Field([], max_length=model.MAX_QUESTIONS * 2)
    short_answer: str | None = Field(None, max_length=model.MAX_SHORT_ANSWER * 4)
    language: str = Field(max_length=16)
    tags: list[str] = Field([], max_length=model.MAX_TAGS * 2)

    def content(self) -> ArticleContent:
        return model.article_content(
            title=self.title,
            body=self.body,
            questions=self.questions,
            short_answer=self.short_answer,
            language=self.language,
            tags=self.tags,
        )


class CreateArticle(ContentIn):
    id: str | None = Field(None, max_length=model.MAX_ARTICLE_ID)


class UpdateArticle(ContentIn):
    version: int = Field(ge=1)


class StatusChange(_In):
    status: Status


class Empty(_In):
    pass


class ListQuery(_In):
    status: Status | None = None
    language: str | None = Field(None, max_length=16)
    tag: str | None = Field(None, max_length=model.MAX_TAG_CHARS)
    q: str | None = Field(None, max_length=model.MAX_TITLE)
    limit: int = Field(100, ge=1, le=500)


class SearchQuery(_In):
    q: str = Field(description="the question; empty or over 1000 characters is refused")
    lang: str | None = Field(None, max_length=16)
    limit: int = Field(10, ge=1, le=50)
    channel: Literal["webchat", "telegram", "email", "fax", "voice", "phone", "sms"] = Field(
        "webchat", description="the channel whose reply the bot shows (`reply`)"
    )


class GapQuery(_In):
    days: int = Field(30, ge=1, le=366)


class SuggestionQuery(_In):
    article_id: str | None = Field(None, max_length=model.MAX_ARTICLE_ID)
    status: Literal["pending", "accepted", "rejected"] = "pending"
    order: Literal["recent", "frequent"] = "recent"
    limit: int = Field(100, ge=1, le=500)


class SuggestionIds(_In):
    ids: list[int] = Field(min_length=1, max_length=500)


class ClusterDraft(_In):
    """A content-gap cluster made into a draft: its questions, most frequent first."""

    questions: list[str] = Field(min_length=1, max_length=200)
    language: str | None = Field(None, max_length=16)


class Synonyms(_In):
    groups: list[list[str]]


class HelpListQuery(_In):
    lang: str | None = Field(None, max_length=16)
    q: str | None = None
    limit: int = Field(50, ge=1, le=100)
    # Without `q`: most recently changed first, or the ones readers found most helpful.
    order: Literal["recent", "popular"] = "recent"


class FeedbackIn(_In):
    helpful: StrictBool  # "yes" is not an answer


# --- responses ----------------------------------------------------------------------------------


class AgentRef(_Out):
    id: int
    name: str


class ArticleSummary(_Out):
    id: str
    title: str
    language: Language
    status: Status
    tags: list[str]
    version: int
    updated_at: datetime
    helpful: int
    not_helpful: int


class ArticleList(_Out):
    articles: list[ArticleSummary]


class ArticleOut(_Out):
    id: str
    title: str
    body: str
    body_html: str
    questions: list[str]
    short_answer: str | None
    language: Language
    tags: list[str]
    status: Status
    version: int
    created_at: datetime
    updated_at: datetime
    updated_by: AgentRef | None
    helpful: int
    not_helpful: int


class VersionSummary(_Out):
    version: int
    status: Status
    title: str
    author: AgentRef | None
    created_at: datetime
    changes: list[str]


class VersionList(_Out):
    versions: list[VersionSummary]


class HitOut(_Out):
    article_id: str
    title: str
    language: str
    score: float
    highlight: str
    short_answer: str | None


class BotMessageOut(_Out):
    text: str  # Markdown, exactly as the bot sends it on the channel
    html: str  # the same rendered and sanitised, as the widget and the inbox show it
    choices: list[str]  # button titles


class BotReplyOut(_Out):
    """What the bot would say to a customer asking this first on `channel`."""

    channel: str
    decision: str  # answer | clarify | escalate | handoff | ...
    article_id: str | None
    messages: list[BotMessageOut]


class SearchOut(_Out):
    query: str
    hits: list[HitOut]
    answer: str | None
    decision: Literal["answer", "escalate"]
    suggestion: str | None
    reply: BotReplyOut | None = None


class GapGroupOut(_Out):
    example: str
    questions: list[str]
    count: int
    last_asked_at: datetime


class GapReport(_Out):
    groups: list[GapGroupOut]


class SuggestionOut(_Out):
    id: int
    article_id: str
    article_title: str
    article_status: Status
    article_language: Language
    question: str
    count: int
    sources: list[Literal["choice", "helpful", "agent"]]
    conversation_ids: list[int]
    status: Literal["pending", "accepted", "rejected"]
    created_at: datetime
    last_seen_at: datetime


class SuggestionList(_Out):
    suggestions: list[SuggestionOut]
    pending: dict[str, int]  # open suggestions per article id
    total_pending: int


class Decided(_Out):
    count: int  # suggestions decided now (those already decided are left as they are)
    articles: dict[str, int]  # article id -> its version after accepting


class HelpSummary(_Out):
    id: str
    title: str
    language: Language
    tags: list[str]
    short_answer: str | None


class HelpList(_Out):
    articles: list[HelpSummary]
    # With `q` and nothing found: a corrected question to try, and popular articles.
    suggestion: str | None = None
    popular: list[HelpSummary] = []


class HelpSite(_Out):
    """The help center's branding."""

    name: str | None  # the shop's name; None: just "Help center"
    color: str | None  # #rrggbb for the header
    shop_url: str | None  # "Back to the shop"


class HelpArticle(_Out):
    id: str
    title: str
    body_html: str
    language: Language
    tags: list[str]
    short_answer: str | None
    updated_at: datetime
    your_vote: bool | None = None  # this visitor's vote (the help center's cookie)


# --- converters ---------------------------------------------------------------------------------


def agent_ref(agent: Agent | None) -> AgentRef | None:
    return AgentRef(id=agent.id, name=agent.name) if agent else None


def article_summary(view: ArticleView) -> ArticleSummary:
    a = view.article
    return ArticleSummary(
        id=a.id,
        title=a.content.title,
        language=a.content.language,
        status=a.status.value,
        tags=list(a.content.tags),
        version=a.version,
        updated_at=a.updated_at,
        helpful=view.helpful,
        not_helpful=view.not_helpful,
    )


def _article_out(
    article_id: str,
    content: ArticleContent,
    status: str,
    version: int,
    created_at: datetime,
    updated_at: datetime,
    by: Agent | None,
    helpful: int = 0,
    not_helpful: int = 0,
) -> ArticleOut:
    return ArticleOut(
        id=article_id,
        title=content.title,
        body=content.body,
        body_html=formatting.html(content.body),
        questions=list(content.questions),
        short_answer=content.short_answer,
        language=content.language,
        tags=list(content.tags),
        status=status,
        version=version,
        created_at=created_at,
        updated_at=updated_at,
        updated_by=agent_ref(by),
        helpful=helpful,
        not_helpful=not_helpful,
    )


def article_out(view: ArticleView) -> ArticleOut:
    a = view.article
    return _article_out(
        a.id,
        a.content,
        a.status.value,
        a.version,
        a.created_at,
        a.updated_at,
        view.updated_by,
        view.helpful,
        view.not_helpful,
    )


def snapshot_out(article: Article, view: VersionView) -> ArticleOut:
    """An old version in the article's shape (feedback counts belong to the article)."""
    v = view.version
    return _article_out(
        v.article_id,
        v.content,
        v.status.value,
        v.version,
        article.created_at,
        v.created_at,
        view.author,
    )


def version_summary(view: VersionView) -> VersionSummary:
    v = view.version
    return VersionSummary(
        version=v.version,
        status=v.status.value,
        title=v.content.title,
        author=agent_ref(view.author),
        created_at=v.created_at,
        changes=list(v.changes),
    )


def _hit(hit: KbHit) -> HitOut:
    return HitOut(
        article_id=hit.article_id,
        title=hit.title,
        language=hit.language,
        score=hit.score,
        highlight=hit.highlight,
        short_answer=hit.short_answer,
    )


def search_out(result: KbResult) -> SearchOut:
    return SearchOut(
        query=result.query,
        hits=[_hit(h) for h in result.hits],
        answer=result.answer.article_id if result.answer else None,
        decision="answer" if result.answer else "escalate",
        suggestion=result.suggestion,
    )


def gap_out(group: GapGroup) -> GapGroupOut:
    return GapGroupOut(
        example=group.example,
        questions=group.questions,
        count=group.count,
        last_asked_at=group.last_asked_at,
    )


def help_summary(article: Article) -> HelpSummary:
    c = article.content
    return HelpSummary(
        id=article.id,
        title=c.title,
        language=c.language,
        tags=list(c.tags),
        short_answer=c.short_answer,
    )


def help_article(article: Article, your_vote: bool | None = None) -> HelpArticle:
    c = article.content
    return HelpArticle(
        id=article.id,
        title=c.title,
        body_html=formatting.html(c.body),
        language=c.language,
        tags=list(c.tags),
        short_answer=c.short_answer,
        updated_at=article.updated_at,
        your_vote=your_vote,
    )


def suggestion_out(view: SuggestionView) -> SuggestionOut:
    s = view.suggestion
    assert s.id is not None
    return SuggestionOut.model_validate(
        {
            "id": s.id,
            "article_id": s.article_id,
            "article_title": view.article_title,
            "article_status": view.article_status.value,
            "article_language": view.article_language,
            "question": s.question,
            "count": s.count,
            "sources": list(s.sources),
            "conversation_ids": list(s.conversation_ids),
            "status": s.status,
            "created_at": s.created_at,
            "last_seen_at": s.last_seen_at,
        }
    )
