"""What happened on one call, noted as it happens, so the business gets a record of it
(records.CallRecord, stored and delivered by store.py and delivery.py).

The lifecycle notes how the call ended, the transfer tools note each attempt with its SIP
outcome, the message tool notes a message taken. At the end of the job ``record`` turns
the notes and the session's own measurements (each chat message's latency metrics, the
model usage) into the record; the transcript only when the configuration asks for it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from livekit.agents import llm
from livekit.agents.metrics import ModelUsage

from records import (
    AttemptOutcome,
    CallRecord,
    Outcome,
    TranscriptLine,
    TransferAttempt,
    TransferMode,
    TurnLatency,
    Usage,
)
from tools.outcomes import Failure
from tools.outcomes import Outcome as FailureOutcome

logger = logging.getLogger("phone-assistant.journal")

Clock = Callable[[], datetime]

_ATTEMPT_OUTCOMES = {
    FailureOutcome.BUSY: AttemptOutcome.BUSY,
    FailureOutcome.NO_ANSWER: AttemptOutcome.NO_ANSWER,
    FailureOutcome.DECLINED: AttemptOutcome.DECLINED,
}
# Endings that a message taken during the call says more about.
_MESSAGE_SAYS_MORE = (None, Outcome.HANDLED_BY_AGENT, Outcome.CALLER_HUNG_UP)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class CallJournal:
    """One per call. ``line_id`` is set once the caller's line is known."""

    call_id: str
    caller_number: str | None
    line_id: str = "default"
    clock: Clock = utc_now
    started_at: datetime = field(init=False)
    attempts: list[TransferAttempt] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)  # ids of the messages taken
    _outcome: Outcome | None = None
    _destination: str | None = None
    _reason: str = ""

    def __post_init__(self) -> None:
        self.started_at = self.clock()

    # ------------------------------------------------------------------ notes

    def attempt(
        self,
        destination: str,
        mode: TransferMode,
        started_at: datetime,
        failure: Failure | None = None,
        *,
        outcome: AttemptOutcome | None = None,
        detail: str = "",
    ) -> None:
        """One transfer attempt: connected when there is no ``failure`` (or ``outcome``
        says otherwise, e.g. the person hung up before the handoff)."""
        if outcome is None:
            outcome = _attempt_outcome(failure) if failure else AttemptOutcome.CONNECTED
        self.attempts.append(
            TransferAttempt(
                destination_key=destination,
                mode=mode,
                started_at=started_at,
                outcome=outcome,
                sip_status=failure.sip_status if failure else None,
                detail=detail or (failure.detail if failure else ""),
            )
        )

    def message_taken(self, message_id: str) -> None:
        self.messages.append(message_id)

    def ended(self, outcome: Outcome, destination: str | None = None, reason: str = "") -> None:
        """How the call ended; the first ending noted is the one that happened (a hang-up
        after a handoff is not a second ending)."""
        if self._outcome is None:
            self._outcome, self._destination, self._reason = outcome, destination, reason

    @property
    def outcome(self) -> Outcome | None:
        return self._outcome

    # ------------------------------------------------------------------ the record

    def record(
        self,
        *,
        history: llm.ChatContext | None,
        usage: Sequence[ModelUsage] | None,
        transcript: bool,
        why_over: str = "",
    ) -> CallRecord:
        """The record of the call as it stands now (the job's end). ``why_over`` is why
        the job ended, the reason of a call that ended in none of the noted ways."""
        outcome, destination, reason = self._outcome, self._destination, self._reason
        if self.messages and outcome in _MESSAGE_SAYS_MORE:
            outcome, reason = Outcome.MESSAGE_TAKEN, reason or "a message was taken"
        if outcome is None:
            outcome, reason = Outcome.FAILED, why_over or "the call ended without an outcome"
        return CallRecord(
            id=self.call_id,
            started_at=self.started_at,
            ended_at=max(self.clock(), self.started_at),
            line_id=self.line_id,
            caller_number=self.caller_number,
            outcome=outcome,
            destination_key=destination,
            reason=reason,
            transfer_attempts=tuple(self.attempts),
            turns=turn_latencies(history),
            usage=model_usage(usage),
            transcript=transcript_of(history) if transcript else None,
        )


def _attempt_outcome(failure: Failure) -> AttemptOutcome:
    if not failure.outcome_known:
        return AttemptOutcome.UNKNOWN
    return _ATTEMPT_OUTCOMES.get(failure.outcome, AttemptOutcome.FAILED)


def turn_latencies(history: llm.ChatContext | None) -> tuple[TurnLatency, ...]:
    """Each reply's figures with those of the caller's words it answered, as the
    framework measured them into the chat messages' metrics."""
    if history is None:
        return ()
    turns: list[TurnLatency] = []
    heard: dict[str, float] = {}
    for item in history.items:
        if item.type != "message":
            continue
        metrics = item.metrics or {}
        if item.role == "user":
            heard = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        elif item.role == "assistant":
            turn = TurnLatency(
                transcription_delay=heard.get("transcription_delay"),
                end_of_turn_delay=heard.get("end_of_turn_delay"),
                llm_ttft=metrics.get("llm_node_ttft"),
                tts_ttfb=metrics.get("tts_node_ttfb"),
                e2e_latency=metrics.get("e2e_latency"),
            )
            if any(value is not None for value in turn.to_json().values()):
                turns.append(turn)  # a fixed sentence (the greeting) measures nothing
            heard = {}
    return tuple(turns)


def model_usage(usage: Sequence[ModelUsage] | None) -> Usage:
    """The session's usage summaries as model -> counters (zero counters left out)."""
    result: dict[str, dict[str, float]] = {}
    for summary in usage or ():
        data = summary.model_dump()
        kind = str(data.pop("type", "usage")).removesuffix("_usage")
        name = f"{kind}:{data.pop('provider', '') or '?'}/{data.pop('model', '') or '?'}"
        counters = result.setdefault(name, {})
        for key, value in data.items():
            if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
                counters[key] = counters.get(key, 0) + value
    return {name: counters for name, counters in result.items()}


def transcript_of(history: llm.ChatContext | None) -> tuple[TranscriptLine, ...]:
    if history is None:
        return ()
    return tuple(
        TranscriptLine(item.role, item.text_content)
        for item in history.items
        if item.type == "message" and item.role in ("user", "assistant") and item.text_content
    )
