"""When nobody can take the call: opening hours decide what is offered, and a failed
transfer offers the next step of its destination's fallback ladder, in order, truthfully.

Calls run through the real harness with a frozen clock: a Saturday afternoon and a
Tuesday morning in New York. Transfers go to the loopback LiveKit server.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError, Secrets, Settings, parse_settings
from store import Store
from tests.conftest import BUSINESS, business
from tests.support.call import Call, phone_call
from tests.support.livekit_server import sip_error
from tests.support.scripted_llm import call, say

SATURDAY = datetime(2026, 12, 5, 19, 0, tzinfo=UTC)  # 2 p.m. in New York
TUESDAY = datetime(2026, 12, 8, 15, 0, tzinfo=UTC)  # 10 a.m. in New York
OFFICE = {"timezone": "America/New_York", "monday-friday": "09:00-17:00"}


def configured(**destination_changes: dict[str, Any]) -> Settings:
    """conftest's business, with an office schedule and changes per destination key."""
    destinations = [
        {**d, **destination_changes.get(d["key"], {})} for d in BUSINESS["destinations"]
    ]
    return parse_settings(
        business(destinations=destinations, hours={"office": OFFICE}),
        source="test.toml",
        secrets=Secrets(),
    )


LADDER = configured(billing={"fallback": ["front_desk", "message"]}, front_desk={"hours": "office"})


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "data")


def said(c: Call) -> list[str]:
    return [
        item.text_content or ""
        for item in c.session.history.items
        if item.type == "message" and item.role == "assistant"
    ]


async def transfer(c: Call, destination: str, reply: str = "Would you like that?") -> str:
    """The LLM transfers (cold) to ``destination``; returns what the tool told it."""
    c.llm.add(call("transfer_call", destination=destination), say(reply))
    result = await c.session.run(user_input=f"Yes, {destination} please.")
    return next(e.item.output for e in result.events if e.type == "function_call_output")


async def test_a_busy_destination_offers_the_next_step_then_a_message(store: Store) -> None:
    async with phone_call(LADDER, store=store, clock=lambda: TUESDAY) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        told = await transfer(c, "billing")
        assert "busy" in told
        assert "Next, as configured, offer a transfer to front_desk (transfer_call)." in told
        assert "I'm sorry, the billing team is busy at the moment." in said(c)

        # the front desk does not answer either: the ladder goes on where it was
        c.server.respond("TransferSIPParticipant", sip_error(480, "Temporarily Unavailable"))
        told = await transfer(c, "front_desk")
        assert "no_answer" in told
        assert "offer to take a message for billing (take_message)" in told

        attempts = [(a.destination_key, a.outcome.value, a.sip_status)
                    for a in c.lifecycle.journal.attempts]  # fmt: skip
        assert attempts == [("billing", "busy", 486), ("front_desk", "no_answer", 480)]


async def test_a_closed_step_is_skipped(store: Store) -> None:
    async with phone_call(LADDER, store=store, clock=lambda: SATURDAY) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        told = await transfer(c, "billing")
        assert "front_desk" not in told.split("Next,")[-1]
        assert "offer to take a message for billing" in told


async def test_without_a_store_the_ladder_has_no_message_step() -> None:
    async with phone_call(LADDER, clock=lambda: SATURDAY) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        told = await transfer(c, "billing")
        assert "take_message" not in told
        assert "calling back later" in told  # the tool's own alternatives


async def test_a_closed_destination_is_not_called_and_the_caller_hears_when_it_opens() -> None:
    async with phone_call(LADDER, clock=lambda: SATURDAY) as c:
        told = await transfer(c, "front_desk")
        menu = c.llm.requests[0].tool_schema("transfer_call")["description"]

        assert c.server.requests_for("TransferSIPParticipant") == []
        assert (
            "I'm sorry, the front desk is closed right now. It opens on Monday at 9 a.m." in said(c)
        )
        assert "front_desk is closed now (it opens on Monday at 9 a.m.); nothing was sent" in told
        assert (
            "front_desk: the front desk." in menu
            and "CLOSED now, opens on Monday at 9 a.m." in menu
        )
        assert c.lifecycle.journal.attempts == []  # nothing was attempted


async def test_a_spanish_caller_hears_the_hours_in_spanish() -> None:
    from tests.support.stand_in_room import phone_caller

    caller = phone_caller(dialed="+15550100200")
    async with phone_call(LADDER, caller, clock=lambda: SATURDAY, language="es") as c:
        await transfer(c, "front_desk")
        closed = said(c)[-2]
        assert closed.startswith("Lo siento, la recepción")
        assert "lunes" in closed


async def test_during_opening_hours_the_transfer_goes_ahead() -> None:
    async with phone_call(LADDER, clock=lambda: TUESDAY) as c:
        c.llm.add(call("transfer_call", destination="front_desk"))
        await c.session.run(user_input="The front desk, please.")
        (refer,) = c.server.requests_for("TransferSIPParticipant")
        assert refer.message.transfer_to == "sip:frontdesk@pbx.example.com"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"billing": {"fallback": ["billing"]}}, "a destination cannot be its own fallback"),
        (
            {"billing": {"fallback": ["nowhere"]}},
            "destinations.billing.fallback = 'nowhere': no such",
        ),
        ({"billing": {"fallback": ["message", "message"]}}, "listed twice"),
        ({"billing": {"fallback": "front_desk, message"}}, "no such destination"),
        ({"billing": {"hours": "shop"}}, "destinations.billing.hours = 'shop': no such schedule"),
    ],
)
def test_a_ladder_or_hours_naming_something_else_is_a_configuration_error(
    changes: dict[str, dict[str, Any]], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(**changes)
    assert message in str(caught.value)
