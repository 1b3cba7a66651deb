"""The greeting is synthesized before the phone rings and replayed as the caller joins.

The TTS is the real OpenAI plugin, configured as the worker configures it, talking to the
loopback OpenAI server, which answers speech requests only after ``tts_ttfb`` seconds:
so a greeting heard sooner than that after the call starts cannot have come from TTS.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from unittest import mock

import pytest
from livekit.agents import JobExecutorType, JobProcess
from livekit.agents.llm import LLM, ChatContext

from agent import GREETING_SYNTHESIS_TIMEOUT_S, build_tts, made_ahead, make_ahead, prewarm
from config import Settings
from greetings import GreetingAudio
from models import voice_for
from prompts import Words
from tests.conftest import FAKE_ENV
from tests.support.call import phone_call
from tests.support.openai_server import LoopbackOpenAI
from tests.support.scripted_llm import say

TTS_TTFB = 0.8  # slow enough that the cached and live greetings cannot be confused


def pointed_at(settings: Settings, server: LoopbackOpenAI) -> Settings:
    secrets = dataclasses.replace(
        settings.secrets, openai_api_key=server.api_key, openai_base_url=server.base_url
    )
    return dataclasses.replace(settings, secrets=secrets)


async def prewarmed(settings: Settings) -> GreetingAudio:
    greetings = GreetingAudio()
    await make_ahead(greetings, settings, time_limit=GREETING_SYNTHESIS_TIMEOUT_S)
    return greetings


def greeting_of(settings: Settings) -> str:
    """The default line's greeting, in the business's language."""
    return Words(settings, settings.models.language).greeting()


async def test_the_caller_hears_the_prewarmed_greeting_without_waiting_for_tts(
    settings: Settings,
) -> None:
    async with LoopbackOpenAI(tts_ttfb=TTS_TTFB, speech_seconds_per_char=0.01) as openai_server:
        settings = pointed_at(settings, openai_server)
        greetings = await prewarmed(settings)
        greeting = greeting_of(settings)
        asked_before_the_call = [r.body["input"] for r in openai_server.speech_requests]
        every_text = set().union(*made_ahead(settings).values())
        assert sorted(asked_before_the_call) == sorted(every_text)

        joined = time.monotonic()
        async with phone_call(
            settings,
            audio=True,
            tts=build_tts(settings),
            greeting_audio=greetings.replay(greeting, voice_for(settings)),
        ) as c:
            assert c.playout is not None
            heard = await c.playout.finished(1)

        assert heard.started_at - joined < TTS_TTFB
        assert heard.finished_at is not None and not heard.interrupted
        played = heard.finished_at - heard.started_at
        assert played == pytest.approx(openai_server.speech_seconds(greeting), abs=0.15)
        # no speech request during the call: the audio was the prewarmed one
        assert len(openai_server.speech_requests) == len(asked_before_the_call)
        assert c.session.history.messages()[0].text_content == greeting


async def test_without_prewarmed_audio_the_greeting_is_spoken_with_live_tts(
    settings: Settings,
) -> None:
    async with LoopbackOpenAI(tts_ttfb=TTS_TTFB, speech_seconds_per_char=0.01) as openai_server:
        settings = pointed_at(settings, openai_server)
        joined = time.monotonic()
        async with phone_call(settings, audio=True, tts=build_tts(settings)) as c:
            assert c.playout is not None
            heard = await c.playout.finished(1)

        assert heard.started_at - joined >= TTS_TTFB
        # live TTS asks sentence by sentence
        asked = openai_server.speech_requests
        assert " ".join(r.body["input"] for r in asked) == greeting_of(settings)
        assert {r.body["response_format"] for r in asked} == {"pcm"}


async def test_a_failed_synthesis_leaves_calls_on_live_tts(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with LoopbackOpenAI(api_key="sk-the-real-one") as openai_server:
        settings = pointed_at(settings, openai_server)
        wrong_key = dataclasses.replace(settings.secrets, openai_api_key="sk-revoked")
        with caplog.at_level(logging.WARNING, "phone-assistant.greetings"):
            greetings = await prewarmed(dataclasses.replace(settings, secrets=wrong_key))

    assert len(greetings) == 0
    assert greetings.replay(greeting_of(settings), voice_for(settings)) is None
    assert "could not synthesize a greeting" in caplog.text
    assert "sk-revoked" not in caplog.text


async def test_a_slow_synthesis_is_given_up_within_its_time_limit(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with LoopbackOpenAI(tts_ttfb=3.0) as openai_server:
        settings = pointed_at(settings, openai_server)
        greetings = GreetingAudio()
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, "phone-assistant.greetings"):
            await greetings.synthesize(
                lambda: build_tts(settings), voice_for(settings), ["Hello."], time_limit=0.3
            )
        assert time.monotonic() - began < 2.0
    assert len(greetings) == 0
    assert "not synthesized within 0.3 s" in caplog.text


async def test_changed_words_or_voice_never_replay_old_audio(settings: Settings) -> None:
    async with LoopbackOpenAI() as openai_server:
        settings = pointed_at(settings, openai_server)
        greetings = await prewarmed(settings)
    greeting = greeting_of(settings)
    voice = voice_for(settings)

    assert greetings.frames(greeting, voice)
    assert greetings.frames(greeting + " We are open today.", voice) is None
    assert greetings.frames(greeting, dataclasses.replace(voice, voice="coral")) is None
    assert greetings.frames(greeting, dataclasses.replace(voice, model="tts-1")) is None


@contextmanager
def serving(server: LoopbackOpenAI) -> Iterator[LoopbackOpenAI]:
    """The server on a loop of its own thread: prewarm runs its own event loop, as it
    does in a job process, so it cannot share the test's."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = loop.create_future()

    async def run() -> None:
        async with server:
            started.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    assert started.wait(10)
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set_result, None)
        thread.join(10)
        loop.close()


