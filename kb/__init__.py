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


def _vector_stage(directory: Path, multilingual: str) -> VectorStage | None:
    try:
        from kb.embedding import load_default
        from kb.multilingual import MultilingualStage, RoutedStage, load_encoder
        from kb.semantic import VectorIndex
    except ImportError as exc:
        log.info("kb: semantic stage unavailable (%s); BM25 only", exc)
        return None
    encoder = load_default()
    english = VectorIndex(encoder, directory / "vectors") if encoder is not None else None
    other = load_encoder(multilingual)
    chinese = MultilingualStage(other, directory / "vectors-multilingual") if other else None
    if english is None and chinese is None:
        log.info("kb: no sentence encoder could be loaded; BM25 only")
        return None
    return RoutedStage(english, chinese)


def open_index(
    directory: Path, *, semantic: bool = True, multilingual: str = "auto"
) -> KnowledgeIndex:
    """Open (creating if missing) the knowledge-base index stored in `directory`.

    With `semantic=False`, or when no sentence encoder is available, ranking is BM25 only;
    the reason is logged. `multilingual` picks the encoder of Chinese and code-mixed
    questions (`kb.multilingual.CHOICES`: "auto", "e5", "use" or "off").
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vectors = _vector_stage(directory, multilingual) if semantic else None
    if not semantic:
        log.info("kb: semantic stage disabled; BM25 only")
    return WhooshKnowledgeIndex(directory, vectors)
