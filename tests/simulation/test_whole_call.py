"""A whole phone call, offline, through the real client code of every provider.

The caller's recorded voice (8 kHz, real time) goes through real Silero VAD and the real
Deepgram plugin to a loopback Deepgram server; the real OpenAI plugin asks a loopback
Chat Completions server what to say and its speech endpoint for the audio; the transfer
reaches a loopback LiveKit server as a real Twirp request. Only what the caller says
and what the model answers are scripted.
"""

from __future__ import annotations

import asyncio

import pytest
from livekit.plugins import silero

import prompts
from agent import build_tts, every_greeting, prepare_call, tts_voice
from caller import Caller
from config import Settings
from greetings import GreetingAudio
from tests.support.caller_audio import TRANSCRIPTS
from tests.support.scripted_llm import call, say
from tests.support.simulated_call import answered, stand_ins
from tests.support.stand_in_room import phone_caller

CONFIRM = "I can put you through to our billing team. Would you like that?"


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


async def test_a_caller_asks_for_billing_and_is_transferred_after_the_notice(
    settings: Settings, vad: silero.VAD
) -> None:
    async with stand_ins() as world:
        settings = world.settings(settings)
        world.deepgram.script(TRANSCRIPTS["billing"], TRANSCRIPTS["yes"])
        world.openai.script(say(CONFIRM), call("transfer_call", destination="billing"))

        # the worker process warms up before the phone rings
        greetings = GreetingAudio()
        await greetings.synthesize(
            lambda: build_tts(settings), tts_voice(settings), every_greeting(settings), time_limit=5
        )
        tts_requests_before_the_call = len(world.openai.speech_requests)

        # answer_call(), as the worker runs it for this caller
        participant = phone_caller(number="+15551234567")
        caller = Caller.from_participant(participant)  # type: ignore[arg-type]
        session, agent = prepare_call(settings, caller, vad=vad, greetings=greetings)
        closed = asyncio.Event()
        session.on("close", lambda _: closed.set())
        async with answered(session, agent, caller=participant, room_name="call-1") as c:
            greeted = await c.playout.finished(1)

            asking = await c.line.speak("billing")
            heard_billing = await world.deepgram.wait_for_final(timeout=5)
            asked_llm = await world.openai.wait_for_chat(1)
            confirmed = await c.playout.finished(2)

            agreeing = await c.line.speak("yes")
            heard_yes = await world.deepgram.wait_for_final(timeout=5)
            asked_llm_again = await world.openai.wait_for_chat(2)
            refer = await world.livekit.wait_for_request("TransferSIPParticipant", timeout=10)
            notice = await c.playout.finished(3)
            await asyncio.wait_for(closed.wait(), 5)  # the transfer ends the call
            ended_by_transfer = list(c.shutdowns)

    # The greeting was the audio made before the call, heard in full before the caller spoke.
    assert not greeted.interrupted and greeted.finished_at is not None
    assert greeted.finished_at <= asking.started_at
    spoken_tts = [r.body["input"] for r in world.openai.speech_requests]
    notice_words = prompts.transfer_words("notice", settings.destination("billing"))  # type: ignore[arg-type]
    # during the call TTS was asked (sentence by sentence) for the two replies, nothing else
    during_the_call = " ".join(spoken_tts[tts_requests_before_the_call:])
    assert during_the_call == f"{CONFIRM} {notice_words}"

    # Deepgram heard the caller's phone audio with the phone model, and each answer came
    # after the caller finished speaking.
    (connection,) = world.deepgram.connections
    assert connection.params["model"] == "nova-2-phonecall"
    assert connection.params["encoding"] == "linear16"
    assert connection.authorization == f"Token {world.deepgram.api_key}"
    assert heard_billing.text == TRANSCRIPTS["billing"] and heard_billing.speech_final
    assert asking.ended_at <= heard_billing.sent_at <= asked_llm.received_at
    assert heard_yes.text == TRANSCRIPTS["yes"]
    assert agreeing.ended_at <= heard_yes.sent_at <= asked_llm_again.received_at

    # The LLM saw what the caller said, with the transfer tool offered.
    assert asked_llm.last_user_text == TRANSCRIPTS["billing"]
    assert "transfer_call" in asked_llm.tool_names
    assert asked_llm_again.last_user_text == TRANSCRIPTS["yes"]

    # The agent's confirmation was spoken (live TTS) after the LLM answered, and heard in
    # full before the caller said yes.
    assert asked_llm.received_at < confirmed.started_at
    assert not confirmed.interrupted and confirmed.finished_at is not None
    assert confirmed.finished_at <= agreeing.started_at

    # The notice played in full, then the REFER went out with the configured destination.
    assert not notice.interrupted and notice.finished_at is not None
    assert asked_llm_again.received_at < notice.started_at
    assert refer.received_at >= notice.finished_at
    assert refer.message.room_name == "call-1"
    assert refer.message.participant_identity == participant.identity
    assert refer.message.transfer_to == "tel:+15550100101"

    # The call ended with the transfer, and no stand-in was asked for anything unscripted.
    assert ended_by_transfer
    assert world.unexpected == []
    assert world.openai.remaining == 0 and world.deepgram.scripted == []
