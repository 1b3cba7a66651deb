"""Delivering messages and call records to the business's webhook: signed, with one
idempotency key per item, retried with backoff through every way a receiver fails, at
least once even when the delivering process is killed mid-request. The receiver is a real
HTTP server on loopback that verifies signatures as docs/webhooks.md says to."""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from delivery import (
    BACKOFF_CAP_S,
    SIGNATURE_HEADER,
    DeliveryLoop,
    DeliveryReport,
    Webhook,
    backoff_s,
    deliver_due,
    lease_for,
    sign,
    verify_signature,
)
from records import iso
from store import DeliveryStatus, Store, utc_now
from tests.support.sample_records import T0, a_call, a_message
from tests.support.webhook_receiver import (
    DROP,
    GARBAGE,
    HANG,
    Answer,
    WebhookReceiver,
)

SECRET = "whsec-test-shared-secret"
ROOT = Path(__file__).resolve().parents[2]


class Clock:
    """The test's time: the outbox's, the signature's and the receiver's."""

    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current

    def timestamp(self) -> float:
        return self.current.timestamp()

    def advance_to(self, moment: datetime) -> None:
        self.current = moment


@pytest.fixture
def clock() -> Clock:
    return Clock(T0 + timedelta(minutes=5))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


@pytest.fixture
def receiver(clock: Clock) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET, clock=clock.timestamp) as server:
        yield server


def webhook_for(receiver: WebhookReceiver, timeout_s: float = 5.0) -> Webhook:
    return Webhook(receiver.url, SECRET, timeout_s=timeout_s)


def status(store: Store) -> DeliveryStatus:
    return store.recent_messages()[0].delivery.status


# --------------------------------------------------------------------------- signatures


def test_a_signature_verifies_for_the_exact_body_within_the_tolerance() -> None:
    body = b'{"type":"message","id":"msg-1"}'
    header = sign(SECRET, 1_700_000_000, body)

    assert header.startswith("t=1700000000,v1=")
    assert verify_signature(SECRET, header, body, 300, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body + b" ", 300, now=1_700_000_100)
    assert not verify_signature(SECRET, header, body.replace(b"1", b"2"), 300, 1_700_000_100)
    assert not verify_signature("another-secret", header, body, 300, now=1_700_000_100)


def test_a_stale_or_future_timestamp_is_refused_though_the_signature_is_right() -> None:
    body = b"{}"
    header = sign(SECRET, 1_700_000_000, body)
    assert verify_signature(SECRET, header, body, 300, now=1_700_000_300)
    assert not verify_signature(SECRET, header, body, 300, now=1_700_000_301)
    assert not verify_signature(SECRET, header, body, 300, now=1_699_999_699)


def test_a_timestamp_moved_by_hand_breaks_the_signature() -> None:
    body = b"{}"
    signature = sign(SECRET, 1_700_000_000, body).partition(",")[2]
    assert not verify_signature(SECRET, f"t=1700000500,{signature}", body, 300, 1_700_000_500)


@pytest.mark.parametrize(
    "header", ["", "t=1700000000", "v1=abc", "t=soon,v1=abc", "garbage", "t=1700000000,v1="]
)
def test_a_malformed_signature_header_is_refused(header: str) -> None:
    assert not verify_signature(SECRET, header, b"{}", 300, now=1_700_000_000)


def test_any_one_matching_v1_is_enough_while_secrets_are_rotated() -> None:
    body = b"{}"
    old = sign("old-secret", 1_700_000_000, body)
    new_v1 = sign(SECRET, 1_700_000_000, body).partition(",")[2]
    assert verify_signature(SECRET, f"{old},{new_v1}", body, 300, now=1_700_000_000)


