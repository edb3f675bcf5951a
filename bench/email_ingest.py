"""Email ingest: mails sent over SMTP to the hub's listener, stored in conversations per second.

The hub answers 250 to a mail only once it is stored on its conversation, so the time for all
SMTP transactions to complete is the time to store them. A mix of new threads (a new contact
and conversation each) and replies threaded by In-Reply-To. The same client first sends the same
mails to a bare aiosmtpd server that discards them: the SMTP transport's ceiling on this
machine, measured in the same run. Final line: one JSON object.

    .venv/bin/python bench/email_ingest.py [--mails 2000] [--connections 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import aiosmtplib
from benchlib import LOOPBACK, free_port
from servers import start_hub

TARGET_MSGS_PER_S = 200.0
ADDRESS = "bench@hub.test"


def mails(count: int, threads: int) -> list[tuple[str, bytes]]:
    """(envelope sender, raw mail): each thread opens with a new mail, then replies to it."""
    out: list[tuple[str, bytes]] = []
    for i in range(count):
        thread, turn = i % threads, i // threads
        sender = f"customer{thread}@example.com"
        msg = EmailMessage()
        msg["From"] = f"Customer {thread} <{sender}>"
        msg["To"] = ADDRESS
        msg["Subject"] = f"Order {thread}" if turn == 0 else f"Re: Order {thread}"
        msg["Message-ID"] = f"<m{i}@example.com>"
        if turn:
            msg["In-Reply-To"] = f"<m{thread}@example.com>"
            msg["References"] = f"<m{thread}@example.com>"
        msg.set_content(
            f"Hello, this is message {turn} about order {thread}. Where is my parcel?\n\n"
            f"> an earlier quote\n> that is stripped\n\n-- \nCustomer {thread}\n"
        )
        out.append((sender, msg.as_bytes(policy=SMTP_POLICY)))
    return out


async def _send_all(port: int, batch: list[tuple[str, bytes]], connections: int) -> float:
    """Send every mail over `connections` SMTP sessions; seconds until all were answered 250."""
    # Thread openers first (a reply must find its thread), then the replies.
    queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
    for item in batch:
        queue.put_nowait(item)

    async def worker() -> None:
        async with aiosmtplib.SMTP(hostname=LOOPBACK, port=port, start_tls=False) as smtp:
            while not queue.empty():
                sender, raw = queue.get_nowait()
                await smtp.sendmail(sender, [ADDRESS], raw)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started


async def _run(port: int, batch: list[tuple[str, bytes]], threads: int, conns: int) -> float:
    openers, replies = batch[:threads], batch[threads:]
    took = await _send_all(port, openers, conns)
    return took + await _send_all(port, replies, conns)


def _serve_baseline(port: int) -> None:
    from aiosmtpd.smtp import SMTP

    class Discard:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Discard()), LOOPBACK, port)
        print("ready", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and its child processes (the storage writer), from /proc."""
    pids = [pid]
    for entry in Path("/proc").iterdir():
        try:
            if (
                entry.name.isdigit()
                and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                pids.append(int(entry.name))
        except OSError:
            continue
    total = 0.0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _stored(data_dir: Path) -> int:
    with sqlite3.connect(data_dir / "omnihub.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM message WHERE channel = 'email'").fetchone()[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=500, help="conversations (new threads)")
    # 20: Postfix's default number of parallel deliveries to one destination.
    parser.add_argument("--connections", type=int, default=20, help="concurrent SMTP sessions")
    args = parser.parse_args()
    batch = mails(args.mails, args.threads)

    base_port = free_port()
    baseline = subprocess.Popen(
        [sys.executable, __file__, "--serve-baseline", str(base_port)],
        stdout=subprocess.PIPE,
    )
    try:
        assert baseline.stdout is not None and baseline.stdout.readline().strip() == b"ready"
        base_s = asyncio.run(_run(base_port, batch, args.threads, args.connections))
    finally:
        baseline.terminate()
        baseline.wait(10)
    print(f"baseline (aiosmtpd, discard): {len(batch) / base_s:.0f} mails/s", file=sys.stderr)

    with tempfile.TemporaryDirectory(prefix="omnihub-email-bench-") as tmp:
        workdir = Path(tmp)
        listen = free_port()
        inbox = {
            "address": ADDRESS,
            "listen": {"host": LOOPBACK, "port": listen, "rate_per_minute": 0},
        }
        hub = start_hub(
            sys.executable,
            workdir,
            {"OMNIHUB_CHANNELS": json.dumps({"email": {"inboxes": {"bench": inbox}}})},
        )
        try:
            assert hub.process is not None
            cpu_before = _cpu_seconds(hub.process.pid)
            hub_s = asyncio.run(_run(listen, batch, args.threads, args.connections))
            hub_cpu = _cpu_seconds(hub.process.pid) - cpu_before
        finally:
            hub.stop()
        stored = _stored(workdir / "hub-data")
    rate = stored / hub_s
    print(
        f"hub: {stored} of {len(batch)} mails stored in {hub_s:.2f} s, "
        f"{hub_cpu / len(batch) * 1000:.1f} ms of hub CPU (all its processes) per mail",
        file=sys.stderr,
    )
    print(
        json.dumps(
            {
                "bench": "email_ingest",
                "msgs_per_s": round(rate, 1),
                "mails": len(batch),
                "stored": stored,
                "conversations": args.threads,
                "connections": args.connections,
                "baseline_msgs_per_s": round(len(batch) / base_s, 1),
                "target_msgs_per_s": TARGET_MSGS_PER_S,
                "ok": stored == len(batch) and rate >= TARGET_MSGS_PER_S,
            }
        ),
        flush=True,
    )
    return 0 if stored == len(batch) else 1


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-baseline":
        _serve_baseline(int(sys.argv[2]))
    else:
        sys.exit(main())
