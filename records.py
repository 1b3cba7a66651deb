"""What the business keeps about its calls: the messages callers leave and one record
per call. Plain frozen values with a stable JSON shape; the same JSON is what the
database stores and what the webhook delivers (docs/webhooks.md), so there is exactly one
shape to document and to keep compatible.

JSON conventions: snake_case keys; every key is always present (``null`` when there is no
value) so a consumer never has to guess whether a key was dropped; times are ISO-8601 in
UTC with microseconds and a ``Z`` (``2025-05-01T09:30:00.000000Z``), fixed-width so they
also sort as text. Consumers should ignore keys they do not know: keys may be added,
none will be renamed or change meaning without a new event type.

These records hold the caller's number, name and words: business data, never log text.
``repr()`` of a record masks every number and hides names and free text, so a record
that ends up in a log line or a traceback gives nothing away (privacy.py). No field holds
a credential, and none may.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, NamedTuple, Self

import records_fields as check
from privacy import mask_number, mask_numbers, safe_name
from records_fields import RecordError as RecordError
from records_fields import iso as iso
from records_fields import parse_iso as parse_iso


class Outcome(StrEnum):
    """How a call ended."""

    HANDLED_BY_AGENT = "handled_by_agent"  # the agent dealt with it and the call ended
    COLD_TRANSFER = "cold_transfer"  # handed over by SIP REFER
    WARM_TRANSFER = "warm_transfer"  # a person was dialed in and the agent stepped out
    MESSAGE_TAKEN = "message_taken"
    CALLER_HUNG_UP = "caller_hung_up"  # before anything was settled
    FAILED = "failed"  # the agent could not go on (reason says why)


class TransferMode(StrEnum):
    COLD = "cold"
    WARM = "warm"


class AttemptOutcome(StrEnum):
    """What one transfer attempt came to, from its SIP outcome."""

    CONNECTED = "connected"
    BUSY = "busy"  # 486/600
    NO_ANSWER = "no_answer"  # 408/480 or a ring timeout
    DECLINED = "declined"  # 603, or the person said no to a warm transfer
    VOICEMAIL = "voicemail"  # answered by a machine
    FAILED = "failed"  # any other error
    UNKNOWN = "unknown"  # the request's answer never came (one request per action)


# --------------------------------------------------------------------------- message


@dataclass(frozen=True, repr=False)
class Message:
    """A message a caller left for the business."""

    id: str
    call_id: str
    created_at: datetime
    line_id: str
    caller_name: str
    callback_number: str
    callback_number_confirmed: bool  # read back to the caller and confirmed
    about: str
    language: str  # the language the caller spoke, e.g. "en-US"
    destination_key: str | None = None  # whom it was meant for, when known

    def __post_init__(self) -> None:
        for name in ("id", "call_id", "line_id", "callback_number", "language"):
            check.text(getattr(self, name), f"message.{name}", empty=False)
        check.text(self.caller_name, "message.caller_name")
        check.text(self.about, "message.about")
        if not isinstance(self.callback_number_confirmed, bool):
            raise RecordError("message.callback_number_confirmed: expected true or false")
        check.optional_text(self.destination_key, "message.destination_key")
        check.set_field(self, "created_at", check.utc(self.created_at, "message.created_at"))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "created_at": iso(self.created_at),
            "line_id": self.line_id,
            "caller_name": self.caller_name,
            "callback_number": self.callback_number,
            "callback_number_confirmed": self.callback_number_confirmed,
            "about": self.about,
            "language": self.language,
            "destination_key": self.destination_key,
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        d = check.fields(data, "message")
        return cls(
            id=check.get(d, "id", "message"),
            call_id=check.get(d, "call_id", "message"),
            created_at=parse_iso(check.get(d, "created_at", "message"), "message.created_at"),
            line_id=check.get(d, "line_id", "message"),
            caller_name=check.get(d, "caller_name", "message"),
            callback_number=check.get(d, "callback_number", "message"),
            callback_number_confirmed=check.get(d, "callback_number_confirmed", "message"),
            about=check.get(d, "about", "message"),
            language=check.get(d, "language", "message"),
            destination_key=d.get("destination_key"),
        )

    def __repr__(self) -> str:
        return (
            f"Message(id={safe_name(self.id)!r}, call_id={safe_name(self.call_id)!r}, "
            f"created_at={iso(self.created_at)}, line_id={safe_name(self.line_id)!r}, "
            f"callback_number={mask_number(self.callback_number)!r}, "
            f"confirmed={self.callback_number_confirmed}, language={self.language!r}, "
            f"destination_key={self.destination_key!r}, "
            f"caller_name=<{len(self.caller_name)} chars>, about=<{len(self.about)} chars>)"
        )


# --------------------------------------------------------------------------- call record


@dataclass(frozen=True, repr=False)
class TransferAttempt:
    """One try at handing the caller to a destination, with its SIP outcome."""

    destination_key: str
    mode: TransferMode
    started_at: datetime
    outcome: AttemptOutcome
    sip_status: int | None = None  # the final SIP status code, when there was one
    detail: str = ""  # e.g. the SIP reason phrase, or why the outcome is unknown

    def __post_init__(self) -> None:
        check.text(self.destination_key, "transfer_attempt.destination_key", empty=False)
        check.set_field(
            self, "mode", check.one_of(TransferMode, self.mode, "transfer_attempt.mode")
        )
        check.set_field(
            self, "outcome", check.one_of(AttemptOutcome, self.outcome, "transfer_attempt.outcome")
        )
        check.set_field(
            self, "started_at", check.utc(self.started_at, "transfer_attempt.started_at")
        )
        status = self.sip_status
        if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
            raise RecordError(f"transfer_attempt.sip_status: expected an integer, got {status!r}")
        if status is not None and not 100 <= status <= 699:
            raise RecordError(f"transfer_attempt.sip_status: {status} is not a SIP status code")
        check.text(self.detail, "transfer_attempt.detail")

    def to_json(self) -> dict[str, Any]:
        return {
            "destination_key": self.destination_key,
            "mode": self.mode.value,
            "started_at": iso(self.started_at),
            "outcome": self.outcome.value,
            "sip_status": self.sip_status,
            "detail": self.detail,
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        d = check.fields(data, "transfer_attempt")
        return cls(
            destination_key=check.get(d, "destination_key", "transfer_attempt"),
            mode=check.get(d, "mode", "transfer_attempt"),
            started_at=parse_iso(
                check.get(d, "started_at", "transfer_attempt"), "transfer_attempt.started_at"
            ),
            outcome=check.get(d, "outcome", "transfer_attempt"),
            sip_status=d.get("sip_status"),
            detail=d.get("detail") or "",
        )

    def __repr__(self) -> str:
        return (
            f"TransferAttempt({self.destination_key!r}, {self.mode.value}, "
            f"{self.outcome.value}, sip_status={self.sip_status}, "
            f"detail={mask_numbers(self.detail)!r})"
        )


TURN_FIGURES = ("transcription_delay", "end_of_turn_delay", "llm_ttft", "tts_ttfb", "e2e_latency")


@dataclass(frozen=True)
class TurnLatency:
    """One exchange's latency figures in seconds, as the framework measured them
    (``ChatMessage.metrics``: the user message's transcription_delay and
    end_of_turn_delay; the reply's llm_node_ttft, tts_node_ttfb and e2e_latency).
    A figure the framework did not report is None."""

    transcription_delay: float | None = None
    end_of_turn_delay: float | None = None
    llm_ttft: float | None = None
    tts_ttfb: float | None = None
    e2e_latency: float | None = None

    def __post_init__(self) -> None:
        for name in TURN_FIGURES:
            check.set_field(self, name, check.seconds(getattr(self, name), f"turn.{name}"))

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in TURN_FIGURES}

    @classmethod
    def from_json(cls, data: Any) -> Self:
        d = check.fields(data, "turn")
        return cls(**{name: d.get(name) for name in TURN_FIGURES})


class TranscriptLine(NamedTuple):
    role: str  # as the framework's chat history names it: "user", "assistant"
    text: str


Usage = Mapping[str, Mapping[str, float]]


def _usage(value: Any) -> Usage:
    """Model -> counters, copied into read-only mappings, keys sorted."""
    outer = check.fields(value, "usage")
    result: dict[str, Mapping[str, float]] = {}
    for model in sorted(outer):
        check.text(model, "usage (a model name)", empty=False)
        counters = check.fields(outer[model], f"usage.{model}")
        inner: dict[str, float] = {}
        for name in sorted(counters):
            where = (
                f"usage.{model}.{check.text(name, f'usage.{model} (a counter name)', empty=False)}"
            )
            number = counters[name]
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise RecordError(f"{where}: expected a number, got {number!r}")
            if not math.isfinite(number) or number < 0:
                raise RecordError(f"{where}: must be a finite number >= 0, got {number!r}")
            inner[name] = number
        result[model] = MappingProxyType(inner)
    return MappingProxyType(result)


@dataclass(frozen=True, repr=False)
class CallRecord:
    """Everything the business keeps about one call."""

    id: str  # the call id
    started_at: datetime
    ended_at: datetime
    line_id: str
    caller_number: str | None  # stored for the business; None when the trunk gave none
    outcome: Outcome
    destination_key: str | None = None  # where it was transferred or meant to go
    reason: str = ""  # why it ended so, in words (a failure's cause, a hang-up's moment)
    transfer_attempts: tuple[TransferAttempt, ...] = ()
    turns: tuple[TurnLatency, ...] = ()
    # "provider/model" (or the model name) -> counters as the framework's ModelUsage
    # names them: input_tokens, output_tokens, characters_count, audio_duration, ...
    usage: Usage = field(default_factory=dict)
    transcript: tuple[TranscriptLine, ...] | None = None  # only when configured

    def __post_init__(self) -> None:
        check.text(self.id, "call.id", empty=False)
        check.text(self.line_id, "call.line_id", empty=False)
        check.optional_text(self.caller_number, "call.caller_number")
        check.optional_text(self.destination_key, "call.destination_key")
        check.text(self.reason, "call.reason")
        check.set_field(self, "outcome", check.one_of(Outcome, self.outcome, "call.outcome"))
        check.set_field(self, "started_at", check.utc(self.started_at, "call.started_at"))
        check.set_field(self, "ended_at", check.utc(self.ended_at, "call.ended_at"))
        if self.ended_at < self.started_at:
            raise RecordError("call.ended_at: is before call.started_at")
        for name, kind in (("transfer_attempts", TransferAttempt), ("turns", TurnLatency)):
            items = tuple(getattr(self, name))
            if not all(isinstance(item, kind) for item in items):
                raise RecordError(f"call.{name}: expected {kind.__name__} items")
            check.set_field(self, name, items)
        check.set_field(self, "usage", _usage(self.usage))
        if self.transcript is not None:
            lines = []
            for i, line in enumerate(self.transcript):
                if not (isinstance(line, tuple) and len(line) == 2):
                    raise RecordError(f"call.transcript[{i}]: expected (role, text)")
                role = check.text(line[0], f"call.transcript[{i}].role", empty=False)
                lines.append(
                    TranscriptLine(role, check.text(line[1], f"call.transcript[{i}].text"))
                )
            check.set_field(self, "transcript", tuple(lines))

    def __reduce__(self) -> tuple[Any, ...]:
        # the read-only usage mappings do not pickle; the JSON shape does
        return (type(self).from_json, (self.to_json(),))

    @property
    def duration_s(self) -> float:
        return (self.ended_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": iso(self.started_at),
            "ended_at": iso(self.ended_at),
            "line_id": self.line_id,
            "caller_number": self.caller_number,
            "outcome": self.outcome.value,
            "destination_key": self.destination_key,
            "reason": self.reason,
            "transfer_attempts": [a.to_json() for a in self.transfer_attempts],
            "turns": [t.to_json() for t in self.turns],
            "usage": {model: dict(counters) for model, counters in self.usage.items()},
            "transcript": (
                None
                if self.transcript is None
                else [{"role": line.role, "text": line.text} for line in self.transcript]
            ),
        }

    @classmethod
    def from_json(cls, data: Any) -> Self:
        d = check.fields(data, "call")
        transcript = d.get("transcript")
        if transcript is not None and not isinstance(transcript, list):
            raise RecordError("call.transcript: expected a list or null")
        return cls(
            id=check.get(d, "id", "call"),
            started_at=parse_iso(check.get(d, "started_at", "call"), "call.started_at"),
            ended_at=parse_iso(check.get(d, "ended_at", "call"), "call.ended_at"),
            line_id=check.get(d, "line_id", "call"),
            caller_number=d.get("caller_number"),
            outcome=check.get(d, "outcome", "call"),
            destination_key=d.get("destination_key"),
            reason=d.get("reason") or "",
            transfer_attempts=tuple(
                TransferAttempt.from_json(a) for a in check.list_of(d, "transfer_attempts")
            ),
            turns=tuple(TurnLatency.from_json(t) for t in check.list_of(d, "turns")),
            usage=d.get("usage") or {},
            transcript=(
                None
                if transcript is None
                else tuple(
                    TranscriptLine(
                        check.fields(line, f"call.transcript[{i}]").get("role"),
                        check.fields(line, f"call.transcript[{i}]").get("text"),
                    )
                    for i, line in enumerate(transcript)
                )
            ),
        )

    def __repr__(self) -> str:
        transcript = "None" if self.transcript is None else f"<{len(self.transcript)} lines>"
        return (
            f"CallRecord(id={safe_name(self.id)!r}, started_at={iso(self.started_at)}, "
            f"duration_s={self.duration_s:.1f}, line_id={safe_name(self.line_id)!r}, "
            f"caller_number={mask_number(self.caller_number)!r}, "
            f"outcome={self.outcome.value}, destination_key={self.destination_key!r}, "
            f"reason={mask_numbers(self.reason)!r}, "
            f"transfer_attempts={list(self.transfer_attempts)!r}, turns={len(self.turns)}, "
            f"usage={sorted(self.usage)}, transcript={transcript})"
        )
