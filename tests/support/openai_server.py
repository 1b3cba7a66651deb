"""A loopback stand-in for the OpenAI API (chat, speech, transcription) for offline tests.

Tests point the real ``livekit.plugins.openai`` LLM, TTS and STT at it, so the whole
client path runs: the openai SDK's request building, SSE decoding and error mapping, and
the plugin's own parsing of chunks, tool calls, usage, audio and transcripts. Only the
server is faked, and it can be told to fail the way the real service fails (``Fault``).

It follows what api.openai.com puts on the wire:

* Chat streams ``chat.completion.chunk`` events: the role first, then the text as
  small deltas, then each tool call as a header (id, name, empty arguments) followed by
  its arguments in pieces, then an empty delta carrying ``finish_reason``, then (with
  ``stream_options.include_usage``) a usage chunk with ``choices: []``, then ``[DONE]``.
  Until that last chunk every chunk carries ``"usage": null``.
* Speech with ``stream_format: "sse"`` (gpt-4o-mini-tts) streams ``speech.audio.delta``
  events whose base64 PCM is under ``audio``, then ``speech.audio.done`` with token
  usage and no ``[DONE]``; with ``"audio"`` (tts-1, which refuses sse) the body is the
  raw audio. PCM is signed 16-bit little-endian mono at 24 kHz.
* Transcription is ``POST /v1/audio/transcriptions``, a multipart form: ``file`` (the
  plugin sends ``file.wav``, ``audio/wav``), ``model``, ``language``, ``response_format``
  (``json``; ``verbose_json`` for whisper-1, which alone accepts it), optional ``prompt``
  and ``temperature``. ``json`` answers ``{"text", "usage"}`` (token usage for the
  gpt-4o transcribe models, duration usage for whisper-1). Audio under 0.1 s is refused
  with ``audio_too_short``, a file that is not audio with ``invalid_value``.
* Errors are ``{"error": {message, type, param, code}}`` with an ``x-request-id``: 401
  ``invalid_api_key`` for a wrong key (the SDK's ``AuthenticationError``, the plugin's
  ``APIStatusError(status_code=401)``, not retried). Injected statuses carry OpenAI's
  bodies: 500 ``server_error``, 503 ``service_unavailable_error``/``server_is_overloaded``,
  429 ``rate_limit_exceeded`` (or ``insufficient_quota``), and the 502 that Cloudflare
  answers for api.openai.com, type ``cf_bad_gateway`` with a numeric ``code``. A failure
  after a chat stream has started is an SSE ``data: {"error": {...}}`` event, which the
  SDK raises as a plain ``openai.APIError``.

Faults. ``server.inject(Fault..., on=..., model=..., times=...)`` fails the next matching
requests (``times=None``: until cleared; ``server.fail_model(model, fault)`` is that for
one model); the rule returned has ``.hits`` and ``.clear()``. The earliest rule still in
force that matches a request applies to it. Every request is recorded, failed or not,
with the fault it got, its status and whether the client gave up, so a test counts the
attempts a client made (``server.requests``, ``chat_requests``, ``requests_for(model)``;
``settled()`` waits out background retries and probes first). A fault never uses up a
scripted reply or transcript: a chat stream broken midway sends the beginning of the
reply the next answered request gets, as a retried model would say much the same.
tests/unit/test_openai_server.py records what the plugins and adapters make of each.

Where it knowingly differs: only ``response_format: "pcm"`` is synthesized (others get a
400 naming the format, so a misconfigured agent fails loudly); only streaming chat is
served; transcripts come from a script whatever the audio says, and only WAV is decoded
(its length is recorded); model names are not checked. 429s carry no ``x-ratelimit-*``
headers, Cloudflare's 502 is never its HTML page (``Fault.garbage`` is a 200), and the
504's body is modeled on the 502's. Replies and transcripts come from scripts; a request
finding its script empty gets a 500 and is listed in ``unexpected``, which a test asserts
is empty.
"""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import math
import re
import time
import wave
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, ClassVar, Literal, Self

