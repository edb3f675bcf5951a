"""Knowledge base search: a Whoosh BM25F index (English stemming, Chinese via jieba) with an
optional semantic stage.

`open_index(directory)` is the one entry point; the index is derived data that the hub can
rebuild from its database at any time.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hub.ports import KnowledgeIndex
from kb.index import VectorStage, WhooshKnowledgeIndex

log = logging.getLogger(__name__)

__all__ = ["WhooshKnowledgeIndex", "open_index"]


def _vector_stage(directory: Path) -> VectorStage | None:
    try:
        from kb.embedding import load_default
        from kb.semantic import VectorIndex
    except ImportError as exc:
        log.info("kb: semantic stage unavailable (%s); BM25 only", exc)
        return None
    encoder = load_default()
    if encoder is None:
        log.info("kb: no sentence encoder could be loaded; BM25 only")
        return None
    stage: VectorStage = VectorIndex(encoder, directory / "vectors")
    return stage


def open_index(directory: Path, *, semantic: bool = True) -> KnowledgeIndex:
    """Open (creating if missing) the knowledge-base index stored in `directory`.

    With `semantic=False`, or when no sentence encoder is available, ranking is BM25 only;
    the reason is logged.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vectors = _vector_stage(directory) if semantic else None
    if not semantic:
        log.info("kb: semantic stage disabled; BM25 only")
    return WhooshKnowledgeIndex(directory, vectors)
