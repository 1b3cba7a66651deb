"""Who is calling and which speech-to-text model they get: every row of the table in
the README, plus the awkward cases real trunks produce (hidden numbers, late attributes)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from livekit.agents.testing import fake_job_context

from caller import (
    Caller,
    await_sip_attributes,
    choose_stt,
    find_caller,
    mask_number,
    resolve_line,
)
from config import Settings
from tests.support.stand_in_room import StandInParticipant, StandInRoom, phone_caller


def stt_for(participant: StandInParticipant, settings: Settings) -> tuple[str, str]:
    caller = Caller.from_participant(participant)  # type: ignore[arg-type]
    choice = choose_stt(caller, resolve_line(caller, settings), settings)
    return choice.model, choice.language


def test_a_phone_call_on_the_default_line_gets_the_phone_call_model(settings: Settings) -> None:
    assert stt_for(phone_caller(dialed="+15550100000"), settings) == ("nova-2-phonecall", "en-US")


def test_a_web_or_console_caller_gets_the_general_model(settings: Settings) -> None:
    assert stt_for(StandInParticipant("web-tester"), settings) == ("nova-3", "en-US")


def test_a_non_english_line_gets_a_model_that_speaks_its_language(settings: Settings) -> None:
    assert stt_for(phone_caller(dialed="+15550100200"), settings) == ("nova-3", "es")


def test_a_line_can_override_the_model(settings: Settings) -> None:
    assert stt_for(phone_caller(dialed="+15550100300"), settings) == ("nova-2-general", "en-US")


def test_a_dispatch_rule_attribute_can_select_the_line_or_the_language(settings: Settings) -> None:
    by_line = phone_caller(dialed="+15550100000", **{"assistant.line": "spanish"})
    assert stt_for(by_line, settings) == ("nova-3", "es")
    by_language = phone_caller(dialed="+15550100000", **{"assistant.language": "fr-CA"})
    assert stt_for(by_language, settings) == ("nova-3", "fr-CA")
    junk = phone_caller(dialed="+15550100000", **{"assistant.language": "French please"})
    assert stt_for(junk, settings) == ("nova-2-phonecall", "en-US")


def test_the_choice_says_why(settings: Settings) -> None:
    caller = Caller.from_participant(phone_caller(dialed="+15550100200"))  # type: ignore[arg-type]
    choice = choose_stt(caller, resolve_line(caller, settings), settings)
    assert "line spanish" in choice.reason
    assert "English-only" in choice.reason


def test_a_hidden_number_is_not_an_error(settings: Settings) -> None:
    participant = phone_caller(number=None)
    caller = Caller.from_participant(participant)  # type: ignore[arg-type]
    assert caller.phone_number is None
    assert caller.is_phone
    assert stt_for(participant, settings) == ("nova-2-phonecall", "en-US")
    assert "from <hidden>" in caller.describe()
    anonymous = Caller.from_participant(phone_caller(number="anonymous"))  # type: ignore[arg-type]
    assert anonymous.phone_number is None


def test_numbers_are_masked_in_descriptions() -> None:
    caller = Caller.from_participant(phone_caller("PA_abc", number="+15551234567"))  # type: ignore[arg-type]
    assert "+15551234567" not in caller.describe()
    assert "+1******4567" in caller.describe()
    assert mask_number("+442071838750") == "+4*******8750"
    assert mask_number(None) == "<hidden>"
    assert mask_number("1234") == "****"


async def test_late_sip_attributes_are_waited_for(settings: Settings) -> None:
    room = StandInRoom("call-1", StandInParticipant("web-tester"))
    caller = room.join(StandInParticipant("sip_late", kind=phone_caller().kind))
    waiting = asyncio.create_task(await_sip_attributes(room.as_room(), caller, wait=5))  # type: ignore[arg-type]
    await asyncio.sleep(0)

    room.set_attributes("web-tester", **{"sip.phoneNumber": "+15559999999"})  # not the caller
    await asyncio.sleep(0)
    assert not waiting.done()

    room.set_attributes("sip_late", **{"sip.trunkPhoneNumber": "+15550100200"})
    await asyncio.wait_for(waiting, 1)
    assert stt_for(caller, settings) == ("nova-3", "es")
    assert not room._events["participant_attributes_changed"]  # the listener was removed


async def test_the_wait_for_attributes_is_bounded(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    room = StandInRoom("call-1")
    caller = room.join(StandInParticipant("sip_bare", kind=phone_caller().kind))
    with caplog.at_level(logging.WARNING):
        await await_sip_attributes(room.as_room(), caller, wait=0.05)  # type: ignore[arg-type]
    assert "no sip.* attributes after 0.1s" in caplog.text
    assert stt_for(caller, settings) == ("nova-2-phonecall", "en-US")


async def test_attributes_of_a_non_sip_participant_are_not_waited_for() -> None:
    room = StandInRoom("call-1")
    web = room.join(StandInParticipant("web"))
    await asyncio.wait_for(await_sip_attributes(room.as_room(), web, wait=60), 1)  # type: ignore[arg-type]


async def test_the_sip_caller_is_found_even_when_a_web_tester_joined_first() -> None:
    room = StandInRoom("call-1", StandInParticipant("web-tester"), phone_caller("sip_+15551234567"))
    with fake_job_context(room=room.as_room()) as ctx:
        found = await find_caller(ctx)
    assert found.identity == "sip_+15551234567"


async def test_with_no_one_there_yet_the_first_caller_to_join_is_taken() -> None:
    room = StandInRoom("call-1")
    with fake_job_context(room=room.as_room()) as ctx:
        finding = asyncio.create_task(find_caller(ctx))
        await asyncio.sleep(0)
        room.join(phone_caller("sip_caller"))
        found = await asyncio.wait_for(finding, 1)
    assert found.identity == "sip_caller"
