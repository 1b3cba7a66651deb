"""The models of a call: the plugins themselves, or the framework's FallbackAdapters over
them when fallbacks are configured. A primary that fails gives way to its fallback, with
the real plugins against the loopback OpenAI server."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from livekit.agents import Agent, AgentSession
from livekit.agents import llm as agents_llm
from livekit.agents import stt as agents_stt
from livekit.agents import tts as agents_tts
from livekit.plugins import deepgram, openai, silero

import models
from caller import SttChoice
from config import ModelChoice, Settings
from tests.support.openai_server import Fault, LoopbackOpenAI
from tests.support.scripted_llm import say

PHONE = SttChoice("nova-2-phonecall", "en-US", "phone call", "en-US")


@pytest.fixture
async def provider() -> AsyncIterator[LoopbackOpenAI]:
    async with LoopbackOpenAI() as server:
        yield server


def with_models(settings: Settings, server: LoopbackOpenAI | None = None, **changes: object):
    """``settings`` with ``[models]`` changed and OpenAI pointed at the loopback server."""
    changed = dataclasses.replace(settings, models=dataclasses.replace(settings.models, **changes))
    if server is None:
        return changed
    secrets = dataclasses.replace(
        changed.secrets, openai_api_key=server.api_key, openai_base_url=server.base_url
    )
    return dataclasses.replace(changed, secrets=secrets)


def test_without_fallbacks_each_model_is_the_plugin_itself(settings: Settings) -> None:
    vad = silero.VAD.load()
    assert isinstance(models.build_llm(settings), openai.LLM)
    assert isinstance(models.build_tts(settings), openai.TTS)
    assert isinstance(models.build_stt(settings, PHONE, vad), deepgram.STT)


def test_fallbacks_are_the_frameworks_adapters_in_the_configured_order(
    settings: Settings,
) -> None:
    settings = with_models(
        settings,
        llm_fallback=(ModelChoice("openai", "gpt-4.1"),),
        tts_fallback=(ModelChoice("deepgram", "aura-2-thalia-en"),),
        stt_fallback=(ModelChoice("openai", "gpt-4o-mini-transcribe"),),
    )
    llm = models.build_llm(settings)
    assert isinstance(llm, agents_llm.FallbackAdapter)
    assert [m.model for m in llm._llm_instances] == ["gpt-4.1-mini", "gpt-4.1"]

    tts = models.build_tts(settings)
    assert isinstance(tts, agents_tts.FallbackAdapter)
    assert [type(t) for t in tts._tts_instances] == [openai.TTS, deepgram.TTS]

    stt = models.build_stt(settings, PHONE, silero.VAD.load())
    assert isinstance(stt, agents_stt.FallbackAdapter)
    primary, fallback = stt._stt_instances
    assert isinstance(primary, deepgram.STT) and primary.model == "nova-2-phonecall"
    assert isinstance(fallback.wrapped_stt, openai.STT)  # cut into utterances by the VAD


def test_a_self_hosted_deepgram_serves_speech_beside_listening(settings: Settings) -> None:
    secrets = dataclasses.replace(
        settings.secrets, deepgram_base_url="http://dg.internal:8080/v1/listen"
    )
    settings = dataclasses.replace(settings, secrets=secrets)
    assert models._deepgram_url(settings, "listen") == {
        "base_url": "http://dg.internal:8080/v1/listen"
    }
    assert models._deepgram_url(settings, "speak") == {
        "base_url": "http://dg.internal:8080/v1/speak"
    }


async def test_an_llm_that_answers_5xx_gives_way_to_its_fallback(
    settings: Settings, provider: LoopbackOpenAI
) -> None:
    settings = with_models(settings, provider, llm_fallback=(ModelChoice("openai", "gpt-4.1"),))
    outage = provider.fail_model("gpt-4.1-mini", Fault.overloaded())
    provider.script(say("We open at eight."))

    async with AgentSession(
        llm=models.build_llm(settings), conn_options=models.SESSION_CONNECT
    ) as s:
        await s.start(Agent(instructions="You answer the phone."))
        result = await s.run(user_input="When do you open?")

    reply = result.expect.next_event().is_message(role="assistant").event().item
    assert reply.text_content == "We open at eight."
    await provider.settled()
    assert outage.hits >= 1
    answered = [r for r in provider.chat_requests if r.status == 200]
    assert [r.model for r in answered] == ["gpt-4.1"]


async def test_a_tts_that_fails_gives_way_to_its_fallback(
    settings: Settings, provider: LoopbackOpenAI
) -> None:
    settings = with_models(settings, provider, tts_fallback=(ModelChoice("openai", "tts-1"),))
    provider.fail_model("gpt-4o-mini-tts", Fault.server_error())

    tts = models.build_tts(settings)
    async with tts.synthesize("Thank you for calling.") as stream:
        frames = [event.frame async for event in stream]
    await tts.aclose()

    assert sum(f.duration for f in frames) > 0.5
    await provider.settled()
    answered = [r.model for r in provider.speech_requests if r.status == 200]
    assert answered == ["tts-1"]


def test_a_vad_that_cannot_load_stops_the_worker_at_start_up(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not every job process failing later, after its caller was connected."""
    import agent
    from tests.conftest import FAKE_ENV

    def broken(*_args: object, **_kwargs: object) -> silero.VAD:
        raise RuntimeError("onnxruntime: illegal instruction")

    monkeypatch.setattr(silero.VAD, "load", broken)
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(SystemExit) as stopped:
        agent._startup_settings("start")

    assert stopped.value.code == 2
    message = capsys.readouterr().err
    assert "Silero VAD could not be loaded (RuntimeError: onnxruntime: illegal instruction)" in (
        message
    )
    assert "Traceback" not in message
