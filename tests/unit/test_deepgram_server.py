"""The loopback Deepgram, driven by the real livekit-plugins-deepgram client.

What the plugin makes of each fault is pinned here, as the session would see it: the
``error`` events the STT/TTS emits (an AgentSession listens to exactly these; a
``recoverable`` one is ignored, the 4th unrecoverable STT error in a row closes it) and
what the stream finally raises. Most tests use short retry options to stay fast; the
counts and intervals are those of the defaults (``APIConnectOptions``: max_retry=3,
retry_interval=2.0 s after a first retry at 0.1 s, timeout=10 s).

STT stream (each error event is emitted with ``recoverable=True`` while tries remain):

* ``Refuse(5xx)``, ``Refuse(408/429)``: ``APIStatusError(status_code=N)``, retried; 4 tries
  then the stream raises ``APIConnectionError("failed to recognize speech after 3
  attempts")`` whose cause is the last error. Other 4xx: not retried, raised as is.
* unreachable: ``APIConnectionError("failed to connect to deepgram
  (ClientConnectorError)")``, as above: gives up ~4.1 s after the first try.
* ``Stall``: ``APIConnectionError("failed to connect to deepgram")`` per connect timeout,
  retried without end (each try outlasts the timeout, which resets the budget).
* ``Drop`` / ``drop_connections()``: ``APIStatusError(status_code=1006)`` ("deepgram
  connection closed unexpectedly"), reconnect 0.1 s later; audio already sent is lost.
* ``Mute()``: nothing at all. ``Mute(read=False)``: ``APIConnectionError("deepgram
  connection lost")`` from ``aiohttp.ServerTimeoutError`` after ~46 s (heartbeat).
* ``Garbage``: each bad text frame logged ("failed to process deepgram message"), a
  binary one warned about; the stream carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Iterable

import aiohttp
import numpy as np
import pytest
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectionError,
    APIConnectOptions,
    APIStatusError,
    APITimeoutError,
    CloseEvent,
    CloseReason,
    stt,
    tts,
)
from livekit.agents.utils import http_context
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.plugins import deepgram

from tests.support.caller_audio import TRANSCRIPTS, CallerLine, silence, speech
from tests.support.deepgram_server import (
    VOICE_HZ,
    Drop,
    Garbage,
    LoopbackDeepgram,
    Mute,
    Refuse,
    Stall,
    unreachable_url,
)

FAST = APIConnectOptions(max_retry=3, retry_interval=0.05, timeout=1.0)


@pytest.fixture
async def server() -> AsyncIterator[LoopbackDeepgram]:
    async with LoopbackDeepgram() as server, http_context.open():
        yield server


def phone_stt(server: LoopbackDeepgram | str, api_key: str = "dg-test") -> deepgram.STT:
    """As agent.py builds it for the default line, pointed at the loopback (or a URL)."""
    url = server if isinstance(server, str) else server.base_url
    return deepgram.STT(model="nova-2-phonecall", language="en-US", api_key=api_key, base_url=url)


def fallback_tts(url: str) -> deepgram.TTS:
    return deepgram.TTS(model="aura-2-thalia-en", base_url=url, api_key="dg-test")


async def transcribe(
    stream: stt.SpeechStream, frames: Iterable[rtc.AudioFrame]
) -> list[stt.SpeechEvent]:
    """Pushes the audio at once (the server endpoints on audio time, not wall time) and
    collects events until the utterance ends."""
    for frame in frames:
        stream.push_frame(frame)
    events: list[stt.SpeechEvent] = []
    async with asyncio.timeout(5):
        async for ev in stream:
            events.append(ev)
            if ev.type == stt.SpeechEventType.END_OF_SPEECH:
                break
    return events


def finals(events: list[stt.SpeechEvent]) -> list[str]:
    return [
        ev.alternatives[0].text for ev in events if ev.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    ]


class Errors:
    """The ``error`` events of an STT or TTS, with when each came (from creation)."""

    def __init__(self, emitter: stt.STT | tts.TTS) -> None:
        self.began = time.monotonic()
        self.seen: list[tuple[float, Exception, bool]] = []
        emitter.on("error", self._on_error)

    def _on_error(self, ev: stt.STTError | tts.TTSError) -> None:
        self.seen.append((time.monotonic() - self.began, ev.error, ev.recoverable))

    @property
    def recoverable(self) -> list[bool]:
        return [r for _, _, r in self.seen]

    @property
    def errors(self) -> list[Exception]:
        return [e for _, e, _ in self.seen]

    @property
    def times(self) -> list[float]:
        return [t for t, _, _ in self.seen]


async def drain(stream: AsyncIterator[object], limit: float = 5.0) -> None:
    """Reads a stream to its end, within ``limit`` seconds."""
    async with asyncio.timeout(limit):
        async for _ in stream:
            pass


async def until_raised(stream: AsyncIterator[object], limit: float = 5.0) -> Exception:
    """Reads the stream until it raises; returns what it raised."""
    try:
        await drain(stream, limit)
    except Exception as e:
        return e
    raise AssertionError("the stream ended without an error")


# -- the Deepgram client against the loopback ---------------------------------------------


async def test_deepgram_transcribes_the_caller_with_the_scripted_text(
    server: LoopbackDeepgram,
) -> None:
    server.script(TRANSCRIPTS["billing"])
    stream = phone_stt(server).stream()
    events = await transcribe(stream, [*silence(0.3), *speech("billing"), *silence(1.0)])
    await stream.aclose()

    assert events[0].type == stt.SpeechEventType.START_OF_SPEECH
    assert stt.SpeechEventType.INTERIM_TRANSCRIPT in [ev.type for ev in events]
    assert finals(events) == [TRANSCRIPTS["billing"]]
    words = events[-2].alternatives[0].words or []
    assert words[0].start_time == pytest.approx(0.3, abs=0.05)  # where the speech began
    assert words[-1].end_time == pytest.approx(0.3 + len(speech("billing")) * 0.02, abs=0.1)

    (conn,) = server.connections
    assert conn.authorization == "Token dg-test"
    assert {k: conn.params[k] for k in ("model", "language", "encoding", "sample_rate")} == {
        "model": "nova-2-phonecall",
        "language": "en-US",
        "encoding": "linear16",
        "sample_rate": "16000",  # the plugin upsamples the 8 kHz line to its default rate
    }
    assert conn.params["interim_results"] == "true" and conn.params["endpointing"] == "25"
    pushed = 0.3 + len(speech("billing")) * 0.02 + 1.0
    assert server.finals[0].audio_end + 0.5 <= conn.audio_seconds <= pushed  # endpointed on it


async def test_a_wrong_key_is_refused_before_the_upgrade(server: LoopbackDeepgram) -> None:
    stream = phone_stt(server, api_key="dg-wrong").stream(
        conn_options=APIConnectOptions(max_retry=0)
    )
    with pytest.raises(APIStatusError) as refused:
        await transcribe(stream, speech("yes"))
    await stream.aclose()

    assert refused.value.status_code == 401
    assert server.refused == ["Token dg-wrong"]
    assert server.connections == []
    [attempt] = server.attempts
    assert (attempt.endpoint, attempt.method, attempt.fault) == ("listen", "GET", None)


async def test_finalize_flushes_the_utterance_before_the_silence(
    server: LoopbackDeepgram,
) -> None:
    server.script(TRANSCRIPTS["hello"])
    stream = phone_stt(server).stream()
    for frame in speech("hello"):
        stream.push_frame(frame)
    stream.flush()  # sends Finalize

    final = await server.wait_for_final()
    controls = list(server.connections[0].controls)
    await stream.aclose()

    assert final.text == TRANSCRIPTS["hello"]
    assert final.from_finalize and not final.speech_final
    assert sorted(controls) == ["Finalize", "KeepAlive"]  # KeepAlive comes on connecting


async def test_speech_nobody_scripted_is_recorded_and_transcribed_as_nothing(
    server: LoopbackDeepgram,
) -> None:
    stream = phone_stt(server).stream()
    events = await transcribe(stream, [*speech("yes"), *silence(1.0)])
    await stream.aclose()

    assert finals(events) == []
    assert [ev.type for ev in events] == [
        stt.SpeechEventType.START_OF_SPEECH,
        stt.SpeechEventType.END_OF_SPEECH,
    ]
    assert len(server.unexpected) == 1 and server.finals[0].text == ""


async def test_latency_holds_back_the_final() -> None:
    async with LoopbackDeepgram(latency=0.3) as server, http_context.open():
        server.script(TRANSCRIPTS["yes"])
        stream = phone_stt(server).stream()
        pushed_at = time.monotonic()
        events = await transcribe(stream, [*speech("yes"), *silence(1.0)])
        await stream.aclose()

    assert finals(events) == [TRANSCRIPTS["yes"]]
    assert server.finals[0].sent_at - pushed_at >= 0.3


# -- the fault controls themselves (a bare aiohttp client, no retries) --------------------


async def handshake_status(server: LoopbackDeepgram) -> int:
    url = f"{server.base_url}?encoding=linear16".replace("http", "ws", 1)
    headers = {"Authorization": f"Token {server.api_key}"}
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers=headers) as ws:
                await ws.close()
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_faults_apply_in_order_to_the_next_n_or_until_cleared(
    server: LoopbackDeepgram,
) -> None:
    server.fault(Refuse(503), times=2)
    server.fault(Refuse(500), times=None)
    server.fault(Refuse(401))  # never reached: the one before never runs out

    statuses = [await handshake_status(server) for _ in range(4)]
    server.clear_faults()
    statuses.append(await handshake_status(server))

    assert statuses == [503, 503, 500, 500, 101]
    assert [a.fault for a in server.attempts] == [
        Refuse(503), Refuse(503), Refuse(500), Refuse(500), None,
    ]  # fmt: skip
    assert len(server.connections) == 1


async def test_a_refusal_carries_a_deepgram_error_body(server: LoopbackDeepgram) -> None:
    server.fault(Refuse(503))
    async with (
        aiohttp.ClientSession() as session,
        session.get(server.base_url, params={"encoding": "linear16"}) as resp,
    ):
        body = await resp.json()

    assert resp.status == 503
    assert body["err_code"] == "SERVICE_UNAVAILABLE"
    assert body["err_msg"] == "Service Unavailable"
    assert resp.headers["dg-request-id"] == body["request_id"]


async def test_a_stall_is_released_when_the_server_closes() -> None:
    server = LoopbackDeepgram()
    async with server:
        server.fault(Stall())
        status = asyncio.create_task(handshake_status(server))
        await server.wait_for_attempts(1)
        await asyncio.sleep(0.2)
        assert not status.done()
    assert await status == 503


def test_faults_must_apply_to_someone() -> None:
    with pytest.raises(ValueError, match="times"):
        LoopbackDeepgram().fault(Drop(), times=0)


# -- STT faults as the plugin sees them ---------------------------------------------------


@pytest.mark.parametrize("status", [503, 500])
async def test_a_refused_handshake_is_retried_three_times_then_given_up(
    server: LoopbackDeepgram, status: int
) -> None:
    server.fault(Refuse(status), times=None)
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)

    raised = await until_raised(stream)
    await stream.aclose()

    assert len(server.attempts) == 4  # the first try and max_retry=3 more
    assert errors.recoverable == [True, True, True, False]
    assert all(isinstance(e, APIStatusError) and e.status_code == status for e in errors.errors)
    assert all(e.retryable for e in errors.errors)
    # What the stream raises wraps the last error; the session saw the last error itself.
    assert isinstance(raised, APIConnectionError) and not isinstance(raised, APIStatusError)
    assert "failed to recognize speech after 3 attempts" in str(raised)
    assert raised.__cause__ is errors.errors[-1]


@pytest.mark.parametrize("status", [401, 403, 400])
async def test_a_4xx_handshake_is_not_retried(server: LoopbackDeepgram, status: int) -> None:
    server.fault(Refuse(status), times=None)
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)

    raised = await until_raised(stream)
    await stream.aclose()

    assert len(server.attempts) == 1
    assert isinstance(raised, APIStatusError) and raised.status_code == status
    assert not raised.retryable
    assert errors.recoverable == [False] and errors.errors == [raised]


async def test_a_429_is_retried_and_the_stream_carries_on(server: LoopbackDeepgram) -> None:
    server.fault(Refuse(429))
    server.script(TRANSCRIPTS["yes"])
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)

    events = await transcribe(stream, [*speech("yes"), *silence(1.0)])
    await stream.aclose()

    assert finals(events) == [TRANSCRIPTS["yes"]]
    assert errors.recoverable == [True]
    assert [a.fault for a in server.attempts] == [Refuse(429), None]


async def test_unreachable_with_the_default_options_gives_up_after_about_4_s() -> None:
    with unreachable_url() as url:
        async with http_context.open():
            dg = phone_stt(url)
            errors = Errors(dg)
            stream = dg.stream()
            raised = await until_raised(stream, 10)
            await stream.aclose()

    assert errors.recoverable == [True, True, True, False]
    assert all(isinstance(e, APIConnectionError) for e in errors.errors)
    assert str(errors.errors[0]) == "failed to connect to deepgram (ClientConnectorError)"
    assert errors.errors[0].retryable
    gaps = np.diff(errors.times)
    assert gaps == pytest.approx([0.1, 2.0, 2.0], abs=0.15)  # retry at once, then every 2 s
    assert isinstance(raised, APIConnectionError)
    assert "after 3 attempts" in str(raised)


async def test_a_stalled_handshake_is_retried_forever(server: LoopbackDeepgram) -> None:
    """Each try outlasts the connect timeout, which the retry loop takes for a
    connection that had worked: the retry budget starts over every time, so the
    session only ever sees recoverable errors, one per timeout + 0.1 s."""
    server.fault(Stall(), times=None)
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=APIConnectOptions(max_retry=3, retry_interval=2, timeout=0.3))

    attempts = await server.wait_for_attempts(7, timeout=10)
    await stream.aclose()

    assert server.connections == []
    assert all(errors.recoverable) and len(errors.recoverable) >= 6
    assert all(str(e) == "failed to connect to deepgram" for e in errors.errors)
    assert np.diff([a.at for a in attempts]) == pytest.approx([0.4] * 6, abs=0.1)


async def test_a_mute_server_is_not_noticed(server: LoopbackDeepgram) -> None:
    """Connected and answering pings, but no results: nothing tells the client."""
    server.fault(Mute())
    server.script(TRANSCRIPTS["yes"])
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)
    for frame in [*speech("yes"), *silence(1.0)]:
        stream.push_frame(frame)

    events: list[stt.SpeechEvent] = []

    async def read() -> None:
        async for ev in stream:
            events.append(ev)

    reader = asyncio.create_task(read())
    await asyncio.sleep(1.5)
    assert not reader.done()
    await stream.aclose()

    assert errors.seen == []
    assert [ev.type for ev in events if ev.type != stt.SpeechEventType.RECOGNITION_USAGE] == []
    (conn,) = server.connections
    assert conn.audio_seconds > 1.5 and "KeepAlive" in conn.controls
    assert server.scripted == [TRANSCRIPTS["yes"]]  # a stuck recognizer uses no script


@pytest.mark.skipif(
    not os.environ.get("SLOW_FAULT_TESTS"), reason="takes ~47 s; set SLOW_FAULT_TESTS=1"
)
async def test_a_frozen_server_is_noticed_by_the_heartbeat_after_about_46_s(
    server: LoopbackDeepgram,
) -> None:
    """The plugin's WebSocket heartbeat (30 s, pong awaited 15 s) is the only thing that
    notices a peer that stopped reading; the connection then counts as one that had
    worked, so the next try starts a fresh retry budget."""
    server.fault(Mute(read=False))
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream()

    await server.wait_for_attempts(2, timeout=60)
    await stream.aclose()

    assert errors.recoverable == [True]
    [error] = errors.errors
    assert str(error).startswith("deepgram connection lost")
    assert isinstance(error.__cause__, aiohttp.ServerTimeoutError)
    assert 45 <= errors.times[0] <= 47


async def test_a_drop_mid_audio_reconnects_after_0_1_s(server: LoopbackDeepgram) -> None:
    server.fault(Drop(after_audio=0.5))
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)
    for frame in [*speech("yes"), *silence(1.0)]:
        stream.push_frame(frame)

    first, second = await server.wait_for_attempts(2)
    await stream.aclose()

    assert server.connections[0].dropped and server.connections[0].audio_seconds >= 0.5
    assert errors.recoverable == [True]
    [error] = errors.errors
    assert isinstance(error, APIStatusError) and error.status_code == 1006  # no close frame
    assert error.retryable
    assert str(error).startswith("message='deepgram connection closed unexpectedly'")
    assert second.at - first.at < 0.5


async def test_an_idle_stream_dropped_on_command_reconnects_and_still_transcribes(
    server: LoopbackDeepgram,
) -> None:
    """After a warm handoff the caller's stream only carries KeepAlives; when that socket
    dies the plugin notices at once (the read side ends), reconnects 0.1 s later, and the
    new connection transcribes."""
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)
    await server.wait_for_attempts(1)
    await asyncio.sleep(0.2)
    assert server.connections[0].controls == ["KeepAlive"]

    dropped_at = time.monotonic()
    assert server.drop_connections() == 1
    _, again = await server.wait_for_attempts(2)
    assert again.at - dropped_at == pytest.approx(0.1, abs=0.1)
    assert errors.recoverable == [True]
    assert isinstance(errors.errors[0], APIStatusError) and errors.errors[0].status_code == 1006

    server.script(TRANSCRIPTS["yes"])
    events = await transcribe(stream, [*speech("yes"), *silence(1.0)])
    await stream.aclose()
    assert finals(events) == [TRANSCRIPTS["yes"]]
    assert server.finals[0].connection is server.connections[1]


async def test_drops_in_a_row_use_up_the_retries(server: LoopbackDeepgram) -> None:
    """Connections that die before the connect timeout has passed count against the
    same budget as failed connects."""
    server.fault(Drop(), times=None)
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)

    raised = await until_raised(stream)
    await stream.aclose()

    assert len(server.connections) == 4 and all(c.dropped for c in server.connections)
    assert errors.recoverable == [True, True, True, False]
    assert isinstance(raised, APIConnectionError) and "after 3 attempts" in str(raised)


async def test_garbage_frames_are_logged_and_skipped(
    server: LoopbackDeepgram, caplog: pytest.LogCaptureFixture
) -> None:
    server.fault(Garbage())
    server.script(TRANSCRIPTS["yes"])
    dg = phone_stt(server)
    errors = Errors(dg)
    stream = dg.stream(conn_options=FAST)

    with caplog.at_level(logging.WARNING, logger="livekit.plugins.deepgram"):
        events = await transcribe(stream, [*speech("yes"), *silence(1.0)])
    await stream.aclose()

    assert finals(events) == [TRANSCRIPTS["yes"]]
    assert errors.seen == [] and len(server.attempts) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("failed to process deepgram message") == 4  # the four text frames
    assert "unexpected deepgram message type 2" in messages  # the binary one


async def test_a_session_closes_when_deepgram_is_unreachable_from_the_start() -> None:
    """The session's STT pipeline recreates a stream that gave up 0.5 s later and
    closes on the 4th unrecoverable error in a row: 4 streams x 4 tries. With the
    default options that is ~18 s after the first try (4 x 4.1 s + 3 x 0.5 s)."""
    closed = asyncio.Event()
    close_events: list[CloseEvent] = []

    def on_close(ev: CloseEvent) -> None:
        close_events.append(ev)
        closed.set()

    with unreachable_url() as url:
        async with http_context.open(), CallerLine() as line:
            dg = phone_stt(url)
            errors = Errors(dg)
            session = AgentSession(
                stt=dg, conn_options=SessionConnectOptions(stt_conn_options=FAST)
            )
            session.on("close", on_close)
            session.input.audio = line
            await session.start(Agent(instructions="Listen."))
            async with asyncio.timeout(10):
                await closed.wait()

    assert errors.recoverable == [True, True, True, False] * 4
    [ev] = close_events
    assert ev.reason == CloseReason.ERROR
    assert isinstance(ev.error, stt.STTError) and not ev.error.recoverable
    assert isinstance(ev.error.error, APIConnectionError)


# -- text to speech -----------------------------------------------------------------------


def dominant_hz(frames: list[rtc.AudioFrame]) -> float:
    samples = np.concatenate([np.frombuffer(bytes(f.data), dtype="<i2") for f in frames])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * frames[0].sample_rate / len(samples))


async def test_tts_streams_over_the_websocket(server: LoopbackDeepgram) -> None:
    text = "Hello there. How can I help you today?"
    voice = fallback_tts(server.speak_url)
    stream = voice.stream()
    stream.push_text(text)
    stream.end_input()
    frames = [ev.frame async for ev in stream]
    await stream.aclose()
    await voice.aclose()

    [request] = server.speak_requests
    assert (request.transport, request.model, request.text) == (
        "websocket", "aura-2-thalia-en", text,
    )  # fmt: skip
    assert request.params == {
        "encoding": "linear16", "model": "aura-2-thalia-en",
        "sample_rate": "24000", "mip_opt_out": "false",
    }  # fmt: skip
    assert {f.sample_rate for f in frames} == {24000}
    assert sum(f.duration for f in frames) == pytest.approx(len(text) * 0.06, abs=0.01)
    assert dominant_hz(frames) == pytest.approx(VOICE_HZ, abs=5)
    [attempt] = server.attempts_for("speak")
    assert attempt.method == "GET" and attempt.authorization == "Token dg-test"


async def test_tts_synthesize_posts_the_text(server: LoopbackDeepgram) -> None:
    text = "Hi, this is the fallback voice."
    voice = fallback_tts(server.speak_url)
    frames = [ev.frame async for ev in voice.synthesize(text)]
    await voice.aclose()

    [request] = server.speak_requests
    assert (request.transport, request.text) == ("http", text)
    assert request.params["container"] == "none"
    assert request.audio_seconds == pytest.approx(len(text) * 0.06, abs=0.001)
    assert sum(f.duration for f in frames) == pytest.approx(request.audio_seconds, abs=0.02)
    assert server.attempts_for("speak")[0].method == "POST"


async def test_a_fallback_adapter_streams_to_deepgram_when_the_first_tts_fails(
    server: LoopbackDeepgram,
) -> None:
    """The adapter gives each TTS 3 tries (max_retry_per_tts=2, at 0.1 s then 2 s) before
    moving on: an unreachable first TTS costs ~2.1 s before the second one speaks."""
    with unreachable_url("/v1/speak") as down:
        voice = tts.FallbackAdapter([fallback_tts(down), fallback_tts(server.speak_url)])
        began = time.monotonic()
        stream = voice.stream()
        stream.push_text("Sorry, one moment.")
        stream.end_input()
        frames = [ev.frame async for ev in stream]
        await stream.aclose()
        await voice.aclose()

    [request] = server.speak_requests
    assert request.transport == "websocket"  # the adapter streams, as an AgentSession does
    assert request.received_at - began == pytest.approx(2.1, abs=0.3)
    assert sum(f.duration for f in frames) > 0.5


@pytest.mark.parametrize(
    ("fault", "raised", "detail"),
    [
        (Refuse(503), APIStatusError, "status_code=503"),
        (Drop(), APIStatusError, "status_code=1006"),
        (Garbage(), APIConnectionError, "JSONDecodeError"),  # unlike STT: fatal to the try
        (Mute(), APITimeoutError, "Request timed out."),  # after conn_options.timeout
    ],
    ids=["refused-503", "dropped", "garbage", "mute"],
)
async def test_tts_stream_faults(
    server: LoopbackDeepgram, fault: Refuse, raised: type[Exception], detail: str
) -> None:
    server.fault(fault, times=None, endpoint="speak")
    voice = fallback_tts(server.speak_url)
    errors = Errors(voice)
    options = APIConnectOptions(max_retry=2, retry_interval=0.05, timeout=0.3)
    stream = voice.stream(conn_options=options)
    stream.push_text("Hello there.")
    stream.end_input()

    with pytest.raises(raised, match=re.escape(detail)):
        await drain(stream, 10)
    await stream.aclose()
    await voice.aclose()

    # TTS retries max_retry times and raises the last error itself (no wrapper).
    assert errors.recoverable == [True, True, False]
    assert len(server.attempts_for("speak")) == 3


async def test_tts_synthesize_refused_is_an_api_status_error(server: LoopbackDeepgram) -> None:
    server.fault(Refuse(503), times=None, endpoint="speak")
    voice = fallback_tts(server.speak_url)
    options = APIConnectOptions(max_retry=1, retry_interval=0.05, timeout=1.0)

    with pytest.raises(APIStatusError) as caught:
        [ev async for ev in voice.synthesize("Hello.", conn_options=options)]
    await voice.aclose()

    assert caught.value.status_code == 503 and caught.value.retryable
    assert [a.method for a in server.attempts_for("speak")] == ["POST", "POST"]
