"""A whole phone call, offline, through the real client code of every provider.

The session starts as ``answer_call`` starts it: with the room, through the framework's
RoomIO. The room is the stand-in room; the caller is in it with their phone line
published as an audio track. The caller's recorded voice (8 kHz, real time) goes down
that track into RoomIO's own audio input, through real Silero VAD and the real Deepgram
plugin to a loopback Deepgram server; the real OpenAI plugin asks a loopback Chat
Completions server what to say and its speech endpoint for the audio, which RoomIO
plays into the track it publishes, where the room listens to what the caller hears; the
transfer reaches a loopback LiveKit server as a real Twirp request. RoomIO closes the
session when the caller hangs up. Only what the caller says and what the model answers
are scripted.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from livekit import rtc
from livekit.agents.voice.events import CloseReason
from livekit.plugins import silero

from agent import make_ahead
from config import Settings
from greetings import GreetingAudio
from prompts import Words
from tests.support.caller_audio import TRANSCRIPTS, HeardUtterance
from tests.support.scripted_llm import call, say
from tests.support.simulated_call import answered, stand_ins
from tests.support.stand_in_room import phone_caller

CONFIRM = "I can put you through to our billing team. Would you like that?"
FRAME_S = 0.01  # what the room hears: 10 ms frames


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


async def a_worker(settings: Settings) -> GreetingAudio:
    """The worker process warms up before the phone rings: it makes the greetings and the
    apologies ahead of time."""
    greetings = GreetingAudio()
    await make_ahead(greetings, settings, time_limit=5)
    return greetings


def heard_in_full(utterance: HeardUtterance) -> bool:
    """Played to the end, and the caller got all of it: as much audible audio as the
    output says it played, short of the few silent frames the speech itself holds
    (between sentences)."""
    return (
        not utterance.interrupted
        and utterance.playback_position > 0
        and utterance.heard_seconds >= utterance.playback_position - 5 * FRAME_S
    )


async def test_a_caller_asks_for_billing_and_is_transferred_after_the_notice(
    settings: Settings, vad: silero.VAD
) -> None:
    async with stand_ins() as world:
        settings = world.settings(settings)
        world.deepgram.script(TRANSCRIPTS["billing"], TRANSCRIPTS["yes"])
        world.openai.script(say(CONFIRM), call("transfer_call", destination="billing"))

        greetings = await a_worker(settings)
        tts_requests_before_the_call = len(world.openai.speech_requests)
        participant = phone_caller(number="+15551234567")
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-1"
        ) as c:
            session = c.session
            greeted = await c.playout.finished(1)
            linked = session.room_io.linked_participant
            listening_with = session.input.audio and session.input.audio.label

            asking = await c.line.speak("billing")
            heard_billing = await world.deepgram.wait_for_final(timeout=5)
            asked_llm = await world.openai.wait_for_chat(1)
            confirmed = await c.playout.finished(2)

            agreeing = await c.line.speak("yes")
            heard_yes = await world.deepgram.wait_for_final(timeout=5)
            asked_llm_again = await world.openai.wait_for_chat(2)
            refer = await world.livekit.wait_for_request("TransferSIPParticipant", timeout=10)
            notice = await c.playout.finished(3)
            closed = await asyncio.wait_for(asyncio.shield(c.closed), 5)  # the call ends
            ended_by_transfer = await c.job_ends()
            deleted = await world.livekit.wait_for_request("DeleteRoom")
            published = list(c.room.local_participant.published)
            stray = list(c.playout.stray)
            agent_transcripts = [
                s.text
                for s in c.room.local_participant.text_streams
                if s.topic == "lk.transcription" and s.sender_identity == "agent"
            ]

    # RoomIO ran the call: it linked the caller, read their track, published the agent's
    # voice as one microphone track (nothing else: a cold transfer plays no hold music),
    # and published what the agent said as transcripts.
    assert linked is not None and linked.identity == participant.identity
    assert listening_with == "RoomIO"
    assert [(p.name, p.source) for p in published] == [
        ("roomio_audio", rtc.TrackSource.SOURCE_MICROPHONE)
    ]
    english = Words(settings, "en-US")
    notice_words = english.transfer("notice", settings.destination("billing"))  # type: ignore[arg-type]
    greeting = english.greeting()
    assert agent_transcripts == [greeting, CONFIRM, notice_words]

    # The greeting was the audio made before the call, heard in full before the caller spoke.
    assert heard_in_full(greeted)
    assert greeted.finished_at is not None and greeted.finished_at <= asking.started_at
    spoken_tts = [r.body["input"] for r in world.openai.speech_requests]
    # during the call TTS was asked (sentence by sentence) for the two replies, nothing else
    during_the_call = " ".join(spoken_tts[tts_requests_before_the_call:])
    assert during_the_call == f"{CONFIRM} {notice_words}"

    # Deepgram heard the caller's phone audio with the phone model, and each answer came
    # after the caller finished speaking.
    # (a second connection: the agent stops listening for the transfer, which resets STT)
    connection = world.deepgram.connections[0]
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
    assert heard_in_full(confirmed)
    assert confirmed.finished_at is not None and confirmed.finished_at <= agreeing.started_at

    # The notice played in full, then the REFER went out with the configured destination:
    # after the output reported the notice over, and after its last sound reached the
    # caller's end of the room.
    assert heard_in_full(notice)
    assert asked_llm_again.received_at < notice.started_at
    assert notice.finished_at is not None and notice.heard_until is not None
    assert refer.received_at >= notice.finished_at
    assert refer.received_at >= notice.heard_until
    assert refer.message.room_name == "call-1"
    assert refer.message.participant_identity == participant.identity
    assert refer.message.transfer_to == "tel:+15550100101"

    # The call ended with the transfer, and no stand-in was asked for anything unscripted;
    # the caller heard nothing but the agent's three utterances.
    assert closed.reason == CloseReason.USER_INITIATED
    assert ended_by_transfer == "session closed: user_initiated"
    assert deleted.message.room == "call-1"  # the job's end is the room's
    assert world.unexpected == []
    assert world.openai.remaining == 0 and world.deepgram.scripted == []
    assert stray == []


async def test_the_caller_hangs_up_mid_call_and_roomio_closes_the_session(
    settings: Settings, vad: silero.VAD
) -> None:
    """The caller puts the phone down while the agent is answering them: the framework's
    RoomIO sees the SIP participant leave (CLIENT_INITIATED) and closes the session,
    which stops the agent mid-sentence, and the job-end hook ends the job."""
    async with stand_ins() as world:
        settings = world.settings(settings)
        world.deepgram.script(TRANSCRIPTS["billing"])
        world.openai.script(say(CONFIRM))

        greetings = await a_worker(settings)
        participant = phone_caller(number="+15551234567")
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-2"
        ) as c:
            await c.playout.finished(1)
            await c.line.speak("billing")
            answering = await c.playout.started(2)
            await asyncio.sleep(0.4)  # a few words in

            c.room.hang_up(participant.identity)
            hung_up_at = time.monotonic()
            closed = await asyncio.wait_for(asyncio.shield(c.closed), 5)
            cut_off = await c.playout.finished(2)
            ended = await c.job_ends()
            (mic,) = c.room.microphones
            phone_put_down = mic.closed and c.line.closed
            (voice,) = c.room.local_participant.published
            assert voice.audio is not None
            heard_after = [h.at for h in voice.audio.frames if h.audible and h.at > hung_up_at]

    assert closed.reason == CloseReason.PARTICIPANT_DISCONNECTED
    assert ended == "session closed: participant_disconnected"  # the lifecycle ended the job

    # The agent stopped mid-sentence: the answer was cut off soon after the hang-up.
    assert answering is cut_off and cut_off.interrupted
    assert cut_off.finished_at is not None and cut_off.finished_at - hung_up_at < 0.2
    assert 0.2 < cut_off.heard_seconds < 1.2
    assert all(at - hung_up_at < 0.1 for at in heard_after)  # then the track went quiet

    # The caller's track went away with them, and their line was put down.
    assert phone_put_down
    assert participant.disconnect_reason == rtc.DisconnectReason.CLIENT_INITIATED
    assert world.livekit.requests_for("TransferSIPParticipant") == []  # nothing transferred
    assert [r.method for r in world.livekit.requests] == ["DeleteRoom"]  # the room went too
    assert world.unexpected == [] and world.openai.remaining == 0


# --------------------------------------------------------------------------- consult first

GREETING_AT_BILLING = "Billing, this is Sam speaking."
SAM_ACCEPTS = "Sure, put them through."
SUMMARY = "The caller has a question about their bill and asked for billing."


def consulting_first(settings: Settings) -> Settings:
    """The business with billing at the warm default, consult first (the shared tests'
    business introduces directly)."""
    from dataclasses import replace

    billing = settings.destination("billing")
    assert billing is not None
    consulted = replace(billing, warm_mode="consult")
    destinations = tuple(consulted if d.key == "billing" else d for d in settings.destinations)
    return replace(settings, destinations=destinations)


async def test_a_consult_first_warm_transfer_end_to_end(
    settings: Settings, vad: silero.VAD
) -> None:
    """The caller asks for billing and agrees; on hold they hear music; billing is dialed
    into their room, its answer screened by AMD (a person), briefed on its own track and
    asked; the person says yes; the two are connected and the agent steps out. The caller
    never hears the briefing, the person never hears the hold."""
    from tests.support.destination import DestinationPhone

    async with stand_ins() as world:
        settings = world.settings(consulting_first(settings))
        world.deepgram.script(
            TRANSCRIPTS["billing"], TRANSCRIPTS["yes"], GREETING_AT_BILLING, SAM_ACCEPTS
        )
        # AMD asks the LLM about the person's greeting, unless the VAD heard it short
        # enough to call it a person without asking
        world.openai.script_for_tool("save_prediction", call("save_prediction", label="human"))
        world.openai.script(
            say(CONFIRM),
            call("warm_transfer", destination="billing", reason="a question about their bill"),
            say(SUMMARY),  # the summary of the call for the briefing
            call("accept_call"),  # the consult, on the person's yes
        )
        greetings = await a_worker(settings)
        participant = phone_caller(number="+15551234567")
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-3"
        ) as c:
            phone = DestinationPhone(c.room, world.livekit, participant.identity)
            world.livekit.respond("CreateSIPParticipant", phone.dialed())
            world.livekit.respond("RemoveParticipant", phone.removed())
            await c.playout.finished(1)
            await c.line.speak("billing")
            await c.playout.finished(2)
            await c.line.speak("yes")
            dial = await world.livekit.wait_for_request("CreateSIPParticipant", timeout=10)
            await phone.joined.wait()
            phone.answer()
            await phone.answered.wait()
            await phone.say("billing")  # its greeting, long enough for AMD to ask the LLM
            asked = await world.openai.wait_for_speech("Can you take the call?", timeout=20)
            consulting = phone.heard()
            await phone.say("yes")
            await asyncio.wait_for(asyncio.shield(c.closed), 20)  # the agent steps out
            connected = phone.heard()
            phase = c.lifecycle.phase
            caller_heard = [u for u in c.playout.playouts]
            published = {p.name: p for p in c.room.local_participant.published}
            screening = next(
                (r for r in world.openai.chat_requests if "save_prediction" in r.tool_names),
                None,
            )

    assert dial.message.room_name == "call-3"
    assert dial.message.sip_number == "+15551234567"  # the person sees who is calling
    if screening is not None:  # AMD asked the LLM, with what the person said
        assert screening.last_user_text == GREETING_AT_BILLING
        assert asked.received_at > screening.received_at
    assert "I have a caller from a number ending in 4 5 6 7" in " ".join(
        r.body["input"] for r in world.openai.speech_requests
    )
    assert consulting == {
        "the caller hears the agent's voice",
        "the caller hears the hold music",
        "the destination hears the briefing",
    }
    assert connected == {
        "the caller hears the destination",
        "the destination hears the caller",
        "the caller hears the agent's voice",
        "the destination hears the agent's voice",
    }
    assert phase.name == "CONNECTED"
    # the briefing went out on its own track (the person's), the caller's track carried
    # the greeting, the offer, the hold notice and the line that connected them
    briefing = published["consult_audio"].audio
    assert briefing is not None and briefing.audible_seconds > 1.0
    assert len(caller_heard) == 4
    assert all(heard_in_full(u) for u in caller_heard)
    assert "background_audio" in published  # the hold music played
    assert world.unexpected == [] and world.openai.remaining == 0
