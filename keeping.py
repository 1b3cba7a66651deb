"""What the business keeps of its calls, and how it reaches them.

Each call's job process writes to the embedded store (store.py: one SQLite file in the
data directory): the messages it takes while the caller is on the line, and the call's
record when the job ends. The worker's main process, which lives as long as the worker,
delivers both to the business's webhook from the store's outbox (delivery.py), so a
webhook outage, a crashed job or a restarted worker loses nothing. Job processes are
short-lived and never wait on the webhook.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from livekit.agents import AgentSession

from config import Settings
from delivery import DeliveryLoop
from journal import utc_now
from lifecycle import CallLifecycle
from privacy import safe_name
from store import Store, StoreError

logger = logging.getLogger("phone-assistant.keeping")

# Undelivered items are kept this many times longer than delivered ones before they go.
UNDELIVERED_GRACE = 4


def open_store(settings: Settings) -> Store:
    """The data directory's store (created if need be); raises StoreError naming it."""
    return Store.open(settings.storage.data_dir)


def purge_old(store: Store, settings: Settings) -> None:
    """Drop what is older than the retention period: delivered items (or all, without a
    webhook) after ``retention_days``; undelivered ones only after several times that, so
    a long webhook outage does not eat messages nobody has received."""
    days = settings.storage.retention_days
    now = utc_now()
    try:
        purged = store.purge(
            now - timedelta(days=days),
            undelivered_older_than=now - timedelta(days=days * UNDELIVERED_GRACE),
        )
    except StoreError as error:
        logger.error("could not purge old records: %s", error)
        return
    if purged.messages or purged.calls:
        logger.info("purged records older than %d days: %s", days, purged)


async def keep_record(
    store: Store | None,
    settings: Settings,
    lifecycle: CallLifecycle,
    session: AgentSession | None,
    why: str,
) -> None:
    """The job's last shutdown callback: the call's record, stored (and queued for the
    webhook). ``why`` is why the job ended."""
    record = lifecycle.journal.record(
        history=session.history if session is not None else None,
        usage=session.usage.model_usage if session is not None else None,
        transcript=settings.storage.transcripts,
        why_over=why,
    )
    if store is None:
        logger.warning("no data directory: the record of call %s is not kept", record.id)
        return
    try:
        await asyncio.to_thread(store.save_call, record, deliver=settings.webhook is not None)
    except (StoreError, OSError) as error:
        logger.error("the record of call %s could not be stored: %s", record.id, error)
        return
    logger.info(
        "call %s recorded: %s%s",
        safe_name(record.id),
        record.outcome.value,
        f" ({record.destination_key})" if record.destination_key else "",
    )


def start_delivery(settings: Settings) -> DeliveryLoop | None:
    """In the worker's main process: purge, then deliver from the outbox for as long as
    the worker runs (a daemon thread). None without a webhook."""
    try:
        store = open_store(settings)
    except StoreError as error:
        logger.error("%s: nothing will be kept or delivered", error)
        return None
    purge_old(store, settings)
    if settings.webhook is None:
        return None
    loop = DeliveryLoop(store, settings.webhook)
    loop.start()
    logger.info("delivering messages and call records to %s", settings.webhook.host)
    return loop


def storage_status(settings: Settings) -> tuple[bool, str]:
    """For ``agent.py check``: can the worker keep messages and records, and is anything
    waiting for the webhook? (ok, what to say)."""
    try:
        with open_store(settings) as store:
            waiting = [
                *store.recent_messages(limit=1000, undelivered_only=True),
                *store.recent_calls(limit=1000, undelivered_only=True),
            ]
    except StoreError as error:
        return False, str(error)
    where = f"messages and call records kept in {settings.storage.data_dir}"
    if settings.webhook is None:
        return True, f"{where}, locally only (no [webhook])"
    pending = [item for item in waiting if item.delivery.status.value == "pending"]
    if not pending:
        return True, f"{where}; delivered to {settings.webhook.host}, none waiting"
    errors = [item.delivery.last_error for item in pending if item.delivery.last_error]
    last = f"; last error: {errors[0]}" if errors else ""
    return True, f"{where}; {len(pending)} waiting for {settings.webhook.host}{last}"
