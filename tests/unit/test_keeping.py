"""What the business gets: a call's message and record, kept by the job, reach the
business's webhook from the worker's main process, signed, each with its own idempotency
key; without a webhook they are kept locally and nothing is queued.

The webhook is a loopback HTTP receiver that verifies the signature as a business would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Secrets, Settings, parse_settings
from keeping import open_store, start_delivery
from tests.conftest import business
from tests.support.call import phone_call
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import phone_caller
from tests.support.webhook_receiver import WebhookReceiver

SECRET = "whsec-test-0123456789abcdef"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as webhook:
        yield webhook


def with_webhook(url: str | None, data_dir: Path) -> Settings:
    extra = {"webhook": {"url": url}} if url else {}
    return parse_settings(
        business(**extra),
        source="test.toml",
        secrets=Secrets(webhook_secret=SECRET),
        env={"ASSISTANT_DATA_DIR": str(data_dir)},
    )


async def a_call_with_a_message(settings: Settings) -> None:
    store = open_store(settings)
    async with phone_call(settings, phone_caller(number="+15551234567"), store=store) as c:
        c.llm.add(
            call("take_message", about="a refund", caller_name="Dana Reyes"),
            say("Shall they call you back on the number you're calling from?"),
        )
        await c.session.run(user_input="Please take a message.")
        c.llm.add(call("update_phone_number", phone_number="+15551234567"), say("Right?"))
        await c.session.run(user_input="Yes.")
        c.llm.add(call("confirm_phone_number"), say("Anything else?"))
        await c.session.run(user_input="Yes, correct.")
        c.llm.add(call("end_call"))
        await c.session.run(user_input="No, that's all. Bye.")
        await c.job_ends()


async def test_the_message_and_the_record_reach_the_webhook_signed(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    settings = with_webhook(receiver.url, tmp_path / "data")
    await a_call_with_a_message(settings)

    delivery = start_delivery(settings)  # the worker's main process, once it has started
    assert delivery is not None
    try:
        received = receiver.wait_for(2)
    finally:
        delivery.stop(timeout_s=5)

    assert all(r.signature_ok and r.accepted for r in received)
    kinds = {r.payload["type"]: r.payload for r in received}
    assert kinds["message"]["data"]["caller_name"] == "Dana Reyes"
    assert kinds["message"]["data"]["callback_number"] == "+15551234567"
    assert kinds["call"]["data"]["outcome"] == "message_taken"
    assert len(set(receiver.keys())) == 2  # one idempotency key per item


async def test_without_a_webhook_everything_is_kept_and_nothing_queued(tmp_path: Path) -> None:
    settings = with_webhook(None, tmp_path / "data")
    await a_call_with_a_message(settings)

    assert start_delivery(settings) is None
    store = open_store(settings)
    (message,) = store.recent_messages()
    (record,) = store.recent_calls()
    assert message.item.about == "a refund"
    assert record.item.outcome.value == "message_taken"
    assert message.delivery.status.value == "not_queued"
    assert record.delivery.status.value == "not_queued"
