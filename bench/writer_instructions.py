"""Instructions per stored message in the storage writer process, counted by callgrind.

Run: `.venv/bin/python bench/writer_instructions.py [--batch 200] [--batches 10]` (needs
valgrind with its headers, and a C compiler; not part of `make bench`).

Why: on a shared VM the wall-clock and CPU-time figures of one run swing by a third from
minute to minute, far more than most changes to the writer make. Callgrind counts executed
instructions instead, which repeat within about 0.5% for the same code and input whatever
else the machine is doing, so two versions of the writer can be compared run against run.

What is counted: the writer child's whole path for `--batches` batches of `--batch` inbound
web chat messages over 1,000 conversations on a fresh SQLite database, exactly as the child
does it: unpickle the batch, `run_batch`, pickle the outcomes. Start-up, migrations and ten
warm-up batches are not counted: the script toggles callgrind's collection around the
measured loop through its client requests (a tiny C shim built on the fly). fsync waits are
not instructions, so the disk does not show.

Output: one JSON line, `{"bench": "writer_instructions", "batch", "batches",
"instructions", "per_message"}`.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_SHIM = """
#include <valgrind/callgrind.h>
void start(void) {
    CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT;
}
void stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def _measure(batch_size: int, batches: int, shim: str) -> None:
    """Runs under callgrind: the counted loop."""
    from hub import heap
    from hub.model import Identity, InboundMessage
    from hub.services.conversations import Inbound, do_open_conversation, do_receive_many
    from hub.storage import migrate, writer_process
    from hub.storage.batches import run_batch, run_one
    from hub.storage.engine import create_engine_for
    from hub.storage.uow import ConversationCache

    def dumps(obj: object) -> bytes:  # as the pipe does it (`writer_process._send`)
        buffer = io.BytesIO()
        writer_process._Pickler(buffer, pickle.HIGHEST_PROTOCOL).dump(obj)
        return buffer.getvalue()

    callgrind = ctypes.CDLL(shim)
    random.seed(1)
    url = f"sqlite:///{tempfile.mkdtemp()}/hub.sqlite3"
    migrate.upgrade(url)
    engine = create_engine_for(url, 1)
    convs = [
        run_one(
            engine, lambda uow, i=i: do_open_conversation(uow, "webchat", "web", f"c{i}", "c", None)
        ).value
        for i in range(1000)
    ]
    cache = ConversationCache()
    heap.settle()
    sent = 0

    def batch() -> list[tuple[object, Inbound]]:
        nonlocal sent
        items = []
        for _ in range(batch_size):
            conv = random.choice(convs)
            sent += 1
            message = InboundMessage(
                channel="webchat",
                inbox="web",
                sender=Identity("webchat", f"c{conv.id}"),
                text=f"bench message {sent}",
                channel_message_id=f"{conv.id}:{sent}",
                conversation_id=conv.id,
            )
            items.append((do_receive_many, Inbound(message)))
        return items

    for _ in range(10):
        run_batch(engine, batch(), cache)
    pickled = [dumps(batch()) for _ in range(batches)]
    callgrind.start()
    for data in pickled:
        outcomes = run_batch(engine, pickle.loads(data), cache)
        dumps([writer_process._portable(o) for o in outcomes])
    callgrind.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=200, help="messages per batch (200)")
    parser.add_argument("--batches", type=int, default=10, help="batches counted (10)")
    parser.add_argument("--inside", help=argparse.SUPPRESS)  # the shim, when under callgrind
    args = parser.parse_args()
    if args.inside:
        _measure(args.batch, args.batches, args.inside)
        return 0
    valgrind, cc = shutil.which("valgrind"), shutil.which("cc") or shutil.which("gcc")
    if valgrind is None or cc is None:
        print("needs valgrind and a C compiler on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        source, shim = Path(tmp, "shim.c"), Path(tmp, "shim.so")
        source.write_text(_SHIM)
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", shim, source], check=True)
        run = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                "--instr-atstart=no",
                "--collect-atstart=no",
                f"--callgrind-out-file={tmp}/callgrind.%p",
                sys.executable,
                __file__,
                f"--batch={args.batch}",
                f"--batches={args.batches}",
                f"--inside={shim}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    counted = re.findall(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or not counted:
        print(run.stderr[-2000:], file=sys.stderr)
        return 1
    instructions = max(int(n) for n in counted)  # the measuring process; others count 0
    per_message = round(instructions / (args.batch * args.batches))
    print(
        json.dumps(
            {
                "bench": "writer_instructions",
                "batch": args.batch,
                "batches": args.batches,
                "instructions": instructions,
                "per_message": per_message,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
