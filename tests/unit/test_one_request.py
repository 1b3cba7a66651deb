"""One request per action, and an unknown outcome treated as one, call by call.

On a LiveKit Cloud host (``*.livekit.cloud``) livekit-api replays a request that meets a
5xx or a broken connection, up to 3 attempts: one transfer_call could send three REFERs,
one dial could ring the supervisor three times. The call's server client has failover off
(server_api.CallServer), so each action is one request, as the log says.

An answer that does not say what happened (a proxy's 504 while the phone rings, a 502,
an undecodable 200, a dropped connection, a timeout) is an unknown outcome: a REFER may
have gone through, a dialed phone may still ring or have just been answered. The caller
stays with the agent and is told, the LLM is told the outcome is unknown, and a dialed
leg is ended and kept out of the room if it shows up later.

The LiveKit server is the loopback stand-in reached by a Cloud host name that resolves
to 127.0.0.1 (tests/support/cloud_host.py), so the real, unmodified livekit-api client
takes its Cloud path; faults are put on the wire by the loopback server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from livekit.protocol import sip

from config import Settings
from lifecycle import Phase
from server_api import TEARDOWN_TIMEOUT_S
from tests.support.call import Call, phone_call
from tests.support.livekit_server import (
    Drop,
    Hang,
    RecordedRequest,
    Reply,
    Responder,
    plain_error,
    proxy_error,
    sip_error,
    twirp_error,
    undecodable,
)
from tests.support.scripted_llm import Reply as LLMReply
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import SIP, StandInParticipant
from tests.support.supervisor import ListeningProbe
from tools.warm_transfer import hold as warm_hold

CLOUD = "project.livekit.cloud"
NOTICE = "Sure, I'm transferring you to the billing team now. Please stay on the line."
HOLD_NOTICE = (
    "Sure, I'll get the duty supervisor on the line for you. I'm putting you on hold for a "
    "moment while I call them, please stay on the line."
)
SORRY = "I'm sorry, something went wrong and I couldn't transfer you."
SUPERVISOR = "supervisor-supervisor-1"
ONE_REQUEST = "(one request, never replayed)"
REPLAYED = "retrying with fallback url"  # what livekit-api logs when it replays a request

# Answers that do not say whether the server acted, as they reach the client; each with
# what the log says about it. Every attempt meets the same fault, so a replay would show.
UNKNOWN = [
    pytest.param(twirp_error("unavailable", "sip service unavailable"), "HTTP 503", id="503"),
    pytest.param(proxy_error(504), "HTTP 504", id="504-html"),
    pytest.param(plain_error(502), "HTTP 502", id="502-plain"),
    pytest.param(undecodable(), "could not be decoded", id="undecodable-200"),
    pytest.param(Drop(), "connection to the LiveKit server broke", id="dropped"),
]
NO_ANSWER = pytest.param(Hang(), "no answer from the LiveKit server in time", id="timeout")


# --------------------------------------------------------------------------- helpers


def ringing(settings: Settings, key: str, seconds: float) -> Settings:
    """A short ringing window: the client then waits ``seconds`` + 2 s for the answer.
    3 s keeps a timeout at 5 s, still long enough that livekit-api would fail over."""
    destination = next(d for d in settings.destinations if d.key == key)
    object.__setattr__(destination, "ringing_timeout", seconds)
    return settings


def always(reply: Reply) -> tuple[Reply, ...]:
    """The same fault for every attempt livekit-api could make."""
    return (reply,) * 3


def unanswered(seconds: float = 20.0) -> Responder:
    """A server that does not answer: for a job on its way out, as good as hanging. After
    ``seconds`` it answers 503, so that a test that fails ends rather than hangs too
    (livekit-api sets no time limit of its own on RoomService requests)."""

    async def silent(_request: RecordedRequest) -> Reply:
        await asyncio.sleep(seconds)
        return twirp_error("unavailable", "answered too late")

    return silent


def spoken(result: Any) -> list[str]:
    return [
        e.item.text_content for e in result.events if e.type == "message" and e.item.text_content
    ]


def output_of(result: Any) -> str:
    return next(e.item.output for e in result.events if e.type == "function_call_output")


def replays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if REPLAYED in r.getMessage()]


async def goes_on(c: Call) -> None:
    """The caller is still talking with the agent."""
    c.llm.add(say("Sure."))
    (await c.session.run(user_input="Okay.")).expect.next_event().is_message(role="assistant")
    assert c.lifecycle.phase is Phase.TALKING
    assert c.shutdowns == []


class Hold:
    """Hold music at the warm transfer's edge: on, off."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def begin(self) -> None:
        self.changes.append("on")

    async def end(self) -> None:
        if self.changes[-1:] == ["on"]:
            self.changes.append("off")


@pytest.fixture
def hold(monkeypatch: pytest.MonkeyPatch) -> Hold:
    music = Hold()
    monkeypatch.setattr(warm_hold, "hold_music_for", lambda _room, _settings: music)
    return music


def ears(c: Call) -> ListeningProbe:
    """Whether the agent listens, switched as RoomIO's input would be."""
    c.session.input.audio = probe = ListeningProbe()
    return probe


