"""Consult-first warm transfer (warm_mode = "consult"), call by call: the caller waits on
hold in their own room while the person is dialed in, screened by the framework's
answering-machine detection and briefed privately; they take the call or not, by voice
or keypad, and only then do the two hear each other.

Everything runs through the real framework: the agent's session and a second one linked
to the dialed leg, RoomIO on the stand-in room, the framework's AMD, real Silero VAD and
the real Deepgram plugin hearing the destination's line (recorded speech) against the
loopback Deepgram, which answers with the scripted transcript; the LiveKit server is the
loopback one, answering CreateSIPParticipant as the destination's phone and recording
every UpdateParticipant and UpdateSubscriptions. Who hears whom at each phase is computed
from what the room and the server recorded (tests/support/hearing_model.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit.plugins import silero

from config import Destination, Secrets, Settings, parse_settings
from lifecycle import Phase
from prompts import Words
from tests.conftest import FAKE_ENV, business
from tests.support.destination import ConsultCall, consult_call
from tests.support.livekit_server import sip_error
from tests.support.scripted_llm import call, say
from tests.support.supervisor import warm_to
from tools.warm_transfer import hold, screen

DESTINATION = "supervisor-billing-1"  # the first dial's identity
OFFER = "I can put you through to the billing team. Shall I?"
SUMMARY = "Dana was charged twice for her March cleaning and would like a refund."
HOLD_NOTICE = (
    "Sure, I'll get the billing team on the line for you. I'm putting you on hold for a "
    "moment while I call them, please stay on the line."
)
QUESTION = "Can you take the call?"

ON_HOLD = {"the caller hears the agent's voice", "the caller hears the hold music"}
CONSULTING = ON_HOLD | {"the destination hears the briefing"}
CONNECTED = {
    "the caller hears the destination",
    "the destination hears the caller",
    "the caller hears the agent's voice",
    "the destination hears the agent's voice",
}


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


@pytest.fixture
def settings() -> Settings:
    """The shared business with its warm destinations at the default: consult first."""
    data = business()
    for destination in data["destinations"]:
        destination.pop("warm_mode", None)
    return parse_settings(
        data,
        source="test.toml",
        secrets=Secrets(
            livekit_url=FAKE_ENV["LIVEKIT_URL"],
            livekit_api_key=FAKE_ENV["LIVEKIT_API_KEY"],
            livekit_api_secret=FAKE_ENV["LIVEKIT_API_SECRET"],
            deepgram_api_key=FAKE_ENV["DEEPGRAM_API_KEY"],
            openai_api_key=FAKE_ENV["OPENAI_API_KEY"],
        ),
    )


@pytest.fixture(autouse=True)
def quick_detection(monkeypatch: pytest.MonkeyPatch) -> None:
    """AMD's silence limits shortened (10 s without a word, 20 s in all)."""
    monkeypatch.setattr(screen, "DETECTION", {"no_speech_threshold": 3.0, "timeout": 6.0})


async def ask_for_billing(t: ConsultCall, *after: Any) -> asyncio.Future[Any]:
    """The caller asks, the agent offers, the caller says yes: the transfer turn runs
    while the test plays the destination's side."""
    t.llm.add(say(OFFER))
    await t.c.session.run(user_input="I was charged twice for my cleaning. I need billing.")
    t.llm.add(warm_to("billing", caller_name="Dana"), *after)
    return asyncio.ensure_future(t.c.session.run(user_input="Yes, please."))


def billing(settings: Settings) -> Destination:
    found = settings.destination("billing")
    assert found is not None
    return found


def caller_hears(settings: Settings, moment: str) -> str:
    """A warm_transfer.md sentence about billing, in the caller's language."""
    return Words(settings, "en-US").warm(moment, billing(settings))


def said_to_caller(t: ConsultCall) -> list[str]:
    """What the agent's own session said (to the caller, on its voice track)."""
    return [
        item.text_content
        for item in t.c.session.history.items
        if item.type == "message" and item.role == "assistant" and item.text_content
    ]


async def to_the_question(t: ConsultCall) -> None:
    """The destination answers with a greeting and is briefed, up to the question."""
    await ringing_controls(t)
    t.phone.answer()
    await t.phone.answered.wait()
    await t.phone.say("hello")
    await t.speech.spoken(QUESTION)


