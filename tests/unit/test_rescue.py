"""When the agent cannot go on: the caller hears the apology made before the call, on a
track of its own, then is transferred to the [on_failure] destination with one REFER, or
the call is ended for them. The apology audio comes from the real OpenAI TTS plugin
against the loopback server, made the way prewarm makes it; the room listens to the
track it plays on."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from agent import build_tts, make_ahead
from config import OnFailure, Settings
from greetings import GreetingAudio
from models import voice_for
from prompts import Words
from rescue import ApologyAudio, CallRescue
from server_api import CallServer
from tests.support.livekit_server import LoopbackLiveKit, sip_error
from tests.support.openai_server import Fault, LoopbackOpenAI
from tests.support.stand_in_room import StandInRoom, phone_caller

CALLER = "sip_+15551234567"


def english(settings: Settings) -> Words:
    return Words(settings, "en-US")


@pytest.fixture
async def provider() -> AsyncIterator[LoopbackOpenAI]:
    async with LoopbackOpenAI(speech_seconds_per_char=0.01) as server:
        yield server


@pytest.fixture
async def livekit() -> AsyncIterator[LoopbackLiveKit]:
    async with LoopbackLiveKit() as server:
        yield server


def configured(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit, transfer_to: str | None
) -> Settings:
    secrets = dataclasses.replace(
        settings.secrets,
        openai_api_key=provider.api_key,
        openai_base_url=provider.base_url,
        livekit_url=livekit.url,
        livekit_api_key=livekit.api_key,
        livekit_api_secret=livekit.api_secret,
    )
    return dataclasses.replace(
        settings, secrets=secrets, on_failure=OnFailure(transfer_to=transfer_to)
    )


async def made_before_the_call(settings: Settings) -> GreetingAudio:
    made = GreetingAudio()
    await make_ahead(made, settings, time_limit=5)
    return made


async def rescue_in(
    room: StandInRoom, settings: Settings, made: GreetingAudio, *, live_tts: bool = False
) -> tuple[CallRescue, CallServer]:
    server = CallServer.from_settings(settings, room.name)
    assert server is not None
    make_tts = (lambda: build_tts(settings)) if live_tts else None
    audio = ApologyAudio(made, voice_for(settings), make_tts)
    words = Words(settings, "en-US")
    rescue = CallRescue(settings, words, room=room, caller=CALLER, server=server, audio=audio)
    return rescue, server


def apology_heard(room: StandInRoom) -> float:
    """Seconds of audible audio on the apology's track(s)."""
    return sum(
        t.audio.audible_seconds
        for t in room.local_participant.published
        if t.name == "background_audio" and t.audio is not None
    )


async def test_the_caller_hears_the_apology_then_is_transferred_with_one_refer(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    settings = configured(settings, provider, livekit, "front_desk")
    made = await made_before_the_call(settings)
    made_requests = len(provider.speech_requests)
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, made)

    outcome = await rescue.run("the LLM failed", asyncio.Event())

    assert outcome == "the caller was transferred to front_desk after the apology"
    words = english(settings).failure("transfer")
    assert "transferring you to the front desk" in words
    (refer,) = livekit.requests_for("TransferSIPParticipant")
    assert refer.message.transfer_to == "sip:frontdesk@pbx.example.com"
    assert refer.message.participant_identity == CALLER
    (track,) = room.local_participant.published
    assert track.audio is not None
    expected = provider.speech_seconds(words)
    assert track.audio.audible_seconds >= expected - 0.1  # heard in full...
    assert refer.received_at >= track.audio.runs()[-1].ended_at  # ...before the REFER
    assert track.unpublished_at is not None  # and its track is gone
    assert len(provider.speech_requests) == made_requests  # no TTS at that moment
    await server.aclose()
    await room.aclose()


async def test_without_a_fallback_destination_the_caller_hears_the_goodbye(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    settings = configured(settings, provider, livekit, None)
    made = await made_before_the_call(settings)
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, made)

    outcome = await rescue.run("the LLM failed", asyncio.Event())

    assert outcome == "the call was ended after the apology"
    assert livekit.requests == []  # the lifecycle deletes the room afterwards
    goodbye = english(settings).failure("end")
    assert "Goodbye" in goodbye
    assert apology_heard(room) >= provider.speech_seconds(goodbye) - 0.1
    await server.aclose()
    await room.aclose()


async def test_a_failed_fallback_transfer_ends_with_the_goodbye(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    settings = configured(settings, provider, livekit, "front_desk")
    made = await made_before_the_call(settings)
    livekit.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, made)

    outcome = await rescue.run("the LLM failed", asyncio.Event())

    assert outcome == "the transfer to front_desk failed; the call was ended"
    assert len(livekit.requests_for("TransferSIPParticipant")) == 1
    heard = english(settings).failure("transfer"), english(settings).failure("end")
    assert [t.name for t in room.local_participant.published] == ["background_audio"] * 2
    assert apology_heard(room) >= sum(provider.speech_seconds(w) for w in heard) - 0.2
    await server.aclose()
    await room.aclose()


async def test_a_caller_who_hangs_up_during_the_apology_is_not_transferred(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    settings = configured(settings, provider, livekit, "front_desk")
    made = await made_before_the_call(settings)
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, made)
    caller_left = asyncio.Event()
    asyncio.get_running_loop().call_later(0.3, caller_left.set)

    outcome = await rescue.run("the LLM failed", caller_left)

    assert outcome == "the caller hung up during the apology"
    assert livekit.requests == []
    (track,) = room.local_participant.published
    assert track.unpublished_at is not None
    await server.aclose()
    await room.aclose()


async def test_without_audio_made_ahead_a_short_live_synthesis_is_tried(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    settings = configured(settings, provider, livekit, None)
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, GreetingAudio(), live_tts=True)

    await rescue.run("prewarm could not make the apology", asyncio.Event())

    (request,) = provider.speech_requests
    assert request.body["input"] == english(settings).failure("end")
    assert apology_heard(room) > 1.0
    await server.aclose()
    await room.aclose()


async def test_when_nothing_can_speak_the_call_is_still_ended(
    settings: Settings, provider: LoopbackOpenAI, livekit: LoopbackLiveKit
) -> None:
    """TTS down and no audio made ahead of time: no apology, but no silence either."""
    settings = configured(settings, provider, livekit, "front_desk")
    provider.fail_model(settings.models.tts, Fault.server_error())
    room = StandInRoom("call-room-1", phone_caller(CALLER), listen=True)
    rescue, server = await rescue_in(room, settings, GreetingAudio(), live_tts=True)

    outcome = await rescue.run("TTS failed", asyncio.Event())

    assert outcome == "the caller was transferred to front_desk after the apology"
    assert room.local_participant.published == []  # nothing to play
    assert len(livekit.requests_for("TransferSIPParticipant")) == 1
    await server.aclose()
    await room.aclose()
