"""The keypad escape: a caller who presses the configured key reaches a person, whatever
the LLM is doing. The key arrives as SIP DTMF (the room's ``sip_dtmf_received``), the
transfer goes to the loopback LiveKit server through the real livekit-api client.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.voice.events import ConversationItemAddedEvent

from config import ConfigError, Secrets, Settings, parse_settings
from lifecycle import Phase
from tests.conftest import business
from tests.support.call import Call, phone_call
from tests.support.livekit_server import Hang, sip_error
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import phone_caller

FRONT_DESK_NOTICE = "Sure, I'm transferring you to the front desk now. Please stay on the line."


def with_keypad(keypad: dict[str, str], **overrides: Any) -> Settings:
    return parse_settings(
        business(keypad=keypad, **overrides), source="test.toml", secrets=Secrets()
    )


def press(c: Call, digit: str, by: rtc.RemoteParticipant | None = None) -> None:
    """The caller (or ``by``) presses a key: the SIP bridge's DTMF event in the room."""
    code = {"*": 10, "#": 11}.get(digit, int(digit) if digit.isdigit() else 0)
    c.room.emit("sip_dtmf_received", rtc.SipDTMF(code, digit, by or c.caller))


async def agent_says(c: Call, text: str, within: float = 5.0) -> None:
    """Waits until the agent has said ``text`` (it is in the conversation)."""
    heard = asyncio.Event()

    def on_item(event: ConversationItemAddedEvent) -> None:
        item = event.item
        if item.type == "message" and item.role == "assistant" and item.text_content == text:
            heard.set()

    c.session.on("conversation_item_added", on_item)
    try:
        if text not in said(c):
            await asyncio.wait_for(heard.wait(), within)
    finally:
        c.session.off("conversation_item_added", on_item)


def said(c: Call) -> list[str]:
    return [
        item.text_content or ""
        for item in c.session.history.items
        if item.type == "message" and item.role == "assistant"
    ]


async def test_pressing_0_transfers_the_caller_to_the_front_desk() -> None:
    async with phone_call(with_keypad({"0": "front_desk"})) as c:
        c.llm.add(say("Let me look into that for you."))
        await c.session.run(user_input="I'd like to change my appointment.")

        press(c, "0")

        await asyncio.wait_for(c.closed, 5)  # handed over: the agent's session ends
        (refer,) = c.server.requests_for("TransferSIPParticipant")
        assert refer.message.transfer_to == "sip:frontdesk@pbx.example.com"
        assert refer.message.participant_identity == c.caller.identity
        assert said(c)[-1] == FRONT_DESK_NOTICE
        assert c.llm.unexpected_turns == 0  # the LLM had no say in it


async def test_a_key_nobody_configured_and_a_supervisors_key_do_nothing() -> None:
    supervisor = phone_caller("sip_supervisor", number="+15550100199")
    async with phone_call(with_keypad({"0": "front_desk"})) as c:
        press(c, "5")
        press(c, "0", by=supervisor)  # only the caller's own keypad counts
        c.llm.add(say("Of course."))
        await c.session.run(user_input="Hello?")

        assert c.lifecycle.phase is Phase.TALKING
        assert c.server.requests_for("TransferSIPParticipant") == []


async def test_a_key_pressed_during_a_transfer_sends_nothing_more() -> None:
    async with phone_call(with_keypad({"0": "front_desk"})) as c:
        c.server.respond("TransferSIPParticipant", Hang())
        c.llm.add(call("transfer_call", destination="billing"))
        turn = asyncio.ensure_future(c.session.run(user_input="Yes, billing please."))
        await c.server.wait_for_request("TransferSIPParticipant")

        press(c, "0")  # the REFER to billing is pending

        assert c.lifecycle.phase is Phase.TRANSFERRING
        assert len(c.server.requests_for("TransferSIPParticipant")) == 1
        turn.cancel()


async def test_a_failed_keypad_transfer_is_told_and_the_agent_offers_alternatives() -> None:
    async with phone_call(with_keypad({"0": "front_desk"})) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        c.llm.add(say("Would you like me to try the billing team instead?"))

        press(c, "0")

        await agent_says(c, "Would you like me to try the billing team instead?")
        assert said(c)[-3:] == [
            FRONT_DESK_NOTICE,
            "I'm sorry, the front desk is busy at the moment.",
            "Would you like me to try the billing team instead?",
        ]
        # what the LLM was told: the key, the destination, what happened, what to offer
        told = c.llm.requests[-1].instructions
        assert "pressed 0" in told and "busy" in told and "still on the line" in told
        assert c.lifecycle.phase is Phase.TALKING
        assert len(c.server.requests_for("TransferSIPParticipant")) == 1


async def test_a_warm_only_destination_is_reached_by_warm_transfer(
    settings: Settings,
) -> None:
    keyed = with_keypad({"9": "supervisor"})
    async with phone_call(keyed) as c:
        c.server.respond("CreateSIPParticipant", sip_error(486, "Busy Here"))
        c.llm.add(say("Is there anything else I can do for you?"))

        press(c, "9")

        await agent_says(c, "Is there anything else I can do for you?")
        (dial,) = c.server.requests_for("CreateSIPParticipant")
        assert dial.message.sip_call_to == "+15550100199"
        assert said(c)[0].startswith("Sure, I'll get the duty supervisor on the line")


@pytest.mark.parametrize(
    ("keypad", "message"),
    [
        ({"0": "nowhere"}, "keypad.0 = 'nowhere': no such destination"),
        ({"10": "front_desk"}, "keypad.10: not a keypad key"),
        ({"a": "front_desk"}, "keypad.a: not a keypad key"),
        ({"0": 3}, "keypad.0 = 3: no such destination"),
    ],
)
def test_a_keypad_naming_something_else_is_a_configuration_error(
    keypad: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        with_keypad(keypad)
    assert message in str(caught.value)
