"""Warm transfer, call by call: the caller confirms, hears the hold notice, waits on hold
while the supervisor is dialed into their room from the caller's own number, is introduced,
and the agent steps out. Every failure returns the caller to the agent, off hold.

The LiveKit server is the loopback stand-in (requests go through the real livekit-api
client); the supervisor "answers" by joining the stand-in room from the server's responder,
as a real SIP participant joins the room when it answers. Hold music is recorded at its
interface here; the real BackgroundAudioPlayer-backed one is tested on its own at the end.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from livekit.agents.voice.events import ConversationItemAddedEvent

import prompts
from config import Secrets, Settings, parse_settings
from tests.conftest import business
from tests.support.audio import SilentTTS
from tests.support.call import Call, phone_call
from tests.support.livekit_server import Hang, sip_error, twirp_error
from tests.support.scripted_llm import Reply as LLMReply
from tests.support.scripted_llm import ToolCall, say
from tests.support.stand_in_room import SIP, StandInParticipant, phone_caller
from tests.support.supervisor import (
    REASON,
    SUPERVISOR,
    ListeningProbe,
    RecordingHold,
    Timeline,
    answers,
    rings_until,
    warm_to,
)
from tools.warm_transfer import dial

HOLD_NOTICE = (
    "Sure, I'll get the duty supervisor on the line for you. I'm putting you on hold for a "
    "moment while I call them, please stay on the line."
)
SUMMARY = "Dana was charged twice for her March cleaning and would like a refund."
HANDOFF = "I'll leave you two to talk now. Goodbye."


# --------------------------------------------------------------------------- stand-ins


def listen(c: Call, timeline: Timeline) -> ListeningProbe:
    """Give the session an audio input to switch off and on, and log what it says."""
    probe = ListeningProbe()
    c.session.input.audio = probe

    def said(ev: ConversationItemAddedEvent) -> None:
        if getattr(ev.item, "role", None) == "assistant":
            timeline.add(f"said: {ev.item.text_content}")

    c.session.on("conversation_item_added", said)
    return probe


async def confirm_and_transfer(c: Call, *replies: LLMReply, **arguments: Any) -> Any:
    """The caller asks, the agent offers, the caller says yes: the transfer turn."""
    c.llm.add(say("I can put you through to the duty supervisor. Shall I?"))
    await c.session.run(user_input="I was charged twice for my cleaning. I want a supervisor.")
    c.llm.add(warm_to(**arguments), *replies)
    return await c.session.run(user_input="Yes, please.")


def spoken(result: Any) -> list[str]:
    return [
        e.item.text_content for e in result.events if e.type == "message" and e.item.text_content
    ]


def output_of(result: Any) -> str:
    return next(e.item.output for e in result.events if e.type == "function_call_output")


# --------------------------------------------------------------------------- success


async def test_the_supervisor_is_dialed_into_the_callers_room_from_the_callers_number(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    caller = phone_caller("sip_caller-7f3a", number="+15551234567")
    async with phone_call(settings, caller) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        await confirm_and_transfer(c, say(SUMMARY), caller_name="Dana")

    (dial,) = c.server.requests_for("CreateSIPParticipant")
    request = dial.message
    assert request.sip_number == "+15551234567"  # the supervisor sees who is calling
    assert request.room_name == "call-room-1"  # the caller's own room
    assert request.sip_trunk_id == "ST_outbound"
    assert request.sip_call_to == "+15550100199"
    assert request.participant_identity == SUPERVISOR
    assert request.participant_name == "the duty supervisor"
    assert request.wait_until_answered is True
    assert request.ringing_timeout.seconds == 30
    assert request.dtmf == "42"  # the supervisor's extension
    assert request.play_dialtone is False  # the caller hears hold music instead
    assert request.krisp_enabled is False
    assert dict(request.headers) == {}
    assert dial.claims.sip.call


async def test_a_destinations_timeout_headers_and_noise_cancellation_are_passed_on(
    holds: list[RecordingHold], timeline: Timeline
) -> None:
    settings = parse_settings(
        business(
            lines={},
            destinations=[
                {
                    "key": "on_call",
                    "name": "the on-call nurse",
                    "description": "Urgent clinical questions.",
                    "to": "sip:oncall@pbx.example.com",
                    "modes": ["warm"],
                    "warm_mode": "introduce",
                    "ringing_timeout": 20,
                    "headers": {"X-Team": "nurses"},
                }
            ],
            transfer={"outbound_trunk_id": "ST_nurses", "krisp": True},
        ),
        source="t",
        secrets=Secrets(),
    )
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to("on_call"), say(SUMMARY))
        await c.session.run(user_input="Yes, the nurse please.")
    (dial,) = c.server.requests_for("CreateSIPParticipant")
    assert dial.message.sip_call_to == "sip:oncall@pbx.example.com"
    assert dial.message.sip_trunk_id == "ST_nurses"
    assert dial.message.ringing_timeout.seconds == 20
    assert dict(dial.message.headers) == {"X-Team": "nurses"}
    assert dial.message.krisp_enabled is True
    assert dial.message.dtmf == ""  # no extension configured
    assert dial.message.participant_identity == "supervisor-on_call-1"


async def test_the_caller_is_held_introduced_and_left_with_the_supervisor(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        probe = listen(c, timeline)
        c.server.respond("CreateSIPParticipant", answers(c, timeline))

        result = await confirm_and_transfer(c, say(SUMMARY), caller_name="Dana")

        result.expect.next_event().is_function_call(name="warm_transfer")
        said = [result.expect.next_event().is_message(role="assistant").event().item]
        said += [result.expect.next_event().is_message(role="assistant").event().item]
        said += [result.expect.next_event().is_message(role="assistant").event().item]
        result.expect.next_event().is_function_call_output()
        result.expect.no_more_events()  # the agent says nothing more: it has stepped out
        hold_notice, introduction, summary = (m.text_content for m in said)
        assert hold_notice == HOLD_NOTICE
        assert introduction == (
            "Hello, this is the Acme Dental phone assistant. I have Dana on the line for you, "
            f"calling about {REASON}."
        )
        assert summary == f"{SUMMARY} {HANDOFF}"

        # in order: on hold, dialed, answered, off hold, introduced
        assert timeline.of("said", "hold", "dial", "answered")[1:] == [
            "said: I can put you through to the duty supervisor. Shall I?",
            f"said: {HOLD_NOTICE}",
            "hold music on",
            f"dial {SUPERVISOR}",
            f"answered {SUPERVISOR}",
            "hold music off",
            f"said: {introduction}",
            f"said: {summary}",
        ]
        # the agent stopped listening when the hold began, and does not listen again
        assert probe.changes == ["listening", "not listening"]
        assert not c.session.output.audio_enabled  # nor talk
        assert c.shutdowns == []  # the job stays, watching the call
        assert c.server.requests_for("DeleteRoom") == []  # the room stays: they are talking
        assert c.llm.unexpected_turns == 0


async def test_the_hold_music_starts_before_dialing_and_stops_on_the_answer(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        await confirm_and_transfer(c, say(SUMMARY))
    (hold,) = holds
    (dial,) = c.server.requests_for("CreateSIPParticipant")
    assert hold.started_at is not None and hold.stopped_at is not None
    assert hold.started_at <= dial.received_at <= hold.stopped_at


async def test_the_summary_is_written_by_the_llm_from_the_conversation(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        result = await confirm_and_transfer(c, say(SUMMARY))

    summary_request = c.llm.requests[-1]
    assert summary_request.tools == []
    assert "Summarize it for the duty supervisor" in summary_request.instructions
    transcript = summary_request.chat_ctx.items[-1].text_content or ""
    assert "Caller: I was charged twice for my cleaning. I want a supervisor." in transcript
    assert "You: I can put you through to the duty supervisor. Shall I?" in transcript
    # without a name the caller is named by the last digits of their number
    introduction = spoken(result)[1]
    assert "a caller from a number ending in 4 5 6 7" in introduction
    assert REASON in introduction
    assert "+15551234567" not in " ".join(spoken(result))
    assert SUMMARY in spoken(result)[2]


async def test_without_a_summary_the_introduction_uses_a_plain_sentence(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        result = await confirm_and_transfer(c)  # the model answers nothing for the summary
    assert spoken(result)[2] == f"They can tell you more themselves. {HANDOFF}"


@pytest.mark.parametrize("who_hangs_up", ["caller", "supervisor"])
async def test_after_the_handoff_one_side_hanging_up_ends_the_call_for_the_other(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline, who_hangs_up: str
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        await confirm_and_transfer(c, say(SUMMARY))
        assert c.server.requests_for("DeleteRoom") == []

        gone = c.caller.identity if who_hangs_up == "caller" else SUPERVISOR
        c.room.hang_up(gone)

        delete = await c.server.wait_for_request("DeleteRoom")
        assert delete.message.room == "call-room-1"
        why = await c.job_ends()
        assert why == (
            "the caller hung up" if who_hangs_up == "caller" else f"{SUPERVISOR} hung up"
        )
    assert len(c.server.requests_for("DeleteRoom")) == 1


# --------------------------------------------------------------------------- caller ID


async def test_a_hidden_number_is_replaced_by_the_fallback_caller_id(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings, phone_caller(number=None)) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        result = await confirm_and_transfer(c, say(SUMMARY))
        assert "a caller whose number is hidden" in spoken(result)[1]
    (dial,) = c.server.requests_for("CreateSIPParticipant")
    assert dial.message.sip_number == "+15550100100"


async def test_a_refused_caller_number_is_retried_once_from_the_fallback(
    settings: Settings,
    holds: list[RecordingHold],
    timeline: Timeline,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", sip_error(403, "Forbidden"), answers(c, timeline))
        with caplog.at_level(logging.INFO, logger="phone-assistant"):
            result = await confirm_and_transfer(c, say(SUMMARY))
        assert spoken(result)[-1] == f"{SUMMARY} {HANDOFF}"

    first, second = c.server.requests_for("CreateSIPParticipant")
    assert first.message.sip_number == "+15551234567"
    assert second.message.sip_number == "+15550100100"
    assert first.message.participant_identity != second.message.participant_identity
    assert "refused the caller's number +1******4567 as caller ID (SIP 403 Forbidden)" in (
        caplog.text
    )
    assert "allow caller-ID passthrough on outbound trunk ST_outbound" in caplog.text
    assert "+15551234567" not in caplog.text


async def test_a_second_refusal_is_not_retried_and_counts_as_declined(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        c.server.respond(
            "CreateSIPParticipant", sip_error(403, "Forbidden"), sip_error(403, "Forbidden")
        )
        result = await confirm_and_transfer(c, say("Shall I try billing instead?"))
        assert "I'm sorry, the duty supervisor can't take your call right now." in spoken(result)
        assert "did not happen: declined" in output_of(result)
    assert len(c.server.requests_for("CreateSIPParticipant")) == 2


async def test_a_hidden_caller_refused_from_the_fallback_is_not_retried(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings, phone_caller(number=None)) as c:
        c.server.respond("CreateSIPParticipant", sip_error(403, "Forbidden"))
        result = await confirm_and_transfer(c, say("Shall I try billing instead?"))
        assert "did not happen: declined" in output_of(result)
    assert len(c.server.requests_for("CreateSIPParticipant")) == 1


# --------------------------------------------------------------------------- failures

FAILURES = [
    # (server reply, what the caller hears, outcome told to the LLM, log text)
    (sip_error(486, "Busy Here"), "the duty supervisor is busy", "busy", "SIP 486 Busy Here"),
    (sip_error(600, "Busy Everywhere"), "the duty supervisor is busy", "busy", "SIP 600"),
    (sip_error(480, "Temporarily Unavailable"), "didn't pick up", "no_answer", "SIP 480"),
    (sip_error(408, "Request Timeout"), "didn't pick up", "no_answer", "SIP 408"),
    (sip_error(603, "Decline"), "can't take your call", "declined", "SIP 603 Decline"),
    (sip_error(404, "Not Found"), "I couldn't reach the duty supervisor", "unreachable",
     "configuration problem"),
    (sip_error(484, "Address Incomplete"), "I couldn't reach the duty supervisor",
     "unreachable", "check its 'to' in assistant.toml"),
    (sip_error(500, "Server Internal Error"), "something went wrong", "failed", "SIP 500"),
    (sip_error(501, "Not Implemented"), "something went wrong", "failed",
     "check the outbound trunk's address"),
    (twirp_error("not_found", "trunk not found"), "something went wrong", "failed",
     "LiveKit does not know the room, participant or trunk"),
    (twirp_error("unauthenticated", "permissions denied"), "something went wrong", "failed",
     "check LIVEKIT_API_KEY"),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "heard", "outcome", "logged"), FAILURES)
async def test_a_failed_dial_returns_the_caller_to_the_agent(
    settings: Settings,
    holds: list[RecordingHold],
    timeline: Timeline,
    caplog: pytest.LogCaptureFixture,
    reply: Any,
    heard: str,
    outcome: str,
    logged: str,
) -> None:
    async with phone_call(settings) as c:
        probe = listen(c, timeline)
        c.server.respond("CreateSIPParticipant", reply)
        with caplog.at_level(logging.WARNING, logger="phone-assistant"):
            result = await confirm_and_transfer(c, say("Would you like billing instead?"))

        result.expect.next_event().is_function_call(name="warm_transfer")
        notice = result.expect.next_event().is_message(role="assistant").event().item
        assert notice.text_content == HOLD_NOTICE
        output = result.expect.next_event().is_function_call_output().event().item.output
        assert f"did not happen: {outcome}" in output
        assert "back on the line with you, off hold" in output
        assert "billing" in output and "transfer_call" in output  # alternatives to offer
        told = result.expect.next_event().is_message(role="assistant").event().item.text_content
        assert told is not None and heard in told
        offer = result.expect.next_event().is_message(role="assistant").event().item
        assert offer.text_content == "Would you like billing instead?"
        result.expect.no_more_events()

        # hold music ran while dialing and stopped before the caller was told
        assert timeline.of("hold", "said: I'm sorry")[:2] == ["hold music on", "hold music off"]
        assert probe.changes == ["listening", "not listening", "listening"]
        assert logged in caplog.text
        assert "+15550100199" not in caplog.text  # numbers are masked in logs
        assert c.shutdowns == []
        # the conversation goes on
        c.llm.add(say("Sure."))
        (await c.session.run(user_input="Okay.")).expect.next_event().is_message()
    assert len(c.server.requests_for("CreateSIPParticipant")) == 1


async def test_a_dial_that_times_out_ends_the_leg_that_may_still_ring(
    holds: list[RecordingHold], timeline: Timeline, caplog: pytest.LogCaptureFixture
) -> None:
    # ringing_timeout 0 keeps the client's timeout at its floor (2 s) for the test
    settings = parse_settings(
        business(lines={}, destinations=[{"key": "supervisor", "name": "the duty supervisor",
                                "description": "Urgent.", "to": "+15550100199",
                                "modes": ["warm"], "warm_mode": "introduce"}]),
        source="t", secrets=Secrets(),
    )  # fmt: skip
    object.__setattr__(settings.destinations[0], "ringing_timeout", 0.0)
    async with phone_call(settings) as c:
        c.server.respond("CreateSIPParticipant", Hang())
        with caplog.at_level(logging.WARNING, logger="phone-assistant"):
            result = await confirm_and_transfer(c, say("I'm sorry about that."))
        assert "did not happen: failed" in output_of(result)
        remove = await c.server.wait_for_request("RemoveParticipant")
        assert remove.message.identity == SUPERVISOR
        assert "dialed leg was ended in case it was still ringing" in caplog.text


async def test_an_answer_whose_participant_never_joins_is_ended_and_reported(
    settings: Settings,
    holds: list[RecordingHold],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(dial, "JOIN_TIMEOUT_S", 0.05)
    async with phone_call(settings) as c:
        # the server's default reply: answered, but nobody joins the stand-in room
        with caplog.at_level(logging.WARNING, logger="phone-assistant"):
            result = await confirm_and_transfer(c, say("Shall I try again?"))
        assert "did not happen: failed" in output_of(result)
        assert "something went wrong" in spoken(result)[-2]
        (remove,) = c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == SUPERVISOR
        assert f"{SUPERVISOR} never joined the room" in caplog.text


async def test_a_supervisor_who_hangs_up_on_answering_returns_the_caller_to_the_agent(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:
        probe = listen(c, timeline)
        c.server.respond("CreateSIPParticipant", answers(c, timeline, then=c.room.hang_up))
        result = await confirm_and_transfer(c, say("Would you like me to try again?"))

        assert spoken(result) == [
            HOLD_NOTICE,
            "I'm sorry, the duty supervisor hung up before I could put you through.",
            "Would you like me to try again?",
        ]
        assert "hung up before you could hand over" in output_of(result)
        assert probe.changes == ["listening", "not listening", "listening"]
        assert timeline.of("hold") == ["hold music on", "hold music off"]
        assert c.session.output.audio_enabled


async def test_a_supervisor_who_hangs_up_during_the_introduction_returns_the_caller(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings, audio=True) as c:
        tts, playout = c.session.tts, c.playout
        assert isinstance(tts, SilentTTS) and playout is not None

        def supervisor_hangs_up_during_the_introduction(_playout: object) -> None:
            if "phone assistant" in tts.texts[-1]:  # the introduction's first sentence
                c.room.hang_up(SUPERVISOR)

        playout.on_started = supervisor_hangs_up_during_the_introduction
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        result = await confirm_and_transfer(c, say(SUMMARY), say("Shall I try again?"))

        # greeting and offer, then: the hold notice in full, the introduction stopped at
        # once, the caller told, the offer of alternatives
        assert [p.interrupted for p in playout.playouts][2:] == [False, True, False, False]
        assert "hung up before you could hand over" in output_of(result)
        assert spoken(result)[-2:] == [
            "I'm sorry, the duty supervisor hung up before I could put you through.",
            "Shall I try again?",
        ]
        assert SUMMARY not in tts.texts[-1]
        assert c.server.requests_for("DeleteRoom") == []  # the caller is still talking


# --------------------------------------------------------------------------- caller hangs up


async def test_a_caller_who_hangs_up_while_the_supervisor_rings_ends_the_ringing(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings) as c:

        def ringing_then_caller_hangs_up(identity: str) -> None:
            c.room.join(StandInParticipant(identity, kind=SIP))  # ringing
            c.room.hang_up(c.caller.identity)

        c.server.respond("CreateSIPParticipant", rings_until(ringing_then_caller_hangs_up))
        result = await confirm_and_transfer(c)

        remove = await c.server.wait_for_request("RemoveParticipant")
        assert (remove.message.room, remove.message.identity) == ("call-room-1", SUPERVISOR)
        delete = await c.server.wait_for_request("DeleteRoom")
        assert delete.message.room == "call-room-1"
        assert spoken(result) == [HOLD_NOTICE]  # nobody is told anything: nobody is there
        assert timeline.of("hold") == ["hold music on", "hold music off"]
        assert c.llm.unexpected_turns == 0
    assert len(c.server.requests_for("CreateSIPParticipant")) == 1


async def test_a_caller_who_hangs_up_during_the_introduction_ends_the_supervisors_leg(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline
) -> None:
    async with phone_call(settings, audio=True) as c:
        tts, playout = c.session.tts, c.playout
        assert isinstance(tts, SilentTTS) and playout is not None

        def caller_hangs_up_during_the_introduction(_playout: object) -> None:
            if "phone assistant" in tts.texts[-1]:  # the introduction's first sentence
                c.room.hang_up(c.caller.identity)

        playout.on_started = caller_hangs_up_during_the_introduction
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        await confirm_and_transfer(c, say(SUMMARY))

        remove = await c.server.wait_for_request("RemoveParticipant")
        assert remove.message.identity == SUPERVISOR
        await c.server.wait_for_request("DeleteRoom")
        assert playout.playouts[-1].interrupted  # the introduction stopped at once


async def test_a_caller_who_hangs_up_during_the_hold_notice_is_not_transferred(
    settings: Settings, holds: list[RecordingHold]
) -> None:
    async with phone_call(settings, audio=True) as c:
        tts, playout = c.session.tts, c.playout
        assert isinstance(tts, SilentTTS) and playout is not None

        def hang_up_when_the_notice_starts(_playout: object) -> None:
            if "on the line for you" in tts.texts[-1]:  # the notice's first sentence
                c.room.hang_up(c.caller.identity)

        playout.on_started = hang_up_when_the_notice_starts
        await confirm_and_transfer(c)
    assert c.server.requests_for("CreateSIPParticipant") == []
    assert holds == []  # never put on hold


# --------------------------------------------------------------------------- what the LLM can do


async def test_the_llm_can_only_choose_configured_warm_destinations(settings: Settings) -> None:
    async with phone_call(settings) as c:
        c.llm.add(say("Hello."))
        await c.session.run(user_input="Hi")
        schema = c.llm.requests[0].tool_schema("warm_transfer")
    properties = schema["parameters"]["properties"]
    assert properties["destination"]["enum"] == ["billing", "supervisor"]  # not front_desk
    assert schema["parameters"]["required"] == ["destination", "reason"]
    assert "+1555" not in str(schema) and "sip:" not in str(schema)


async def test_an_unknown_or_cold_only_destination_dials_nothing(
    settings: Settings, holds: list[RecordingHold]
) -> None:
    async with phone_call(settings) as c:
        c.llm.add(warm_to("front_desk"), say("I can connect you to billing or a supervisor."))
        result = await c.session.run(user_input="Put me through to the front desk.")
        error = result.expect.next_event(type="function_call_output").event().item
        assert error.is_error and "Unknown destination 'front_desk'" in error.output
    assert c.server.requests_for("CreateSIPParticipant") == []


async def test_a_warm_and_a_cold_transfer_cannot_run_at_once(
    settings: Settings, holds: list[RecordingHold]
) -> None:
    async with phone_call(settings) as c:
        both = LLMReply(
            tool_calls=(
                ToolCall("transfer_call", {"destination": "billing"}),
                ToolCall("warm_transfer", {"destination": "supervisor", "reason": REASON}),
            )
        )
        c.llm.add(both)
        result = await c.session.run(user_input="Transfer me. Anyone.")
        refused = [
            e.item for e in result.events if e.type == "function_call_output" and e.item.is_error
        ]
        assert len(refused) == 1 and "already in progress" in refused[0].output
        assert refused[0].call_id == result.events[1].item.call_id  # the warm one
    assert c.server.requests_for("CreateSIPParticipant") == []


async def test_a_caller_who_is_not_on_the_phone_cannot_be_transferred(
    settings: Settings, holds: list[RecordingHold], caplog: pytest.LogCaptureFixture
) -> None:
    async with phone_call(settings, StandInParticipant("web-tester")) as c:
        c.llm.add(warm_to(), say("Transfers only work on phone calls."))
        with caplog.at_level(logging.INFO, logger="phone-assistant"):
            result = await c.session.run(user_input="Get me a supervisor.")
        assert "not on a phone call" in output_of(result)
        assert "would have sent CreateSIPParticipant(" in caplog.text
        assert "to='tel:+1******0199'" in caplog.text
    assert c.server.requests_for("CreateSIPParticipant") == []
    assert holds == []


def test_every_warm_transfer_prompt_renders(settings: Settings) -> None:
    rendered = prompts.check(settings)
    for moment in prompts.WARM_MOMENTS:
        assert rendered[f"en:warm_transfer:{moment}:supervisor"]
        assert f"en:warm_transfer:{moment}:front_desk" not in rendered  # cold only


async def test_the_llm_knows_which_language_the_person_it_calls_speaks() -> None:
    """The reason is spoken to them inside the introduction: the LLM writes it in their
    language, which the tool's menu gives."""
    settings = parse_settings(
        business(
            lines={},
            destinations=[
                {
                    "key": "clinica",
                    "name": "the clinic in Madrid",
                    "names": {"es": "la clínica de Madrid"},
                    "description": "Questions for the clinic.",
                    "to": "+34910000000",
                    "modes": ["warm"],
                    "language": "es",
                }
            ],
        ),
        source="t",
        secrets=Secrets(),
    )
    async with phone_call(settings) as c:
        c.llm.add(say("Hello."))
        await c.session.run(user_input="Hi")
        schema = c.llm.requests[0].tool_schema("warm_transfer")
    assert (
        "- clinica: the clinic in Madrid. Questions for the clinic. (they speak Spanish)"
        in (schema["description"])
    )
    assert (
        "write it in their language" in schema["parameters"]["properties"]["reason"]["description"]
    )
