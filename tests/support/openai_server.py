"""A loopback stand-in for the OpenAI API (chat completions and speech) for offline tests.

Tests point the real ``livekit.plugins.openai`` LLM and TTS at it, so the whole client
path runs: the openai SDK's request building, SSE decoding and error mapping, and the
plugin's own parsing of chunks, tool calls, usage and audio. Only the server is faked.

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
* Errors are ``{"error": {message, type, param, code}}``: 401 ``invalid_api_key`` for a
  wrong key, which the SDK turns into ``AuthenticationError`` and the plugin into
  ``APIStatusError(status_code=401)``, not retried.

Where it knowingly differs: only ``response_format: "pcm"`` is synthesized (others get a
400 naming the format, so a misconfigured agent fails loudly), and only streaming chat is
served. Replies come from a script of ``scripted_llm.Reply``; a request finding the script
empty gets a 500 and is listed in ``unexpected``, which a test asserts is empty.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.support.scripted_llm import Reply

SAMPLE_RATE = 24000
CHUNK_SECONDS = 0.05  # audio goes out in pieces, so the client really reads a stream
MODELS = ("gpt-4.1", "gpt-4.1-mini", "gpt-4o-mini-tts", "tts-1")


@dataclass(frozen=True)
class ChatRequest:
    """One authenticated chat completion request as the plugin sent it (its JSON body)."""

    body: dict[str, Any]
    received_at: float  # time.monotonic()

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
class SpeechRequest:
    """One speech request. Not frozen: ``first_byte_at`` is filled in when audio starts."""

    body: dict[str, Any]
    received_at: float  # time.monotonic()
    first_byte_at: float | None = None  # None while waiting, or when refused


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


class LoopbackOpenAI:
    """An async context manager serving ``/v1`` chat completions, speech and models.

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
        self.chat_requests: list[ChatRequest] = []
        self.speech_requests: list[SpeechRequest] = []
        self.unexpected: list[str] = []
        self._script: deque[Reply] = deque()
        self._arrived = asyncio.Condition()
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
        """Queue chat replies; each chat request takes the next."""
        self._script.extend(replies)

    @property
    def remaining(self) -> int:
        return len(self._script)

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

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/audio/speech", self._speech)
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

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return _error(400, "loopback: only stream=true is served")
        recorded = ChatRequest(body, time.monotonic())
        async with self._arrived:
            self.chat_requests.append(recorded)
            self._arrived.notify_all()
        if not self._script:
            message = (
                f"loopback: no scripted reply left for chat request #{len(self.chat_requests)}"
                f" (last user text {recorded.last_user_text!r})"
            )
            self.unexpected.append(message)
            return _error(500, message, type_="server_error")
        reply = self._script.popleft()

        await asyncio.sleep(self.ttft + reply.ttft)
        response = await self._start(request, "text/event-stream")
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
            await response.write(chunk(delta))
        await response.write(chunk({}, "tool_calls" if reply.tool_calls else "stop"))
        if with_usage:
            prompt = len(json.dumps(body["messages"])) // 4  # ~4 characters a token
            usage = {"prompt_tokens": prompt, "completion_tokens": len(deltas)}
            usage |= {"total_tokens": prompt + len(deltas)}
            usage |= {"prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0}}
            usage |= {"completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}
            await response.write(_sse(head | {"choices": [], "usage": usage}))
        await response.write(_sse("[DONE]"))
        await response.write_eof()
        return response

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

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        recorded = SpeechRequest(body, time.monotonic())
        self.speech_requests.append(recorded)
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
        response = await self._start(request, "text/event-stream" if sse else "audio/pcm")
        recorded.first_byte_at = time.monotonic()
        for start in range(0, len(audio), chunk):
            piece = audio[start : start + chunk]
            if sse:
                audio_b64 = base64.b64encode(piece).decode()
                piece = _sse({"type": "speech.audio.delta", "audio": audio_b64})
            await response.write(piece)
        if sse:
            text_tokens, audio_tokens = len(body["input"]) // 4 + 1, len(audio) // 960
            usage = {"input_tokens": text_tokens, "output_tokens": audio_tokens}
            usage["total_tokens"] = text_tokens + audio_tokens
            await response.write(_sse({"type": "speech.audio.done", "usage": usage}))
        await response.write_eof()
        return response

    async def _start(self, request: web.Request, content_type: str) -> web.StreamResponse:
        """Send the headers of a streamed answer; the body follows in pieces."""
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.headers["x-request-id"] = f"req_loopback{next(self._ids)}"
        await response.prepare(request)
        return response
