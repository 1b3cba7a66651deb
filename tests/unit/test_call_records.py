"""Every call leaves a record for the business: when it started and ended, the line, the
caller's number, how it ended and why, each transfer attempt with its SIP outcome, the
framework's latency figures and model usage, and the transcript only when asked for.

Calls run through the real harness with a real Store; the record is what the job keeps
when it ends (keeping.keep_record, as answer_call runs it), read back from the file.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from config import Settings
from config_storage import Storage
from store import Store
from tests.support.call import phone_call
from tests.support.livekit_server import sip_error
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import phone_caller
from tests.support.supervisor import Timeline, answers, warm_to


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "data")


def the_record(store: Store) -> dict[str, Any]:
    with sqlite3.connect(store.path) as db:
        (row,) = db.execute("SELECT data FROM calls").fetchall()
    return json.loads(row[0])


async def test_a_cold_transfer_after_a_busy_one(settings: Settings, store: Store) -> None:
    async with phone_call(settings, phone_caller(number="+15551234567"), store=store) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        c.llm.add(call("transfer_call", destination="billing"), say("Try the front desk?"))
        await c.session.run(user_input="Billing, please.")
        c.llm.add(call("transfer_call", destination="front_desk"))
        await c.session.run(user_input="Yes.")
        await c.job_ends()
    record = the_record(store)
    assert record["outcome"] == "cold_transfer"
    assert record["destination_key"] == "front_desk"
    assert record["caller_number"] == "+15551234567"  # kept for the business
    assert record["line_id"] == "default"
    assert [(a["destination_key"], a["mode"], a["outcome"], a["sip_status"])
            for a in record["transfer_attempts"]] == [
        ("billing", "cold", "busy", 486),
        ("front_desk", "cold", "connected", None),
    ]  # fmt: skip
    assert record["started_at"] <= record["ended_at"]
    assert record["transcript"] is None  # not asked for
    assert record["turns"] and record["turns"][0]["llm_ttft"] is not None


async def test_a_warm_transfer(settings: Settings, store: Store, timeline: Timeline) -> None:
    async with phone_call(settings, store=store) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to("supervisor"), say("The caller has a complaint."))
        await c.session.run(user_input="Put me through to the supervisor, please.")
    record = the_record(store)
    assert record["outcome"] == "warm_transfer"
    assert record["destination_key"] == "supervisor"
    assert [a["outcome"] for a in record["transfer_attempts"]] == ["connected"]


async def test_a_caller_who_hangs_up(settings: Settings, store: Store) -> None:
    async with phone_call(settings, store=store) as c:
        c.llm.add(say("Let me check."))
        await c.session.run(user_input="What are your opening hours?")
        c.room.hang_up(c.caller.identity)
        await c.job_ends()
    record = the_record(store)
    assert record["outcome"] == "caller_hung_up"


async def test_the_agent_ending_the_call(settings: Settings, store: Store) -> None:
    async with phone_call(settings, store=store) as c:
        c.llm.add(call("end_call"))
        await c.session.run(user_input="That's all, thank you. Bye!")
        await c.job_ends()
    assert the_record(store)["outcome"] == "handled_by_agent"


async def test_a_provider_failure(settings: Settings, store: Store) -> None:
    async with phone_call(settings, store=store) as c:
        c.lifecycle.cannot_go_on("LLM (openai gpt-4o-mini) failed: 503")
        await c.job_ends()
    record = the_record(store)
    assert record["outcome"] == "failed"
    assert "LLM" in record["reason"] and "503" in record["reason"]


async def test_the_transcript_only_when_the_configuration_asks(
    settings: Settings, store: Store
) -> None:
    keeping = dataclasses.replace(settings, storage=Storage(store.path.parent, transcripts=True))
    async with phone_call(keeping, store=store) as c:
        c.llm.add(say("We open at nine."))
        await c.session.run(user_input="When do you open?")
    transcript = the_record(store)["transcript"]
    assert {"role": "user", "text": "When do you open?"} in transcript
    assert {"role": "assistant", "text": "We open at nine."} in transcript
