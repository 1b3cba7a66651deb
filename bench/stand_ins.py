"""The providers a call talks to, run in a process of their own.

The loopback stand-ins (tests/support) are Python servers: run in the bench's own event
loop they would take CPU from the agent being measured and add their own scheduling delays
to its figures. Here they run in a separate ``spawn`` process, with its own interpreter
and GIL, and report their timestamps back over a pipe. ``time.monotonic()`` is one
system-wide clock on Linux, so those timestamps compare directly with the bench's.

Every call gets its own *line*: an OpenAI stand-in (LLM and TTS) and a Deepgram stand-in
with their own ports and scripts, so what a server recorded belongs to exactly one call.
The LiveKit server API stand-in (for transfers) is shared; a REFER names its room.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal, Self

from aiohttp import web

from bench.timed_deepgram import TimedDeepgram, TimedWords
from tests.support.deepgram_server import LoopbackDeepgram
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.openai_server import LoopbackOpenAI
from tests.support.scripted_llm import Reply

# The stand-ins' default pace of synthesized speech. Short utterances keep the bench quick;
# "Okay." still lasts the stand-in's minimum of 0.3 s.
SPEECH_SECONDS_PER_CHAR = 0.02


@dataclass(frozen=True)
class LineConfig:
    """What one call's providers do: their latencies and their scripts."""

    replies: tuple[Reply, ...]  # LLM turns, one per chat request
    transcripts: tuple[str, ...]  # what Deepgram hears, one per caller utterance
    llm_ttft: float = 0.0
    tts_ttfb: float = 0.0
    stt_latency: float = 0.0
    speech_seconds_per_char: float = SPEECH_SECONDS_PER_CHAR
    # Deepgram endpointing as the plugin asks for it (25 ms), scripted with each turn's
    # timed words instead of ``transcripts`` (bench/timed_deepgram.py)
    timed: tuple[TimedWords, ...] = ()
    client_endpointing: bool = False


@dataclass(frozen=True)
class LineAddress:
    """Where a call's settings point its OpenAI and Deepgram clients."""

    line_id: int
    openai_base_url: str
    openai_api_key: str
    deepgram_base_url: str
    deepgram_api_key: str


@dataclass(frozen=True)
class ProviderWait:
    """One request as the provider saw it: from its arrival to the first byte of the answer.

    That span is the provider's own time (the scripted latency plus the stand-in's
    processing), which the bench subtracts from the agent's response time.
    """

    kind: Literal["chat", "speech"]
    received_at: float  # time.monotonic() in the stand-in process
    first_byte_at: float | None  # None if it never answered (refused, cancelled)


@dataclass(frozen=True)
class LineRecord:
    """What a line's stand-ins recorded, as the bench reads it back."""

    waits: tuple[ProviderWait, ...]
    finals_sent_at: tuple[float, ...]  # Deepgram final transcripts, after any latency
    unexpected: tuple[str, ...]  # requests no script answered
    words_dropped: int = 0  # timed words never released (their speech was not heard)


@dataclass(frozen=True)
class Refer:
    """A TransferSIPParticipant request, as the LiveKit stand-in received it."""

    room_name: str
    received_at: float


@dataclass(frozen=True)
class _Failed:
    """A command that raised in the stand-in process; the bench raises it again."""

    message: str


class _TimedOpenAI(LoopbackOpenAI):
    """The OpenAI stand-in, also noting when each request got its first byte back."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waits: list[dict[str, Any]] = []

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._timed("chat", request, super()._chat)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        return await self._timed("speech", request, super()._speech)

    async def _timed(self, kind: str, request: web.Request, handler: Any) -> web.StreamResponse:
        wait: dict[str, Any] = {"kind": kind, "received_at": time.monotonic()}
        request["bench_wait"] = wait
        self.waits.append(wait)
        response: web.StreamResponse = await handler(request)
        return response

    async def _start(self, request: web.Request, content_type: str) -> web.StreamResponse:
        response = await super()._start(request, content_type)
        if (wait := request.get("bench_wait")) is not None:
            wait["first_byte_at"] = time.monotonic()
        return response


@dataclass
class _Line:
    """One call's providers, in the stand-in process."""

    openai: _TimedOpenAI
    deepgram: LoopbackDeepgram
    stack: AsyncExitStack = field(default_factory=AsyncExitStack)


