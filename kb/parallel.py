"""Rebuilding a large index in several processes, one Whoosh segment each.

Whoosh writes postings in pure Python, so one process needs ~20 s for 10k articles and
leaves the other cores idle. Here each worker process indexes a share of the articles into a
segment of its own (the same document, tokenizer and writer as a serial build, without
Whoosh's lock: the parent holds it), and the parent commits a table of contents listing
those segments, as Whoosh's own `MpWriter(multisegment=True)` does.

Why not MpWriter or multiprocessing: both fork or re-run the caller's main script. A forked
copy of the hub inherits locks its other threads hold (a database pool, the event loop) that
nothing in the child will release, and re-running a script without a `__main__` guard
rebuilds in a loop. Workers are therefore fresh interpreters running this module
(`python -m kb.parallel JOB`), handed their share in a pickle file; they print one line per
`PROGRESS_EVERY` articles and leave the finished segment beside the job.
"""

from __future__ import annotations

import os
import pickle
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from whoosh import index

from hub.ports import KbArticle
from kb import writing

# Below this many articles per worker, starting an interpreter (~0.5 s) costs more than it
# saves.
MIN_SHARE = 1000
MAX_WORKERS = 8
PROGRESS_EVERY = 100

Document = Callable[[KbArticle, Any], dict[str, Any]]


class BuildError(RuntimeError):
    """A worker process failed; the message carries the end of its error output."""


def worker_count(articles: int, min_share: int = MIN_SHARE) -> int:
    """How many processes a rebuild of `articles` uses: 1 means build in this process."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cpus or 1, MAX_WORKERS, articles // max(min_share, 1)))


def build_segments(
    directory: str,
    shares: Sequence[Sequence[KbArticle]],
    document: Document,
    limitmb: int,
    progress: Callable[[int], None] | None = None,
) -> list[Any]:
    """One finished (not yet listed) segment per share, written by as many processes.

    `document` turns an article into the fields to add; it is pickled by name, so it must be
    a module-level function. `progress` gets the running count of articles written.
    """
    work = Path(tempfile.mkdtemp(prefix="omnihub-kb-build-"))
    # The workers import what this process imports (a script may have extended sys.path).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    procs: list[subprocess.Popen[str]] = []
    lines: queue.Queue[str | None] = queue.Queue()
    try:
        for n, share in enumerate(shares):
            job = work / f"share-{n}.pickle"
            job.write_bytes(pickle.dumps((directory, list(share), document, limitmb)))
            with (work / f"share-{n}.err").open("w") as errors:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "kb.parallel", str(job)],
                    stdout=subprocess.PIPE,
                    stderr=errors,
                    env=env,
                    text=True,
                )
            procs.append(proc)
            assert proc.stdout is not None
            threading.Thread(target=_forward_lines, args=(proc.stdout, lines), daemon=True).start()
        done, running = 0, len(procs)
        while running:
            line = lines.get()
            if line is None:
                running -= 1
            elif line.strip() == "progress":
                done += PROGRESS_EVERY
                if progress is not None:
                    progress(done)
        segments = []
        for n, proc in enumerate(procs):
            if proc.wait() != 0:
                error = (work / f"share-{n}.err").read_text(errors="replace")[-2000:]
                raise BuildError(f"index worker {n} exited with {proc.returncode}: {error}")
            segments.append(pickle.loads((work / f"share-{n}.segment").read_bytes()))
        total = sum(len(share) for share in shares)
        if progress is not None and done < total:
            progress(total)
        return segments
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)


def commit_segments(writer: Any, segments: Sequence[Any]) -> None:
    """Replace every segment of the index with `segments` and release the write lock.

    `writer` is the parent's SegmentWriter (holding the lock), with nothing added to it.
    """
    writer._close_segment()  # its own, empty, segment is never listed
    writer._commit_toc(list(segments))
    writer._finish()


def _forward_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    with stream:
        for line in stream:
            lines.put(line)
    lines.put(None)  # end of this worker's output


def _write_segment(
    directory: str, articles: list[KbArticle], document: Document, limitmb: int
) -> Any:
    ix = index.open_dir(directory)
    w = writing.segment_writer(ix, limitmb=limitmb)
    tokenizer = ix.schema["text"].tokenizer
    for n, article in enumerate(articles, 1):
        w.add_document(**document(article, tokenizer))
        if n % PROGRESS_EVERY == 0:
            print("progress", flush=True)
    return w._finalize_segment()


def main(argv: Sequence[str]) -> int:
    """Worker entry point: write the segment of the share in the job file."""
    job = Path(argv[0])
    directory, articles, document, limitmb = pickle.loads(job.read_bytes())
    segment = _write_segment(directory, articles, document, limitmb)
    job.with_suffix(".segment").write_bytes(pickle.dumps(segment))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
