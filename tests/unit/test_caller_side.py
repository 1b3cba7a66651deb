"""The caller's side of an offline call: recorded speech, a real-time phone line, and the
real Deepgram client talking to the loopback Deepgram.

If these hold, a whole call can run through the production pipeline (Silero VAD, the
Deepgram plugin, AgentSession) with no network and a script for what the caller said.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator, Iterable

import pytest
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    APIConnectOptions,
    APIStatusError,
    UserInputTranscribedEvent,
    stt,
    vad,
)
from livekit.agents.utils import http_context
from livekit.plugins import deepgram, silero

from tests.support.caller_audio import (
    SAMPLES_PER_FRAME,
    SPEECH_DIR,
    TRANSCRIPTS,
    CallerLine,
    silence,
    speech,
)
from tests.support.deepgram_server import LoopbackDeepgram


@pytest.fixture
async def server() -> AsyncIterator[LoopbackDeepgram]:
    async with LoopbackDeepgram() as server, http_context.open():
        yield server


def phone_stt(server: LoopbackDeepgram, api_key: str = "dg-test") -> deepgram.STT:
    """As agent.py builds it for the default line, pointed at the loopback."""
    return deepgram.STT(
        model="nova-2-phonecall", language="en-US", api_key=api_key, base_url=server.base_url
    )


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


# -- the recordings -----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TRANSCRIPTS))
def test_each_recording_is_phone_audio_as_long_as_its_words(name: str) -> None:
    with wave.open(str(SPEECH_DIR / f"{name}.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        seconds = w.getnframes() / w.getframerate()
    words = len(TRANSCRIPTS[name].split())
    assert 0.2 * words < seconds < 0.6 * words  # spoken at a caller's pace, edges trimmed
    assert all(f.samples_per_channel == SAMPLES_PER_FRAME for f in speech(name))


async def test_silero_hears_the_caller_start_and_stop_saying_yes() -> None:
    stream = silero.VAD.load().stream()
    for frame in [*silence(0.5), *speech("yes"), *silence(1.0)]:
        stream.push_frame(frame)
    stream.end_input()
    events = [ev async for ev in stream if ev.type != vad.VADEventType.INFERENCE_DONE]

    assert [ev.type for ev in events] == [
        vad.VADEventType.START_OF_SPEECH,
        vad.VADEventType.END_OF_SPEECH,
    ]
    assert 0.7 < events[1].speech_duration < 1.5  # yes.wav is 1.1 s


# -- the phone line -----------------------------------------------------------------------


async def test_the_line_runs_in_real_time_and_times_what_the_caller_says() -> None:
    async with CallerLine() as line:
        began = time.monotonic()
        quiet = [await anext(line) for _ in range(25)]
        assert 0.45 < time.monotonic() - began < 0.7  # 25 frames of 20 ms
        assert all(not any(f.data) for f in quiet)  # an idle line carries silence

        heard: list[rtc.AudioFrame] = []

        async def agent_listening() -> None:
            async for frame in line:
                heard.append(frame)

        listener = asyncio.create_task(agent_listening())
        said = await line.speak("yes")
        listener.cancel()

    assert said.name == "yes" and said.text == "Yes, please."
    assert said.seconds == pytest.approx(len(speech("yes")) * 0.02)
    assert said.seconds - 0.1 < said.ended_at - said.started_at < said.seconds + 0.2
    assert said.started_at - began == pytest.approx(0.5, abs=0.1)  # right after the quiet
    assert b"".join(bytes(f.data) for f in heard) == b"".join(bytes(f.data) for f in speech("yes"))
    assert line.spoken == [said]


async def test_the_session_hears_the_caller_through_the_line(server: LoopbackDeepgram) -> None:
    server.script(TRANSCRIPTS["yes"])
    transcribed: list[UserInputTranscribedEvent] = []
    async with (
        CallerLine(noise_dbfs=-70) as line,
        AgentSession(stt=phone_stt(server), vad=silero.VAD.load()) as session,
    ):
        session.on("user_input_transcribed", transcribed.append)
        session.input.audio = line
        await session.start(Agent(instructions="Listen."))

        said = await line.speak("yes")
        final = await server.wait_for_final()

    assert final.text == "Yes, please." and final.speech_final
    assert final.sent_at - said.ended_at == pytest.approx(0.5, abs=0.25)  # the endpointing
    assert [ev.transcript for ev in transcribed if ev.is_final] == ["Yes, please."]


async def test_a_detached_line_keeps_time_but_the_agent_hears_nothing() -> None:
    async with CallerLine() as line:
        line.on_detached()  # as session.input.set_audio_enabled(False) does
        reader = asyncio.create_task(anext(line))
        said = await line.speak(speech("yes")[:10])
        assert not reader.done()  # the 0.2 s went by unheard
        assert said.ended_at - said.started_at == pytest.approx(0.18, abs=0.1)

        line.on_attached()
        assert not any((await reader).data)  # back on the line: silence after the words


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
