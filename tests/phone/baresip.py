"""A real baresip user agent for the SIP tests: a temporary config (PCMU only, on loopback),
its microphone a WAV file (aufile), what it hears dumped to WAV (sndfile), driven over its
ctrl_tcp interface; and the WAV helpers its files need."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import wave
from pathlib import Path
from typing import Any

import numpy as np

from hub.calls.audio import resample
from tests.support import free_port

CALLER = "+8613800138000"
WAIT = 30  # seconds any one step may take on a busy 2-core machine before the test fails


def speech_only(pcm: bytes) -> bytes:
    """`pcm` from a little before its first loud sample (what baresip heard before the hub
    spoke is seconds of silence, which only slows the recogniser down)."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > 1000)
    start = max(0, int(loud[0]) - 1600) if loud.size else 0
    return samples[start:].tobytes()


def netstring(data: dict[str, Any]) -> bytes:
    body = json.dumps(data).encode()
    return b"%d:%s," % (len(body), body)


class Baresip:
    """A real baresip user agent in a temp config dir: PCMU only, on loopback, its microphone
    a WAV file (aufile), what it hears dumped to WAV (sndfile), driven over ctrl_tcp."""

    def __init__(self, home: Path, microphone: Path) -> None:
        home.mkdir()
        self.home = home
        self.sip_port, self.ctrl_port = free_port(), free_port()
        (home / "accounts").write_text(
            f"<sip:{CALLER}@127.0.0.1>;regint=0;audio_codecs=pcmu;answermode=manual\n"
        )
        (home / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{self.sip_port}",
                    "call_local_timeout 120",
                    f"audio_source aufile,{microphone}",
                    "audio_player aubridge,ear",
                    "audio_alert aubridge,alert",
                    "ausrc_srate 8000",
                    "auplay_srate 8000",
                    "audio_buffer 20-160",
                    "rtp_ports 40000-40998",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module aufile.so",
                    "module aubridge.so",
                    "module sndfile.so",
                    "module_tmp account.so",
                    "module_app menu.so",
                    "module_app ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{self.ctrl_port}",
                    f"snd_path {home}",
                    "",
                ]
            )
        )
        self.process: asyncio.subprocess.Process | None = None
        self.output: list[str] = []
        self._ready = asyncio.Event()
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._responses: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> Baresip:
        self.process = await asyncio.create_subprocess_exec(
            "baresip",
            "-f",
            str(self.home),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._tasks.append(asyncio.create_task(self._read_output()))
        await asyncio.wait_for(self._ready.wait(), WAIT)
        reader, self._writer = await asyncio.open_connection("127.0.0.1", self.ctrl_port)
        self._tasks.append(asyncio.create_task(self._read_control(reader)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            if self._writer is not None:
                # "quit" closes the WAV dumps and exits at once, where SIGTERM can wait half
                # a minute on its SIP transactions
                self._writer.write(netstring({"command": "quit", "params": "", "token": "q"}))
                with contextlib.suppress(ConnectionError):
                    await self._writer.drain()
            else:
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), WAIT)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        if self._writer is not None:
            self._writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _read_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            self.output.append(line)
            if "baresip is ready" in line:
                self._ready.set()

    async def _read_control(self, reader: asyncio.StreamReader) -> None:
        while True:
            length = await reader.readuntil(b":")
            body = await reader.readexactly(int(length[:-1]) + 1)
            message = json.loads(body[:-1])
            if message.get("event"):
                self._events.put_nowait(message)
            else:
                self._responses.put_nowait(message)

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        assert self._writer is not None
        self._writer.write(netstring({"command": command, "params": params, "token": "t"}))
        await self._writer.drain()
        return await asyncio.wait_for(self._responses.get(), WAIT)

    async def event(self, kind: str) -> dict[str, Any]:
        """The next event of `kind` (CALL_ESTABLISHED, CALL_CLOSED, ...)."""
        while True:
            event = await asyncio.wait_for(self._events.get(), WAIT)
            if event.get("type") == kind:
                return event

    def heard(self) -> bytes:
        """PCM16 8000 Hz of what baresip played (sndfile's decoder-side dump)."""
        [path] = glob.glob(str(self.home / "dump-*-dec.wav"))
        with wave.open(path) as w:
            return resample(w.readframes(w.getnframes()), w.getframerate(), 8000)
