"""Whole calls at the moments a call changes hands, through the real clients and the
framework's RoomIO (tests/support/simulated_call.py): what the caller says while a REFER
is pending, the agent's session after a warm handoff, and a session that closes under a
warm transfer while the supervisor's phone rings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from livekit.agents.voice.events import CloseReason, ErrorEvent
from livekit.plugins import silero
from livekit.protocol import sip

from agent import make_ahead
from config import Settings
from greetings import GreetingAudio
from lifecycle import Phase
from tests.support.caller_audio import TRANSCRIPTS
from tests.support.deepgram_server import Refuse
from tests.support.livekit_server import RecordedRequest, Reply
from tests.support.scripted_llm import call, say
from tests.support.simulated_call import AnsweredCall, answered, stand_ins
from tests.support.stand_in_room import SIP, StandInParticipant, phone_caller
from tests.support.supervisor import REASON, SUPERVISOR, Timeline, answers

# LiveKit's default naming of an inbound call: the caller's number in both (the log check
# of tests/conftest.py fails any test whose logs show it)
CALLER = "sip_+15551234567"
ROOM = "call-_+15551234567_aBcD"
OFFER = "I can put you through to our billing team. Would you like that?"
OFFER_SUPERVISOR = "I can get the duty supervisor on the line for you. Shall I?"
SUMMARY = "They have a question about their bill."


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


async def a_worker(settings: Settings) -> GreetingAudio:
    """prewarm: the greetings and the apologies made before the phone rings."""
    made = GreetingAudio()
    await make_ahead(made, settings, time_limit=5)
    return made


def later(
    released: asyncio.Event, reply: Callable[[RecordedRequest], Reply]
) -> Callable[[RecordedRequest], Awaitable[Reply]]:
    """A request the server holds open (a REFER while the destination rings) until
    ``released``, then answers."""

    async def respond(request: RecordedRequest) -> Reply:
        await released.wait()
        return reply(request)

    return respond


async def test_the_caller_talking_while_the_refer_is_pending_starts_no_new_turn(
    settings: Settings, vad: silero.VAD
) -> None:
    async with stand_ins() as world:
        settings = world.settings(settings)
        # a third transcript is ready, should Deepgram ever be sent the caller's audio
        world.deepgram.script(TRANSCRIPTS["billing"], TRANSCRIPTS["yes"], TRANSCRIPTS["hello"])
        world.openai.script(say(OFFER), call("transfer_call", destination="billing"))
        destination_answers = asyncio.Event()
        world.livekit.respond(
            "TransferSIPParticipant",
            later(destination_answers, lambda _: sip.TransferSIPParticipantResponse()),
        )
        greetings = await a_worker(settings)

        async with answered(
            settings, phone_caller(CALLER), vad=vad, greetings=greetings, room_name=ROOM
        ) as c:
            await c.playout.finished(1)
            await c.line.speak("billing")
            await c.playout.finished(2)  # the offer
            await c.line.speak("yes")
            await world.livekit.wait_for_request("TransferSIPParticipant", timeout=10)
            asked, heard = len(world.openai.chat_requests), len(c.playout.playouts)

            await c.line.speak("hello")  # "hello? are you still there?" while it rings

            # what the old main did next: a transcript, a new LLM turn, the agent talking
            with pytest.raises(TimeoutError):
                await world.openai.wait_for_chat(asked + 1, timeout=3)
            assert len(c.playout.playouts) == heard
            assert world.deepgram.scripted == [TRANSCRIPTS["hello"]]  # never transcribed

            destination_answers.set()  # the transfer completes
            assert await c.job_ends() == "session closed: user_initiated"
    assert len(world.livekit.requests_for("TransferSIPParticipant")) == 1
    assert len(world.livekit.requests_for("DeleteRoom")) == 1
    assert world.openai.unexpected == []


def warm_call_script(world: object) -> None:
    world.deepgram.script(TRANSCRIPTS["billing"], TRANSCRIPTS["yes"])  # type: ignore[attr-defined]
    world.openai.script(  # type: ignore[attr-defined]
        say(OFFER_SUPERVISOR),
        call("warm_transfer", destination="supervisor", reason=REASON),
        say(SUMMARY),  # the summary the introduction asks for
    )


async def up_to_the_transfer(c: AnsweredCall) -> None:
    await c.playout.finished(1)
    await c.line.speak("billing")
    await c.playout.finished(2)
    await c.line.speak("yes")


async def test_after_a_warm_handoff_the_agent_is_gone_and_the_room_watched(
    settings: Settings, vad: silero.VAD
) -> None:
    async with stand_ins() as world:
        settings = world.settings(settings)
        warm_call_script(world)
        greetings = await a_worker(settings)

        async with answered(
            settings, phone_caller(CALLER), vad=vad, greetings=greetings, room_name=ROOM
        ) as c:
            world.livekit.respond("CreateSIPParticipant", answers(c, Timeline()))  # type: ignore[arg-type]
            await up_to_the_transfer(c)

            closed = await asyncio.wait_for(asyncio.shield(c.closed), 30)
            assert c.lifecycle.phase is Phase.CONNECTED
            assert closed.reason == CloseReason.USER_INITIATED  # closed at the handoff
            # no speech-to-text left running (a dropped STT stream can end nothing)
            assert world.deepgram.drop_connections() == 0
            assert all(conn.closed_at is not None for conn in world.deepgram.connections)
            assert c.shutdowns == [] and world.livekit.requests_for("DeleteRoom") == []
            assert {CALLER, SUPERVISOR} <= set(c.room.remote_participants)  # talking

            c.room.hang_up(CALLER)
            assert await c.job_ends() == "the caller hung up"  # not the supervisor alone
    (delete,) = world.livekit.requests_for("DeleteRoom")
    assert delete.message.room == ROOM
    assert world.unexpected == [] and world.openai.remaining == 0


async def test_a_session_closing_while_the_supervisor_rings_still_hands_over(
    settings: Settings, vad: silero.VAD
) -> None:
    """Speech-to-text fails for good while the caller is on hold: the framework closes the
    session with an error. The supervisor answers after that; they are connected (there
    is no agent left to introduce them), and the call ends for both when one hangs up."""
    async with stand_ins() as world:
        settings = world.settings(settings)
        warm_call_script(world)
        greetings = await a_worker(settings)
        supervisor_answers = asyncio.Event()

        async with answered(
            settings, phone_caller(CALLER), vad=vad, greetings=greetings, room_name=ROOM
        ) as c:
            stt_gave_up = asyncio.Event()

            def on_error(ev: ErrorEvent) -> None:
                if not getattr(ev.error, "recoverable", True):
                    stt_gave_up.set()

            c.session.on("error", on_error)

            async def rings_then_answers(request: RecordedRequest) -> Reply:
                identity = request.message.participant_identity
                c.room.join(StandInParticipant(identity, kind=SIP))  # ringing
                await supervisor_answers.wait()
                return sip.SIPParticipantInfo(participant_identity=identity, room_name=ROOM)

            world.livekit.respond("CreateSIPParticipant", rings_then_answers)
            await up_to_the_transfer(c)
            await world.livekit.wait_for_request("CreateSIPParticipant", timeout=10)

            world.deepgram.fault(Refuse(503), times=None)  # Deepgram goes down for good
            world.deepgram.drop_connections()
            await asyncio.wait_for(stt_gave_up.wait(), 15)
            supervisor_answers.set()

            closed = await asyncio.wait_for(asyncio.shield(c.closed), 15)
            assert closed.reason == CloseReason.ERROR
            assert c.lifecycle.phase is Phase.CONNECTED
            assert c.shutdowns == [] and world.livekit.requests_for("DeleteRoom") == []
            hold = next(t for t in c.room.local_participant.published if t.name != "roomio_audio")
            assert hold.unpublished_at is not None  # off hold: they hear each other

            c.room.hang_up(SUPERVISOR)
            assert await c.job_ends() == f"{SUPERVISOR} hung up"
    assert len(world.livekit.requests_for("DeleteRoom")) == 1
    assert len(world.livekit.requests_for("CreateSIPParticipant")) == 1
