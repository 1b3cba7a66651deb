"""The database's tables, and the steps that bring an older file up to date.

The version lives in ``PRAGMA user_version``. Each step in ``_STEPS`` turns version
``n`` into ``n + 1`` and runs inside the caller's write transaction, so several processes
opening a new or old file at once upgrade it exactly once. A file from a newer version of
this program is refused rather than written in a shape that version does not expect.

Times are stored as ``records.iso`` text (UTC, fixed width), so comparing them as text
compares them as times. Items keep their full JSON in ``data``; the other columns exist
to be searched and sorted. Outbox rows point at their item with a foreign key and go
when it goes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

DB_NAME = "phone-assistant.sqlite3"

_V1 = """
CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX messages_by_time ON messages (created_at);

CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX calls_by_time ON calls (started_at);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    message_id TEXT UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    call_id TEXT UNIQUE REFERENCES calls (id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_attempt_at TEXT,
    claimed_until TEXT,
    claimed_by TEXT,
    claim_token TEXT,
    last_error TEXT,
    delivered_at TEXT,
    CHECK ((message_id IS NULL) <> (call_id IS NULL))
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
"""

_STEPS: tuple[str, ...] = (_V1,)
SCHEMA_VERSION = len(_STEPS)


class StoreError(Exception):
    """The store could not do what was asked; the message says what and where."""


def upgrade(tx: sqlite3.Connection, path: Path) -> None:
    """Bring the file to ``SCHEMA_VERSION``; ``tx`` is in a write transaction."""
    version = tx.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database {path}: written by a newer version of this program (schema "
            f"{version}; this one knows up to {SCHEMA_VERSION}); use that version or "
            "another data directory"
        )
    for step in range(version, SCHEMA_VERSION):
        for statement in _STEPS[step].split(";"):
            if statement.strip():
                tx.execute(statement)
        tx.execute(f"PRAGMA user_version = {step + 1}")
