"""Taking a message: who is calling, a callback number read back and confirmed, what it is
about; stored durably in the call's SQLite store, and only then is the caller told.

Calls run through the real harness (tests/support/call.py): the real AgentSession with the
stand-in room through RoomIO, a scripted LLM driving the framework's own workflows
(GetNameTask, GetPhoneNumberTask), and a real Store on a temporary directory, read back
through a connection of its own, as another process would.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.voice.events import SpeechCreatedEvent

from config import Secrets, Settings, parse_settings
from store import Store
from tests.conftest import business
from tests.support.call import Call, phone_call
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import phone_caller

TAKEN = (
    "Thank you, Dana Reyes. Your message for the billing team has been passed on, and "
    "they'll call you back as soon as they can."
)
NOT_SAVED = (
    "I'm sorry, I couldn't save your message just now. Please try calling again a little later."
)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "data")


def on_disk(store: Store) -> list[dict[str, Any]]:
    """The messages in the database file, read as another process would read them."""
    with sqlite3.connect(store.path) as db:
        return [json.loads(row[0]) for row in db.execute("SELECT data FROM messages")]


def said(c: Call) -> list[str]:
    return [
        item.text_content or ""
        for item in c.session.history.items
        if item.type == "message" and item.role == "assistant"
    ]


def stored_when_said(c: Call, store: Store) -> list[bool]:
    """For each fixed sentence the agent is about to say (``session.say``, as the
    confirmation is said), from the moment it is created: was a message on disk?"""
    seen: list[bool] = []

    def on_speech(event: SpeechCreatedEvent) -> None:
        if event.source == "say":
            seen.append(bool(on_disk(store)))

    c.session.on("speech_created", on_speech)
    return seen


def press(c: Call, *digits: str) -> None:
    for digit in digits:
        code = {"*": 10, "#": 11}.get(digit, int(digit) if digit.isdigit() else 0)
        c.room.emit("sip_dtmf_received", rtc.SipDTMF(code, digit, c.caller))


async def leave_message_with_own_number(c: Call, **arguments: Any) -> None:
    c.llm.add(
        call("take_message", about="a double charge", caller_name="Dana Reyes", **arguments),
        say("Shall they call you back on the number you're calling from, +1 555 123 4567?"),
    )
    await c.session.run(user_input="Can I leave a message for billing?")
    c.llm.add(
        call("update_phone_number", phone_number="+15551234567"),
        say("That's +1 555 123 4567. Is that right?"),
    )
    await c.session.run(user_input="Yes, that number is fine.")
    c.llm.add(call("confirm_phone_number"), say("Is there anything else?"))


async def test_the_caller_leaves_a_message_on_their_own_number(
    settings: Settings, store: Store
) -> None:
    async with phone_call(settings, phone_caller(number="+15551234567"), store=store) as c:
        await leave_message_with_own_number(c, for_destination="billing")
        before_taken = stored_when_said(c, store)
        result = await c.session.run(user_input="Yes, that's right.")

        # the number workflow was told the caller's own number, to offer and read back
        asked = c.llm.requests[1].instructions
        assert "+1 555 123 4567" in asked and "calling from" in asked
        result.expect.contains_message(role="assistant").judge  # noqa: B018 - it exists
        assert TAKEN in said(c)
        assert before_taken == [True]  # stored before the caller was told
        (message,) = on_disk(store)
        assert message["caller_name"] == "Dana Reyes"
        assert message["callback_number"] == "+15551234567"
        assert message["callback_number_confirmed"] is True
        assert message["about"] == "a double charge"
        assert message["destination_key"] == "billing"
        assert message["call_id"] == c.job.job.id
        assert c.lifecycle.journal.messages == [message["id"]]
        output = next(
            e.item.output
            for e in result.events
            if e.type == "function_call_output" and e.item.name == "take_message"
        )
        assert "stored" in output and "has been told" in output


async def test_a_caller_with_a_hidden_number_keys_one_in(settings: Settings, store: Store) -> None:
    async with phone_call(settings, phone_caller(number=None), store=store) as c:
        c.llm.add(
            call("take_message", about="an appointment", caller_name="Dana Reyes"),
            say("What number should they call you back on?"),
        )
        await c.session.run(user_input="I'd like to leave a message.")
        asked = c.llm.requests[-1].instructions
        assert "calling from" not in asked and "keypad" in asked

        c.llm.add(
            call("update_phone_number", phone_number="5550100123"),
            say("That's 555 010 0123. Is that right?"),
        )
        press(c, "5", "5", "5", "0", "1", "0", "0", "1", "2", "3", "#")
        await c.session.run(user_input="")  # let the keyed-in turn play out
        keyed = [
            item.text_content
            for item in c.llm.requests[-1].chat_ctx.items
            if item.type == "message" and item.role == "user"
        ]
        assert "(keyed in on the keypad: 5550100123)" in keyed

        c.llm.add(call("confirm_phone_number"), say("Anything else?"))
        await c.session.run(user_input="Yes.")
        (message,) = on_disk(store)
        assert message["callback_number"] == "5550100123"
        assert message["destination_key"] is None
        assert said(c)[-2] == (
            "Thank you, Dana Reyes. Your message for the team has been passed on, and "
            "they'll call you back as soon as they can."
        )


async def test_the_name_is_asked_for_when_the_caller_has_not_given_it(
    settings: Settings, store: Store
) -> None:
    async with phone_call(settings, store=store) as c:
        c.llm.add(call("take_message", about="a refund"), say("May I have your name, please?"))
        await c.session.run(user_input="Please take a message.")
        c.llm.add(
            call("update_name", first_name="Dana", last_name="Reyes"),
            say("Shall they call you back on the number you're calling from?"),
        )
        await c.session.run(user_input="It's Dana Reyes.")
        c.llm.add(
            call("update_phone_number", phone_number="+15551234567"),
            say("That's +1 555 123 4567. Is that right?"),
        )
        await c.session.run(user_input="Yes.")
        c.llm.add(call("confirm_phone_number"), say("Anything else?"))
        await c.session.run(user_input="Correct.")
        (message,) = on_disk(store)
        assert message["caller_name"] == "Dana Reyes"


async def test_a_message_that_cannot_be_stored_is_never_called_taken(
    settings: Settings, store: Store
) -> None:
    async with phone_call(settings, store=store) as c:
        await leave_message_with_own_number(c)
        store.path.unlink()
        store.path.mkdir()  # the database file is gone and cannot be created again
        store.close()
        c.llm.add(say("I'm sorry about that."))
        result = await c.session.run(user_input="Yes, that's right.")
        assert NOT_SAVED in said(c)
        assert not any(text.startswith("Thank you, Dana") for text in said(c))
        output = next(
            e.item.output
            for e in result.events
            if e.type == "function_call_output" and e.item.name == "take_message"
        )
        assert "could NOT be stored" in output
        assert c.lifecycle.journal.messages == []


async def test_a_spanish_caller_hears_the_confirmation_in_spanish(
    settings: Settings, store: Store
) -> None:
    caller = phone_caller(number="+15551234567", dialed="+15550100200")
    async with phone_call(settings, caller, store=store, language="es") as c:
        await leave_message_with_own_number(c, for_destination="billing")
        await c.session.run(user_input="Sí, correcto.")
        assert said(c)[-2] == (
            "Gracias, Dana Reyes. Ya he pasado su mensaje a el equipo de facturación; le "
            "devolverán la llamada lo antes posible."
        )


async def test_keys_pressed_for_the_number_are_not_the_keypad_escape(store: Store) -> None:
    keyed = parse_settings(business(keypad={"0": "front_desk"}), source="t", secrets=Secrets())
    async with phone_call(keyed, phone_caller(number=None), store=store) as c:
        c.llm.add(
            call("take_message", about="a refund", caller_name="Dana Reyes"),
            say("What number should they call you back on?"),
        )
        await c.session.run(user_input="I'd like to leave a message.")
        c.llm.add(call("update_phone_number", phone_number="5550100123"), say("Right?"))
        press(c, "5", "5", "5", "0", "1", "0", "0", "1", "2", "3", "#")
        await c.session.run(user_input="")
        assert c.server.requests_for("TransferSIPParticipant") == []


def test_without_a_store_no_message_tool_is_offered(settings: Settings) -> None:
    from agent import CallTools
    from caller import Caller
    from lifecycle import CallLifecycle
    from prompts import Words
    from tests.support.stand_in_room import StandInRoom

    caller = phone_caller()
    room = StandInRoom("room", caller)
    lifecycle = CallLifecycle(room, caller.identity, server=None, end_job=lambda _r: None)
    tools = CallTools.for_call(
        settings, Caller.from_participant(caller), lifecycle, Words(settings, "en")
    )
    assert tools.message is None
