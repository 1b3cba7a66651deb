"""Greeting audio is made once per worker and kept on disk, not made again for every call.

Each call runs in a job process of its own, and each process warms up (``prewarm``) with
the greetings and apologies ready. The first process of a worker synthesizes them with
the real OpenAI plugin against the loopback server, which counts every speech request;
the processes after it read them back from the data directory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from pathlib import Path
from unittest import mock

import pytest
from livekit.agents import JobExecutorType, JobProcess

from agent import GREETING_SYNTHESIS_TIMEOUT_S, greeting_store, made_ahead, make_ahead, prewarm
from config import ModelChoice, Settings
from greeting_store import GreetingStore
from greetings import GreetingAudio, Voice
from models import build_tts, voice_for
from tests.conftest import FAKE_ENV
from tests.support.openai_server import Fault, LoopbackOpenAI
from tests.unit.test_greetings import pointed_at, serving

VOICE = Voice(model="gpt-4o-mini-tts", voice="ash")


def a_job_process() -> JobProcess:
    return JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)


def every_text(settings: Settings) -> set[str]:
    return set().union(*made_ahead(settings).values())


def pcm(greetings: GreetingAudio, text: str, voice: Voice) -> bytes:
    frames = greetings.frames(text, voice)
    assert frames, f"no audio for {text!r}"
    return b"".join(bytes(f.data) for f in frames)


def stored_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wav"))


async def made(settings: Settings, store: GreetingStore | None) -> GreetingAudio:
    greetings = GreetingAudio()
    await make_ahead(greetings, settings, time_limit=GREETING_SYNTHESIS_TIMEOUT_S, store=store)
    return greetings


def test_the_second_job_process_makes_no_speech_request_for_an_unchanged_greeting() -> None:
    with serving(LoopbackOpenAI()) as openai_server:
        with mock.patch.dict("os.environ", {**FAKE_ENV, **openai_server.env()}):
            first, second = a_job_process(), a_job_process()
            prewarm(first)
            asked_by_the_first = len(openai_server.speech_requests)
            prewarm(second)
        asked_by_the_second = len(openai_server.speech_requests) - asked_by_the_first

    settings: Settings = first.userdata["settings"]
    texts = every_text(settings)
    assert asked_by_the_first == len(texts)
    assert asked_by_the_second == 0
    for voice, said in made_ahead(settings).items():
        for text in said:
            assert pcm(second.userdata["greetings"], text, voice) == pcm(
                first.userdata["greetings"], text, voice
            )
    assert len(stored_files(settings.storage.data_dir / "greetings")) == len(texts)


async def test_only_a_changed_text_is_synthesized_again(settings: Settings, tmp_path: Path) -> None:
    async with LoopbackOpenAI() as openai_server:
        settings = pointed_at(settings, openai_server)
        store = GreetingStore(tmp_path)

        async def ready(*texts: str) -> GreetingAudio:
            greetings = GreetingAudio()
            await greetings.synthesize(
                lambda: build_tts(settings), VOICE, texts, time_limit=5, store=store
            )
            return greetings

        await ready("Thanks for calling.", "Sorry, one moment.")
        before = len(openai_server.speech_requests)
        greetings = await ready("Thanks for calling Acme.", "Sorry, one moment.")
        asked = [r.body["input"] for r in openai_server.speech_requests[before:]]

    assert asked == ["Thanks for calling Acme."]
    assert greetings.frames("Sorry, one moment.", VOICE)
    assert greetings.frames("Thanks for calling Acme.", VOICE)


async def test_another_voice_or_model_is_other_audio(tmp_path: Path) -> None:
    store = GreetingStore(tmp_path, endpoint="http://127.0.0.1:1/v1")
    text = "Thanks for calling."
    paths = {
        store.path(text, VOICE),
        store.path(text, dataclasses.replace(VOICE, voice="coral")),
        store.path(text, dataclasses.replace(VOICE, model="tts-1")),
        store.path(text + " ", VOICE),
        GreetingStore(tmp_path).path(text, VOICE),  # another TTS service
    }
    assert len(paths) == 5


def test_processes_warming_up_together_make_each_greeting_once(settings: Settings) -> None:
    """Several job processes start at once when a worker starts: one makes the audio,
    the others wait for it and read it back. (Threads here; the lock is a file lock,
    which holds between threads as between processes.)"""
    with serving(LoopbackOpenAI(tts_ttfb=0.3)) as openai_server:
        settings = pointed_at(settings, openai_server)
        store = greeting_store(settings)
        results: list[GreetingAudio] = []

        def warm_up() -> None:
            results.append(asyncio.run(made(settings, store)))

        threads = [threading.Thread(target=warm_up) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        asked = [r.body["input"] for r in openai_server.speech_requests]

    texts = every_text(settings)
    assert sorted(asked) == sorted(texts)
    assert len(results) == 3
    for greetings in results:
        for voice, said in made_ahead(settings).items():
            for text in said:
                assert greetings.frames(text, voice), (voice, text)


async def test_audio_made_by_a_fallback_voice_is_never_stored(
    settings: Settings, tmp_path: Path
) -> None:
    """A fallback speaks with another model (or voice): kept in the store, it would greet
    every later caller even once the primary is back."""
    settings = dataclasses.replace(
        settings,
        models=dataclasses.replace(settings.models, tts_fallback=(ModelChoice("openai", "tts-1"),)),
    )
    async with LoopbackOpenAI() as openai_server:
        settings = pointed_at(settings, openai_server)
        store = GreetingStore(tmp_path)
        outage = openai_server.fail_model(settings.models.tts, Fault.status(401))
        during_the_outage = await made(settings, store)
        outage.clear()
        before = len(openai_server.speech_requests)
        after_it = await made(settings, store)
        asked_after = openai_server.speech_requests[before:]

    greeting_voice = voice_for(settings)
    greeting = next(iter(made_ahead(settings)[greeting_voice]))
    assert during_the_outage.frames(greeting, greeting_voice)  # the fallback's, for now
    assert {r.body["model"] for r in asked_after} == {settings.models.tts}
    assert len(asked_after) == len(every_text(settings))
    assert after_it.frames(greeting, greeting_voice)


async def test_a_damaged_file_is_made_again(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with LoopbackOpenAI() as openai_server:
        settings = pointed_at(settings, openai_server)
        store = GreetingStore(tmp_path)
        await made(settings, store)
        text = next(iter(made_ahead(settings)[voice_for(settings)]))
        store.path(text, voice_for(settings)).write_bytes(b"RIFF, but cut short")
        before = len(openai_server.speech_requests)
        with caplog.at_level(logging.WARNING, "phone-assistant.greetings"):
            greetings = await made(settings, store)
        asked = [r.body["input"] for r in openai_server.speech_requests[before:]]

    assert asked == [text]
    assert greetings.frames(text, voice_for(settings))
    assert store.load(text, voice_for(settings))  # written again, whole
    assert "unreadable" in caplog.text and "making it again" in caplog.text


async def test_a_store_that_cannot_be_written_still_leaves_the_audio_in_memory(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    not_a_directory = tmp_path / "greetings"
    not_a_directory.write_text("a file where the directory should be")
    async with LoopbackOpenAI() as openai_server:
        settings = pointed_at(settings, openai_server)
        with caplog.at_level(logging.WARNING, "phone-assistant.greetings"):
            greetings = await made(settings, GreetingStore(not_a_directory))

    for voice, said in made_ahead(settings).items():
        for text in said:
            assert greetings.frames(text, voice)
    assert "not shared" in caplog.text
