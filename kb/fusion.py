"""Combining BM25 and semantic scores, and deciding when the top hit is safe to answer with.

BM25 scores are unbounded and query-dependent, so each is divided by a ceiling the index
computes for the query (roughly what an article matching every query term would score).
Cosine similarities are already on a fixed scale. The fused score is a weighted sum of the
two, which keeps an absolute meaning the answer threshold relies on.

Measured on the dev sets (bench/kb_accuracy.py): the weighted sum beat reciprocal-rank
fusion by 2-4 points of hit@1 on banking77 and CLINC150, and dividing by the query's ceiling
beat dividing by the top BM25 score by up to 0.4 points. With the semantic stage's centroid
blend (kb/semantic.py), a semantic weight of 0.78-0.80 with a centroid weight of 0.18-0.25 is
one plateau on all three English sets (hit@1 banking77 with ten questions 0.851-0.853,
banking77 full 0.933-0.935, CLINC150 0.918-0.921).
"""

from __future__ import annotations

from collections.abc import Sequence

# Weight of the cosine similarity in the fused score (the rest is normalised BM25).
SEMANTIC_WEIGHT = 0.8
# The top hit answers when its fused score reaches this (the semantic stage scored the
# query); calibrated on the CLINC150 dev set: in-scope accuracy 0.903, out-of-scope recall
# 0.83 (0.46 gives 0.904 / 0.81, 0.50 gives 0.891 / 0.88).
ANSWER_THRESHOLD = 0.47
# Without cosine scores (BM25-only mode, or Chinese text the encoder cannot read) only the
# normalised BM25 score is left. Chinese scores run lower (bigrams dilute the ceiling), so
# each script has its own threshold: zh-dev 0.16 (out-of-scope recall 0.81), CLINC150 0.45
# (out-of-scope recall 0.78).
BM25_ANSWER_THRESHOLD = {"zh": 0.16, "en": 0.45}


def fuse(
    bm25: Sequence[tuple[str, float]], vector: Sequence[tuple[str, float]], ceiling: float
) -> list[tuple[str, float]]:
    """(article_id, fused score) best first; ties broken by id so results are reproducible."""
    lexical = {aid: min(score / ceiling, 1.0) for aid, score in bm25}
    if not vector:
        fused = lexical
    else:
        cosine = dict(vector)
        floor = min(cosine.values())  # stands in for an article the vector stage did not return
        fused = {
            aid: SEMANTIC_WEIGHT * cosine.get(aid, floor)
            + (1 - SEMANTIC_WEIGHT) * lexical.get(aid, 0.0)
            for aid in lexical.keys() | cosine.keys()
        }
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def confident(score: float, semantic: bool, chinese: bool) -> bool:
    """Whether a top hit with this fused `score` is good enough to answer without a human.

    `semantic`: the semantic stage scored the query; `chinese`: the query has Chinese text.
    """
    if semantic:
        return score >= ANSWER_THRESHOLD
    return score >= BM25_ANSWER_THRESHOLD["zh" if chinese else "en"]
