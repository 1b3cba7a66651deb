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

Text to speech (``/v1/speak``), for ``deepgram.TTS(base_url=server.speak_url, ...)``; the
plugin's ``base_url`` is the whole endpoint URL (``.../v1/speak``, no query), which it
turns into ``ws(s)://`` for streaming and ``http(s)://`` for POST:

* Streaming (``TTS.stream()``, what an AgentSession uses, also through a FallbackAdapter)
  is a WebSocket with ``encoding``, ``model``, ``sample_rate`` and ``mip_opt_out`` as
  query parameters. The server opens with ``Metadata``; the client sends
  ``{"type": "Speak", "text": "word "}`` per word and ``{"type": "Flush"}`` after each
  segment; the server answers a Flush with the segment's audio as binary frames, then
  ``{"type": "Flushed", "sequence_id": n}`` (n counts flushes from 0, sent even for no
  text). ``Clear`` drops unflushed text (``Cleared``); ``Close`` closes normally. The
  plugin keeps the socket in a pool and sends Flush + Close when it retires it.
* ``TTS.synthesize()`` is ``POST`` with ``container=none`` added to the query and
  ``{"text": ...}``; the body of the 200 is the raw audio.
* Audio is PCM16 mono at the requested rate (only ``linear16`` is served; anything else
  gets a 400 so a misconfigured agent fails loudly): a voice-like 210 Hz buzz, pitched
  apart from the OpenAI stand-in's 140 Hz so a test can tell who spoke, lasting
  ``speech_seconds_per_char`` per character.

