"""The business's messages and call records, kept in one SQLite file, with an outbox of
what is still to be delivered to its webhook (delivery.py).

Why it is built this way:

* **A message taken is a message kept.** ``save_message`` writes the message and its
  outbox entry in one ``BEGIN IMMEDIATE`` transaction and returns only after the commit,
  so the caller is told "your message was taken" only once it is on disk, and there is
  never a message without its delivery, or a delivery without its message.
* **Durable on commit.** WAL journal with ``synchronous=FULL``: every commit fsyncs the
  WAL. ``NORMAL`` would already survive a killed process (the committed pages are in the
  OS's cache), but not a power cut or a host crash, where the last commits can roll back.
  A message is written once or twice per call, so the fsync costs nothing that matters,
  and it buys the promise made to the caller.
* **Several writers.** Job processes are short-lived and several write at once: each
  process opens its own connection (a ``Store`` reconnects after a fork), writers queue
  on SQLite's lock for up to ``busy_timeout_s`` (``BEGIN IMMEDIATE`` takes the write lock
  up front, so a transaction never fails half-way on a lock upgrade), and readers never
  wait in WAL mode. The file must be on a local disk shared only by processes on one
  host: WAL's shared memory does not work over a network filesystem. Replicas on other
  hosts keep their own data directory, and their records meet at the webhook.
* **Delivered at least once, never twice at the same time.** An outbox entry is claimed
  with a lease (``claimed_until``, ``claimed_by``, a token per claim) in a write
  transaction, so two processes never hold it together; a process killed mid-delivery
  leaves a lease that runs out, and the next pass delivers the item again with the same
  idempotency key, which the receiver uses to drop the duplicate.
* **Retention never loses an undelivered message.** ``purge`` deletes what is older than
  the retention period once it has been delivered (or was never meant for delivery);
  what is still waiting stays until it is delivered, unless the operator names an
  ``undelivered_older_than`` limit on purpose. An outage of the webhook longer than the
  retention period must not quietly become lost messages.

Every method is blocking (fsync included): call it from a thread (``asyncio.to_thread``)
when on an event loop. One ``Store`` may be shared by the threads of a process.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Self

from records import CallRecord, Message, iso, parse_iso
from store_schema import DB_NAME, SCHEMA_VERSION, StoreError, upgrade
from store_types import (
    Claim,
    Delivery,
    DeliveryStatus,
    Kind,
    Purged,
    Stored,
    idempotency_key,
)

logger = logging.getLogger("phone-assistant.store")

_INHERITED: list[sqlite3.Connection] = []  # connections from before a fork, kept unclosed


def _aware(moment: datetime, name: str) -> str:
    if not isinstance(moment, datetime) or moment.utcoffset() is None:
        raise ValueError(f"{name}: expected a time zone aware datetime, got {moment!r}")
    return iso(moment)


def _time(text: str | None) -> datetime | None:
    return None if text is None else parse_iso(text, "stored time")


class Store:
    """The data directory's database. Open with ``Store.open``."""

    def __init__(self, path: Path, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    @classmethod
    def open(cls, data_dir: Path, *, busy_timeout_s: float = 5.0) -> Self:
        """Create the directory and the schema if need be, and check the file is one this
        version can use. Safe to call from several processes at once."""
        data_dir = Path(data_dir)
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"data directory {data_dir}: cannot be created ({e})") from e
        if not data_dir.is_dir():
            raise StoreError(f"data directory {data_dir}: is not a directory")
        store = cls(data_dir / DB_NAME, busy_timeout_s)
        store._connection()
        return store

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ connection

    def _connection(self) -> sqlite3.Connection:
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self._conn is not None:
            # A connection must not cross a fork: the child opens its own, and never
            # closes the parent's (closing it here could disturb the parent's locks).
            _INHERITED.append(self._conn)
            self._conn = None
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self.busy_timeout_s,
                isolation_level=None,  # we say BEGIN and COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
        except sqlite3.Error as e:
            raise StoreError(f"database {self.path}: cannot be opened ({e})") from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(f"database {self.path}: cannot use WAL (journal mode {mode})")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            self._conn, self._pid = conn, os.getpid()
            with self._write() as tx:
                upgrade(tx, self.path)
        except BaseException:
            conn.close()
            self._conn = None
            raise
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, holding SQLite's write lock from its first statement."""
        with self._lock:
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as e:
                raise StoreError(
                    f"database {self.path}: no write lock within {self.busy_timeout_s} s ({e})"
                ) from e
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise StoreError(f"database {self.path}: {e}") from e
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._connection()
            except sqlite3.Error as e:
                raise StoreError(f"database {self.path}: {e}") from e

    # ------------------------------------------------------------------ saving

    def save_message(self, message: Message, *, deliver: bool = True) -> None:
        """Store ``message`` (and, with ``deliver``, its outbox entry) durably; returns
        only after the commit. Saving the same message again is a no-op."""
        self._save("message", message.id, iso(message.created_at), message.to_json(), deliver)

    def save_call(self, record: CallRecord, *, deliver: bool = True) -> None:
        """Store ``record`` (and its outbox entry) durably, like ``save_message``."""
        self._save("call", record.id, iso(record.ended_at), record.to_json(), deliver)

    def _save(self, kind: Kind, item_id: str, at: str, data: dict[str, Any], deliver: bool) -> None:
        text = json.dumps(data, ensure_ascii=False, sort_keys=True)
        table = _TABLES[kind][0]
        with self._write() as tx:
            row = tx.execute(f"SELECT data FROM {table} WHERE id = ?", (item_id,)).fetchone()
            if row is not None:
                if json.loads(row[0]) != data:
                    raise StoreError(f"{kind} {item_id!r}: already stored with other content")
                return
            if kind == "call":
                tx.execute(
                    "INSERT INTO calls (id, started_at, ended_at, outcome, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (item_id, data["started_at"], data["ended_at"], data["outcome"], text),
                )
            else:
                tx.execute(
                    "INSERT INTO messages (id, call_id, created_at, data) VALUES (?, ?, ?, ?)",
                    (item_id, data["call_id"], data["created_at"], text),
                )
            if deliver:
                tx.execute(
                    f"INSERT INTO outbox ({_TABLES[kind][1]}, idempotency_key, created_at,"
                    " next_attempt_at) VALUES (?, ?, ?, ?)",
                    (item_id, idempotency_key(kind, item_id), at, at),
                )

    # ------------------------------------------------------------------ outbox

    def claim_due(
        self, now: datetime, lease: timedelta, limit: int = 1, *, claimer: str = ""
    ) -> list[Claim]:
        """Claim up to ``limit`` entries due at ``now`` and not held by a live lease,
        oldest due first, until ``now + lease``. Each claim counts as an attempt."""
        at = _aware(now, "now")
        until = iso(now + lease)
        token = uuid.uuid4().hex
        who = claimer or f"{os.uname().nodename}:{os.getpid()}"
        with self._write() as tx:
            rows = tx.execute(
                "SELECT o.id, o.message_id, o.call_id, o.idempotency_key, o.created_at,"
                " o.attempts, coalesce(m.data, c.data)"
                " FROM outbox o LEFT JOIN messages m ON m.id = o.message_id"
                " LEFT JOIN calls c ON c.id = o.call_id"
                " WHERE o.delivered_at IS NULL AND o.next_attempt_at <= ?"
                " AND (o.claimed_until IS NULL OR o.claimed_until <= ?)"
                " ORDER BY o.next_attempt_at, o.id LIMIT ?",
                (at, at, limit),
            ).fetchall()
            claims = []
            for oid, message_id, call_id, key, created, attempts, data in rows:
                tx.execute(
                    "UPDATE outbox SET claimed_until = ?, claimed_by = ?, claim_token = ?,"
                    " attempts = attempts + 1, last_attempt_at = ? WHERE id = ?",
                    (until, who, token, at, oid),
                )
                kind: Kind = "message" if message_id is not None else "call"
                claims.append(
                    Claim(
                        outbox_id=oid,
                        kind=kind,
                        item_id=message_id if message_id is not None else call_id,
                        idempotency_key=key,
                        created_at=parse_iso(created, "outbox.created_at"),
                        attempt=attempts + 1,
                        data=json.loads(data),
                        token=token,
                        claimed_until=parse_iso(until, "outbox.claimed_until"),
                    )
                )
        return claims

    def mark_delivered(self, claim: Claim, at: datetime) -> None:
        """The webhook accepted it. Recorded even if the lease ran out meanwhile: it was
        delivered, whoever else may be delivering it again."""
        with self._write() as tx:
            tx.execute(
                "UPDATE outbox SET delivered_at = coalesce(delivered_at, ?), last_error = NULL,"
                " claimed_until = NULL, claimed_by = NULL, claim_token = NULL WHERE id = ?",
                (_aware(at, "at"), claim.outbox_id),
            )

    def mark_failed(self, claim: Claim, error: str, retry_at: datetime) -> bool:
        """This attempt failed: try again at ``retry_at``. False (and nothing changed)
        when the claim was no longer ours: its lease ran out and another took it."""
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE outbox SET last_error = ?, next_attempt_at = ?, claimed_until = NULL,"
                " claimed_by = NULL, claim_token = NULL"
                " WHERE id = ? AND claim_token = ? AND delivered_at IS NULL",
                (error, _aware(retry_at, "retry_at"), claim.outbox_id, claim.token),
            ).rowcount
        return changed == 1

    def next_due_at(self) -> datetime | None:
        """When the earliest undelivered entry can next be claimed (a read: no lock)."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT min(max(next_attempt_at, coalesce(claimed_until, '')))"
                " FROM outbox WHERE delivered_at IS NULL"
            ).fetchone()
        return _time(row[0])

    # ------------------------------------------------------------------ retention

    def purge(
        self, older_than: datetime, *, undelivered_older_than: datetime | None = None
    ) -> Purged:
        """Delete messages and calls from before ``older_than`` that were delivered or
        never queued; undelivered ones only from before ``undelivered_older_than``."""
        cutoff = _aware(older_than, "older_than")
        last_resort = "" if undelivered_older_than is None else iso(undelivered_older_than)
        counts = []
        with self._write() as tx:
            for kind in ("message", "call"):
                table, column, stamp = _TABLES[kind]
                counts.append(
                    tx.execute(
                        f"DELETE FROM {table} WHERE {stamp} < ? AND ({stamp} < ? OR NOT EXISTS"
                        f" (SELECT 1 FROM outbox o WHERE o.{column} = {table}.id"
                        " AND o.delivered_at IS NULL))",
                        (cutoff, last_resort),
                    ).rowcount
                )
        purged = Purged(messages=counts[0], calls=counts[1])
        if purged.messages or purged.calls:
            logger.info("purged %d messages and %d calls", purged.messages, purged.calls)
        return purged

    # ------------------------------------------------------------------ queries

    def recent_messages(
        self, since: datetime | None = None, limit: int = 50, *, undelivered_only: bool = False
    ) -> list[Stored[Message]]:
        """Messages newest first, from ``since`` on, with their delivery status."""
        return [
            Stored(Message.from_json(data), delivery)
            for data, delivery in self._recent("message", since, limit, undelivered_only)
        ]

    def recent_calls(
        self, since: datetime | None = None, limit: int = 50, *, undelivered_only: bool = False
    ) -> list[Stored[CallRecord]]:
        """Call records newest first (by start), from ``since`` on, with delivery status."""
        return [
            Stored(CallRecord.from_json(data), delivery)
            for data, delivery in self._recent("call", since, limit, undelivered_only)
        ]

    def _recent(
        self, kind: Kind, since: datetime | None, limit: int, undelivered_only: bool
    ) -> list[tuple[dict[str, Any], Delivery]]:
        table, column, stamp = _TABLES[kind]
        start = "" if since is None else _aware(since, "since")
        only = " AND o.id IS NOT NULL AND o.delivered_at IS NULL" if undelivered_only else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT t.data, o.id, o.attempts, o.last_attempt_at, o.next_attempt_at,"
                f" o.last_error, o.delivered_at FROM {table} t"
                f" LEFT JOIN outbox o ON o.{column} = t.id"
                f" WHERE t.{stamp} >= ?{only} ORDER BY t.{stamp} DESC, t.id LIMIT ?",
                (start, limit),
            ).fetchall()
        result = []
        for data, oid, attempts, last_at, next_at, error, delivered in rows:
            if oid is None:
                delivery = Delivery(DeliveryStatus.NOT_QUEUED)
            else:
                delivery = Delivery(
                    DeliveryStatus.DELIVERED if delivered else DeliveryStatus.PENDING,
                    attempts=attempts,
                    last_attempt_at=_time(last_at),
                    next_attempt_at=None if delivered else _time(next_at),
                    last_error=error,
                    delivered_at=_time(delivered),
                )
            result.append((json.loads(data), delivery))
        return result


# kind -> (table, its outbox column, the time it is listed and retained by)
_TABLES: dict[str, tuple[str, str, str]] = {
    "message": ("messages", "message_id", "created_at"),
    "call": ("calls", "call_id", "started_at"),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


__all__ = [
    "SCHEMA_VERSION",
    "Claim",
    "Delivery",
    "DeliveryStatus",
    "Purged",
    "Store",
    "StoreError",
    "Stored",
    "idempotency_key",
    "utc_now",
]
