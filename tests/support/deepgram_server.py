"""A loopback stand-in for Deepgram's live transcription WebSocket, for offline calls.

Tests point the real ``livekit.plugins.deepgram.STT`` at it (``base_url=server.base_url``),
so the plugin's own URL building, auth header, audio chunking, control messages and
parsing of results all run; only what was said is scripted (``server.script(...)``).

It follows the real service (``wss://api.deepgram.com/v1/listen``) in what the plugin
can observe:

* The handshake carries every option as a query parameter and the key as
  ``Authorization: Token <key>``; a wrong key is refused with HTTP 401 before the
  upgrade, which the plugin raises as a non-retryable ``APIStatusError(status_code=401)``.
* Audio is raw PCM16 (``encoding=linear16``) at the ``sample_rate`` query parameter, in
  binary frames; text frames are the controls ``KeepAlive``, ``Finalize`` and
  ``CloseStream``.
* Replies are JSON text frames: ``SpeechStarted`` (only with ``vad_events=true``), interim
  ``Results`` (only with ``interim_results=true``), a final ``Results`` per utterance,
  ``UtteranceEnd`` (only with ``utterance_end_ms`` and interim results) and, after
  ``CloseStream``, ``Metadata`` and a normal close. Every time in them is in seconds of
  audio received on this connection.

Where it has to choose, it is a simple, predictable endpointer rather than a model:

* Speech is any 10 ms window louder than -45 dBFS (RMS); comfort noise is far below.
* An utterance ends after ``max(endpointing, min_endpoint_ms)`` of silence, 500 ms by
  default. Real Deepgram honours the plugin's ``endpointing=25`` and would split a caller
  at every pause between sentences (billing.wav pauses 360 ms), sending several finals
  the framework joins into one turn. One scripted transcript per spoken utterance keeps
  scripts readable, and 500 ms still ends the utterance before Silero's default 550 ms.
* The final of an endpointed utterance has ``is_final`` and ``speech_final`` true (just
  ``is_final`` with ``endpointing=false``); one flushed by ``Finalize`` has
  ``from_finalize`` true and ``speech_final`` false (no endpoint was seen; the plugin then
  ends speech at the next endpoint or UtteranceEnd); a ``Finalize`` with no speech
  pending gets no reply. ``CloseStream`` finalizes pending speech like an endpoint.
  In an AgentSession finals come from endpointing only: the plugin sends ``Finalize``
  just when its stream is flushed or ended, and the session never flushes it (the plugin
  does not declare ``manual_flush``).
* Interims come every 0.5 s of speech and show the next scripted transcript's first
  words at 2.5 words a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Self

import numpy as np
from aiohttp import WSMsgType, web

WINDOW_SECONDS = 0.01
SPEECH_DBFS = -45.0
INTERIM_EVERY = 0.5
WORDS_PER_SECOND = 2.5
DEEPGRAM_DEFAULT_ENDPOINTING_MS = 10  # when the client sends no endpointing parameter
CONFIDENCE = 0.99
MODEL_UUID = "00000000-0000-4000-8000-00000000100b"


@dataclass
class DeepgramConnection:
    """One accepted WebSocket, as the server saw it."""

    params: dict[str, str]  # query parameters (the last value of a repeated one)
    authorization: str
    request_id: str
    opened_at: float  # time.monotonic()
    audio_bytes: int = 0
    controls: list[str] = field(default_factory=list)  # KeepAlive, Finalize, CloseStream...
    closed_at: float | None = None

    @property
    def sample_rate(self) -> int:
        return int(self.params.get("sample_rate", "16000"))

    @property
    def channels(self) -> int:
        return int(self.params.get("channels", "1"))

    @property
    def audio_seconds(self) -> float:
        return self.audio_bytes / (2 * self.channels * self.sample_rate)


@dataclass(frozen=True)
class SentFinal:
    """A final ``Results`` that ended heard speech (empty text if nothing was scripted)."""

    text: str
    audio_start: float  # seconds into the connection's audio
    audio_end: float  # end of the last loud window
    speech_final: bool
    from_finalize: bool
    sent_at: float  # time.monotonic(), after any ``latency``
    connection: DeepgramConnection


@dataclass(frozen=True)
class UnexpectedSpeech:
    """Speech heard when no transcript was scripted: a test that did not expect the
    caller (or the agent's echo) to be heard."""

    audio_start: float
    audio_end: float
    connection: DeepgramConnection


class LoopbackDeepgram:
    """An async context manager serving Deepgram's ``/v1/listen`` WebSocket on 127.0.0.1.

    ``latency`` delays each final ``Results`` (and so what follows it) by that many
    seconds, as a slow recognizer would; tests leave it at 0, benchmarks set it.
    """

    def __init__(
        self,
        api_key: str = "dg-test",
        *,
        latency: float = 0.0,
        min_endpoint_ms: int = 500,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.min_endpoint_ms = min_endpoint_ms
        self.connections: list[DeepgramConnection] = []
        self.refused: list[str] = []  # Authorization headers of refused handshakes
        self.finals: list[SentFinal] = []
        self.unexpected: list[UnexpectedSpeech] = []
        self._script: deque[str] = deque()
        self._awaited = 0
        self._final_sent = asyncio.Condition()
        self._open: set[web.WebSocketResponse] = set()
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1/listen`` for ``deepgram.STT(base_url=...)``; the
        plugin itself turns http into ws for streaming."""
        if not self._base_url:
            raise RuntimeError("LoopbackDeepgram is not running; use `async with`")
        return self._base_url

    def script(self, *transcripts: str) -> None:
        """Queue what the caller says, one transcript per utterance the server will hear."""
        self._script.extend(transcripts)

    @property
    def scripted(self) -> list[str]:
        """Transcripts not yet used."""
        return list(self._script)

    async def wait_for_final(
        self,
        n: int | None = None,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test wants a bounded wait, not asyncio.timeout
    ) -> SentFinal:
        """The ``n``-th final (0-based), or the next one no earlier call of this returned;
        one already sent counts, so there is no race with the code under test."""
        if n is None:
            n, self._awaited = self._awaited, self._awaited + 1
        async with asyncio.timeout(timeout), self._final_sent:
            await self._final_sent.wait_for(lambda: len(self.finals) > n)
        return self.finals[n]

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get("/v1/listen", self._listen)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/listen"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for ws in list(self._open):
            await ws.close(code=1001, message=b"loopback server closed")
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        authorization = request.headers.get("Authorization", "")
        if authorization != f"Token {self.api_key}":
            self.refused.append(authorization)
            return web.json_response(
                {"err_code": "INVALID_AUTH", "err_msg": "Invalid credentials.",
                 "request_id": request_id},
                status=401,
                headers={"dg-error": "Invalid credentials.", "dg-request-id": request_id},
            )  # fmt: skip
        if request.query.get("encoding") != "linear16":
            return web.json_response({"err_msg": "the loopback understands linear16 only"}, 400)

        ws = web.WebSocketResponse()
        ws.headers["dg-request-id"] = request_id
        await ws.prepare(request)
        conn = DeepgramConnection(
            params=dict(request.query), authorization=authorization,
            request_id=request_id, opened_at=time.monotonic(),
        )  # fmt: skip
        self.connections.append(conn)
        self._open.add(ws)
        stream = _Stream(self, conn, ws)
        try:
            await stream.run()
        finally:
            self._open.discard(ws)
            conn.closed_at = time.monotonic()
        return ws

    def _take_transcript(self, conn: DeepgramConnection, start: float, end: float) -> str:
        if self._script:
            return self._script.popleft()
        self.unexpected.append(UnexpectedSpeech(start, end, conn))
        return ""

    async def _record_final(self, final: SentFinal) -> None:
        async with self._final_sent:
            self.finals.append(final)
            self._final_sent.notify_all()


class _Stream:
    """One connection's endpointer: audio in, Deepgram messages out, in audio order."""

    def __init__(
        self, server: LoopbackDeepgram, conn: DeepgramConnection, ws: web.WebSocketResponse
    ) -> None:
        self.server, self.conn, self.ws = server, conn, ws
        params = conn.params
        self.window_bytes = 2 * conn.channels * round(conn.sample_rate * WINDOW_SECONDS)
        self.vad_events = params.get("vad_events") == "true"
        self.interims = params.get("interim_results") == "true"
        self.punctuated = "true" in (params.get("punctuate"), params.get("smart_format"))
        endpointing = params.get("endpointing", str(DEEPGRAM_DEFAULT_ENDPOINTING_MS))
        self.endpointing = endpointing != "false"
        self.endpoint_after = (
            max(int(endpointing) if self.endpointing else 0, server.min_endpoint_ms) / 1000
        )
        utterance_end_ms = params.get("utterance_end_ms")
        self.utterance_end_after = (
            int(utterance_end_ms) / 1000 if utterance_end_ms and self.interims else None
        )
        self.buffer = b""
        self.windows = 0
        self.now = 0.0  # seconds of audio endpointed so far
        self.speech_start: float | None = None
        self.loud_until = 0.0
        self.next_interim = 0.0
        self.last_word_end: float | None = None  # of a finished utterance, for UtteranceEnd
        self.outbox: asyncio.Queue[tuple[float, dict[str, Any], SentFinal | None] | None] = (
            asyncio.Queue()
        )

    async def run(self) -> None:
        sender = asyncio.create_task(self._send_all())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self.conn.audio_bytes += len(msg.data)
                    self._hear(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    control = json.loads(msg.data).get("type", "")
                    self.conn.controls.append(control)
                    if control == "Finalize":
                        self._end_utterance(speech_final=False, from_finalize=True)
                    elif control == "CloseStream":
                        self._end_utterance(speech_final=self.endpointing, from_finalize=False)
                        self.outbox.put_nowait(None)
                        await sender  # everything due, then the goodbye
                        with contextlib.suppress(ConnectionResetError):
                            await self.ws.send_json(self._metadata())
                        await self.ws.close()
                        return
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender

    def _hear(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= self.window_bytes:
            window, self.buffer = (
                self.buffer[: self.window_bytes],
                self.buffer[self.window_bytes :],
            )
            self._window(np.frombuffer(window, dtype="<i2"))

    def _window(self, samples: np.ndarray) -> None:
        rms = math.sqrt(float(np.mean(samples.astype(np.float64) ** 2)))
        loud = 20 * math.log10(max(rms, 1e-3) / 32768) > SPEECH_DBFS
        self.windows += 1
        start, self.now = self.now, round(self.windows * WINDOW_SECONDS, 3)
        if loud:
            if self.speech_start is None:
                self.speech_start, self.next_interim = start, start + INTERIM_EVERY
                self.last_word_end = None  # speech resumed before an UtteranceEnd was due
                if self.vad_events:
                    self._post({"type": "SpeechStarted", "channel": [0], "timestamp": start})
            self.loud_until = self.now
        if self.speech_start is not None:
            if self.now - self.loud_until >= self.endpoint_after:
                self._end_utterance(speech_final=self.endpointing, from_finalize=False)
            elif self.interims and self.now >= self.next_interim:
                self.next_interim += INTERIM_EVERY
                self._post(self._interim())
        elif (
            self.last_word_end is not None
            and self.utterance_end_after is not None
            and self.now - self.last_word_end >= self.utterance_end_after
        ):
            msg = {"type": "UtteranceEnd", "channel": [0, 1], "last_word_end": self.last_word_end}
            self._post(msg)
            self.last_word_end = None

    def _interim(self) -> dict[str, Any]:
        assert self.speech_start is not None
        upcoming = self.server.scripted[:1]
        words = upcoming[0].split() if upcoming else []
        heard = self.loud_until - self.speech_start
        words = words[: math.ceil(heard * WORDS_PER_SECOND)]
        return self._results(
            " ".join(words), self.speech_start, self.loud_until, is_final=False,
            speech_final=False, from_finalize=False,
        )  # fmt: skip

    def _end_utterance(self, *, speech_final: bool, from_finalize: bool) -> None:
        start, end = self.speech_start, self.loud_until
        if start is None:
            return
        self.speech_start = None
        text = self.server._take_transcript(self.conn, start, end)
        self.last_word_end = end
        final = SentFinal(text, start, end, speech_final, from_finalize, 0.0, self.conn)
        msg = self._results(
            text, start, end, is_final=True, speech_final=speech_final, from_finalize=from_finalize
        )
        self._post(msg, delay=self.server.latency, final=final)

    def _results(
        self,
        text: str,
        start: float,
        end: float,
        *,
        is_final: bool,
        speech_final: bool,
        from_finalize: bool,
    ) -> dict[str, Any]:
        if not self.punctuated:  # Deepgram's unformatted transcript: lower case, bare words
            text = " ".join(_bare(w) for w in text.split())
        return {
            "type": "Results",
            "channel_index": [0, 1],
            "duration": round(self.now - start, 3),
            "start": round(start, 3),
            "is_final": is_final,
            "speech_final": speech_final,
            "from_finalize": from_finalize,
            "channel": {
                "alternatives": [
                    {
                        "transcript": text,
                        "confidence": CONFIDENCE if text else 0.0,
                        "words": _timed_words(text, start, end, self.punctuated),
                    }
                ]
            },
            "metadata": {
                "request_id": self.conn.request_id,
                "model_info": {"name": self._model, "version": "loopback", "arch": self._model},
                "model_uuid": MODEL_UUID,
            },
        }

    def _metadata(self) -> dict[str, Any]:
        return {
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.conn.request_id,
            "sha256": "",
            "created": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "duration": round(self.conn.audio_seconds, 3),
            "channels": self.conn.channels,
            "models": [MODEL_UUID],
            "model_info": {
                MODEL_UUID: {"name": self._model, "version": "loopback", "arch": self._model}
            },
        }

    @property
    def _model(self) -> str:
        return self.conn.params.get("model", "base")

    def _post(
        self, msg: dict[str, Any], *, delay: float = 0.0, final: SentFinal | None = None
    ) -> None:
        self.outbox.put_nowait((asyncio.get_running_loop().time() + delay, msg, final))

    async def _send_all(self) -> None:
        """Sends in order, so a delayed final holds back what came after it, as it would
        on one socket."""
        loop = asyncio.get_running_loop()
        while (item := await self.outbox.get()) is not None:
            due, msg, final = item
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            try:
                await self.ws.send_json(msg)
            except ConnectionResetError:
                return  # the client hung up; nothing more to say
            if final is not None:
                await self.server._record_final(replace(final, sent_at=time.monotonic()))


def _bare(word: str) -> str:
    return re.sub(r"[^\w']", "", word).lower()


def _timed_words(text: str, start: float, end: float, punctuated: bool) -> list[dict[str, Any]]:
    """Spreads the words over the heard speech in proportion to their length."""
    words = text.split()
    total = sum(len(w) + 1 for w in words)
    timed, at = [], start
    for w in words:
        length = (end - start) * (len(w) + 1) / total
        word: dict[str, Any] = {
            "word": _bare(w),
            "start": round(at, 3),
            "end": round(at + length, 3),
            "confidence": CONFIDENCE,
        }
        if punctuated:
            word["punctuated_word"] = w
        timed.append(word)
        at += length
    return timed