class _Server:
    """Runs in the stand-in process: answers the bench's commands."""

    def __init__(self) -> None:
        self.lines: dict[int, _Line] = {}
        self.livekit = LoopbackLiveKit()

    async def open(self, config: LineConfig) -> LineAddress:
        """Start a line's two servers on free ports and load their scripts."""
        openai_server = _TimedOpenAI(
            ttft=config.llm_ttft,
            tts_ttfb=config.tts_ttfb,
            speech_seconds_per_char=config.speech_seconds_per_char,
        )
        deepgram_server: LoopbackDeepgram
        if config.client_endpointing:
            deepgram_server = TimedDeepgram(latency=config.stt_latency)
            deepgram_server.script_timed(*config.timed)
        else:
            deepgram_server = LoopbackDeepgram(latency=config.stt_latency)
        deepgram_server.script(*config.transcripts)
        line = _Line(openai_server, deepgram_server)
        await line.stack.enter_async_context(openai_server)
        await line.stack.enter_async_context(deepgram_server)
        openai_server.script(*config.replies)
        line_id = len(self.lines) + 1
        self.lines[line_id] = line
        return LineAddress(
            line_id,
            openai_server.base_url,
            openai_server.api_key,
            deepgram_server.base_url,
            deepgram_server.api_key,
        )

    def record(self, line_id: int) -> LineRecord:
        line = self.lines[line_id]
        return LineRecord(
            waits=tuple(
                ProviderWait(w["kind"], w["received_at"], w.get("first_byte_at"))
                for w in line.openai.waits
            ),
            finals_sent_at=tuple(f.sent_at for f in line.deepgram.finals),
            unexpected=tuple(str(u) for u in (*line.openai.unexpected, *line.deepgram.unexpected)),
            words_dropped=getattr(line.deepgram, "words_dropped", 0),
        )

    def refers(self) -> list[Refer]:
        return [
            Refer(r.message.room_name, r.received_at)
            for r in self.livekit.requests_for("TransferSIPParticipant")
        ]

    async def handle(self, command: tuple[Any, ...]) -> Any:
        match command:
            case ("open", LineConfig() as config):
                return await self.open(config)
            case ("record", int(line_id)):
                return self.record(line_id)
            case ("refers",):
                return self.refers()
            case _:
                raise ValueError(f"unknown command {command!r}")

    async def close(self) -> None:
        for line in self.lines.values():
            await line.stack.aclose()


def serve(conn: Connection) -> None:
    """The stand-in process's main function (a module-level function, for ``spawn``)."""
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    server = _Server()
    async with server.livekit:
        conn.send(server.livekit.env())
        try:
            while True:
                command = await asyncio.to_thread(conn.recv)
                if command == ("stop",):
                    break
                try:
                    reply = await server.handle(command)
                except Exception as e:  # reported to the bench, which raises it there
                    reply = _Failed(f"{type(e).__name__}: {e}")
                conn.send(reply)
        finally:
            await server.close()


class StandInProcess:
    """The bench's handle on the stand-in process (an async context manager)."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=serve, args=(child,), name="bench-stand-ins", daemon=True
        )
        self._lock = asyncio.Lock()
        self.livekit_env: dict[str, str] = {}

    async def __aenter__(self) -> Self:
        self._process.start()
        self.livekit_env = await asyncio.to_thread(self._conn.recv)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        with contextlib.suppress(BrokenPipeError, OSError):
            self._conn.send(("stop",))
        await asyncio.to_thread(self._process.join, 5)
        if self._process.is_alive():
            self._process.terminate()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def _ask(self, *command: Any) -> Any:
        """One command and its answer; the pipe is read in a thread, off the event loop."""
        async with self._lock:
            self._conn.send(command)
            reply = await asyncio.to_thread(self._conn.recv)
        if isinstance(reply, _Failed):
            raise RuntimeError(f"stand-in process: {reply.message}")
        return reply

    async def open_line(self, config: LineConfig) -> LineAddress:
        """A new line with its own OpenAI and Deepgram stand-ins."""
        line: LineAddress = await self._ask("open", config)
        return line

    async def record(self, line_id: int) -> LineRecord:
        """What the line's stand-ins have recorded so far."""
        record: LineRecord = await self._ask("record", line_id)
        return record

    async def refers(self) -> list[Refer]:
        """Every REFER the LiveKit stand-in has received."""
        refers: list[Refer] = await self._ask("refers")
        return refers
