"""Synonym groups applied at query time, persisted as JSON beside the index.

Editors maintain their own groups (the hub stores them in its database and calls
`set_synonyms`); a few built-in groups cover spelling variants and cross-language words that
customers use everywhere (登陆/登录, xyk, PIN/密码), so a fresh index already knows them.

Pinyin initials come free with every group: a Chinese member of three characters or more is
also matched by its initials typed in Latin letters (xyk, sjyh, rgkf), which customers type
when they cannot be bothered to switch input methods. Two-letter initials are left out: they
are English words and abbreviations as often (mm, id, ok).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from kb.text import clean_text, fold_chinese, has_cjk, terms

FILE_NAME = "synonyms.json"
# An expanded term says less than the word the customer typed: weigh it lower.
EXPANSION_WEIGHT = 0.6
MIN_INITIALS = 3  # syllables a Chinese member needs before its initials match it
_HAN_ONLY = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")

BUILTIN_GROUPS: tuple[tuple[str, ...], ...] = (
    ("登录", "登陆", "login", "log in", "sign in"),
    ("转账", "转帐", "transfer"),
    ("身份证", "身分证", "ID card"),
    ("信用卡", "xyk", "credit card"),
    ("借记卡", "储蓄卡", "debit card"),
    ("密码", "PIN", "password", "passcode"),
    ("忘记", "忘了", "想不起来", "重置", "找回", "forgot", "reset"),
    ("丢失", "丢了", "遗失", "掉了", "找不到", "找不着", "lost"),
    ("激活", "开卡", "activate"),
    ("手机银行", "App", "mobile banking"),
    ("额度", "限额", "limit"),
    ("人工", "真人", "人工客服", "human agent"),
    ("取消", "注销", "cancel"),
    ("退款", "refund"),
    ("手续费", "费用", "fee", "charge"),
)


def load_groups(directory: Path) -> list[list[str]]:
    """The editor-maintained groups stored in `directory` (empty when none were set)."""
    path = directory / FILE_NAME
    if not path.exists():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    groups = data.get("groups", []) if isinstance(data, dict) else []
    return [[str(p) for p in g] for g in groups if isinstance(g, list)]


def save_groups(directory: Path, groups: Sequence[Sequence[str]]) -> list[list[str]]:
    """Normalise and store `groups` atomically; returns what was stored."""
    clean = [[p for p in dict.fromkeys(clean_text(str(x)).strip() for x in g) if p] for g in groups]
    clean = [g for g in clean if len(g) > 1]
    path = directory / FILE_NAME
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"groups": clean}, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, path)  # readers never see a half-written file
    return clean


class SynonymExpander:
    """Adds the terms of a group's other members when a query contains one member."""

    def __init__(self, groups: Iterable[Sequence[str]]) -> None:
        # Each member as its set of index terms; a member matches when all its terms occur.
        self._groups: list[list[frozenset[str]]] = []
        # Pinyin initials -> the terms of the Chinese members they stand for.
        self._initials: dict[str, set[str]] = {}
        for group in groups:
            members = [frozenset(terms(p)) for p in group]
            members = [m for m in members if m]
            if len(members) > 1:
                self._groups.append(members)
            for phrase in group:
                abbreviation = initials(phrase)
                if abbreviation is not None:
                    self._initials.setdefault(abbreviation, set()).update(terms(phrase))

    def expand(self, query_terms: Sequence[str]) -> dict[str, float]:
        """Terms to add, with their weights, for a query made of `query_terms`."""
        present = set(query_terms)
        # Initials are Chinese typed in Latin letters: read them as the words they stand for,
        # which then expand through their groups like typed ones.
        spelled = {t for term in present for t in self._initials.get(term, ())} - present
        present |= spelled
        # Expand within the query's script only: 密码 finding "password" would rank English
        # articles above the Chinese ones a Chinese-speaking customer needs; PIN in a Chinese
        # question still finds 密码.
        chinese = any(has_cjk(t) for t in present)
        added = dict.fromkeys(spelled, EXPANSION_WEIGHT)
        for members in self._groups:
            if not any(m <= present for m in members):
                continue
            for member in members:
                for term in member - present:
                    if has_cjk(term) == chinese:
                        added[term] = EXPANSION_WEIGHT
        return added


def initials(phrase: str) -> str | None:
    """The pinyin initials of an all-Chinese `phrase` of MIN_INITIALS characters or more
    ("信用卡" -> "xyk", polyphones read as in the phrase by pypinyin's phrase table); None for
    anything else."""
    text = fold_chinese(clean_text(phrase).strip())
    if len(text) < MIN_INITIALS or not _HAN_ONLY.fullmatch(text):
        return None
    from pypinyin import Style, lazy_pinyin  # only when a group has a Chinese phrase

    letters = "".join(lazy_pinyin(text, style=Style.FIRST_LETTER, errors="ignore"))
    return letters.lower() if letters.isascii() and letters.isalpha() else None