import numpy as np
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.scripted_llm import Reply

SAMPLE_RATE = 24000
CHUNK_SECONDS = 0.05  # audio goes out in pieces, so the client really reads a stream
MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4o-mini-tts",
    "tts-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "whisper-1",
)
MAX_UPLOAD_BYTES = 25 * 1024 * 1024  # OpenAI's limit for an audio file
MIN_AUDIO_SECONDS = 0.1
FILLER = Reply(text="Let me check that for you, one moment please.")
"""What a chat stream broken midway starts to say when no reply is scripted."""

Endpoint = Literal["chat", "speech", "transcription"]
FaultKind = Literal["status", "hang", "drop", "garbage", "stream_error"]

# What OpenAI answers for these statuses (message, type, code); {model} is filled in.
_STATUS_ERRORS: dict[int, tuple[str, str | None, str | int | None]] = {
    429: (
        "Rate limit reached for {model} in organization org-loopback on requests per min "
        "(RPM): Limit 500, Used 500, Requested 1. Please try again in 120ms. Visit "
        "https://platform.openai.com/account/rate-limits to learn more.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: (
        "The server had an error while processing your request. Sorry about that!",
        "server_error",
        None,
    ),
    502: ("Bad gateway.", "cf_bad_gateway", 502),
    503: (
        "Our servers are currently overloaded. Please try again later.",
        "service_unavailable_error",
        "server_is_overloaded",
    ),
    504: ("Gateway timeout.", "cf_gateway_timeout", 504),  # modeled on the 502
}
_DROPPED = web.RequestKey("loopback_dropped", bool)  # we closed it: not the client giving up
_GARBAGE = (
    b"<html><head><title>Welcome</title></head><body><p>Please sign in to continue."
    b"</p></body></html>\n"
)


@dataclass(frozen=True)
class Fault:
    """How one request goes wrong. Build one with the constructors, not the fields.

    ``after`` (hang, drop, stream_error) counts the pieces of the answer sent first: SSE
    events for chat, 50 ms audio chunks for speech, bytes of the JSON for a transcription.
    0 means before any response; past the end, just before the answer would have ended.
    """

    kind: FaultKind
    http_status: int = 200
    message: str = ""
    error_type: str | None = None
    error_code: str | int | None = None
    body: bytes = b""
    content_type: str = ""
    after: int = 0

    @classmethod
    def status(
        cls,
        code: int,
        message: str | None = None,
        *,
        error_type: str | None = None,
        error_code: str | int | None = None,
    ) -> Fault:
        """An HTTP error with OpenAI's error JSON; 429/500/502/503/504 get OpenAI's text."""
        known = _STATUS_ERRORS.get(code)
        default_type = "server_error" if code >= 500 else "invalid_request_error"
        return cls(
            "status",
            http_status=code,
            message=message or (known[0] if known else f"loopback: injected {code}"),
            error_type=error_type or (known[1] if known else default_type),
            error_code=error_code if error_code is not None else (known[2] if known else None),
        )

    @classmethod
    def server_error(cls) -> Fault:
        return cls.status(500)

    @classmethod
    def overloaded(cls) -> Fault:
        return cls.status(503)

    @classmethod
    def rate_limit(cls) -> Fault:
        return cls.status(429)

    @classmethod
    def insufficient_quota(cls) -> Fault:
        """The 429 of an account out of credit: retrying does not help, yet it is a 429."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. "
            "For more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
        return cls.status(
            429, message, error_type="insufficient_quota", error_code="insufficient_quota"
        )

    @classmethod
    def hang(cls, *, after: int = 0) -> Fault:
        """Accept the request, then send nothing more until the client gives up or the
        server closes (then the connection is dropped)."""
        return cls("hang", after=after)

    @classmethod
    def drop(cls, *, after: int = 0) -> Fault:
        """Close the TCP connection without a response, or midway through the answer."""
        return cls("drop", after=after)

    @classmethod
    def garbage(cls, body: bytes = _GARBAGE, content_type: str = "text/html") -> Fault:
        """A 200 whose body is not what was asked for: by default the HTML page a proxy or
        captive portal answers with."""
        return cls("garbage", body=body, content_type=content_type)

    @classmethod
    def stream_error(cls, *, after: int = 1) -> Fault:
        """Chat only: a streamed answer that stops with an SSE error event (a 500's body)."""
        known = _STATUS_ERRORS[500]
        return cls("stream_error", message=known[0], error_type=known[1], after=after)

    def __str__(self) -> str:
        if self.kind == "status":
            return f"status {self.http_status}"
        if self.kind == "garbage":
            return f"garbage ({self.content_type})"
        name = self.kind.replace("_", " ")
        return f"{name} after {self.after}" if self.after else name

    def error_json(self, model: str) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message.replace("{model}", model),
                "type": self.error_type,
                "param": None,
                "code": self.error_code,
            }
        }


