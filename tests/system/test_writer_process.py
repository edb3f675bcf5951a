"""The storage writer process dies under load: the hub starts another, nothing acked is lost.

Inbound web chat batches are stored by a child process of the hub (hub.storage.writer_process).
Here that child is SIGKILLed while a burst is in flight. Messages of the batch it was working
on are refused with `storage_unavailable` (not known to be stored, so never acknowledged); the
client resends them with the same client_id as the protocol asks; every message ends up
stored exactly once, under the id it was acknowledged with.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp

from tests.support import Customer, HubProcess, descendants

BURST = 400


def _writer_pids(hub: HubProcess) -> set[int]:
    """Grandchildren of the hub: the fork server's children, i.e. the writer process."""
    assert hub.proc is not None
    return descendants(hub.proc.pid) - _children(hub.proc.pid)


def _children(pid: int) -> set[int]:
    return {p for p in descendants(pid) if _parent(p) == pid}


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return -1


async def test_a_killed_writer_process_is_replaced_and_loses_nothing(
    tmp_path: Path, processes: list[HubProcess], http: aiohttp.ClientSession,
    sockets: list[aiohttp.ClientWebSocketResponse],
) -> None:
    hub = HubProcess(env={
        "OMNIHUB_DATA_DIR": str(tmp_path / "data"),
        "OMNIHUB_DEMO": "0",
        "OMNIHUB_LOG_LEVEL": "warning",
        "OMNIHUB_REDIS_URL": "",
        "OMNIHUB_DATABASE_URL": "",
        "OMNIHUB_WEBCHAT_RATE_PER_S": "0",
    })
    hub.log_path = tmp_path / "hub.log"
    processes.append(hub)
    await asyncio.to_thread(hub.start)
    customer = await Customer(http, hub.url).start()
    ws = await customer.connect()
    sockets.append(ws)
    first = await customer.say("before the kill", "warm-up")
    assert first["type"] == "ack", first
    [writer] = _writer_pids(hub)

    texts = {f"m-{i}": f"burst message {i}" for i in range(BURST)}
    acked: dict[str, int] = {"warm-up": first["message_id"]}
    refused: list[str] = []
    for client_id, text in texts.items():
        await ws.send_json({"type": "message", "client_id": client_id, "text": text})
    os.kill(writer, signal.SIGKILL)

    async with asyncio.timeout(60):
        while len(acked) < BURST + 1:
            frame = await ws.receive_json()
            if frame["type"] == "ack":
                assert acked.setdefault(frame["client_id"], frame["message_id"]) == frame[
                    "message_id"
                ], f"{frame['client_id']} acked twice with two ids"
            elif frame["type"] == "error":
                assert frame["code"] == "storage_unavailable", frame
                refused.append(frame["client_id"])
                await ws.send_json({
                    "type": "message", "client_id": frame["client_id"],
                    "text": texts[frame["client_id"]],
                })

    [replacement] = _writer_pids(hub)
    assert replacement != writer
    history = await customer.history()
    stored = [m for m in history["messages"] if m["author"] == "customer"]
    by_client_id = {m["client_id"]: m for m in stored}
    assert len(stored) == len(by_client_id) == BURST + 1, "a message was stored twice or lost"
    for client_id, message_id in acked.items():
        assert by_client_id[client_id]["message_id"] == message_id
    # Whether the kill caught a batch in flight depends on timing; when it did, those
    # messages were refused and resent rather than acknowledged without being stored.
    assert set(refused) <= set(texts)
