"""What an operator sees with ``agent.py calls`` and ``agent.py messages``: the recent ones
as a table or JSON, numbers masked unless asked for, and everything still undelivered
with its last error, however old."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from privacy import has_numbers
from records import Outcome
from records_view import MASKED_NOTE, calls_text, messages_text, parse_since
from store import Store
from tests.support.sample_records import CALLER, T0, TRANSCRIPT, a_call, a_message

LEASE = timedelta(seconds=60)
OTHER_NUMBER = "+1 555 987 6543"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path) as opened:
        yield opened


def deliver(store: Store, *ids: str, error: str = "HTTP 503 from hooks.example.com") -> None:
    """Deliver these items; every other due item fails with ``error``."""
    for claim in store.claim_due(T0 + timedelta(days=30), LEASE, 100):
        if claim.item_id in ids:
            store.mark_delivered(claim, claim.claimed_until)
        else:
            store.mark_failed(claim, error, T0 + timedelta(days=30, minutes=10))


# --------------------------------------------------------------------------- messages


def test_messages_are_a_table_newest_first_with_numbers_masked(store: Store) -> None:
    store.save_message(a_message(1, at=T0))
    store.save_message(
        a_message(2, at=T0 + timedelta(hours=1), about=f"Call me on {OTHER_NUMBER} instead")
    )
    deliver(store, "msg-1", "msg-2")

    text = messages_text(store, tz=UTC)

    lines = text.splitlines()
    assert lines[0] == "Messages, most recent, newest first (times in UTC): 2"
    assert lines[2].split() == [
        "TAKEN", "LINE", "FROM", "CALL", "BACK", "ON", "FOR", "ABOUT", "DELIVERY"
    ]  # fmt: skip
    assert lines[3].startswith("2025-05-01 10:30  main  Maria Lopez  +1******4567")
    assert "Call me on +1 *** *** 6543 instead" in lines[3]
    assert lines[3].endswith("delivered")
    assert lines[4].startswith("2025-05-01 09:30")
    assert "Her crown came loose; she would like an appoi..." in lines[4]
    assert "Not yet delivered" not in text
    assert text.rstrip().endswith(MASKED_NOTE)
    assert not has_numbers(text)


def test_show_numbers_shows_them(store: Store) -> None:
    store.save_message(a_message(1, about=f"Or {OTHER_NUMBER}"))
    text = messages_text(store, tz=UTC, show_numbers=True)
    assert CALLER in text and OTHER_NUMBER in text
    assert MASKED_NOTE not in text


def test_an_unconfirmed_callback_number_says_so(store: Store) -> None:
    store.save_message(a_message(1, callback_number_confirmed=False))
    assert "+1******4567 (unconfirmed)" in messages_text(store, tz=UTC)


def test_undelivered_messages_are_listed_with_their_last_error_whatever_their_age(
    store: Store,
) -> None:
    store.save_message(a_message(1, at=T0))
    store.save_message(a_message(2, at=T0 + timedelta(days=3)))
    deliver(store, "msg-2", error="HTTP 401 from hooks.example.com: unknown token")
    store.save_message(a_message(3, at=T0 + timedelta(days=3, hours=1)))  # not tried yet

    text = messages_text(store, since=T0 + timedelta(days=2), tz=UTC)

    assert "Messages, since 2025-05-03 09:30, newest first (times in UTC): 2" in text
    table, waiting = text.split("Not yet delivered to the webhook: 2\n")
    assert "msg-1" not in table and "2025-05-01" not in table  # older than --since
    assert "retrying" not in table
    assert "waiting" in table  # msg-3
    assert waiting.splitlines()[:2] == [
        "  message msg-3 (taken 2025-05-04 10:30): not tried yet, next at 2025-05-04 10:30",
        "  message msg-1 (taken 2025-05-01 09:30): 1 attempt, next at 2025-05-31 09:40; "
        "last error: HTTP 401 from hooks.example.com: unknown token",
    ]


def test_messages_as_json_for_scripts(store: Store) -> None:
    store.save_message(a_message(1, about=f"Or {OTHER_NUMBER}"))
    deliver(store)

    document = json.loads(messages_text(store, as_json=True, since=T0))

    assert document["since"] == "2025-05-01T09:30:00.000000Z"
    assert document["numbers_masked"] is True
    [entry] = document["messages"]
    expected = a_message(1).to_json() | {
        "callback_number": "+1******4567",
        "about": "Or +1 *** *** 6543",
    }
    assert entry["message"] == expected
    assert entry["delivery"]["status"] == "pending"
    assert entry["delivery"]["attempts"] == 1
    assert entry["delivery"]["last_error"] == "HTTP 503 from hooks.example.com"
    assert [u["message"]["id"] for u in document["undelivered"]] == ["msg-1"]

    shown = json.loads(messages_text(store, as_json=True, show_numbers=True))
    assert shown["messages"][0]["message"] == a_message(1, about=f"Or {OTHER_NUMBER}").to_json()


def test_no_messages_says_so(store: Store) -> None:
    text = messages_text(store, tz=UTC)
    assert text.splitlines()[0] == "Messages, most recent, newest first (times in UTC): 0"
    assert "TAKEN" not in text


# --------------------------------------------------------------------------- calls


def test_calls_show_how_each_ended_and_what_each_transfer_came_to(store: Store) -> None:
    store.save_call(a_call(1, at=T0))
    store.save_call(
        a_call(
            2,
            at=T0 + timedelta(hours=1),
            outcome=Outcome.FAILED,
            reason=f"the LLM answered 503; caller was {CALLER}",
            caller_number=None,
            transfer_attempts=(),
            transcript=TRANSCRIPT,
        ),
        deliver=False,
    )
    deliver(store, "call-1")

    text = calls_text(store, tz=timezone(timedelta(hours=2), "CEST"))

    lines = text.splitlines()
    assert lines[0] == "Calls, most recent, newest first (times in CEST): 2"
    assert lines[2].split() == [
        "STARTED", "LENGTH", "LINE", "CALLER", "OUTCOME", "TRANSFERS", "DELIVERY"
    ]  # fmt: skip
    failed, taken = lines[3], lines[4]
    assert failed.startswith("2025-05-01 12:30  3m 05s  main  (unknown)")
    assert "failed: the LLM answered 503; caller ...  -" in failed  # cut at 40, no transfers
    assert failed.endswith("not queued")
    assert taken.startswith("2025-05-01 11:30  3m 05s  main  +1******4567  message taken")
    assert "billing cold busy 486" in taken
    assert taken.endswith("delivered")
    assert "Not queued: saved while no webhook was configured" in text
    assert not has_numbers(text)


def test_a_transfer_names_its_destination(store: Store) -> None:
    store.save_call(a_call(1, outcome=Outcome.WARM_TRANSFER, destination_key="supervisor"))
    assert "warm transfer to supervisor" in calls_text(store, tz=UTC)


def test_calls_as_json_mask_the_caller_and_the_transcript(store: Store) -> None:
    transcript = (*TRANSCRIPT, ("user", f"You can reach me on {OTHER_NUMBER}."))
    store.save_call(a_call(1, transcript=transcript))

    document = json.loads(calls_text(store, as_json=True))

    call = document["calls"][0]["call"]
    assert call["caller_number"] == "+1******4567"
    assert call["transcript"][-1] == {
        "role": "user",
        "text": "You can reach me on +1 *** *** 6543.",
    }
    assert call["usage"] == a_call(1).to_json()["usage"]
    assert document["calls"][0]["delivery"]["status"] == "pending"
    assert not has_numbers(json.dumps(document))


# --------------------------------------------------------------------------- --since


@pytest.mark.parametrize(
    ("text", "back"),
    [("90m", timedelta(minutes=90)), ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)),
     ("2w", timedelta(weeks=2)), (" 3H ", timedelta(hours=3))],
)  # fmt: skip
def test_since_a_time_back(text: str, back: timedelta) -> None:
    assert parse_since(text, now=T0) == T0 - back


def test_since_a_date_or_time_in_the_operators_zone() -> None:
    zone = timezone(timedelta(hours=-4))
    assert parse_since("2025-05-01", now=T0, tz=zone) == datetime(2025, 5, 1, 4, tzinfo=UTC)
    assert parse_since("2025-05-01T09:00", now=T0, tz=UTC) == T0.replace(minute=0)
    assert parse_since("2025-05-01T09:00+02:00", now=T0, tz=UTC) == T0.replace(hour=7, minute=0)


def test_a_since_that_means_nothing_names_the_option() -> None:
    with pytest.raises(ValueError, match="--since: 'yesterday' is neither"):
        parse_since("yesterday", now=T0)
