"""The values the store hands out: an item with its delivery status, an outbox claim,
and the idempotency key every attempt at one item carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, Literal, TypeVar

from records import CallRecord, Message, iso

Kind = Literal["message", "call"]
# Idempotency keys are derived from the item, so they are the same for every attempt and
# even if the same item is saved twice; uuid5 keeps them opaque (no call id in a header).
_KEY_NAMESPACE = uuid.UUID("0d6c1f53-9a4e-4a5e-8f3b-2f7d7c1e6a10")
T = TypeVar("T", Message, CallRecord)


class DeliveryStatus(StrEnum):
    DELIVERED = "delivered"
    PENDING = "pending"  # in the outbox, not yet accepted by the webhook
    NOT_QUEUED = "not_queued"  # saved with deliver=False (no webhook configured)


@dataclass(frozen=True)
class Delivery:
    """Where an item stands with the webhook."""

    status: DeliveryStatus
    attempts: int = 0
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def when(moment: datetime | None) -> str | None:
            return None if moment is None else iso(moment)

        return {
            "status": self.status.value,
            "attempts": self.attempts,
            "last_attempt_at": when(self.last_attempt_at),
            "next_attempt_at": when(self.next_attempt_at),
            "last_error": self.last_error,
            "delivered_at": when(self.delivered_at),
        }


@dataclass(frozen=True)
class Stored(Generic[T]):
    """A record as the store holds it, with its delivery status."""

    item: T
    delivery: Delivery


@dataclass(frozen=True)
class Claim:
    """One outbox entry this process may deliver until ``claimed_until``."""

    outbox_id: int
    kind: Kind
    item_id: str
    idempotency_key: str
    created_at: datetime
    attempt: int  # 1 for the first attempt; a killed attempt counts
    data: dict[str, Any] = field(repr=False)  # the item's to_json(): numbers, names
    token: str
    claimed_until: datetime


@dataclass(frozen=True)
class Purged:
    messages: int
    calls: int


def idempotency_key(kind: Kind, item_id: str) -> str:
    return str(uuid.uuid5(_KEY_NAMESPACE, f"{kind}:{item_id}"))
