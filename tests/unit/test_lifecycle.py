"""How a call ends, call by call: handed over, ended on purpose, or rescued, and never a
caller left alone on a line. The session starts with the room through the framework's
RoomIO (tests/support/call.py), so its own close-on-hang-up runs; the LiveKit server is
the loopback stand-in; the room is the stand-in room, whose SFU can be made to hang."""

from __future__ import annotations

import asyncio
import time

import pytest
from livekit.agents.voice.events import CloseReason

from config import Settings
from lifecycle import Phase
from tests.support.call import phone_call
from tests.support.scripted_llm import Reply, ToolCall, say
from tests.support.stand_in_room import SIP, StandInParticipant
from tests.support.supervisor import (
    REASON,
    SUPERVISOR,
    RecordingHold,
    Timeline,
    answers,
    warm_to,
)

SUMMARY = "Dana was charged twice and would like a refund."
WARM_AND_GOODBYE = Reply(
    tool_calls=(
        ToolCall("warm_transfer", {"destination": "supervisor", "reason": REASON}),
        ToolCall("end_call", {}),
    )
)
GOODBYE_AND_WARM = Reply(tool_calls=tuple(reversed(WARM_AND_GOODBYE.tool_calls)))


def outputs(result: object) -> dict[str, str]:
    return {
        e.item.name: e.item.output
        for e in result.events  # type: ignore[attr-defined]
        if e.type == "function_call_output"
    }


# --------------------------------------------------------------------------- end_call


async def test_a_goodbye_in_the_same_turn_as_a_warm_transfer_does_not_cut_them_off(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(WARM_AND_GOODBYE, say(SUMMARY))

        result = await c.session.run(user_input="Yes, the supervisor please. Thanks, bye!")

        refused = outputs(result)["end_call"]
        assert "Refused: a transfer is already in progress" in refused
        # the handoff went through, and the agent's session closed after it
        closed = await asyncio.wait_for(asyncio.shield(c.closed), 5)
        assert c.lifecycle.phase is Phase.CONNECTED
        assert closed.reason == CloseReason.USER_INITIATED
        # ...without hanging up on the caller and the supervisor
        assert c.server.requests_for("DeleteRoom") == []
        assert c.shutdowns == []
        assert c.llm.unexpected_turns == 0  # nor answering the refusal over them

        c.room.hang_up(SUPERVISOR)  # they finish talking
        assert await c.job_ends() == f"{SUPERVISOR} hung up"
        await c.server.wait_for_request("DeleteRoom")


async def test_a_goodbye_before_a_transfer_in_the_same_turn_ends_the_call_and_dials_nobody(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(GOODBYE_AND_WARM, say("Goodbye!"))

        result = await c.session.run(user_input="Actually, never mind. Bye.")

        assert "Refused: the call is already ending" in outputs(result)["warm_transfer"]
        await c.job_ends()
        await c.server.wait_for_request("DeleteRoom")
        assert c.server.requests_for("CreateSIPParticipant") == []


async def test_after_a_handoff_there_is_no_agent_left_to_end_the_call(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to(), say(SUMMARY))
        await c.session.run(user_input="Yes, the supervisor please.")
        await asyncio.wait_for(asyncio.shield(c.closed), 5)
        with pytest.raises(RuntimeError):  # the session is closed: no model, no speech
            c.session.say("Anything else?")
        assert c.lifecycle.phase is Phase.CONNECTED


# --------------------------------------------------------------------------- hang-ups


async def test_a_caller_who_hangs_up_ends_the_call_through_roomio(settings: Settings) -> None:
    async with phone_call(settings) as c:
        c.llm.add(say("Let me check."))
        await c.session.run(user_input="When are you open?")

        c.room.hang_up(c.caller.identity)

        closed = await asyncio.wait_for(asyncio.shield(c.closed), 5)
        assert closed.reason == CloseReason.PARTICIPANT_DISCONNECTED  # RoomIO closed it
        assert await c.job_ends() == "session closed: participant_disconnected"
        (delete,) = c.server.requests_for("DeleteRoom")
        assert delete.message.room == "call-room-1"


@pytest.mark.parametrize(
    "reason", ["SIP_TRUNK_FAILURE", "CONNECTION_TIMEOUT", "SIGNAL_CLOSE", "MEDIA_FAILURE"]
)
async def test_a_caller_lost_for_any_reason_ends_the_call_too(
    settings: Settings, reason: str
) -> None:
    """RoomIO closes the session only for a hang-up, a deleted room or a rejected call;
    a dropped trunk would leave the agent waiting for a caller who is gone."""
    from livekit import rtc

    async with phone_call(settings) as c:
        c.room.hang_up(c.caller.identity, reason=getattr(rtc.DisconnectReason, reason))

        closed = await asyncio.wait_for(asyncio.shield(c.closed), 5)
        assert closed.reason == CloseReason.USER_INITIATED  # closed by the lifecycle
        await c.job_ends()
        await c.server.wait_for_request("DeleteRoom")


async def test_every_way_out_of_the_job_ends_the_legs_it_dialed(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    """The job is shut down (the worker stops, the framework ends it) while the supervisor
    rings: the ringing leg is ended and the room deleted, so no phone rings on."""
    async with phone_call(settings) as c:
        ringing = asyncio.Event()

        async def rings(request: object) -> object:
            c.room.join(StandInParticipant(SUPERVISOR, kind=SIP))
            ringing.set()
            await asyncio.Event().wait()  # never answered

        c.server.respond("CreateSIPParticipant", rings)
        c.llm.add(warm_to())
        turn = asyncio.ensure_future(c.session.run(user_input="Yes, the supervisor please."))
        await asyncio.wait_for(ringing.wait(), 5)

        async with asyncio.timeout(5):
            await c.lifecycle.on_job_shutdown()  # what the framework runs on the way out

        (remove,) = c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == SUPERVISOR
        assert c.server.requests_for("DeleteRoom")
        turn.cancel()


# --------------------------------------------------------------------------- hold music


async def test_a_hold_music_track_that_never_publishes_does_not_hold_up_the_dial(
    settings: Settings, timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.room.local_participant.stall("publish")  # the SFU never answers
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to(), say(SUMMARY))
        started = time.monotonic()
        await c.session.run(user_input="Yes, the supervisor please.")

        (dial,) = c.server.requests_for("CreateSIPParticipant")
        assert dial.received_at - started < 1.0  # dialed at once, music or not
        assert c.room.local_participant.stalled_requests == ["publish background_audio"]
        assert c.lifecycle.phase is Phase.CONNECTED
        c.room.local_participant.release()


async def test_a_hold_music_track_that_never_unpublishes_does_not_keep_a_hung_up_call(
    settings: Settings, timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        hung_up = asyncio.Event()

        def supervisor_answers_then_caller_hangs_up(identity: str) -> None:
            c.room.local_participant.stall("unpublish")
            c.room.hang_up(c.caller.identity)
            hung_up.set()

        c.server.respond(
            "CreateSIPParticipant",
            answers(c, timeline, then=supervisor_answers_then_caller_hangs_up),
        )
        c.llm.add(warm_to())
        turn = asyncio.ensure_future(c.session.run(user_input="Yes, the supervisor please."))
        await asyncio.wait_for(hung_up.wait(), 5)
        left_at = time.monotonic()

        await c.job_ends(within=8)
        assert time.monotonic() - left_at < 6  # not kept by the hanging track
        assert c.server.requests_for("DeleteRoom")
        c.room.local_participant.release()
        turn.cancel()
