"""Language tags as the router compares them: agents, conversations and policy filters all
match on the primary subtag, so "zh-CN", "zh_TW" and "zh" are one language."""

from __future__ import annotations

from collections.abc import Iterable


def primary_language(tag: str) -> str:
    """ "zh-CN" -> "zh": agents and conversations are matched on the primary language."""
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def primary_languages(tags: Iterable[str]) -> list[str]:
    """Each tag's primary language, once each, in the order first seen."""
    return list(dict.fromkeys(primary_language(t) for t in tags))