async def ringing_controls(t: ConsultCall) -> None:
    """The agent's reaction to the leg joining: its gate closed, the caller kept from it."""
    await t.phone.joined.wait()
    await t.c.server.wait_for_request("UpdateParticipant")
    await t.c.server.wait_for_request("UpdateSubscriptions")


def output_of(result: Any) -> str | None:
    outputs = [e.item.output for e in result.events if e.type == "function_call_output"]
    return outputs[0] if outputs else None


# --------------------------------------------------------------------------- taken


async def test_a_person_who_presses_1_is_briefed_privately_then_connected(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        c, phone = t.c, t.phone
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.")
        transfer = await ask_for_billing(t, say(SUMMARY))

        await ringing_controls(t)
        ringing = phone.heard()
        phone.answer()
        await phone.answered.wait()
        answered = phone.heard()
        await phone.say("hello")
        await t.speech.spoken(QUESTION)
        consulting = phone.heard()
        phone.press("1")
        result = await transfer
        connected = phone.heard()

        assert ringing == ON_HOLD
        assert answered == ON_HOLD
        assert consulting == CONSULTING
        assert connected == CONNECTED
        assert c.lifecycle.phase is Phase.CONNECTED
        assert not output_of(result)  # the agent has stepped out: nothing more to say


async def test_a_person_who_says_yes_is_connected_and_the_llm_saw_the_conversation(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.", "Sure, put them through.")
        transfer = await ask_for_billing(t, say(SUMMARY), call("accept_call"))
        await to_the_question(t)
        await t.phone.say("yes")
        await transfer

        consulted = t.llm.requests[-1]  # the consult session's turn
        assert sorted(consulted.tool_names) == ["accept_call", "decline_call"]
        assert "call accept_call" in consulted.instructions
        conversation = consulted.chat_ctx.messages()[1].text_content or ""
        assert "Caller: I was charged twice for my cleaning. I need billing." in conversation
        assert f"You: {OFFER}" in conversation
        assert consulted.chat_ctx.messages()[-1].text_content == "Sure, put them through."
        # the person heard who, why and the summary; then the two were connected
        spoken = " ".join(t.speech.texts)
        assert "I have Dana on the line for you, calling about a double charge" in spoken
        assert SUMMARY in spoken
        assert "Thank you, I'm putting them through now." in spoken
        assert said_to_caller(t)[-2:] == [HOLD_NOTICE, caller_hears(settings, "connected")]
        assert t.phone.heard() == CONNECTED
        assert t.c.lifecycle.phase is Phase.CONNECTED


# --------------------------------------------------------------------------- declined


@pytest.mark.parametrize("how", ["by voice", "on the keypad"])
async def test_a_person_who_declines_is_let_go_and_the_caller_told_kindly(
    settings: Settings, vad: silero.VAD, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with consult_call(settings, vad) as t:
        c, phone = t.c, t.phone
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.", "Sorry, I'm in a meeting with the auditors.")
        decline = [call("decline_call")] if how == "by voice" else []
        offer = say("Would you like to leave a message instead?")
        transfer = await ask_for_billing(t, say(SUMMARY), *decline, offer)
        await to_the_question(t)
        if how == "by voice":
            await phone.say("billing")
        else:
            c.room.press(c.caller.identity, "2")  # the caller's keys are not the person's
            assert "declined" not in caplog.text
            phone.press("2")
        result = await transfer

        output = output_of(result) or ""
        assert "did not happen: person_declined" in output
        assert "meeting" not in output and "auditors" not in output
        told = caller_hears(settings, "person_declined")
        assert said_to_caller(t)[-2:] == [told, "Would you like to leave a message instead?"]
        assert "No problem, I'll let them know. Goodbye." in " ".join(t.speech.texts)
        (remove,) = c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == DESTINATION
        assert phone.heard() == {"the caller hears the agent's voice"}  # off hold, alone
        assert c.lifecycle.phase is Phase.TALKING
        (attempt,) = c.lifecycle.journal.attempts
        assert attempt.outcome == "declined"


async def test_a_person_who_says_nothing_in_time_counts_as_no_answer(
    settings: Settings, vad: silero.VAD
) -> None:
    object.__setattr__(billing(settings), "consult_timeout", 1.0)  # 30 s by default
    async with consult_call(settings, vad) as t:
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.")
        transfer = await ask_for_billing(t, say(SUMMARY), say("Shall I try again later?"))
        await to_the_question(t)
        result = await transfer

        assert "did not happen: consult_timeout" in (output_of(result) or "")
        assert caller_hears(settings, "consult_timeout") in said_to_caller(t)
        assert any("I didn't get an answer" in text for text in t.speech.texts)
        (remove,) = t.c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == DESTINATION
        (attempt,) = t.c.lifecycle.journal.attempts
        assert attempt.outcome == "no_answer"


async def test_a_question_is_answered_from_the_callers_conversation(
    settings: Settings, vad: silero.VAD
) -> None:
    answer = "She was charged twice for her March cleaning."
    async with consult_call(settings, vad) as t:
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.", "What is it about, exactly?")
        transfer = await ask_for_billing(t, say(SUMMARY), say(answer))
        await to_the_question(t)
        await t.phone.say("billing")
        await t.speech.spoken(answer)  # said to the person, on the briefing track
        consulting = t.phone.heard()
        t.phone.press("1")
        await transfer

        asked = t.llm.requests[-1]
        assert asked.chat_ctx.messages()[-1].text_content == "What is it about, exactly?"
        conversation = asked.chat_ctx.messages()[1].text_content or ""
        assert "Caller: I was charged twice for my cleaning. I need billing." in conversation
        assert consulting == CONSULTING  # the caller heard none of it
        assert answer not in said_to_caller(t)
        assert t.c.lifecycle.phase is Phase.CONNECTED


# --------------------------------------------------------------------------- hang-ups


async def test_a_caller_who_hangs_up_during_the_consult_ends_the_persons_leg(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        c = t.c
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.")
        transfer = await ask_for_billing(t, say(SUMMARY))
        await to_the_question(t)
        c.room.hang_up(c.caller.identity)
        result = await transfer

        assert not output_of(result)
        remove = await c.server.wait_for_request("RemoveParticipant")
        assert remove.message.identity == DESTINATION
        await c.server.wait_for_request("DeleteRoom")
        assert await c.job_ends() == "session closed: participant_disconnected"
        assert c.llm.unexpected_turns == 0
        (attempt,) = c.lifecycle.journal.attempts
        assert (attempt.outcome, attempt.detail) == ("failed", "the caller hung up")


async def test_a_person_who_hangs_up_during_the_consult_returns_the_caller(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        t.llm.verdicts.append("human")
        t.deepgram.script("Billing, this is Sam.")
        transfer = await ask_for_billing(t, say(SUMMARY), say("Shall I try again?"))
        await to_the_question(t)
        t.phone.hang_up()
        result = await transfer

        assert "hung up before you could hand over" in (output_of(result) or "")
        assert said_to_caller(t)[-2:] == [
            caller_hears(settings, "supervisor_left"),
            "Shall I try again?",
        ]
        assert t.phone.heard() == {"the caller hears the agent's voice"}
        assert t.c.lifecycle.phase is Phase.TALKING


# --------------------------------------------------------------------------- screening

MACHINES = [
    # (AMD's verdict, what the machine said, the ending, the attempt's record)
    ("machine-vm", "Hi, you've reached Sam. Please leave a message after the tone.",
     "voicemail", "voicemail"),
    ("machine-ivr", "Thank you for calling Acme. For payments press 1, for refunds press 2.",
     "ivr", "voicemail"),
    ("machine-unavailable", "The mailbox is full and cannot accept messages. Goodbye.",
     "mailbox_full", "voicemail"),
]  # fmt: skip


@pytest.mark.parametrize(("verdict", "greeting", "ending", "recorded"), MACHINES)
async def test_a_machine_that_answers_never_hears_the_caller_or_the_agent(
    settings: Settings, vad: silero.VAD, verdict: str, greeting: str, ending: str, recorded: str
) -> None:
    async with consult_call(settings, vad) as t:
        c, phone = t.c, t.phone
        t.llm.verdicts.append(verdict)
        t.deepgram.script(greeting)
        transfer = await ask_for_billing(t, say("Would you like to leave a message with me?"))
        await ringing_controls(t)
        phone.answer()
        await phone.answered.wait()
        await phone.say("billing")  # its greeting (4.4 s); AMD then waits for silence
        once_it_spoke = phone.heard()
        result = await transfer

        (screened,) = t.llm.screenings
        assert screened.chat_ctx.messages()[-1].text_content == greeting  # AMD read it
        assert once_it_spoke == ON_HOLD  # it heard nothing, nor did the caller hear it
        assert f"did not happen: {ending}" in (output_of(result) or "")
        assert said_to_caller(t)[-2:] == [
            caller_hears(settings, ending),
            "Would you like to leave a message with me?",
        ]
        # nothing was ever said to it, and it could never hear anyone
        assert not any("phone assistant" in text for text in t.speech.texts)
        gates = [r.message.permission for r in c.server.requests_for("UpdateParticipant")]
        assert gates and not any(g.can_subscribe for g in gates)
        (remove,) = c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == DESTINATION
        (attempt,) = c.lifecycle.journal.attempts
        assert attempt.outcome == recorded


async def test_an_answer_with_nobody_speaking_ends_the_attempt(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        transfer = await ask_for_billing(t, say("Shall I try again?"))
        await ringing_controls(t)
        t.phone.answer()
        result = await transfer  # AMD's no-speech limit: 3 s here

        assert "did not happen: no_greeting" in (output_of(result) or "")
        assert caller_hears(settings, "no_greeting") in said_to_caller(t)
        assert t.llm.screenings == []  # nothing to classify
        (remove,) = t.c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == DESTINATION


async def test_an_unclear_answer_is_asked_once_then_treated_as_a_person(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad) as t:
        phone = t.phone
        t.llm.verdicts.append("uncertain")  # AMD ignores it: its time limit decides
        t.deepgram.script("Uh, hang on a second, let me get a pen.", "Yes, billing here.")
        transfer = await ask_for_billing(t, say(SUMMARY))
        await ringing_controls(t)
        phone.answer()
        await phone.answered.wait()
        await phone.say("billing")
        asked = await t.speech.spoken("Hello, is this")
        await phone.say("yes")
        await t.speech.spoken(QUESTION)
        phone.press("1")
        await transfer

        assert asked == "Hello, is this the billing team?"
        assert t.speech.texts.count(asked) == 1
        assert phone.heard() == CONNECTED


# --------------------------------------------------------------------------- bounded waits


async def test_a_busy_line_in_consult_mode_returns_the_caller_with_nothing_left_over(
    settings: Settings, vad: silero.VAD
) -> None:
    async with consult_call(settings, vad, dialed=False) as t:
        c = t.c
        c.server.respond("CreateSIPParticipant", sip_error(486, "Busy Here"))
        transfer = await ask_for_billing(t, say("Would you like to try the front desk?"))
        result = await transfer

        assert "did not happen: busy" in (output_of(result) or "")
        assert "I'm sorry, the billing team is busy at the moment." in said_to_caller(t)
        local = c.room.local_participant
        assert local.permission_tables[-1].allow_all  # everyone may hear the agent again
        assert local.publishing("background_audio") is None  # off hold
        assert local.publishing("consult_audio") is None


async def test_the_caller_is_reassured_on_hold_and_brought_back_at_the_time_limit(
    settings: Settings, vad: silero.VAD, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hold, "REASSURE_EVERY_S", 0.4)  # 20 s
    object.__setattr__(billing(settings), "transfer_timeout", 1.5)  # 120 s
    async with consult_call(settings, vad) as t:
        transfer = await ask_for_billing(t, say("Shall I take a message?"))
        result = await transfer  # the phone rings and rings

        reassurance = caller_hears(settings, "still_holding")
        assert said_to_caller(t).count(reassurance) >= 2
        assert "did not happen: transfer_timeout" in (output_of(result) or "")
        assert caller_hears(settings, "transfer_timeout") in said_to_caller(t)
        (remove,) = t.c.server.requests_for("RemoveParticipant")
        assert remove.message.identity == DESTINATION  # the ringing leg is ended