Faults (:meth:`LoopbackDeepgram.fault`) apply to the next ``times`` requests to an
endpoint, or to every one until :meth:`~LoopbackDeepgram.clear_faults`; every request
is recorded in ``attempts`` whatever came of it, and :meth:`~LoopbackDeepgram.drop_connections`
cuts every open WebSocket on command. :func:`unreachable_url` is a port nobody listens
on. What the plugin (livekit-plugins-deepgram 1.8.9, livekit-agents' retry loop) makes
of each is pinned in ``tests/unit/test_deepgram_server.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import socket
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Literal, NamedTuple, Self

import numpy as np
from aiohttp import WSMsgType, web

WINDOW_SECONDS = 0.01
SPEECH_DBFS = -45.0
INTERIM_EVERY = 0.5
WORDS_PER_SECOND = 2.5
DEEPGRAM_DEFAULT_ENDPOINTING_MS = 10  # when the client sends no endpointing parameter
CONFIDENCE = 0.99
MODEL_UUID = "00000000-0000-4000-8000-00000000100b"
SPEAK_MODEL_UUID = "00000000-0000-4000-8000-0000000a0a2a"
SPEAK_CHUNK_SECONDS = 0.05  # audio goes out in pieces, so the client really reads a stream
VOICE_HZ = 210.0

Endpoint = Literal["listen", "speak"]


# -- faults -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refuse:
    """Answer with this HTTP status instead of upgrading (or of audio, for a POST), with a
    Deepgram-style JSON error body, as an overloaded or failing service does."""

    status: int = 503


@dataclass(frozen=True)
class Stall:
    """Take the TCP connection and the request and never answer: the WebSocket handshake
    (or POST) never completes. Held until the client goes away or the server closes."""


@dataclass(frozen=True)
class Mute:
    """Upgrade, then never send anything: no results, no Flushed, no close on
    CloseStream. With ``read=True`` the socket is still read, so the client's pings are
    answered (a live connection to a stuck service); with ``read=False`` nothing is
    read either and pings go unanswered (a frozen peer, a half-open connection). A POST
    is held unanswered, like :class:`Stall`."""

    read: bool = True


@dataclass(frozen=True)
class Drop:
    """Upgrade, then cut the TCP connection (no close frame) at the first client message
    that finds ``after_audio`` seconds of audio received on the connection; 0 cuts at the
    first message (the STT plugin's opening KeepAlive, the TTS plugin's first Speak). A
    POST is cut before any response."""

    after_audio: float = 0.0


GARBAGE_FRAMES: tuple[str | bytes, ...] = (
    "<html><body><h1>502 Bad Gateway</h1></body></html>",  # not JSON
    "[]",  # JSON, not an object
    '{"channel": {"alternatives": []}}',  # no "type"
    '{"type": "Results", "is_final": true}',  # a Results without channel or metadata
    b"\x00\x01garbage",  # a binary frame where text is expected
)


@dataclass(frozen=True)
class Garbage:
    """Upgrade, send these frames before anything else, then carry on normally. A POST
    gets them, joined, as the body of a 200 in place of audio."""

    frames: tuple[str | bytes, ...] = GARBAGE_FRAMES


Fault = Refuse | Stall | Mute | Drop | Garbage


@dataclass(frozen=True)
class Attempt:
    """One request to an endpoint, whatever came of it (refused, stalled, upgraded...)."""

    endpoint: Endpoint
    method: str  # GET (a WebSocket) or POST (/v1/speak over HTTP)
    params: dict[str, str]
    authorization: str
    at: float  # time.monotonic()
    fault: Fault | None


@contextlib.contextmanager
def unreachable_url(path: str = "/v1/listen") -> Iterator[str]:
    """``http://127.0.0.1:PORT{path}`` where nobody listens: the port is bound (so nothing
    else takes it while the block runs) but not listening, so every connect is refused
    at once (ECONNREFUSED), as for a service that is down or firewalled with a reject."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{path}"


def voice_audio(seconds: float, sample_rate: int) -> bytes:
    """Voice-like PCM16: a 210 Hz buzz with harmonics at ~4 syllables/s, never silent."""
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    buzz = sum(np.sin(2 * np.pi * VOICE_HZ * k * t) / k for k in (1, 2, 3))
    syllables = 0.55 - 0.45 * np.cos(2 * np.pi * 4 * t)
    return (buzz * syllables * 3000).astype("<i2").tobytes()


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
    fault: Fault | None = None
    dropped: bool = False  # cut by a Drop fault or drop_connections()

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
class SpeakRequest:
    """Text the TTS plugin asked to hear: one flushed segment of a WebSocket, or a POST."""

    transport: Literal["websocket", "http"]
    model: str
    params: dict[str, str]
    text: str
    received_at: float  # time.monotonic() of the Flush or POST
    audio_seconds: float  # what the server sends back (0 when a fault holds it back)


@dataclass(frozen=True)
class UnexpectedSpeech:
    """Speech heard when no transcript was scripted: a test that did not expect the
    caller (or the agent's echo) to be heard."""

    audio_start: float
    audio_end: float
    connection: DeepgramConnection


class LoopbackDeepgram:
    """An async context manager serving Deepgram's ``/v1/listen`` and ``/v1/speak`` on
    127.0.0.1.

    ``latency`` delays each final ``Results`` (and so what follows it) by that many
    seconds, as a slow recognizer would; ``tts_ttfb`` delays a segment's first audio.
    Tests leave them at 0, benchmarks set them.
    """

    def __init__(
        self,
        api_key: str = "dg-test",
        *,
        latency: float = 0.0,
        min_endpoint_ms: int = 500,
        tts_ttfb: float = 0.0,
        speech_seconds_per_char: float = 0.06,
    ) -> None:
        self.api_key = api_key
        self.latency = latency
        self.min_endpoint_ms = min_endpoint_ms
        self.tts_ttfb = tts_ttfb
        self.speech_seconds_per_char = speech_seconds_per_char
        self.attempts: list[Attempt] = []  # every request to either endpoint
        self.connections: list[DeepgramConnection] = []  # accepted listen WebSockets
        self.refused: list[str] = []  # Authorization headers of refused handshakes
        self.finals: list[SentFinal] = []
        self.unexpected: list[UnexpectedSpeech] = []
        self.speak_requests: list[SpeakRequest] = []
        self._script: deque[str] = deque()
        self._awaited = 0
        self._final_sent = asyncio.Condition()
        self._attempted = asyncio.Condition()
        self._faults: dict[Endpoint, deque[_Queued]] = {"listen": deque(), "speak": deque()}
        self._open: dict[web.WebSocketResponse, _Open] = {}
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._origin = ""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1/listen`` for ``deepgram.STT(base_url=...)``; the
        plugin itself turns http into ws for streaming."""
        return f"{self._running_origin()}/v1/listen"

    @property
    def speak_url(self) -> str:
        """``http://127.0.0.1:PORT/v1/speak`` for ``deepgram.TTS(base_url=...)``."""
        return f"{self._running_origin()}/v1/speak"

    def _running_origin(self) -> str:
        if not self._origin:
            raise RuntimeError("LoopbackDeepgram is not running; use `async with`")
        return self._origin

    def script(self, *transcripts: str) -> None:
        """Queue what the caller says, one transcript per utterance the server will hear."""
        self._script.extend(transcripts)

    @property
    def scripted(self) -> list[str]:
        """Transcripts not yet used."""
        return list(self._script)

    def fault(self, fault: Fault, *, times: int | None = 1, endpoint: Endpoint = "listen") -> None:
        """Apply ``fault`` to the next ``times`` requests to ``endpoint``, or with
        ``times=None`` to every one until :meth:`clear_faults`. Faults queue up in order:
        ``fault(Refuse(503), times=2); fault(Drop())`` refuses two, then drops one."""
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for every request")
        self._faults[endpoint].append(_Queued(fault, times))

    def clear_faults(self, endpoint: Endpoint | None = None) -> None:
        """Forget queued faults (of one endpoint, or of both); connections already
        faulted keep their fault."""
        for name in [endpoint] if endpoint else list(self._faults):
            self._faults[name].clear()

    def drop_connections(self, endpoint: Endpoint | None = None) -> int:
        """Cut the TCP connection of every open WebSocket (of one endpoint, or of both)
        now, with no close frame, as a network failure or a crashed server would; idle
        streams that only get KeepAlives included. Returns how many were cut."""
        cut = 0
        for ws, open_ in list(self._open.items()):
            if endpoint in (None, open_.endpoint) and not open_.transport.is_closing():
                self._cut(ws)
                cut += 1
        return cut

    def attempts_for(self, endpoint: Endpoint = "listen") -> list[Attempt]:
        return [a for a in self.attempts if a.endpoint == endpoint]

    async def wait_for_attempts(
        self,
        count: int,
        *,
        endpoint: Endpoint = "listen",
        timeout: float = 5.0,  # noqa: ASYNC109 - a test wants a bounded wait, not asyncio.timeout
    ) -> list[Attempt]:
        """Waits until ``endpoint`` has had at least ``count`` requests; returns them all."""
        async with asyncio.timeout(timeout), self._attempted:
            await self._attempted.wait_for(lambda: len(self.attempts_for(endpoint)) >= count)
        return self.attempts_for(endpoint)

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
        app.router.add_get("/v1/speak", self._speak_ws)
        app.router.add_post("/v1/speak", self._speak_http)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._origin = f"http://127.0.0.1:{runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # releases stalled requests and frozen sockets
        for ws, open_ in list(self._open.items()):
            try:
                async with asyncio.timeout(1.0):
                    await ws.close(code=1001, message=b"loopback server closed")
            except TimeoutError:
                open_.transport.abort()
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    # -- what every request goes through ----------------------------------------------

    async def _admit(
        self, endpoint: Endpoint, request: web.Request, request_id: str
    ) -> tuple[Fault | None, web.StreamResponse | None]:
        """Records the attempt and picks its fault; returns a response when the request
        ends before reaching the service: refused, stalled, bad key, bad encoding."""
        fault = self._take_fault(endpoint)
        authorization = request.headers.get("Authorization", "")
        attempt = Attempt(
            endpoint, request.method, dict(request.query), authorization, time.monotonic(), fault
        )
        async with self._attempted:
            self.attempts.append(attempt)
            self._attempted.notify_all()
        if isinstance(fault, Refuse):
            phrase = HTTPStatus(fault.status).phrase
            code = re.sub(r"\W+", "_", phrase).upper()
            return fault, _error(fault.status, code, phrase, request_id)
        if isinstance(fault, Stall):
            await self._hold(request)
            return fault, web.Response(status=503)
        if authorization != f"Token {self.api_key}":
            self.refused.append(authorization)
            return fault, _error(401, "INVALID_AUTH", "Invalid credentials.", request_id)
        if request.query.get("encoding") != "linear16":
            return fault, web.json_response(
                {"err_msg": "the loopback serves linear16 only"}, status=400
            )
        return fault, None

    def _take_fault(self, endpoint: Endpoint) -> Fault | None:
        """The fault at the head of the queue, used up once more."""
        queue = self._faults[endpoint]
        if not queue:
            return None
        head = queue[0]
        if head.times is not None:
            head.times -= 1
            if head.times == 0:
                queue.popleft()
        return head.fault

    async def _hold(self, request: web.Request) -> None:
        """Waits until the client goes away or the server closes."""
        transport = request.transport
        while transport is not None and not transport.is_closing() and not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._closing.wait()

    async def _upgrade(
        self, endpoint: Endpoint, request: web.Request, request_id: str
    ) -> web.WebSocketResponse:
        transport = request.transport
        assert transport is not None
        ws = web.WebSocketResponse()
        ws.headers["dg-request-id"] = request_id
        await ws.prepare(request)
        self._open[ws] = _Open(endpoint, transport)
        return ws

    def _cut(self, ws: web.WebSocketResponse) -> None:
        """Closes the TCP connection under ``ws`` with no close frame."""
        if (open_ := self._open.get(ws)) is not None:
            if open_.conn is not None:
                open_.conn.dropped = True
            open_.transport.abort()

    # -- /v1/listen -------------------------------------------------------------------

    async def _listen(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        fault, early = await self._admit("listen", request, request_id)
        if early is not None:
            return early
        ws = await self._upgrade("listen", request, request_id)
        conn = DeepgramConnection(
            params=dict(request.query), authorization=request.headers["Authorization"],
            request_id=request_id, opened_at=time.monotonic(), fault=fault,
        )  # fmt: skip
        self.connections.append(conn)
        self._open[ws] = self._open[ws]._replace(conn=conn)
        try:
            if isinstance(fault, Mute) and not fault.read:
                await self._hold(request)
            else:
                await _Stream(self, conn, ws).run()
        finally:
            self._open.pop(ws, None)
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

    # -- /v1/speak --------------------------------------------------------------------

    def _speech(self, text: str, params: dict[str, str]) -> bytes:
        seconds = len(text) * self.speech_seconds_per_char
        return voice_audio(seconds, _rate(params))

    def _record_speech(
        self,
        transport: Literal["websocket", "http"],
        params: dict[str, str],
        text: str,
        audio: bytes,
    ) -> None:
        seconds = len(audio) / 2 / _rate(params)
        self.speak_requests.append(
            SpeakRequest(
                transport, params.get("model", ""), params, text, time.monotonic(), seconds
            )
        )

    async def _speak_ws(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        fault, early = await self._admit("speak", request, request_id)
        if early is not None:
            return early
        ws = await self._upgrade("speak", request, request_id)
        params = dict(request.query)
        model = params.get("model", "")
        try:
            if isinstance(fault, Mute) and not fault.read:
                await self._hold(request)
                return ws
            muted = isinstance(fault, Mute)
            if isinstance(fault, Garbage):
                await _send_frames(ws, fault.frames)
            if not muted:
                await ws.send_json(
                    {"type": "Metadata", "request_id": request_id, "model_name": model,
                     "model_version": "loopback", "model_uuid": SPEAK_MODEL_UUID}
                )  # fmt: skip
            text: list[str] = []
            flushes = 0
            async for msg in ws:
                if isinstance(fault, Drop):
                    self._cut(ws)
                    break
                if msg.type != WSMsgType.TEXT:
                    continue
                data = json.loads(msg.data)
                match data.get("type"):
                    case "Speak":
                        text.append(str(data.get("text", "")))
                    case "Flush":
                        said, text = "".join(text).strip(), []
                        audio = b"" if muted else self._speech(said, params)
                        if said:  # the plugin also flushes nothing, when it retires a socket
                            self._record_speech("websocket", params, said, audio)
                        if not muted:
                            await self._send_speech(ws, audio, params)
                            await ws.send_json({"type": "Flushed", "sequence_id": flushes})
                        flushes += 1
                    case "Clear":
                        text = []
                        if not muted:
                            await ws.send_json({"type": "Cleared", "sequence_id": flushes})
                    case "Close" if not muted:
                        await ws.close()
                        break
        except ConnectionResetError:
            pass  # the client went away mid-send
        finally:
            self._open.pop(ws, None)
        return ws

    async def _send_speech(
        self, ws: web.WebSocketResponse, audio: bytes, params: dict[str, str]
    ) -> None:
        if audio and self.tts_ttfb:
            await asyncio.sleep(self.tts_ttfb)
        chunk = 2 * round(_rate(params) * SPEAK_CHUNK_SECONDS)
        for i in range(0, len(audio), chunk):
            await ws.send_bytes(audio[i : i + chunk])

    async def _speak_http(self, request: web.Request) -> web.StreamResponse:
        request_id = str(uuid.uuid4())
        fault, early = await self._admit("speak", request, request_id)
        if early is not None:
            return early
        params = dict(request.query)
        if params.get("container", "wav") != "none":
            return web.json_response({"err_msg": "the loopback serves container=none only"}, 400)
        if isinstance(fault, Drop):
            assert request.transport is not None
            request.transport.abort()
            return web.Response(status=503)  # never sent
        if isinstance(fault, Mute):
            await self._hold(request)
            return web.Response(status=503)
        said = str((await request.json()).get("text", ""))
        if isinstance(fault, Garbage):
            body = b"".join(f if isinstance(f, bytes) else f.encode() for f in fault.frames)
            return web.Response(body=body, content_type="application/octet-stream")
        audio = self._speech(said, params)
        self._record_speech("http", params, said, audio)
        resp = web.StreamResponse(headers={"dg-request-id": request_id})
        resp.content_type = "application/octet-stream"
        await resp.prepare(request)
        if audio and self.tts_ttfb:
            await asyncio.sleep(self.tts_ttfb)
        chunk = 2 * round(_rate(params) * SPEAK_CHUNK_SECONDS)
        for i in range(0, len(audio), chunk):
            await resp.write(audio[i : i + chunk])
        await resp.write_eof()
        return resp


@dataclass
class _Queued:
    fault: Fault
    times: int | None  # requests left to fault; None: until cleared


class _Open(NamedTuple):
    """An open WebSocket: which endpoint, the TCP transport under it, its connection."""

    endpoint: Endpoint
    transport: asyncio.BaseTransport
    conn: DeepgramConnection | None = None


def _rate(params: dict[str, str]) -> int:
    return int(params.get("sample_rate", "24000"))  # Deepgram's default for linear16


def _error(status: int, code: str, message: str, request_id: str) -> web.Response:
    """An error as Deepgram sends it before an upgrade: JSON plus dg-* headers."""
    return web.json_response(
        {"err_code": code, "err_msg": message, "request_id": request_id},
        status=status,
        headers={"dg-error": message, "dg-request-id": request_id},
    )


async def _send_frames(ws: web.WebSocketResponse, frames: tuple[str | bytes, ...]) -> None:
    for frame in frames:
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)


class _Stream:
    """One connection's endpointer: audio in, Deepgram messages out, in audio order."""

    def __init__(
        self, server: LoopbackDeepgram, conn: DeepgramConnection, ws: web.WebSocketResponse
    ) -> None:
        self.server, self.conn, self.ws = server, conn, ws
        self.muted = isinstance(conn.fault, Mute)
        self.drop_after = conn.fault.after_audio if isinstance(conn.fault, Drop) else None
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
        if isinstance(self.conn.fault, Garbage):
            await _send_frames(self.ws, self.conn.fault.frames)
        sender = asyncio.create_task(self._send_all())
        try:
            async for msg in self.ws:
                if msg.type == WSMsgType.BINARY:
                    self.conn.audio_bytes += len(msg.data)
                if self.drop_after is not None and self.conn.audio_seconds >= self.drop_after:
                    self.server._cut(self.ws)
                    return
                if msg.type == WSMsgType.BINARY:
                    if not self.muted:  # a stuck recognizer: heard, never endpointed
                        self._hear(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    control = json.loads(msg.data).get("type", "")
                    self.conn.controls.append(control)
                    if control == "Finalize":
                        self._end_utterance(speech_final=False, from_finalize=True)
                    elif control == "CloseStream" and not self.muted:
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
        if self.muted:
            return
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