def test_prewarm_synthesizes_the_greeting_of_every_line_and_readies_the_openai_clients() -> None:
    with serving(LoopbackOpenAI()) as openai_server:
        env = {**FAKE_ENV, **openai_server.env()}
        proc = JobProcess(
            executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None
        )
        with mock.patch.dict("os.environ", env):
            prewarm(proc)

        # the clients prewarm built, outside any event loop, work in the job's own loop
        openai_server.script(say("Hello."))
        llm: LLM = proc.userdata["llm"]
        (tts,) = proc.userdata["tts"].values()  # one voice in the shipped configuration

        async def a_call_uses_them() -> tuple[str, int]:
            chat = ChatContext.empty()
            chat.add_message(role="user", content="Hi")
            async with llm.chat(chat_ctx=chat) as reply:
                text = "".join([c.delta.content or "" async for c in reply if c.delta])
            async with tts.synthesize("Hello.") as stream:
                frames = [ev.frame async for ev in stream]
            return text, len(frames)

        text, frames = asyncio.run(a_call_uses_them())
        assert text == "Hello." and frames > 0

    settings: Settings = proc.userdata["settings"]
    greetings: GreetingAudio = proc.userdata["greetings"]
    for line in (None, *settings.lines):
        for language in settings.languages:
            greeting = Words(settings, language).greeting(line)
            assert greetings.frames(greeting, voice_for(settings, line)), (line, language)
    assert proc.userdata["vad"] is not None


def test_a_process_whose_greeting_synthesis_breaks_still_takes_calls(
    caplog: pytest.LogCaptureFixture,
) -> None:
    proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    with (
        mock.patch.dict("os.environ", FAKE_ENV),
        mock.patch.object(GreetingAudio, "synthesize", side_effect=RuntimeError("a bug")),
        caplog.at_level(logging.ERROR, "phone-assistant"),
    ):
        prewarm(proc)

    assert len(proc.userdata["greetings"]) == 0
    assert proc.userdata["settings"] is not None and proc.userdata["vad"] is not None
    assert "greeting synthesis failed" in caplog.text
