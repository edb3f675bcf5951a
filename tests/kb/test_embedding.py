"""The sentence encoder and the vector index, on the real all-MiniLM-L6-v2 weights.

Reference values below come from sentence-transformers 6.2.0 on torch 2.13.0 (CPU), loading
the same model directory (`SentenceTransformer(model_dir).encode(...)`); across 22 varied
sentences the encoder's first (numpy) forward pass matched it to within 2e-7 per component; the
ONNX graph that replaced it passes the same checks.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from kb.embedding import Encoder, EncoderUnavailable, load_default, packaged_model_dir
from kb.semantic import ARTICLES_FILE, CENTROID_WEIGHT, VECTORS_FILE, VectorIndex

LONG_TEXT = " ".join(
    f"Sentence number {i}: the customer asked about refunds, shipping delays and password resets."
    for i in range(60)
)

# First 8 components of sentence-transformers' embedding of each text.
REFERENCE_PREFIXES = {
    "How do I reset my password?": [
        0.006903, -0.063023, -0.072044, -0.032496, -0.042709, 0.070429, 0.009074, 0.015408,
    ],
    "如何重置我的密码？": [
        0.013685, 0.092700, 0.062036, 0.007494, 0.022436, 0.033111, 0.177276, 0.009231,
    ],
    "Café déjà vu — naïve résumé, Ünïcödé façade": [
        -0.056430, 0.012728, 0.065985, -0.011698, -0.017528, 0.014822, -0.054491, -0.066712,
    ],
    LONG_TEXT: [  # ~1,100 word pieces: truncated to 256 exactly as the reference does
        -0.094947, -0.048285, 0.046989, 0.002881, -0.044413, 0.075897, 0.046896, -0.020818,
    ],
    "": [
        -0.118838, 0.048299, -0.002548, -0.011011, 0.051951, 0.010292, 0.115433, 0.000701,
    ],
}  # fmt: skip

# Cosine similarities computed by sentence-transformers.
REFERENCE_COSINES = [
    ("How do I reset my password?", "I forgot my password, how can I change it?", 0.893860),
    ("How do I reset my password?", "What are your opening hours?", 0.086589),
    ("How do I reset my password?", "The weather in Paris is lovely in spring.", 0.023990),
    ("如何重置我的密码？", "我忘记密码了，怎么修改？", 0.857333),
    ("如何重置我的密码？", "你们的营业时间是什么时候？", 0.867757),
    ("How do I reset my password?", "如何重置我的密码？", 0.026083),
]


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.load()


def test_matches_sentence_transformers_reference(encoder: Encoder) -> None:
    texts = list(REFERENCE_PREFIXES)
    vectors = encoder.encode(texts)
    for text, vector in zip(texts, vectors, strict=True):
        np.testing.assert_allclose(vector[:8], REFERENCE_PREFIXES[text], atol=2e-6, err_msg=text)


def test_cosines_match_reference(encoder: Encoder) -> None:
    for a, b, expected in REFERENCE_COSINES:
        va, vb = encoder.encode([a, b])
        assert float(va @ vb) == pytest.approx(expected, abs=1e-5), (a, b)


def test_batching_and_padding_do_not_change_embeddings(encoder: Encoder) -> None:
    texts = ["hi", "How do I reset my password?", LONG_TEXT, "Where is my parcel?", "?!"]
    together = encoder.encode(texts, batch_size=64)
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(encoder.encode(texts, batch_size=2), alone, atol=1e-6)


def test_output_shape_dtype_and_unit_norm(encoder: Encoder) -> None:
    vectors = encoder.encode(["short", "a somewhat longer question about refunds", "", "  "])
    assert encoder.dim == 384
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_empty_input(encoder: Encoder) -> None:
    vectors = encoder.encode([])
    assert vectors.shape == (0, 384)
    assert vectors.dtype == np.float32


def test_single_string_is_rejected(encoder: Encoder) -> None:
    with pytest.raises(TypeError):
        encoder.encode("not a list")  # a str is a Sequence[str]: caught at run time


def test_long_text_is_truncated_to_max_seq_length(encoder: Encoder) -> None:
    assert encoder.max_seq_length == 256
    # Only the first 256 word pieces count: appending more text changes nothing.
    longer = LONG_TEXT + " Completely different topic: the weather in Paris is lovely."
    a, b = encoder.encode([LONG_TEXT, longer])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_paraphrase_closer_than_unrelated_english(encoder: Encoder) -> None:
    question, paraphrase, unrelated = encoder.encode(
        ["How can I get a refund?", "I want my money back", "What are your opening hours?"]
    )
    assert question @ paraphrase > question @ unrelated + 0.2


def test_chinese_is_mostly_unknown_to_the_model(encoder: Encoder) -> None:
    # The vocabulary has ~240 CJK characters: unrelated Chinese questions become [UNK] runs
    # that embed almost alike, which is why the vector index refuses low-coverage text.
    assert encoder.coverage("如何重置我的密码？") < 0.5
    assert encoder.coverage("How do I reset my password?") == 1.0
    assert encoder.coverage("Can I pay with PayPal 🙂?") > 0.75
    assert encoder.coverage("") == 0.0
    reset, hours = encoder.encode(["如何重置密码", "你们几点开门"])
    assert reset @ hours > 0.9


def test_explicit_model_dir_and_missing_files(tmp_path: Path) -> None:
    assert Encoder.load(packaged_model_dir()).dim == 384
    with pytest.raises(EncoderUnavailable, match="model files missing"):
        Encoder.load(tmp_path)


def test_load_default_is_cached() -> None:
    first = load_default()
    assert first is not None
    assert load_default() is first


# --- VectorIndex --------------------------------------------------------------------------

ARTICLES: list[tuple[str, list[str]]] = [
    ("reset", ["Reset your password", "I forgot my password", "Can't log in"]),
    ("refund", ["Refunds", "How can I get my money back?"]),
    ("hours", ["Opening hours", "When are you open?"]),
    ("shipping", ["Delivery times", "Where is my parcel?"]),
]


def test_scores_blend_the_best_text_with_the_article_mean(encoder: Encoder, tmp_path: Path) -> None:
    index = VectorIndex(encoder, tmp_path)
    index.set_articles(ARTICLES)
    ranked = index.scores("i forgot my password")
    assert [a for a, _ in ranked][:1] == ["reset"]
    assert len(ranked) == 4
    query, *texts = encoder.encode(["i forgot my password", *ARTICLES[0][1]])
    mean = np.sum(texts, axis=0)
    expected = (1 - CENTROID_WEIGHT) * max(float(query @ t) for t in texts) + CENTROID_WEIGHT * (
        float(query @ mean) / float(np.linalg.norm(mean))
    )
    assert ranked[0][1] == pytest.approx(expected, abs=1e-5)
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    assert index.scores("when do you open", limit=1)[0][0] == "hours"
    assert index.scores("") == []


def test_set_replace_and_remove(encoder: Encoder, tmp_path: Path) -> None:
    index = VectorIndex(encoder, tmp_path)
    index.set_articles(ARTICLES)
    index.set_article("hours", ["Track my parcel"])  # replaces, does not add
    assert index.texts("hours") == ["Track my parcel"]
    assert index.scores("where is my package", limit=2)[0][0] in {"shipping", "hours"}
    assert index.scores("opening times", limit=1)[0][0] != "hours"
    index.remove(["hours", "unknown"])
    assert index.article_ids() == {"reset", "refund", "shipping"}
    index.set_article("refund", [])  # no texts: gone
    assert index.article_ids() == {"reset", "shipping"}
    index.clear()
    assert len(index) == 0
    assert index.scores("password") == []


def test_unreadable_text_is_not_indexed_or_searched(encoder: Encoder, tmp_path: Path) -> None:
    index = VectorIndex(encoder, tmp_path)
    index.set_articles([*ARTICLES, ("zh-reset", ["如何重置密码", "忘记密码怎么办"])])
    assert "zh-reset" not in index.article_ids()
    assert index.scores("你们几点开门") == []
    # Mixed text the model mostly reads is kept.
    index.set_article("mixed", ["Our refund policy for online orders: 退款"])
    assert "mixed" in index.article_ids()


def test_rebuild_reuses_cached_vectors(encoder: Encoder, tmp_path: Path) -> None:
    first = VectorIndex(encoder, tmp_path)
    first.set_articles(ARTICLES)
    assert first.encoded_count == 9
    assert (tmp_path / VECTORS_FILE).is_file()
    assert (tmp_path / ARTICLES_FILE).is_file()
    expected = first.scores("I lost my password")

    # A rebuild in the same process (clear, then set everything again) encodes nothing...
    first.clear()
    first.set_articles(ARTICLES)
    assert first.encoded_count == 9

    # ...nor does a new process: the index comes back from disk, and re-setting is free.
    second = VectorIndex(encoder, tmp_path)
    assert second.article_ids() == {a for a, _ in ARTICLES}
    restored = second.scores("I lost my password")
    assert [a for a, _ in restored] == [a for a, _ in expected]
    assert [s for _, s in restored] == pytest.approx([s for _, s in expected], abs=1e-6)
    second.set_articles(ARTICLES)
    assert second.encoded_count == 0
    # Only a new text is encoded.
    second.set_article("refund", ["Refunds", "Give me my money back"])
    assert second.encoded_count == 1
    assert VectorIndex.load(encoder, tmp_path).texts("refund") == [
        "Refunds",
        "Give me my money back",
    ]


def test_lost_vector_cache_is_re_encoded_on_open(encoder: Encoder, tmp_path: Path) -> None:
    VectorIndex(encoder, tmp_path).set_articles(ARTICLES)
    (tmp_path / VECTORS_FILE).unlink()  # as after a model change: the vectors are unusable
    reopened = VectorIndex(encoder, tmp_path)
    assert reopened.encoded_count == 9
    assert reopened.scores("when do you open", limit=1)[0][0] == "hours"
    assert (tmp_path / VECTORS_FILE).is_file()


def test_corrupt_cache_is_ignored(encoder: Encoder, tmp_path: Path) -> None:
    (tmp_path / VECTORS_FILE).write_bytes(b"not an npz")
    (tmp_path / ARTICLES_FILE).write_text("{")
    index = VectorIndex(encoder, tmp_path)
    assert len(index) == 0
    index.set_articles(ARTICLES[:1])
    assert index.encoded_count == 3
    assert len(VectorIndex(encoder, tmp_path)) == 1
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_searches_during_updates(encoder: Encoder, tmp_path: Path) -> None:
    index = VectorIndex(encoder, tmp_path)
    index.set_articles(ARTICLES)
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        try:
            while not stop.is_set():
                ranked = index.scores("i forgot my password")
                assert ranked and ranked[0][0] == "reset"
        except BaseException as exc:  # surfaced in the main thread below
            errors.append(exc)

    threads = [threading.Thread(target=search) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(10):
            index.set_article(f"extra-{i}", [f"Unrelated topic number {i} about gardening"])
            index.remove([f"extra-{i - 1}"])
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors


def test_without_the_semantic_extra_the_module_still_imports() -> None:
    # A None entry in sys.modules makes `import numpy` fail, as if it were not installed.
    script = (
        "import sys\n"
        "for name in ('numpy', 'tokenizers', 'safetensors', 'safetensors.numpy', 'onnx',\n"
        "             'onnxruntime'):\n"
        "    sys.modules[name] = None\n"
        "import kb.embedding, kb.semantic\n"
        "assert kb.embedding.load_default() is None\n"
        "try:\n"
        "    kb.embedding.Encoder.load()\n"
        "except kb.embedding.EncoderUnavailable as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert "numpy, safetensors, tokenizers, onnx and onnxruntime" in done.stdout
    assert "semantic stage disabled" in done.stderr