def supervisor_picks_up(c: Call, identity: str = SUPERVISOR) -> None:
    """The supervisor's phone is answered and their SIP participant joins the room."""
    c.room.join(StandInParticipant(identity, kind=SIP, attributes={"sip.callStatus": "active"}))


def answers(c: Call) -> Any:
    """The supervisor answers the dial."""

    async def answer(request: RecordedRequest) -> Reply:
        identity = request.message.participant_identity
        supervisor_picks_up(c, identity)
        return sip.SIPParticipantInfo(
            participant_identity=identity, room_name=request.message.room_name
        )

    return answer


async def transfer(c: Call, *replies: LLMReply) -> Any:
    """The caller confirms a cold transfer to billing."""
    c.llm.add(call("transfer_call", destination="billing"), *replies)
    return await c.session.run(user_input="Yes, transfer me to billing.")


async def warm_transfer_to_supervisor(c: Call, *replies: LLMReply) -> Any:
    """The caller confirms a warm transfer to the duty supervisor."""
    c.llm.add(call("warm_transfer", destination="supervisor", reason="a double charge"), *replies)
    return await c.session.run(user_input="Yes, get me the supervisor.")


# --------------------------------------------------------------------------- REFER


@pytest.mark.parametrize(("fault", "logged"), UNKNOWN)
async def test_a_refer_whose_outcome_is_unknown_is_sent_once_and_the_caller_stays(
    settings: Settings, caplog: pytest.LogCaptureFixture, fault: Reply, logged: str
) -> None:
    caplog.set_level(logging.INFO)
    async with phone_call(ringing(settings, "billing", 3), livekit_host=CLOUD) as c:
        c.server.respond("TransferSIPParticipant", *always(fault))

        result = await transfer(c, say("Would you like the front desk instead?"))

        # the caller heard the notice, then what happened, then the offer
        assert spoken(result) == [NOTICE, SORRY, "Would you like the front desk instead?"]
        output = output_of(result)
        assert "did not happen: failed" in output and "still on the line" in output
        assert "The outcome is unknown: do not try this transfer again" in output
        await goes_on(c)
        assert c.server.requests_for("DeleteRoom") == []  # not handed over

    # one REFER, as the log says; livekit-api replayed nothing
    assert len(c.server.requests_for("TransferSIPParticipant")) == 1
    assert "sending TransferSIPParticipant(room='call-room-1'" in caplog.text
    assert ONE_REQUEST in caplog.text
    assert logged in caplog.text and "not retried automatically" in caplog.text
    assert replays(caplog) == []
    assert c.server.region_requests == []  # it never looked for another region


