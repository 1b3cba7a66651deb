"""The caller's side of an offline call: recorded speech, a real-time phone line, and the
real Deepgram client talking to the loopback Deepgram (the Deepgram stand-in's own
tests, faults included, are in test_deepgram_server.py).

If these hold, a whole call can run through the production pipeline (Silero VAD, the
Deepgram plugin, AgentSession) with no network and a script for what the caller said.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import AsyncIterator

import pytest
from livekit import rtc
from livekit.agents import (
    Agent,
    AgentSession,
    UserInputTranscribedEvent,
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
