"""A Whoosh segment writer whose commit looks document lengths up in memory.

When a segment is flushed Whoosh asks the per-document reader for the field length of every
posting it writes (for block statistics): a seek, a struct read and, for fields without
lengths, a `stat` of a missing column file, 1.7 million times at 10k articles, half of a
rebuild. Reading each field's lengths once into a list gives the same answers.
"""

from __future__ import annotations

from typing import Any

from whoosh.index import Index
from whoosh.writing import SegmentWriter


class _ListedLengths:
    """Per-document reader stand-in for `FieldWriter.add_postings`: lengths from lists."""

    def __init__(self, reader: Any) -> None:
        self._reader = reader
        self._lengths: dict[str, list[int] | None] = {}

    def _field(self, fieldname: str) -> list[int] | None:
        if fieldname not in self._lengths:
            reader = self._reader
            if reader.has_column(f"_{fieldname}_len"):  # whoosh.codec.whoosh3._lenfield
                count = reader.doc_count_all()
                self._lengths[fieldname] = [
                    reader.doc_field_length(n, fieldname, 0) for n in range(count)
                ]
            else:
                self._lengths[fieldname] = None  # not scorable: no lengths stored
        return self._lengths[fieldname]

    def doc_field_length(self, docnum: int, fieldname: str, default: int = 0) -> int:
        lengths = self._field(fieldname)
        if lengths is None or docnum >= len(lengths):
            return default
        return lengths[docnum] or default

    def close(self) -> None:
        self._reader.close()


def _with_listed_lengths(w: Any) -> Any:
    opened = getattr(w, "per_document_reader", None)
    if opened is not None:
        w.per_document_reader = lambda: _ListedLengths(opened())
    return w


def writer(ix: Index, *, timeout: float, limitmb: int) -> Any:
    """`ix.writer(...)`, flushing with `_ListedLengths` when it is Whoosh's SegmentWriter."""
    return _with_listed_lengths(ix.writer(timeout=timeout, limitmb=limitmb))


def segment_writer(ix: Index, *, limitmb: int) -> Any:
    """A SegmentWriter that takes no lock, for a process writing one segment of a build whose
    parent holds the lock (see `kb.parallel`); flushes with `_ListedLengths` too."""
    return _with_listed_lengths(SegmentWriter(ix, _lk=False, limitmb=limitmb))
