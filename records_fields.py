"""The JSON conventions of records.py's values, and the checks each field's parser makes.

A record read back from the database or built by the worker goes through these, so a
value that does not fit its field is a RecordError naming the field (``call.ended_at:
a time must carry its time zone``), never a half-built record. Errors never quote a
caller's words or number (privacy.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from privacy import safe_name


class RecordError(ValueError):
    """A record value that does not fit its field; the message names the field."""


E = TypeVar("E", bound=StrEnum)


def iso(moment: datetime) -> str:
    """The one text form of a time in records, the database and the webhook."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: Any, where: str) -> datetime:
    """An ISO-8601 time with an offset, as a UTC datetime; ``where`` names the field."""
    if not isinstance(text, str):
        raise RecordError(f"{where}: expected an ISO-8601 time as text, got {type(text).__name__}")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise RecordError(f"{where}: not an ISO-8601 time: {safe_name(text[:40])!r}") from None
    return utc(moment, where)


def utc(moment: Any, where: str) -> datetime:
    if not isinstance(moment, datetime):
        raise RecordError(f"{where}: expected a datetime, got {type(moment).__name__}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RecordError(f"{where}: a time must carry its time zone (got a naive datetime)")
    return moment.astimezone(UTC)


def text(value: Any, where: str, *, empty: bool = True) -> str:
    if not isinstance(value, str):
        raise RecordError(f"{where}: expected text, got {type(value).__name__}")
    if not empty and not value.strip():
        raise RecordError(f"{where}: must not be empty")
    return value


def optional_text(value: Any, where: str) -> str | None:
    return None if value is None else text(value, where, empty=False)


def seconds(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RecordError(f"{where}: expected a number of seconds, got {value!r}")
    if value < 0:
        raise RecordError(f"{where}: must not be negative, got {value!r}")
    return float(value)


def one_of(kind: type[E], value: Any, where: str) -> E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise RecordError(f"{where}: {safe_name(str(value))!r} is not one of {allowed}") from None


def set_field(obj: object, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)  # normalizing a frozen dataclass in __post_init__


def fields(data: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise RecordError(f"{where}: expected a JSON object, got {type(data).__name__}")
    return data


def get(data: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in data:
        raise RecordError(f"{where}.{key}: missing")
    return data[key]


def list_of(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"call.{key}: expected a list")
    return value
