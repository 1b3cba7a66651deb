"""What ``agent.py calls`` and ``agent.py messages`` print: the recent ones as a table
(or JSON for scripts), and everything the webhook has not yet accepted, whatever its age,
with the last delivery error, because that is what an operator runs this to find out.

Phone numbers are masked unless asked for (``show_numbers``, the CLI's
``--show-numbers``), in the table and in the JSON alike, and in free text too (a caller
can say a number in a message). The business owns this data and the operator may see it,
but what a terminal shows ends up in scrollback, screenshots, shared screens and support
tickets; the number is one flag away when it is needed, as it is to call someone back.
Names and what the caller said are shown: they are what a message is.

Times are shown in ``tz`` (the machine's own zone by default) and given in UTC in JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import Any

from privacy import mask_number, mask_numbers
from records import CallRecord, Message, Outcome, iso
from store import DeliveryStatus, Store, Stored

_DURATION = re.compile(r"^\s*(\d+)\s*(m|min|h|d|w)\s*$", re.IGNORECASE)
_UNITS = {"m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_ABOUT_WIDTH = 48
_REASON_WIDTH = 40
MASKED_NOTE = "Phone numbers are masked; --show-numbers shows them."
NOT_QUEUED_NOTE = "Not queued: saved while no webhook was configured; it is kept, not sent."


def parse_since(text: str, *, now: datetime, tz: tzinfo | None = None) -> datetime:
    """``--since``: a time back from ``now`` (``90m``, ``24h``, ``7d``, ``2w``) or a date
    or time (``2025-05-01``, ``2025-05-01T09:00``; in ``tz`` unless it gives its offset)."""
    if match := _DURATION.match(text):
        return now - timedelta(seconds=int(match[1]) * _UNITS[match[2].lower()])
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"--since: {text!r} is neither a time back like 90m, 24h, 7d or 2w, nor a date "
            "or time like 2025-05-01 or 2025-05-01T09:00"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz) if tz is not None else moment.astimezone()
    return moment


def calls_text(
    store: Store,
    *,
    since: datetime | None = None,
    limit: int = 50,
    as_json: bool = False,
    show_numbers: bool = False,
    tz: tzinfo | None = None,
) -> str:
    recent = store.recent_calls(since, limit)
    waiting = store.recent_calls(None, limit, undelivered_only=True)
    mask = _Mask(show_numbers)
    if as_json:
        return _json("calls", "call", recent, waiting, since, mask.call_json, show_numbers)
    rows = [
        [
            _when(s.item.started_at, tz),
            _length(s.item.duration_s),
            s.item.line_id,
            mask.number(s.item.caller_number) or "(unknown)",
            _cut(mask.text(_outcome(s.item)), _REASON_WIDTH),
            _cut(mask.text(_transfers(s.item)), _REASON_WIDTH),
            _delivery(s),
        ]
        for s in recent
    ]
    header = ["STARTED", "LENGTH", "LINE", "CALLER", "OUTCOME", "TRANSFERS", "DELIVERY"]
    return _page(
        "calls",
        rows,
        header,
        waiting,
        since,
        tz,
        show_numbers,
        mask,
        lambda s: f"call {s.item.id} (started {_when(s.item.started_at, tz)})",
    )


def messages_text(
    store: Store,
    *,
    since: datetime | None = None,
    limit: int = 50,
    as_json: bool = False,
    show_numbers: bool = False,
    tz: tzinfo | None = None,
) -> str:
    recent = store.recent_messages(since, limit)
    waiting = store.recent_messages(None, limit, undelivered_only=True)
    mask = _Mask(show_numbers)
    if as_json:
        return _json("messages", "message", recent, waiting, since, mask.message_json, show_numbers)
    rows = [
        [
            _when(s.item.created_at, tz),
            s.item.line_id,
            _cut(mask.text(s.item.caller_name), 24) or "(no name)",
            mask.number(s.item.callback_number)
            + ("" if s.item.callback_number_confirmed else " (unconfirmed)"),
            s.item.destination_key or "-",
            _cut(mask.text(s.item.about), _ABOUT_WIDTH),
            _delivery(s),
        ]
        for s in recent
    ]
    header = ["TAKEN", "LINE", "FROM", "CALL BACK ON", "FOR", "ABOUT", "DELIVERY"]
    return _page(
        "messages",
        rows,
        header,
        waiting,
        since,
        tz,
        show_numbers,
        mask,
        lambda s: f"message {s.item.id} (taken {_when(s.item.created_at, tz)})",
    )


# --------------------------------------------------------------------------- pieces


class _Mask:
    def __init__(self, show_numbers: bool) -> None:
        self.show = show_numbers

    def number(self, number: str | None) -> str:
        if not number:
            return ""
        return number if self.show else mask_number(number)

    def text(self, text: str) -> str:
        return text if self.show else mask_numbers(text)

    def message_json(self, message: Message) -> dict[str, Any]:
        data = message.to_json()
        if not self.show:
            data["callback_number"] = mask_number(message.callback_number)
            for key in ("caller_name", "about"):
                data[key] = mask_numbers(data[key])
        return data

    def call_json(self, record: CallRecord) -> dict[str, Any]:
        data = record.to_json()
        if not self.show:
            if record.caller_number is not None:
                data["caller_number"] = mask_number(record.caller_number)
            data["reason"] = mask_numbers(data["reason"])
            for attempt in data["transfer_attempts"]:
                attempt["detail"] = mask_numbers(attempt["detail"])
            for line in data["transcript"] or ():
                line["text"] = mask_numbers(line["text"])
        return data


def _json(
    plural: str,
    singular: str,
    recent: Sequence[Stored[Any]],
    waiting: Sequence[Stored[Any]],
    since: datetime | None,
    shown: Callable[[Any], dict[str, Any]],
    show_numbers: bool,
) -> str:
    def entry(s: Stored[Any]) -> dict[str, Any]:
        delivery = s.delivery.to_json()
        if not show_numbers and delivery["last_error"]:
            delivery["last_error"] = mask_numbers(delivery["last_error"])
        return {singular: shown(s.item), "delivery": delivery}

    document = {
        "since": None if since is None else iso(since),
        "numbers_masked": not show_numbers,
        plural: [entry(s) for s in recent],
        "undelivered": [entry(s) for s in waiting],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def _page(
    plural: str,
    rows: list[list[str]],
    header: list[str],
    waiting: Sequence[Stored[Any]],
    since: datetime | None,
    tz: tzinfo | None,
    show_numbers: bool,
    mask: _Mask,
    name: Callable[[Stored[Any]], str],
) -> str:
    zone = datetime.now(tz).tzname() if tz is not None else _local_zone()
    span = f"since {_when(since, tz)}" if since is not None else "most recent"
    lines = [f"{plural.capitalize()}, {span}, newest first (times in {zone}): {len(rows)}"]
    if rows:
        lines += ["", *_table(header, rows)]
    if waiting:
        lines += ["", f"Not yet delivered to the webhook: {len(waiting)}"]
        for s in waiting:
            d = s.delivery
            tries = _attempts(d.attempts) if d.attempts else "not tried yet"
            nxt = f", next at {_when(d.next_attempt_at, tz)}" if d.next_attempt_at else ""
            error = f"; last error: {mask.text(d.last_error)}" if d.last_error else ""
            lines.append(f"  {name(s)}: {tries}{nxt}{error}")
    notes = [NOT_QUEUED_NOTE] if any(r[-1] == "not queued" for r in rows) else []
    if not show_numbers:
        notes.append(MASKED_NOTE)
    if notes:
        lines += ["", *notes]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]


def _local_zone() -> str:
    return datetime.now().astimezone().tzname() or "local time"


def _when(moment: datetime | None, tz: tzinfo | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _length(seconds: float) -> str:
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s"


def _cut(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


_OUTCOME_WORDS = {
    Outcome.HANDLED_BY_AGENT: "handled by the agent",
    Outcome.COLD_TRANSFER: "cold transfer",
    Outcome.WARM_TRANSFER: "warm transfer",
    Outcome.MESSAGE_TAKEN: "message taken",
    Outcome.CALLER_HUNG_UP: "caller hung up",
    Outcome.FAILED: "failed",
}


def _outcome(record: CallRecord) -> str:
    words = _OUTCOME_WORDS[record.outcome]
    if record.destination_key and record.outcome in (Outcome.COLD_TRANSFER, Outcome.WARM_TRANSFER):
        words += f" to {record.destination_key}"
    if record.reason and record.outcome is Outcome.FAILED:
        words += f": {record.reason}"
    return words


def _transfers(record: CallRecord) -> str:
    parts = []
    for a in record.transfer_attempts:
        status = f" {a.sip_status}" if a.sip_status is not None else ""
        parts.append(f"{a.destination_key} {a.mode.value} {a.outcome.value}{status}")
    return ", ".join(parts) or "-"


def _delivery(stored: Stored[Any]) -> str:
    d = stored.delivery
    if d.status is DeliveryStatus.DELIVERED:
        return "delivered"
    if d.status is DeliveryStatus.NOT_QUEUED:
        return "not queued"
    return "waiting" if d.attempts == 0 else f"retrying ({_attempts(d.attempts)})"


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"