def test_the_snippet_in_the_docs_accepts_what_the_worker_sends(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    docs = (ROOT / "docs" / "webhooks.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", docs, re.DOTALL)
    assert snippet is not None
    namespace: dict[str, Any] = {}
    exec(snippet[1], namespace)
    verify = namespace["verify_signature"]
    store.save_message(a_message(1))
    deliver_due(store, webhook_for(receiver), now=clock.now())

    [request] = receiver.received
    header = request.headers[SIGNATURE_HEADER.lower()]
    assert verify(SECRET, header, request.body, now=clock.timestamp())
    assert not verify(
        SECRET, header, request.body.replace(b"Maria", b"Mario"), now=clock.timestamp()
    )
    assert not verify(SECRET, header, request.body, now=clock.timestamp() + 301)
    assert not verify("another-secret", header, request.body, now=clock.timestamp())


# --------------------------------------------------------------------------- delivering


def test_a_message_reaches_the_webhook_signed_with_its_idempotency_key(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    store.save_message(a_message(1))

    report = deliver_due(store, webhook_for(receiver), now=clock.now())

    assert (report.delivered, report.failed) == (1, 0)
    [request] = receiver.received
    assert request.signature_ok
    assert request.payload == {
        "type": "message",
        "id": "msg-1",
        "idempotency_key": report.attempts[0].idempotency_key,
        "created_at": iso(T0),
        "data": a_message(1).to_json(),
    }
    assert request.headers["idempotency-key"] == report.attempts[0].idempotency_key
    assert request.headers["webhook-timestamp"] == str(int(clock.timestamp()))
    assert request.headers[SIGNATURE_HEADER.lower()].startswith(f"t={int(clock.timestamp())},")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["webhook-attempt"] == "1"
    assert status(store) is DeliveryStatus.DELIVERED
    # nothing is left to do
    assert deliver_due(store, webhook_for(receiver), now=clock.now()).attempts == ()


def test_messages_and_call_records_go_out_oldest_first(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    store.save_call(a_call(1, at=T0))
    store.save_message(a_message(2, at=T0 + timedelta(seconds=1)))

    deliver_due(store, webhook_for(receiver), now=clock.now())

    sent = [(r.payload["type"], r.payload["id"]) for r in receiver.received]
    # a call is queued when it ends (3 min after it started), the message 1 s after
    assert sent == [("message", "msg-2"), ("call", "call-1")]
    assert receiver.received[1].payload["data"] == a_call(1).to_json()


def test_a_receiver_failing_every_way_gets_the_message_in_the_end_with_one_key(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    """500, no answer, a dropped connection, an answer that is not HTTP, then 200: each
    failure is retried after a growing, jittered wait; every attempt carries the same
    idempotency key and body."""
    receiver.script(Answer.http(500, "oops"), HANG, DROP, GARBAGE)
    webhook = webhook_for(receiver, timeout_s=0.5)
    store.save_message(a_message(1))
    errors, waits = [], []

    for attempt in range(1, 5):
        [failed] = deliver_due(store, webhook, now=clock.now()).attempts
        assert not failed.result.ok
        assert failed.attempt == attempt
        assert failed.retry_at is not None
        waits.append((failed.retry_at - clock.now()).total_seconds())
        errors.append(store.recent_messages()[0].delivery.last_error)
        # not due again before its time
        assert (
            deliver_due(store, webhook, now=failed.retry_at - timedelta(seconds=1)).attempts == ()
        )
        clock.advance_to(failed.retry_at)

    [delivered] = deliver_due(store, webhook, now=clock.now()).attempts
    assert delivered.result.ok and delivered.attempt == 5

    assert errors[0].startswith("HTTP 500 from 127.0.0.1: oops")
    assert errors[1] == "no answer in time from 127.0.0.1"
    assert "RemoteDisconnected" in errors[2]
    assert "BadStatusLine" in errors[3]
    for n, wait in enumerate(waits, start=1):
        assert backoff_s(n, lambda: 0.0) <= wait <= backoff_s(n, lambda: 1.0)
    assert waits[-1] > waits[0]
    assert len(receiver.received) == 5
    assert len(set(receiver.keys())) == 1
    assert len({r.body for r in receiver.received}) == 1
    assert all(r.signature_ok for r in receiver.received)
    assert [r.headers["webhook-attempt"] for r in receiver.received] == ["1", "2", "3", "4", "5"]
    assert status(store) is DeliveryStatus.DELIVERED


def test_a_webhook_that_is_down_keeps_the_message_until_it_is_back(
    store: Store, clock: Clock
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = Webhook(f"http://127.0.0.1:{port}/hooks", SECRET)
    store.save_message(a_message(1))

    [failed] = deliver_due(store, down, now=clock.now()).attempts
    assert "ConnectionRefusedError" in (failed.result.error or "")
    assert status(store) is DeliveryStatus.PENDING

    with WebhookReceiver(SECRET, clock=clock.timestamp) as back:
        clock.advance_to(failed.retry_at or clock.now())
        report = deliver_due(store, webhook_for(back), now=clock.now())
        assert report.delivered == 1
        assert back.received[0].idempotency_key == failed.idempotency_key


def test_one_failing_item_does_not_hold_up_the_others(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    receiver.script(Answer.http(503))
    store.save_message(a_message(1, at=T0))
    store.save_message(a_message(2, at=T0 + timedelta(seconds=1)))

    report = deliver_due(store, webhook_for(receiver), now=clock.now())

    assert [(a.item_id, a.result.ok) for a in report.attempts] == [
        ("msg-1", False),
        ("msg-2", True),
    ]


def test_a_refusal_is_retried_hourly_and_logged_as_one(
    store: Store, receiver: WebhookReceiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(Answer.http(401, "unknown token"))
    store.save_message(a_message(1))

    with caplog.at_level(logging.WARNING, logger="phone-assistant.delivery"):
        [failed] = deliver_due(store, webhook_for(receiver), now=clock.now()).attempts

    assert failed.result.rejected
    assert failed.retry_at == clock.now() + timedelta(seconds=BACKOFF_CAP_S)
    [log] = caplog.records
    assert log.levelno == logging.ERROR
    assert "HTTP 401 from 127.0.0.1: unknown token" in log.getMessage()
    assert "check its URL, secret and handler" in log.getMessage()


def test_a_wrong_secret_is_refused_by_the_receiver_and_the_message_kept(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    store.save_message(a_message(1))

    [failed] = deliver_due(
        store, Webhook(receiver.url, "not-the-shared-secret"), now=clock.now()
    ).attempts

    assert not receiver.received[0].signature_ok
    assert failed.result.status == 400 and failed.result.rejected
    assert status(store) is DeliveryStatus.PENDING


def test_retry_after_is_honoured(store: Store, receiver: WebhookReceiver, clock: Clock) -> None:
    receiver.script(Answer.http(429, Retry_After="120"))
    store.save_message(a_message(1))

    [failed] = deliver_due(store, webhook_for(receiver), now=clock.now()).attempts

    assert not failed.result.rejected
    assert failed.retry_at == clock.now() + timedelta(seconds=120)


def test_a_redirect_is_not_followed(store: Store, receiver: WebhookReceiver, clock: Clock) -> None:
    """urllib would follow a 302 with a GET and no body, and its 200 would look like a
    delivery."""
    receiver.script(Answer.http(302, Location="http://elsewhere.example/hooks"))
    store.save_message(a_message(1))

    [failed] = deliver_due(store, webhook_for(receiver), now=clock.now()).attempts

    assert len(receiver.received) == 1
    assert failed.result.status == 302 and failed.result.rejected
    assert "elsewhere.example" in (failed.result.error or "")
    assert status(store) is DeliveryStatus.PENDING


def test_the_token_in_the_webhook_url_reaches_no_log_and_no_stored_error(
    store: Store, receiver: WebhookReceiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script(Answer.http(500), DROP)
    store.save_message(a_message(1))
    webhook = webhook_for(receiver)

    with caplog.at_level(logging.DEBUG):
        for _ in range(3):
            [attempt] = deliver_due(store, webhook, now=clock.now()).attempts
            clock.advance_to(attempt.retry_at or clock.now())
            assert "query-token" not in (store.recent_messages()[0].delivery.last_error or "")

    assert "query-token" in receiver.url
    assert "query-token" not in caplog.text
    assert "query-token" not in repr(webhook) and SECRET not in repr(webhook)


def test_backoff_doubles_from_ten_seconds_to_an_hour_with_jitter() -> None:
    assert [backoff_s(n, lambda: 1.0) for n in (1, 2, 3, 4)] == [10, 20, 40, 80]
    assert [backoff_s(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [5, 10, 20, 40]
    assert backoff_s(9, lambda: 1.0) == 2560
    assert backoff_s(10, lambda: 1.0) == BACKOFF_CAP_S
    assert backoff_s(500, lambda: 1.0) == BACKOFF_CAP_S


def test_a_webhook_is_checked_when_made() -> None:
    with pytest.raises(ValueError, match="webhook url"):
        Webhook("ftp://example.com/hook", SECRET)
    with pytest.raises(ValueError, match="webhook secret"):
        Webhook("https://example.com/hook", "")


# --------------------------------------------------------------------------- a killed deliverer


def test_a_delivery_cut_off_by_killing_its_process_is_made_again_after_the_lease(
    tmp_path: Path,
) -> None:
    """A worker process is killed while the webhook has the request and has not
    answered. Its claim holds until the lease runs out; then the next pass delivers the
    message again, with the same key. Nothing is lost and nothing ran twice at once."""
    with Store.open(tmp_path) as store, WebhookReceiver(SECRET) as receiver:
        store.save_message(a_message(1))
        receiver.script(HANG)
        deliverer = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.outbox_process",
                "deliver",
                str(tmp_path),
                receiver.url,
                "30",
            ],
            cwd=ROOT,
            env=os.environ | {"WEBHOOK_SECRET": SECRET},
            stdout=subprocess.PIPE,
        )
        try:
            [cut_off] = receiver.wait_for(1, timeout_s=60)
        finally:
            deliverer.send_signal(signal.SIGKILL)
            deliverer.wait()
        assert deliverer.returncode == -signal.SIGKILL

        delivery = store.recent_messages()[0].delivery
        assert delivery.status is DeliveryStatus.PENDING and delivery.attempts == 1
        webhook = webhook_for(receiver)
        # while the lease holds, nobody else sends it
        assert deliver_due(store, webhook, now=utc_now()).attempts == ()
        assert len(receiver.received) == 1

        after_lease = utc_now() + lease_for(Webhook(receiver.url, SECRET, timeout_s=30))
        [again] = deliver_due(store, webhook, now=after_lease).attempts

        assert again.result.ok and again.attempt == 2
        first, second = receiver.received
        assert first is cut_off and first.signature_ok
        assert first.idempotency_key == second.idempotency_key == again.idempotency_key
        assert json.loads(first.body)["data"] == json.loads(second.body)["data"]
        assert second.headers["webhook-attempt"] == "2"
        assert store.recent_messages()[0].delivery.status is DeliveryStatus.DELIVERED


# --------------------------------------------------------------------------- the loop


def test_the_loop_delivers_when_woken_and_retries_when_the_time_comes(
    store: Store, receiver: WebhookReceiver, clock: Clock
) -> None:
    reports: queue.Queue[DeliveryReport] = queue.Queue()
    loop = DeliveryLoop(
        store, webhook_for(receiver), poll_s=3600, clock=clock.now, on_report=reports.put
    )
    loop.start()
    try:
        store.save_message(a_message(1))
        loop.wake()
        assert [a.result.ok for a in reports.get(timeout=10).attempts] == [True]

        receiver.script(Answer.http(503))
        store.save_message(a_message(2, at=T0 + timedelta(seconds=1)))
        loop.wake()
        [failed] = reports.get(timeout=10).attempts
        assert not failed.result.ok and failed.retry_at is not None

        clock.advance_to(failed.retry_at)
        loop.wake()
        [retried] = reports.get(timeout=10).attempts
        assert retried.result.ok and retried.item_id == "msg-2"
    finally:
        assert loop.stop(timeout_s=10)

    assert [r.accepted for r in receiver.received] == [True, False, True]
    assert {s.delivery.status for s in store.recent_messages()} == {DeliveryStatus.DELIVERED}


def test_the_loop_finds_what_another_process_saved_without_being_woken(
    tmp_path: Path, receiver: WebhookReceiver, clock: Clock
) -> None:
    with Store.open(tmp_path) as worker_side, Store.open(tmp_path) as job_side:
        loop = DeliveryLoop(worker_side, webhook_for(receiver), poll_s=0.05, clock=clock.now)
        loop.start()
        try:
            job_side.save_call(a_call(1))
            [request] = receiver.wait_for(1)
        finally:
            assert loop.stop(timeout_s=10)
    assert request.payload["id"] == "call-1"


def test_stopping_the_loop_ends_its_thread_promptly(
    store: Store, receiver: WebhookReceiver
) -> None:
    loop = DeliveryLoop(store, webhook_for(receiver), poll_s=3600)
    loop.start()
    assert loop.stop(timeout_s=5)