@dataclass(eq=False)
class FaultRule:
    """An injected fault in force: applies to ``times`` more matching requests (None:
    until cleared). ``hits`` counts the requests it failed."""

    fault: Fault
    on: Endpoint | None = None
    model: str | None = None
    times: int | None = 1
    hits: int = 0
    cleared: bool = False

    @property
    def active(self) -> bool:
        return not self.cleared and (self.times is None or self.hits < self.times)

    def matches(self, endpoint: Endpoint, model: str) -> bool:
        return (
            self.active
            and self.on in (None, endpoint)
            and (self.model is None or self.model == model)
        )

    def clear(self) -> None:
        self.cleared = True


@dataclass
class _Recorded:
    """What every recorded request has: when it came, the fault it got, how it ended."""

    endpoint: ClassVar[Endpoint]
    _: KW_ONLY
    received_at: float = field(default_factory=time.monotonic)
    fault: Fault | None = None
    first_byte_at: float | None = None  # when the status line went out, None if it never did
    status: int | None = None  # the HTTP status sent; None when dropped or still hanging
    ended_at: float | None = None
    client_gave_up: bool = False  # the client closed the connection before the end

    @property
    def model(self) -> str:
        raise NotImplementedError


@dataclass
class ChatRequest(_Recorded):
    """One authenticated chat completion request as the plugin sent it (its JSON body)."""

    endpoint: ClassVar[Endpoint] = "chat"
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def instructions(self) -> str:
        return "\n".join(_text(m) for m in self.messages if m["role"] in ("system", "developer"))

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]

    @property
    def last_user_text(self) -> str:
        return next((_text(m) for m in reversed(self.messages) if m["role"] == "user"), "")


@dataclass
class SpeechRequest(_Recorded):
    """One speech request (its JSON body); ``first_byte_at`` is when audio started."""

    endpoint: ClassVar[Endpoint] = "speech"
    body: dict[str, Any]

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))


@dataclass
class TranscriptionRequest(_Recorded):
    """One transcription request: its form fields, and the audio file as decoded."""

    endpoint: ClassVar[Endpoint] = "transcription"
    form: dict[str, str]  # every field but the file
    file_name: str | None = None
    file_type: str | None = None
    audio_seconds: float | None = None  # None unless the file is a WAV
    sample_rate: int | None = None
    channels: int | None = None

    @property
    def model(self) -> str:
        return self.form.get("model", "")

    @property
    def language(self) -> str | None:
        return self.form.get("language")

    @property
    def response_format(self) -> str:
        return self.form.get("response_format", "json")  # OpenAI's default


AnyRequest = ChatRequest | SpeechRequest | TranscriptionRequest
_Answerer = Callable[[web.Request, Any, "_Answer"], Awaitable[web.StreamResponse]]


def _text(message: dict[str, Any]) -> str:
    """Message content is a string or a list of parts, depending on how it was built."""
    content = message.get("content") or ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if p.get("type") == "text")


