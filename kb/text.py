"""Text analysis shared by indexing and querying: English and Chinese, mixed freely.

One function, `terms_with_spans`, turns any text into index terms. Latin-script runs become
lower-cased, stop-word-filtered Porter stems; CJK runs become jieba search-mode words plus
character bigrams, so a query still meets an article when jieba cuts the two differently
(忘记密码 vs 重置密码 share the bigram 密码 whatever the segmentation), plus the single
characters no word covers, at half weight (typos and abbreviations). Traditional characters
are folded to Simplified first (忘記密碼 and 忘记密码 are one question), and NFKC folds full-width
letters and digits to ASCII. The same function feeds the Whoosh analyzer, the query builder and
the highlighter, so all three agree.
"""

from __future__ import annotations

import logging
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from functools import lru_cache
from typing import Any, cast

from whoosh.analysis import CompositeAnalyzer, Token, Tokenizer
from whoosh.fields import TEXT
from whoosh.lang.porter import stem as porter_stem
from whoosh.system import pack_uint

MAX_QUERY_CHARS = 1000
# The indexed weight of a single Chinese character against a word or bigram (1.0): 0.5 gave
# zh-dev BM25 hit@1 0.800 (1.0: 0.783) and the same calibrated answer precision.
UNIGRAM_WEIGHT = 0.5
MAX_QUERY_TERMS = 64

# Han ideographs (+ extension A and compatibility), which jieba segments.
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_CJK}]+|[^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*", re.UNICODE)
_CJK_RE = re.compile(rf"[{_CJK}]")
# C0/C1 controls and format characters (zero-width, bidi overrides) never carry meaning in a
# customer's question but can break terms apart or hide text from agents.
_CONTROL_RE = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)

ENGLISH_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from
    further had has have having he her here hers herself him himself his how i if in into is it
    its itself just me more most my myself no nor not now of off on once only or other our ours
    ourselves out over own same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were
    what when where which while who whom why will with would you your yours yourself yourselves
    please hi hello thanks thank im i'm ive i've i'd dont don't cant can't""".split()
)

# Function words and politeness that say nothing about which article is meant; keeping them
# would let 请问/怎么办 outweigh the one content word a short question has.
CHINESE_STOP_WORDS = frozenset(
    """的 了 吗 呢 吧 啊 呀 么 嘛 哦 哈 是 在 有 和 与 及 或 就 都 也 还 又 很 太 给 把 被 让 对 从
    我 你 您 他 她 它 我们 你们 他们 咱 这 那 这个 那个 这样 那样 一个 一下 什么 怎么 怎样
    如何 怎么办 怎么样 为什么 为啥 咋 咋办 啥 哪 哪里 哪儿 多少 能 能否 可以 可不可以
    是否 要 想 需要 请 请问 你好 您好 谢谢 麻烦 帮 帮我 一下子
    下 个 上 中 吧 了吗 的话 现在 已经 刚 刚刚""".split()
)

_jieba_lock = threading.Lock()
_jieba_ready = False
_opencc_lock = threading.Lock()
_to_simplified: Any = None


def _jieba() -> Any:
    """Import and initialise jieba once, quietly (it logs its dictionary load at DEBUG)."""
    global _jieba_ready
    import jieba  # type: ignore[import-untyped]

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()
                _jieba_ready = True
    return jieba


def _converter() -> Any:
    """OpenCC's Traditional-to-Simplified converter, made once per process."""
    global _to_simplified
    if _to_simplified is None:
        import opencc

        with _opencc_lock:
            if _to_simplified is None:
                _to_simplified = opencc.OpenCC("t2s")
    return _to_simplified


def fold_chinese(run: str) -> str:
    """Traditional Chinese characters as Simplified (OpenCC t2s, phrase-aware), keeping the
    length, so spans found in the folded text are spans of the original (highlighting).

    Texts without Han characters are returned as they are.
    """
    if not has_cjk(run):
        return run
    folded: str = _converter().convert(run)
    if len(folded) == len(run):
        return folded
    # Every single character maps to one (checked over the whole BMP); only a phrase rule
    # could change the length, and then the characters are folded one by one.
    by_char = "".join(_converter().convert(ch) for ch in run)
    return by_char if len(by_char) == len(run) else run


def clean_text(text: str) -> str:
    """NFKC-normalise (full-width letters and digits become ASCII) and drop control chars."""
    text = unicodedata.normalize("NFKC", text)
    return _CONTROL_RE.sub(" ", text)