async def test_a_refer_that_times_out_on_livekit_cloud_takes_one_ringing_window(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with phone_call(ringing(settings, "billing", 3), livekit_host=CLOUD) as c:
        c.server.respond("TransferSIPParticipant", *always(Hang()))
        started = time.monotonic()

        result = await transfer(c, say("Shall I try the front desk?"))

        waited = time.monotonic() - started
        assert spoken(result) == [NOTICE, SORRY, "Shall I try the front desk?"]
        assert "The outcome is unknown: do not try this transfer again" in output_of(result)
        await goes_on(c)

    (refer,) = c.server.requests_for("TransferSIPParticipant")
    assert refer.message.ringing_timeout.seconds == 3
    # 3 s of ringing + livekit-api's 2 s margin, once; three back to back take over 15 s
    assert 5.0 <= waited < 12.0
    assert ONE_REQUEST in caplog.text and "no answer from the LiveKit server in time" in caplog.text
    assert replays(caplog) == []


async def test_a_refer_answered_with_an_undecodable_200_is_not_a_transfer(
    settings: Settings,
) -> None:
    async with phone_call(settings, livekit_host=CLOUD) as c:
        c.server.respond("TransferSIPParticipant", undecodable())

        result = await transfer(c, say("Shall I try again?"))

        assert "outcome is unknown" in output_of(result)
        assert SORRY in spoken(result)
        assert c.lifecycle.phase is not Phase.HANDED_OVER
        assert not c.closed.done()  # the agent's session goes on
        assert c.server.requests_for("DeleteRoom") == []
        await goes_on(c)


async def test_a_refused_refer_on_livekit_cloud_is_a_known_failure_sent_once(
    settings: Settings,
) -> None:
    async with phone_call(settings, livekit_host=CLOUD) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        result = await transfer(c, say("Shall I try the front desk?"))
        assert "did not happen: busy" in output_of(result)
        assert "outcome is unknown" not in output_of(result)
    assert len(c.server.requests_for("TransferSIPParticipant")) == 1


# --------------------------------------------------------------------------- dialing


@pytest.mark.parametrize(("fault", "logged"), [*UNKNOWN, NO_ANSWER])
async def test_a_dial_whose_outcome_is_unknown_ends_that_leg_and_keeps_it_out(
    settings: Settings,
    hold: Hold,
    caplog: pytest.LogCaptureFixture,
    fault: Reply,
    logged: str,
) -> None:
    caplog.set_level(logging.INFO)
    async with phone_call(ringing(settings, "supervisor", 3), livekit_host=CLOUD) as c:
        listening = ears(c)
        c.server.respond("CreateSIPParticipant", *always(fault))

        result = await warm_transfer_to_supervisor(c, say("Would you like billing instead?"))

        # the caller is back with the agent, off hold, listened to, and told
        assert spoken(result) == [HOLD_NOTICE, SORRY, "Would you like billing instead?"]
        assert hold.changes == ["on", "off"]
        assert listening.changes == ["listening", "not listening", "listening"]
        output = output_of(result)
        assert "did not happen: failed" in output and "back on the line with you" in output
        assert "outcome is unknown" in output

        # the leg that may still be ringing is ended
        ended = await c.server.wait_for_request("RemoveParticipant")
        assert (ended.message.room, ended.message.identity) == ("call-room-1", SUPERVISOR)

        # the supervisor picks up a moment later: they are removed again, not left
        # listening in on the caller
        await asyncio.sleep(0.2)
        supervisor_picks_up(c)
        again = await c.server.wait_for_request("RemoveParticipant")
        assert again.message.identity == SUPERVISOR
        assert f"{SUPERVISOR} joined after its leg was ended" in caplog.text

        await goes_on(c)

    # one dial, as the log says; nothing more was dialed
    (dial,) = c.server.requests_for("CreateSIPParticipant")
    assert dial.message.participant_identity == SUPERVISOR
    assert ONE_REQUEST in caplog.text and logged in caplog.text
    assert "dialed leg was ended in case it was still ringing" in caplog.text
    assert replays(caplog) == []


async def test_the_retry_after_a_refused_caller_id_is_a_second_leg_sent_once(
    settings: Settings, hold: Hold, caplog: pytest.LogCaptureFixture
) -> None:
    """The one deliberate retry: the provider refused the caller's number (SIP 403), so
    the second attempt presents the fallback caller ID, under an identity of its own."""
    caplog.set_level(logging.INFO)
    async with phone_call(settings, livekit_host=CLOUD) as c:
        c.server.respond(
            "CreateSIPParticipant", sip_error(403, "Forbidden"), *always(proxy_error(504))
        )
        result = await warm_transfer_to_supervisor(c, say("Shall I try billing?"))
        assert "outcome is unknown" in output_of(result)
        ended = await c.server.wait_for_request("RemoveParticipant")
        assert ended.message.identity == "supervisor-supervisor-2"

    refused, retry = c.server.requests_for("CreateSIPParticipant")
    assert (refused.message.participant_identity, refused.message.sip_number) == (
        "supervisor-supervisor-1",
        "+15551234567",  # the caller's own number
    )
    assert (retry.message.participant_identity, retry.message.sip_number) == (
        "supervisor-supervisor-2",
        "+15550100100",  # the fallback caller ID
    )
    # the refused leg never existed; only the one whose outcome is unknown is ended
    ended_legs = {r.message.identity for r in c.server.requests_for("RemoveParticipant")}
    assert ended_legs == {"supervisor-supervisor-2"}
    assert caplog.text.count(ONE_REQUEST) == 2
    assert replays(caplog) == []


async def test_a_leg_that_cannot_be_ended_keeps_the_caller_waiting_only_briefly(
    settings: Settings, hold: Hold
) -> None:
    async with phone_call(settings, livekit_host=CLOUD) as c:
        c.server.respond("CreateSIPParticipant", proxy_error(504))
        c.server.respond("RemoveParticipant", unanswered())
        started = time.monotonic()

        result = await warm_transfer_to_supervisor(c, say("Shall I try billing?"))

        assert time.monotonic() - started < TEARDOWN_TIMEOUT_S + 2.0
        assert SORRY in spoken(result)
    assert len(c.server.requests_for("CreateSIPParticipant")) == 1


# --------------------------------------------------------------------------- teardown


async def test_a_server_that_hangs_the_teardown_does_not_keep_the_job(
    settings: Settings, hold: Hold
) -> None:
    async with phone_call(settings, livekit_host=CLOUD) as c:
        c.server.respond("CreateSIPParticipant", answers(c))
        await warm_transfer_to_supervisor(c, say("Dana was charged twice."))
        assert c.lifecycle.phase is Phase.CONNECTED  # the caller and the supervisor talk

        # the worker ends the job; the server answers neither request
        c.server.respond("RemoveParticipant", unanswered())
        c.server.respond("DeleteRoom", unanswered())
        started = time.monotonic()
        await asyncio.wait_for(c.lifecycle.on_job_shutdown(), 10)

        assert time.monotonic() - started < TEARDOWN_TIMEOUT_S + 1.5
    assert TEARDOWN_TIMEOUT_S <= 3.5  # a few seconds; livekit-api alone would wait forever
    (ended,) = c.server.requests_for("RemoveParticipant")
    assert ended.message.identity == SUPERVISOR
    (deleted,) = c.server.requests_for("DeleteRoom")
    assert deleted.message.room == "call-room-1"