def _error(
    status: int,
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> web.Response:
    """OpenAI's error shape; the SDK shows ``message`` and keeps the rest as ``body``."""
    return web.json_response(
        {"error": {"message": message, "type": type_, "param": param, "code": code}},
        status=status,
    )


def speech_audio(seconds: float) -> bytes:
    """Voice-like PCM: a 140 Hz buzz with harmonics at ~4 syllables/s, never silent, so
    tests and benchmarks see real levels (a VAD, an echo canceller) rather than zeros."""
    t = np.arange(round(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    buzz = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in (1, 2, 3))
    syllables = 0.55 - 0.45 * np.cos(2 * np.pi * 4 * t)
    return (buzz * syllables * 3000).astype("<i2").tobytes()


def _sse(data: dict[str, Any] | str) -> bytes:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


class _Finished(Exception):
    """Unwinds an answer that a fault ended early but properly (stream_error)."""

    def __init__(self, response: web.StreamResponse) -> None:
        self.response = response


class _Answer:
    """One answer going out piece by piece, broken where its request's fault says."""

    def __init__(self, server: LoopbackOpenAI, request: web.Request, recorded: AnyRequest):
        self.server, self.request, self.recorded = server, request, recorded
        fault = recorded.fault
        self.fault = fault if fault and fault.kind in ("hang", "drop", "stream_error") else None
        self.sent = 0
        self.response: web.StreamResponse | None = None

    async def start(self, content_type: str) -> None:
        """Send the status line and headers; the body follows in pieces."""
        self.response = await self.server._start(self.request, content_type)
        self.recorded.first_byte_at = time.monotonic()
        self.recorded.status = self.response.status

    async def send(self, piece: bytes) -> None:
        assert self.response is not None
        if self.fault and self.sent == self.fault.after:
            await self._break()
        await self.response.write(piece)
        self.sent += 1

    async def end(self) -> web.StreamResponse:
        assert self.response is not None
        if self.fault:  # asked to break past the last piece: before the end, then
            await self._break()
        await self.response.write_eof()
        return self.response

    async def _break(self) -> None:
        assert self.fault is not None and self.response is not None
        if self.fault.kind == "stream_error":
            await self.response.write(_sse(self.fault.error_json(self.recorded.model)))
            await self.response.write_eof()
            raise _Finished(self.response)
        if self.fault.kind == "hang":
            await self.server._hang()
        await self.server._drop(self.request)


class LoopbackOpenAI:
    """An async context manager serving ``/v1`` chat completions, speech, transcription
    and models.

    ``ttft``/``tts_ttfb`` delay the first chat chunk / audio bytes (virtual provider
    latency for benchmarks); speech lasts ``speech_seconds_per_char`` per input character.
    """

    def __init__(
        self,
        *,
        api_key: str = "sk-test",
        ttft: float = 0.0,
        tts_ttfb: float = 0.0,
        speech_seconds_per_char: float = 0.06,
    ) -> None:
        self.api_key = api_key
        self.ttft = ttft
        self.tts_ttfb = tts_ttfb
        self.speech_seconds_per_char = speech_seconds_per_char
        self.requests: list[AnyRequest] = []  # every endpoint, in order of arrival
        self.chat_requests: list[ChatRequest] = []
        self.speech_requests: list[SpeechRequest] = []
        self.transcription_requests: list[TranscriptionRequest] = []
        self.unexpected: list[str] = []
        self.faults: list[FaultRule] = []
        self._script: deque[Reply] = deque()
        self._tool_scripts: dict[str, deque[Reply]] = {}
        self._transcripts: deque[str] = deque()
        self._arrived = asyncio.Condition()
        self._in_flight = 0
        self._last_change = time.monotonic()
        self._closing = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._base_url = ""

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``base_url=`` or ``OPENAI_BASE_URL``."""
        if not self._base_url:
            raise RuntimeError("LoopbackOpenAI is not running; use `async with`")
        return self._base_url

    def env(self) -> dict[str, str]:
        """The variables the openai SDK reads when not given arguments (for monkeypatch)."""
        return {"OPENAI_API_KEY": self.api_key, "OPENAI_BASE_URL": self.base_url}

    def script(self, *replies: Reply) -> None:
        """Queue chat replies; each answered chat request takes the next."""
        self._script.extend(replies)

    def script_for_tool(self, tool: str, *replies: Reply) -> None:
        """Queue chat replies only for requests that offer ``tool`` (e.g. AMD's
        save_prediction): such a request takes the next of these before the main script,
        and when the framework decides without asking (AMD's short-greeting path), they
        are simply not used. Not counted in ``remaining``."""
        self._tool_scripts.setdefault(tool, deque()).extend(replies)

    def script_transcripts(self, *texts: str) -> None:
        """Queue transcripts; each answered transcription request takes the next."""
        self._transcripts.extend(texts)

    @property
    def remaining(self) -> int:
        return len(self._script)

    @property
    def remaining_transcripts(self) -> int:
        return len(self._transcripts)

    def inject(
        self,
        fault: Fault,
        *,
        on: Endpoint | None = None,
        model: str | None = None,
        times: int | None = 1,
    ) -> FaultRule:
        """Fail the next ``times`` requests (None: every one until cleared) to endpoint
        ``on`` and/or for ``model`` (None: any) with ``fault``."""
        if times is not None and times < 1:
            raise ValueError("times is a count of requests (>= 1), or None for until cleared")
        rule = FaultRule(fault, on=on, model=model, times=times)
        self.faults.append(rule)
        return rule

    def fail_model(self, model: str, fault: Fault) -> FaultRule:
        """Fail every request for ``model`` until the rule is cleared."""
        return self.inject(fault, model=model, times=None)

    def clear_faults(self) -> None:
        for rule in self.faults:
            rule.clear()

    def requests_for(self, model: str) -> list[AnyRequest]:
        return [r for r in self.requests if r.model == model]

    def speech_seconds(self, text: str) -> float:
        return max(0.3, len(text) * self.speech_seconds_per_char)

    async def wait_for_chat(
        self,
        n: int = 1,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test wants a bounded wait, not asyncio.timeout
    ) -> ChatRequest:
        """The ``n``-th chat request (1-based), waiting until it has arrived."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.chat_requests) >= n)
        return self.chat_requests[n - 1]

    async def wait_for_speech(
        self,
        part: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - a test wants a bounded wait, not asyncio.timeout
    ) -> SpeechRequest:
        """The first speech request whose input holds ``part``, waiting until it came."""

        def found() -> SpeechRequest | None:
            return next((r for r in self.speech_requests if part in r.body.get("input", "")), None)

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: found() is not None)
        request = found()
        assert request is not None
        return request

    async def wait_for_requests(
        self,
        n: int,
        *,
        on: Endpoint | None = None,
        model: str | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[AnyRequest]:
        """Waits until ``n`` requests matching ``on``/``model`` have arrived; returns them."""

        def matching() -> list[AnyRequest]:
            return [
                r for r in self.requests if on in (None, r.endpoint) and model in (None, r.model)
            ]

        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(matching()) >= n)
        return matching()

    async def settled(
        self,
        quiet: float = 0.3,
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> None:
        """Waits until no request is in progress (a hanging one is) and none has come for
        ``quiet`` seconds: background work (a fallback adapter probing a failed model, with
        retries less than ``quiet`` apart) has then shown up."""
        async with asyncio.timeout(timeout):
            while True:
                idle_for = time.monotonic() - self._last_change
                if self._in_flight == 0 and idle_for >= quiet:
                    return
                await asyncio.sleep(max(0.02, quiet - idle_for))

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._auth], client_max_size=MAX_UPLOAD_BYTES)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
        app.router.add_post("/v1/audio/transcriptions", self._transcription)
        app.router.add_get("/v1/models", self._models)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        # handler_cancellation: a client that gives up cancels its handler (maybe in ttft);
        # shutdown_timeout: closing does not wait out a long ttft still in progress.
        runner = web.AppRunner(
            app, handler_cancellation=True, access_log=None, shutdown_timeout=0.5
        )
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self._runner = runner
        self._base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # hanging requests drop their connections
        if self._runner is not None:
            await self._runner.cleanup()
        self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Every route checks the key first, as OpenAI does (even ``/v1/models``)."""
        header = request.headers.get("Authorization", "")
        if header == f"Bearer {self.api_key}":
            response: web.StreamResponse = await handler(request)
        elif not header.startswith("Bearer "):
            response = _error(401, "You didn't provide an API key.")
        else:
            key = header.removeprefix("Bearer ")
            masked = key[:3] + "*" * max(0, len(key) - 7) + key[-4:] if len(key) > 8 else "***"
            response = _error(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )
        if not response.prepared:  # streamed responses set it before their first byte
            response.headers["x-request-id"] = f"req_loopback{next(self._ids)}"
        return response

    async def _not_found(self, request: web.Request) -> web.Response:
        return _error(404, f"Invalid URL ({request.method} {request.path})")

    async def _models(self, _: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "system"} for m in MODELS]
        return web.json_response({"object": "list", "data": data})

    # -- the three endpoints: parse, record, then answer or fail --------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return _error(400, "loopback: only stream=true is served")
        return await self._serve(request, ChatRequest(body=body), self._answer_chat)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        return await self._serve(request, SpeechRequest(body=body), self._answer_speech)

    async def _transcription(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        recorded = TranscriptionRequest(form={k: v for k, v in form.items() if isinstance(v, str)})
        upload = form.get("file")
        if isinstance(upload, web.FileField):
            recorded.file_name, recorded.file_type = upload.filename, upload.content_type
            try:
                with wave.open(io.BytesIO(upload.file.read())) as wav:
                    recorded.sample_rate, recorded.channels = wav.getframerate(), wav.getnchannels()
                    recorded.audio_seconds = wav.getnframes() / wav.getframerate()
            except (wave.Error, EOFError):
                pass
        return await self._serve(request, recorded, self._answer_transcription)

    async def _serve(
        self, request: web.Request, recorded: AnyRequest, answer: _Answerer
    ) -> web.StreamResponse:
        """Records the request with the fault it gets, then fails it or lets it be answered."""
        recorded.fault = self._take_fault(recorded)
        async with self._arrived:
            self.requests.append(recorded)
            if isinstance(recorded, ChatRequest):
                self.chat_requests.append(recorded)
            elif isinstance(recorded, SpeechRequest):
                self.speech_requests.append(recorded)
            else:
                self.transcription_requests.append(recorded)
            self._in_flight += 1
            self._last_change = time.monotonic()
            self._arrived.notify_all()
        try:
            fault = recorded.fault
            if fault is not None and fault.kind == "stream_error" and recorded.endpoint != "chat":
                message = f"loopback: {fault} is for chat only, not {recorded.endpoint}"
                self.unexpected.append(message)
                response = _error(500, message, type_="server_error")
            elif fault is not None and fault.after == 0 and fault.kind != "stream_error":
                response = await self._fail(request, recorded, fault)
            else:
                try:
                    response = await answer(request, recorded, _Answer(self, request, recorded))
                except _Finished as finished:
                    response = finished.response
            if recorded.status is None:
                recorded.status = response.status
            return response
        except asyncio.CancelledError:  # the connection closed: by us (a drop) or the client
            recorded.client_gave_up = not request.get(_DROPPED, False)
            raise
        finally:
            recorded.ended_at = time.monotonic()
            self._in_flight -= 1
            self._last_change = time.monotonic()

    def _take_fault(self, recorded: AnyRequest) -> Fault | None:
        for rule in self.faults:
            if rule.matches(recorded.endpoint, recorded.model):
                rule.hits += 1
                return rule.fault
        return None

    async def _fail(
        self, request: web.Request, recorded: AnyRequest, fault: Fault
    ) -> web.StreamResponse:
        """A fault that strikes before any answer."""
        if fault.kind == "status":
            return web.json_response(fault.error_json(recorded.model), status=fault.http_status)
        if fault.kind == "garbage":
            return web.Response(body=fault.body, headers={"Content-Type": fault.content_type})
        if fault.kind == "hang":
            await self._hang()
        await self._drop(request)
        raise AssertionError("unreachable: a dropped connection cancels its handler")

    async def _hang(self) -> None:
        """Sends nothing until the client gives up (which cancels this handler) or the
        server closes (the caller then drops the connection)."""
        await self._closing.wait()

    async def _drop(self, request: web.Request) -> None:
        """Closes the connection (after what was written so far); aiohttp then cancels
        the handler, so this never returns."""
        request[_DROPPED] = True
        if request.transport is not None:
            request.transport.close()
        await asyncio.sleep(10)
        raise AssertionError("the closed connection did not cancel its handler")

    # -- answers ----------------------------------------------------------------------------

    async def _answer_chat(
        self, request: web.Request, recorded: ChatRequest, out: _Answer
    ) -> web.StreamResponse:
        body = recorded.body
        dedicated = next(
            (
                self._tool_scripts[name]
                for name in recorded.tool_names
                if self._tool_scripts.get(name)
            ),
            None,
        )
        if out.fault is not None:  # broken midway: the beginning of the next reply
            reply = self._script[0] if self._script else FILLER
        elif dedicated:
            reply = dedicated.popleft()
        elif self._script:
            reply = self._script.popleft()
        else:
            message = (
                f"loopback: no scripted reply left for chat request #{len(self.chat_requests)}"
                f" (last user text {recorded.last_user_text!r})"
            )
            self.unexpected.append(message)
            return _error(500, message, type_="server_error")

        await asyncio.sleep(self.ttft + reply.ttft)
        await out.start("text/event-stream")
        head = {"id": f"chatcmpl-loopback{next(self._ids)}", "object": "chat.completion.chunk"}
        head |= {"created": int(time.time()), "model": body["model"], "system_fingerprint": None}
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        if with_usage:
            head["usage"] = None

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return _sse(head | {"choices": [choice]})

        deltas = list(self._deltas(reply))
        for delta in deltas:
            await out.send(chunk(delta))
        await out.send(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if with_usage:
            prompt = len(json.dumps(body["messages"])) // 4  # ~4 characters a token
            usage = {"prompt_tokens": prompt, "completion_tokens": len(deltas)}
            usage |= {"total_tokens": prompt + len(deltas)}
            usage |= {"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}
            usage |= {"completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
            await out.send(_sse(head | {"choices": [], "usage": usage}))
        await out.send(_sse("[DONE]"))
        return await out.end()

    def _deltas(self, reply: Reply) -> Iterator[dict[str, Any]]:
        yield {"role": "assistant", "content": "" if reply.text else None, "refusal": None}
        for word in filter(None, re.split(r"(?=\s)", reply.text)):  # "Hi there" -> "Hi", " there"
            yield {"content": word}
        for index, call in enumerate(reply.tool_calls):
            header = {"index": index, "id": f"call_loopback{next(self._ids)}", "type": "function"}
            yield {"tool_calls": [header | {"function": {"name": call.name, "arguments": ""}}]}
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            for part in filter(None, (arguments[:half], arguments[half:])):
                yield {"tool_calls": [{"index": index, "function": {"arguments": part}}]}

    async def _answer_speech(
        self, request: web.Request, recorded: SpeechRequest, out: _Answer
    ) -> web.StreamResponse:
        body = recorded.body
        for name in ("model", "input", "voice"):
            if not body.get(name):
                message = f"Missing required parameter: '{name}'."
                return _error(400, message, param=name)
        audio_format = body.get("response_format", "mp3")  # OpenAI's default
        if audio_format != "pcm":
            message = f"loopback: response_format {audio_format!r} is not served, only 'pcm'"
            return _error(400, message, param="response_format")
        stream_format = body.get("stream_format", "audio")
        if stream_format not in ("audio", "sse") or (
            stream_format == "sse" and body["model"] in ("tts-1", "tts-1-hd")
        ):
            message = f"stream_format {stream_format!r} is not supported for {body['model']}"
            return _error(400, message, param="stream_format")

        audio = speech_audio(self.speech_seconds(body["input"]))
        chunk = round(CHUNK_SECONDS * SAMPLE_RATE) * 2  # bytes per chunk, whole samples
        await asyncio.sleep(self.tts_ttfb)
        sse = stream_format == "sse"
        await out.start("text/event-stream" if sse else "audio/pcm")
        for start in range(0, len(audio), chunk):
            piece = audio[start : start + chunk]
            if sse:
                audio_b64 = base64.b64encode(piece).decode()
                piece = _sse({"type": "speech.audio.delta", "audio": audio_b64})
            await out.send(piece)
        if sse:
            text_tokens, audio_tokens = len(body["input"]) // 4 + 1, len(audio) // 960
            usage = {"input_tokens": text_tokens, "output_tokens": audio_tokens}
            usage["total_tokens"] = text_tokens + audio_tokens
            await out.send(_sse({"type": "speech.audio.done", "usage": usage}))
        return await out.end()

    async def _answer_transcription(
        self, request: web.Request, recorded: TranscriptionRequest, out: _Answer
    ) -> web.StreamResponse:
        model, response_format = recorded.model, recorded.response_format
        if not model:
            return _error(400, "you must provide a model parameter", param="model")
        if recorded.file_name is None:
            return _error(400, "Missing required parameter: 'file'.", param="file")
        if recorded.audio_seconds is None:
            message = (
                "Invalid file format. Supported formats: ['flac', 'm4a', 'mp3', 'mp4', "
                "'mpeg', 'mpga', 'oga', 'ogg', 'wav', 'webm']"
            )
            return _error(400, message, param="file", code="invalid_value")
        if recorded.audio_seconds < MIN_AUDIO_SECONDS:
            message = "Audio file is too short. Minimum audio length is 0.1 seconds."
            return _error(400, message, param="file", code="audio_too_short")
        whisper = model.startswith("whisper")
        if response_format not in ("json", "text") + (("verbose_json",) if whisper else ()):
            message = (
                f"response_format '{response_format}' is not compatible with model "
                f"'{model}'. Use 'json' or 'text' instead."
            )
            return _error(400, message, param="response_format", code="unsupported_value")
        if not self._transcripts:
            message = (
                "loopback: no scripted transcript left for transcription request "
                f"#{len(self.transcription_requests)} ({recorded.audio_seconds:.2f} s of audio)"
            )
            self.unexpected.append(message)
            return _error(500, message, type_="server_error")

        text = self._transcripts[0] if out.fault is not None else self._transcripts.popleft()
        seconds = recorded.audio_seconds
        if whisper:
            usage: dict[str, Any] = {"type": "duration", "seconds": math.ceil(seconds)}
        else:
            audio_tokens, text_tokens = math.ceil(seconds * 10), len(text) // 4 + 1
            usage = {"type": "tokens", "input_tokens": audio_tokens}
            usage |= {"input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens}}
            usage |= {"output_tokens": text_tokens, "total_tokens": audio_tokens + text_tokens}
        answer: dict[str, Any] = {"text": text, "usage": usage}
        if response_format == "verbose_json":
            segment = {"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text}
            answer = {"task": "transcribe", "language": "english", "duration": seconds} | answer
            answer["segments"] = [segment]
        if response_format == "text":
            payload, content_type = f"{text}\n".encode(), "text/plain; charset=utf-8"
        else:
            payload, content_type = json.dumps(answer).encode(), "application/json"

        await out.start(content_type)
        cut = min(out.fault.after, len(payload)) if out.fault else 0
        for piece in [payload[i : i + 1] for i in range(cut)] + [payload[cut:]]:
            await out.send(piece)  # the first `after` bytes one by one, to break where told
        return await out.end()

    async def _start(self, request: web.Request, content_type: str) -> web.StreamResponse:
        """Send the headers of a streamed answer; the body follows in pieces."""
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.headers["x-request-id"] = f"req_loopback{next(self._ids)}"
        await response.prepare(request)
        return response