def clean_query(text: str) -> str:
    """A user's query made safe to analyse: cleaned, truncated, stripped.

    Raises ValueError when nothing searchable is left, so callers can answer "type a question"
    instead of returning an empty result that looks like a miss.
    """
    if not isinstance(text, str):
        raise ValueError("query must be a string")
    # Truncate before normalising too, so a 100 KB paste costs no more than a long question.
    text = clean_text(text[: MAX_QUERY_CHARS * 2])[:MAX_QUERY_CHARS].strip()
    if not text:
        raise ValueError("query is empty: type a question or a few words")
    return text


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Porter stem of a lower-cased English word (cached: the vocabulary is small)."""
    return porter_stem(word)


def has_cjk(text: str) -> bool:
    return _CJK_RE.search(text) is not None


def term_weight(term: str) -> float:
    """How much one occurrence of an index term counts (see UNIGRAM_WEIGHT)."""
    return UNIGRAM_WEIGHT if len(term) == 1 and _CJK_RE.match(term) else 1.0


def _cjk_terms(run: str, offset: int) -> Iterator[tuple[str, int, int]]:
    jieba = _jieba()
    run = fold_chinese(run)
    # Characters of stop words (如何, 怎么办) start no bigram: 何重 or 么办 would only add noise.
    stopped = [False] * len(run)
    for word, start, end in jieba.tokenize(run):
        if word in CHINESE_STOP_WORDS:
            stopped[start:end] = [True] * (end - start)
    words: set[tuple[int, int]] = set()
    for word, start, end in jieba.tokenize(run, mode="search"):
        if not stopped[start]:
            words.add((start, end))
            yield word, offset + start, offset + end
    for i in range(len(run) - 1):
        if stopped[i] or stopped[i + 1] or (i, i + 2) in words:
            continue  # a jieba word already: counting it twice would double its weight
        yield run[i : i + 2], offset + i, offset + i + 2
    # Single characters too: a typo (信永卡) or an abbreviation (房贷 for 住房贷款) shares no
    # word or bigram with the article but most of its characters. zh-dev BM25 hit@1 0.688 ->
    # 0.800 (bench/kb_accuracy.py), weighed at UNIGRAM_WEIGHT so that they do not outvote words.
    for i, char in enumerate(run):
        if not stopped[i] and (i, i + 1) not in words:
            yield char, offset + i, offset + i + 1


# Full-width ASCII (ＡＴＭ, typed with a Chinese input method) as ASCII, one character for one:
# `clean_text` (NFKC) already folds whole texts, but the analyzer also meets text that was not
# cleaned (synonyms, highlighting) and must keep spans, which NFKC may not (㎏ -> kg).
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


@lru_cache(maxsize=1 << 17)
def _latin_term(run: str) -> str | None:
    """Index term of one Latin-script word as found in text (None for a stop word).

    Cached on the word as written: a corpus repeats a small vocabulary, so lower-casing,
    stop-word lookup and stemming run once per distinct spelling rather than per token.
    """
    word = run.translate(_HALF_WIDTH).lower().replace("’", "'")
    if word in ENGLISH_STOP_WORDS:
        return None
    word = word.replace("'", "")
    if not word:
        return None
    return stem(word) if word.isascii() and word.isalpha() else word


def _is_cjk_run(run: str) -> bool:
    # A run is all CJK or has none (see _RUN_RE), so its first character decides.
    return _CJK_RE.match(run) is not None


def terms_with_spans(text: str) -> Iterator[tuple[str, int, int]]:
    """(term, start, end) for every index term of `text`, in order of appearance."""
    for match in _RUN_RE.finditer(text):
        run = match.group(0)
        if _is_cjk_run(run):
            yield from _cjk_terms(run, match.start())
            continue
        term = _latin_term(run)
        if term is not None:
            yield term, match.start(), match.end()


def _section_terms(text: str) -> Iterator[str]:
    """The terms of `terms_with_spans`, without spans (the indexing fast path)."""
    for run in _RUN_RE.findall(text):
        if _is_cjk_run(run):
            for cjk, _start, _end in _cjk_terms(run, 0):
                yield cjk
        else:
            latin = _latin_term(run)
            if latin is not None:
                yield latin


def distinct_terms(text: str) -> frozenset[str]:
    """The set of index terms of `text`: `terms` without order, repeats or spans (cheaper)."""
    if has_cjk(text):
        return frozenset(_section_terms(text))
    # Latin only: every step runs in C (the regex, the cached per-word lookup, the set).
    found = frozenset(map(_latin_term, _RUN_RE.findall(text)))
    return cast(frozenset[str], found - _NO_TERM)


_NO_TERM: frozenset[str | None] = frozenset([None])


def terms(text: str) -> list[str]:
    """Index terms of `text` (with repeats), see `terms_with_spans`."""
    return [t for t, _, _ in terms_with_spans(text)]


def words(text: str) -> list[str]:
    """Lower-cased Latin-script words, unstemmed: the vocabulary spelling correction uses."""
    return [
        m.group(0).lower()
        for m in _RUN_RE.finditer(text)
        if not _CJK_RE.match(m.group(0)) and m.group(0).isalpha() and len(m.group(0)) > 2
    ]


# Section marks in the value of the single indexed field: control characters, which
# `clean_text` removes from every article text, so content can never forge one.
TITLE_MARK, QUESTIONS_MARK, BODY_MARK = "\x1c", "\x1d", "\x1e"
_SECTION_RE = re.compile("([\x1c\x1d\x1e])")


# The document's text is counted twice when it is added (its distinct terms are stored for
# the statistics of deleted documents, then the field indexes it): remember the last one.
_last_counts: tuple[str, dict[str, tuple[int, float]]] | None = None


def _remember_counts(value: str, counts: dict[str, tuple[int, float]]) -> None:
    global _last_counts
    _last_counts = (value, counts)


class MixedTokenizer(Tokenizer):
    """Whoosh tokenizer over `terms_with_spans` (the analyzer's only stage).

    A value may be split into sections by the marks above; each token of a section carries
    that section's boost, which Whoosh adds up into the term's weight. Indexing title,
    questions and body into one field this way is BM25F proper (weighted term frequencies
    saturated together) and a third of the postings to read of three separate fields.
    """

    def __init__(self, boosts: dict[str, float] | None = None) -> None:
        self.boosts = dict(boosts or {})

    def counts(self, value: str) -> dict[str, tuple[int, float]]:
        """term -> (frequency, weight: the sum of its tokens' section boosts) for `value`.

        What indexing needs, in one pass and without a Token per word; the weights add up in
        token order, exactly as Whoosh sums the boosts of the tokens `__call__` yields.
        """
        last = _last_counts  # one read: another thread may replace it meanwhile
        if last is not None and last[0] is value:
            return last[1]
        freqs: dict[str, int] = {}
        weights: dict[str, float] = {}
        boost = 1.0
        for part in _SECTION_RE.split(value):
            if part in self.boosts:
                boost = self.boosts[part]
                continue
            part = clean_text(part)
            if has_cjk(part):
                for term in _section_terms(part):
                    freqs[term] = freqs.get(term, 0) + 1
                    weights[term] = weights.get(term, 0.0) + boost * term_weight(term)
                continue
            # Latin only: count the words as written (in C), then look each distinct one up.
            # n x boost equals n additions of boost: the boosts are binary fractions.
            for run, n in Counter(_RUN_RE.findall(part)).items():
                latin = _latin_term(run)
                if latin is not None:
                    freqs[latin] = freqs.get(latin, 0) + n
                    weights[latin] = weights.get(latin, 0.0) + boost * n
        counts = {term: (freq, weights[term]) for term, freq in freqs.items()}
        _remember_counts(value, counts)
        return counts

    def __call__(
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        tokenize: bool = True,
        mode: str = "",
        **kwargs: Any,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos
        boost = 1.0
        for part in _SECTION_RE.split(value):
            if part in self.boosts:
                boost = self.boosts[part]
                continue
            for term, start, end in terms_with_spans(clean_text(part)):
                token.text = term
                token.boost = boost * term_weight(term)
                token.stopped = False
                if keeporiginal:
                    token.original = term
                if positions:
                    token.pos = pos
                if chars:
                    token.startchar = start_char + start
                    token.endchar = start_char + end
                pos += 1
                yield token


class WordTokenizer(Tokenizer):
    """Whoosh tokenizer over `words`: unstemmed vocabulary for the spelling field."""

    def __call__(
        self, value: str, positions: bool = False, chars: bool = False, **kwargs: Any
    ) -> Iterator[Token]:
        token = Token(positions, chars, **kwargs)
        for pos, word in enumerate(words(clean_text(value))):
            token.text = word
            token.boost = 1.0
            token.stopped = False
            if positions:
                token.pos = pos
            yield token

    def counts(self, value: str) -> dict[str, tuple[int, float]]:
        """term -> (frequency, weight) for `value` (see `MixedTokenizer.counts`)."""
        freqs: dict[str, int] = {}
        for word in words(clean_text(value)):
            freqs[word] = freqs.get(word, 0) + 1
        return {word: (freq, float(freq)) for word, freq in freqs.items()}


class CountedText(TEXT):
    """A TEXT field (no positions) that indexes from its tokenizer's `counts`.

    Whoosh's own path builds a Token per word and re-counts them; at 10k articles that was
    half of a rebuild. The analyzer stays the tokenizer, for anything else that uses it.
    """

    def __init__(
        self, tokenizer: MixedTokenizer | WordTokenizer, *, scorable: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(analyzer=CompositeAnalyzer(tokenizer), phrase=False, **kwargs)
        self.tokenizer = tokenizer
        # An unscored field stores no lengths, and its postings need no length lookups.
        self.scorable = scorable

    def index(self, value: str, **kwargs: Any) -> Iterator[tuple[bytes, int, float, bytes]]:
        """(term bytes, frequency, weight, encoded frequency) per distinct term."""
        if not isinstance(value, str):
            raise ValueError(f"{value!r} is not a string")
        for term, (freq, weight) in self.tokenizer.counts(value).items():
            yield term.encode("utf-8"), freq, weight, pack_uint(freq)
