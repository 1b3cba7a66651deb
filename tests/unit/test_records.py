"""The records' JSON shape (what the webhook and the database hold) is stable, reads back
to the same record, refuses what does not fit by naming the field, and a record's repr
gives no number or name away."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import UTC, datetime, timedelta, timezone

import pytest

from privacy import has_numbers
from records import (
    AttemptOutcome,
    CallRecord,
    Message,
    Outcome,
    RecordError,
    TransferAttempt,
    TransferMode,
    TurnLatency,
)
from tests.support.sample_records import CALLER, T0, TRANSCRIPT, a_call, a_message


def test_a_message_has_the_documented_json_shape() -> None:
    assert a_message(1).to_json() == {
        "id": "msg-1",
        "call_id": "call-1",
        "created_at": "2025-05-01T09:30:00.000000Z",
        "line_id": "main",
        "caller_name": "Maria Lopez",
        "callback_number": CALLER,
        "callback_number_confirmed": True,
        "about": "Her crown came loose; she would like an appointment this week.",
        "language": "en-US",
        "destination_key": "front_desk",
    }


def test_a_call_record_has_the_documented_json_shape() -> None:
    data = a_call(1, transcript=TRANSCRIPT).to_json()
    assert list(data) == [
        "id", "started_at", "ended_at", "line_id", "caller_number", "outcome",
        "destination_key", "reason", "transfer_attempts", "turns", "usage", "transcript",
    ]  # fmt: skip
    assert data["ended_at"] == "2025-05-01T09:33:05.000000Z"
    assert data["outcome"] == "message_taken"
    assert data["transfer_attempts"] == [
        {
            "destination_key": "billing",
            "mode": "cold",
            "started_at": "2025-05-01T09:30:40.000000Z",
            "outcome": "busy",
            "sip_status": 486,
            "detail": "Busy Here",
        }
    ]
    assert data["turns"][1] == {
        "transcription_delay": None,
        "end_of_turn_delay": 0.5,
        "llm_ttft": 0.4,
        "tts_ttfb": None,
        "e2e_latency": None,
    }
    assert data["transcript"][0] == {"role": "assistant", "text": "Acme Dental, how can I help?"}
    assert a_call(1).to_json()["transcript"] is None


@pytest.mark.parametrize(
    "record",
    [
        a_message(1),
        a_message(2, destination_key=None, caller_name="", callback_number_confirmed=False),
        a_call(1),
        a_call(2, transcript=TRANSCRIPT, caller_number=None, usage={}),
    ],
    ids=["message", "message-minimal", "call", "call-with-transcript"],
)
def test_json_reads_back_to_the_same_record(record: Message | CallRecord) -> None:
    through_the_wire = json.loads(json.dumps(record.to_json()))
    assert type(record).from_json(through_the_wire) == record


def test_a_call_record_crosses_a_process_boundary() -> None:
    record = a_call(1, transcript=TRANSCRIPT)
    assert pickle.loads(pickle.dumps(record)) == record
    assert copy.deepcopy(record) == record


def test_times_are_kept_in_utc_whatever_zone_they_came_in() -> None:
    paris = timezone(timedelta(hours=2))
    message = a_message(1, at=datetime(2025, 5, 1, 11, 30, tzinfo=paris))
    assert message.created_at == T0 and message.created_at.tzinfo is UTC
    assert message.to_json()["created_at"] == "2025-05-01T09:30:00.000000Z"
    again = Message.from_json(message.to_json() | {"created_at": "2025-05-01T11:30:00+02:00"})
    assert again == message


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda: a_message(1, at=datetime(2025, 5, 1, 9, 30)), "message.created_at: .*naive"),
        (lambda: a_message(1, callback_number=""), "message.callback_number: must not be empty"),
        (lambda: a_message(1, callback_number_confirmed="yes"), "callback_number_confirmed"),
        (lambda: a_call(1, outcome="lost"), "call.outcome: 'lost' is not one of handled_by_agent"),
        (lambda: a_call(1, ended_at=T0 - timedelta(seconds=1)), "call.ended_at: is before"),
        (lambda: a_call(1, usage={"gpt": {"input_tokens": -1}}), "usage.gpt.input_tokens"),
        (lambda: a_call(1, transcript=(("user",),)), r"call.transcript\[0\]"),
        (lambda: TurnLatency(llm_ttft=float("nan")), "turn.llm_ttft"),
        (
            lambda: TransferAttempt("billing", TransferMode.COLD, T0, AttemptOutcome.BUSY, 99),
            "transfer_attempt.sip_status: 99 is not a SIP status code",
        ),
        (lambda: Message.from_json({"id": "m"}), "message.call_id: missing"),
        (
            lambda: CallRecord.from_json(a_call(1).to_json() | {"started_at": "noon"}),
            "call.started_at: not an ISO-8601 time",
        ),
    ],
)
def test_what_does_not_fit_is_refused_by_field(build: object, error: str) -> None:
    with pytest.raises(RecordError, match=error):
        build()  # type: ignore[operator]


def test_an_error_never_repeats_a_number() -> None:
    with pytest.raises(RecordError) as raised:
        CallRecord.from_json(a_call(1).to_json() | {"outcome": CALLER})
    assert not has_numbers(str(raised.value))


def test_a_records_repr_gives_no_number_or_name_away() -> None:
    message = a_message(1, about=f"Call me on {CALLER}")
    call = a_call(
        1,
        transcript=TRANSCRIPT,
        reason=f"the transfer to {CALLER} failed",
        id=f"call-_{CALLER}_aBcD",
    )
    for shown in (repr(message), str(message), repr(call), repr([message, call])):
        assert not has_numbers(shown)
        assert "Maria" not in shown and "crown" not in shown and "question" not in shown
    assert "+1******4567" in repr(message) and "+1******4567" in repr(call)
    assert "transcript=<2 lines>" in repr(call)


def test_records_are_frozen() -> None:
    call = a_call(1)
    with pytest.raises(AttributeError):
        call.outcome = Outcome.FAILED  # type: ignore[misc]
    with pytest.raises(TypeError):
        call.usage["openai/gpt-4.1-mini"]["input_tokens"] = 0  # type: ignore[index]
