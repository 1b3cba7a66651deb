"""The store keeps what it was given: a message saved is on disk when save returns, with
its outbox entry in the same transaction; several processes write and claim at once on
one real SQLite file without losing or double-claiming anything; leases let a dead
deliverer's item be taken again; retention never drops what is still undelivered."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from records import Outcome
from store import DeliveryStatus, Store, StoreError, idempotency_key
from store_schema import DB_NAME, SCHEMA_VERSION
from tests.support.sample_records import T0, a_call, a_message

LEASE = timedelta(seconds=60)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "data") as opened:
        yield opened


def raw(store: Store) -> sqlite3.Connection:
    """The file as another program sees it."""
    return sqlite3.connect(store.path)


def helper(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.outbox_process", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


# --------------------------------------------------------------------------- opening


def test_a_new_data_directory_gets_a_wal_database_that_syncs_every_commit(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "new" / "data")
    assert store.path == tmp_path / "new" / "data" / DB_NAME
    db = raw(store)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn = store._connection()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_opening_again_keeps_what_was_stored(tmp_path: Path) -> None:
    with Store.open(tmp_path) as first:
        first.save_message(a_message(1))
    with Store.open(tmp_path) as again:
        assert [s.item for s in again.recent_messages()] == [a_message(1)]


def test_a_file_from_a_newer_version_is_refused_with_both_versions_named(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=rf"schema {SCHEMA_VERSION + 1}.*up to {SCHEMA_VERSION}"):
        Store.open(tmp_path)


def test_a_data_directory_that_is_a_file_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(StoreError, match=r"data directory .*data"):
        Store.open(tmp_path / "data")


# --------------------------------------------------------------------------- saving


def test_a_saved_message_reads_back_as_it_was_with_delivery_pending(store: Store) -> None:
    store.save_message(a_message(1))

    [stored] = store.recent_messages()
    assert stored.item == a_message(1)
    assert stored.delivery.status is DeliveryStatus.PENDING
    assert stored.delivery.attempts == 0
    assert stored.delivery.next_attempt_at == T0


def test_a_call_record_reads_back_as_it_was(store: Store) -> None:
    store.save_call(a_call(1, outcome=Outcome.COLD_TRANSFER))
    [stored] = store.recent_calls()
    assert stored.item == a_call(1, outcome=Outcome.COLD_TRANSFER)
    assert stored.item.usage["deepgram/nova-3"]["audio_duration"] == 184.9


def test_the_message_and_its_outbox_entry_are_one_transaction(store: Store) -> None:
    """The outbox insert fails (as a full disk would fail it): the message is not kept
    either, and the caller is not told it was."""
    db = raw(store)
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'disk full'); END"
    )
    db.commit()

    with pytest.raises(StoreError, match="disk full"):
        store.save_message(a_message(1))

    assert store.recent_messages() == []
    db.execute("DROP TRIGGER refuse")
    db.commit()
    store.save_message(a_message(1))  # the connection is usable again
    assert len(store.recent_messages()) == 1


def test_saving_the_same_message_twice_keeps_one_and_queues_it_once(store: Store) -> None:
    store.save_message(a_message(1))
    store.save_message(a_message(1))

    assert len(store.recent_messages()) == 1
    assert len(store.claim_due(T0, LEASE, 10)) == 1


def test_the_same_id_with_other_content_is_refused(store: Store) -> None:
    store.save_message(a_message(1))
    with pytest.raises(StoreError, match=r"msg-1.*other content"):
        store.save_message(a_message(1, about="something else"))
    assert store.recent_messages()[0].item == a_message(1)


def test_without_delivery_an_item_is_kept_but_never_queued(store: Store) -> None:
    store.save_call(a_call(1), deliver=False)
    assert store.recent_calls()[0].delivery.status is DeliveryStatus.NOT_QUEUED
    assert store.claim_due(T0 + timedelta(days=1), LEASE, 10) == []
    assert store.next_due_at() is None


def test_a_message_is_on_disk_when_save_returns(tmp_path: Path) -> None:
    """A process saves, says so, and is killed at once: the message is there."""
    process = helper("save-one", str(tmp_path))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "saved"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    with Store.open(tmp_path) as store:
        assert [s.item for s in store.recent_messages()] == [a_message(1)]


def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    """Four job processes open a new data directory together and save 40 messages and
    40 call records each, all released at the same moment."""
    workers, count = 4, 40
    processes = [helper("write", str(tmp_path), str(w), str(count)) for w in range(workers)]
    try:
        for p in processes:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in processes:
            out, _ = p.communicate(timeout=120)
            assert out.strip() == "done", out
            assert p.returncode == 0
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()

    with Store.open(tmp_path) as store:
        messages = store.recent_messages(limit=10_000)
        calls = store.recent_calls(limit=10_000)
        expected = {f"msg-{w * 100_000 + i}" for w in range(workers) for i in range(count)}
        assert {s.item.id for s in messages} == expected
        assert len(calls) == workers * count
        claims = store.claim_due(T0 + timedelta(days=1), LEASE, 10_000)
    assert len(claims) == 2 * workers * count
    assert len({c.idempotency_key for c in claims}) == len(claims)


# --------------------------------------------------------------------------- the outbox


def test_a_claimed_item_is_not_claimed_again_until_its_lease_runs_out(store: Store) -> None:
    store.save_message(a_message(1))

    [first] = store.claim_due(T0, LEASE, 10)
    assert store.claim_due(T0 + LEASE - timedelta(seconds=1), LEASE, 10) == []
    # the claimer died: the lease runs out and the item comes back, with the same key
    [again] = store.claim_due(T0 + LEASE, LEASE, 10)
    assert again.item_id == first.item_id == "msg-1"
    assert again.idempotency_key == first.idempotency_key == idempotency_key("message", "msg-1")
    assert (first.attempt, again.attempt) == (1, 2)
    assert again.data == a_message(1).to_json()


def test_a_failed_attempt_waits_for_its_retry_time_and_shows_its_error(store: Store) -> None:
    store.save_message(a_message(1))
    [claim] = store.claim_due(T0, LEASE, 1)

    assert store.mark_failed(claim, "HTTP 503 from hooks.example.com", T0 + timedelta(seconds=10))

    assert store.claim_due(T0 + timedelta(seconds=9), LEASE, 1) == []
    assert store.next_due_at() == T0 + timedelta(seconds=10)
    delivery = store.recent_messages()[0].delivery
    assert delivery.status is DeliveryStatus.PENDING
    assert delivery.attempts == 1
    assert delivery.last_error == "HTTP 503 from hooks.example.com"
    assert delivery.next_attempt_at == T0 + timedelta(seconds=10)
    assert store.claim_due(T0 + timedelta(seconds=10), LEASE, 1)[0].attempt == 2


def test_a_delivered_item_is_never_claimed_again(store: Store) -> None:
    store.save_message(a_message(1))
    [claim] = store.claim_due(T0, LEASE, 1)
    store.mark_delivered(claim, T0 + timedelta(seconds=1))

    assert store.claim_due(T0 + timedelta(days=30), LEASE, 10) == []
    delivery = store.recent_messages()[0].delivery
    assert delivery.status is DeliveryStatus.DELIVERED
    assert delivery.delivered_at == T0 + timedelta(seconds=1)
    assert delivery.next_attempt_at is None


def test_a_late_failure_does_not_undo_the_claim_of_whoever_took_the_item_over(
    store: Store,
) -> None:
    store.save_message(a_message(1))
    [slow] = store.claim_due(T0, LEASE, 1)
    [taken_over] = store.claim_due(T0 + LEASE, LEASE, 1)

    assert not store.mark_failed(slow, "timed out", T0 + timedelta(hours=1))
    store.mark_delivered(taken_over, T0 + LEASE)
    assert store.recent_messages()[0].delivery.status is DeliveryStatus.DELIVERED


def test_the_oldest_due_item_is_claimed_first(store: Store) -> None:
    store.save_call(a_call(2, at=T0 + timedelta(minutes=5)))
    store.save_message(a_message(1, at=T0 + timedelta(minutes=1)))
    claims = store.claim_due(T0 + timedelta(hours=1), LEASE, 10)
    assert [(c.kind, c.item_id) for c in claims] == [("message", "msg-1"), ("call", "call-2")]


def test_processes_claiming_at_once_never_get_the_same_item(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        for n in range(60):
            store.save_message(a_message(n, at=T0 + timedelta(seconds=n)))
    now = (T0 + timedelta(hours=1)).isoformat()
    processes = [helper("claim", str(tmp_path), now, "600") for _ in range(3)]
    try:
        for p in processes:
            assert p.stdout is not None
            assert p.stdout.readline().strip() == "ready"
        for p in processes:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate(timeout=120)[0]) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()

    everything = [item for claimed in results for item in claimed]
    assert sorted(everything) == sorted(f"msg-{n}" for n in range(60))  # each exactly once


# --------------------------------------------------------------------------- retention


def test_retention_deletes_old_delivered_items_and_keeps_undelivered_ones(store: Store) -> None:
    old, recent = T0, T0 + timedelta(days=40)
    store.save_message(a_message(1, at=old))  # delivered
    store.save_message(a_message(2, at=old))  # still failing
    store.save_call(a_call(3, at=old), deliver=False)  # never meant for delivery
    store.save_message(a_message(4, at=recent))  # delivered, but recent
    for claim in store.claim_due(recent, LEASE, 10):
        if claim.item_id == "msg-2":
            store.mark_failed(claim, "HTTP 500", recent + timedelta(minutes=1))
        else:
            store.mark_delivered(claim, recent)

    purged = store.purge(older_than=T0 + timedelta(days=30))

    assert (purged.messages, purged.calls) == (1, 1)
    assert [s.item.id for s in store.recent_messages()] == ["msg-4", "msg-2"]
    assert store.recent_calls() == []
    # the outbox entries went with their items; the undelivered one is still due
    assert raw(store).execute("SELECT count(*) FROM outbox").fetchone()[0] == 2
    assert store.claim_due(recent + timedelta(minutes=1), LEASE, 10)[0].item_id == "msg-2"


def test_undelivered_items_go_only_past_the_limit_named_for_them(store: Store) -> None:
    store.save_message(a_message(1, at=T0))
    store.save_message(a_message(2, at=T0 + timedelta(days=100)))

    purged = store.purge(
        older_than=T0 + timedelta(days=200), undelivered_older_than=T0 + timedelta(days=90)
    )

    assert purged.messages == 1
    assert [s.item.id for s in store.recent_messages()] == ["msg-2"]


# --------------------------------------------------------------------------- queries


def test_recent_items_are_newest_first_from_since_on(store: Store) -> None:
    for n in range(5):
        store.save_call(a_call(n, at=T0 + timedelta(hours=n)))

    ids = [s.item.id for s in store.recent_calls(since=T0 + timedelta(hours=2))]
    assert ids == ["call-4", "call-3", "call-2"]
    assert [s.item.id for s in store.recent_calls(limit=2)] == ["call-4", "call-3"]


def test_undelivered_only_lists_what_is_still_waiting_whatever_its_age(store: Store) -> None:
    store.save_message(a_message(1, at=T0))
    store.save_message(a_message(2, at=T0 + timedelta(days=1)))
    store.save_message(a_message(3, at=T0), deliver=False)
    for claim in store.claim_due(T0 + timedelta(days=1), LEASE, 10):
        if claim.item_id == "msg-2":
            store.mark_delivered(claim, T0 + timedelta(days=1))

    waiting = store.recent_messages(undelivered_only=True)
    assert [s.item.id for s in waiting] == ["msg-1"]


def test_times_without_a_zone_are_refused_by_name(store: Store) -> None:
    with pytest.raises(ValueError, match=r"^now: "):
        store.claim_due(T0.replace(tzinfo=None), LEASE)
    with pytest.raises(ValueError, match=r"^since: "):
        store.recent_calls(since=T0.replace(tzinfo=None))


def test_a_store_reconnects_in_a_forked_child(store: Store) -> None:
    store.save_message(a_message(1))
    pid = os.fork()
    if pid == 0:  # the child: a job process forked from a parent that had the store open
        try:
            store.save_message(a_message(2))
            os._exit(0 if len(store.recent_messages()) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert [s.item.id for s in store.recent_messages()] == ["msg-1", "msg-2"]  # same time
