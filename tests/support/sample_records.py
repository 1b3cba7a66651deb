"""Messages and call records shaped like a real business's, for store and delivery tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from records import (
    AttemptOutcome,
    CallRecord,
    Message,
    Outcome,
    TranscriptLine,
    TransferAttempt,
    TransferMode,
    TurnLatency,
)

CALLER = "+15551234567"
T0 = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


def a_message(n: int = 1, *, at: datetime = T0, **changes: Any) -> Message:
    fields: dict[str, Any] = {
        "id": f"msg-{n}",
        "call_id": f"call-{n}",
        "created_at": at,
        "line_id": "main",
        "caller_name": "Maria Lopez",
        "callback_number": CALLER,
        "callback_number_confirmed": True,
        "about": "Her crown came loose; she would like an appointment this week.",
        "language": "en-US",
        "destination_key": "front_desk",
    }
    return Message(**(fields | changes))


def a_call(n: int = 1, *, at: datetime = T0, **changes: Any) -> CallRecord:
    """A call that tried billing (busy), then took a message."""
    fields: dict[str, Any] = {
        "id": f"call-{n}",
        "started_at": at,
        "ended_at": at + timedelta(minutes=3, seconds=5),
        "line_id": "main",
        "caller_number": CALLER,
        "outcome": Outcome.MESSAGE_TAKEN,
        "destination_key": "billing",
        "reason": "billing was busy",
        "transfer_attempts": (
            TransferAttempt(
                "billing",
                TransferMode.COLD,
                at + timedelta(seconds=40),
                AttemptOutcome.BUSY,
                486,
                "Busy Here",
            ),
        ),
        "turns": (
            TurnLatency(0.21, 0.45, 0.38, 0.19, 1.02),
            TurnLatency(end_of_turn_delay=0.5, llm_ttft=0.4),
        ),
        "usage": {
            "openai/gpt-4.1-mini": {"input_tokens": 2140, "output_tokens": 183},
            "openai/gpt-4o-mini-tts": {"characters_count": 812, "audio_duration": 51.2},
            "deepgram/nova-3": {"audio_duration": 184.9},
        },
        "transcript": None,
    }
    return CallRecord(**(fields | changes))


TRANSCRIPT = (
    TranscriptLine("assistant", "Acme Dental, how can I help?"),
    TranscriptLine("user", "I have a question about my bill."),
)
