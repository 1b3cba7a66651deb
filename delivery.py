"""Delivering the outbox to the business's webhook: signed, retried, at least once.

Each pass claims due items one at a time (store.py's leases: never two processes on one
item at once; an item whose deliverer died comes back when its lease runs out), POSTs it
once, and records the answer. docs/webhooks.md is the receiver's side of this.

What an answer means:

* **2xx**: delivered.
* **408, 429, 5xx, a timeout, a refused or dropped connection, an answer that is not
  HTTP**: the receiver or the path to it is having trouble; retried with exponential
  backoff and jitter, from ``BACKOFF_BASE_S`` doubling up to ``BACKOFF_CAP_S``, longer if
  a 429/503 says ``Retry-After``.
* **Any other 4xx, or a 3xx**: the receiver will not take this request as it stands (a
  wrong URL or secret, a bug in the receiver, a moved endpoint). Resending soon will not
  help, but someone will fix it, and a message dropped is a caller nobody calls back: it
  is retried every ``BACKOFF_CAP_S``, logged as an error, and shown by ``agent.py
  messages``/``calls`` with the answer. Redirects are not followed: urllib would turn
  the POST into a body-less GET and report the GET's 200 as a delivery.

One attempt is one HTTP request: ``urllib.request`` never retries by itself (we give it
no redirect handler to follow). ``timeout_s`` bounds the connect and each wait for data;
a lease is long enough for several of those, and if a stalled request outlives it the
item may be sent twice, which the idempotency key makes harmless. Proxies from the
environment (``HTTPS_PROXY``, ``NO_PROXY``) are honoured as urllib does.

The webhook URL can hold a token in its query: logs and stored errors name only its host.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from privacy import mask_numbers, safe_name
from records import iso
from store import Claim, Store, utc_now

logger = logging.getLogger("phone-assistant.delivery")

SIGNATURE_HEADER = "Webhook-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256>
TIMESTAMP_HEADER = "Webhook-Timestamp"  # the same <unix seconds>
IDEMPOTENCY_HEADER = "Idempotency-Key"  # the same for every attempt at one item
ATTEMPT_HEADER = "Webhook-Attempt"  # 1, 2, ...: for the receiver's logs
USER_AGENT = "phone-assistant-webhook/1"

BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0
DEFAULT_TOLERANCE_S = 300.0
_RETRYABLE_4XX = frozenset({408, 425, 429})
_ERROR_BODY_CHARS = 200


# --------------------------------------------------------------------------- signing


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (the Webhook-Signature value) signs these exact ``body`` bytes
    with ``secret``, at a time within ``tolerance_s`` of ``now`` (Unix seconds; the
    clock by default). The reference a receiver can copy: it needs only the stdlib.

    The time check stops a captured request from being replayed later; the HMAC covers
    the timestamp, so it cannot be moved. Several ``v1=`` entries are allowed (any one
    matching is enough), so a sender can sign with an old and a new secret while they
    are rotated. Compare with ``hmac.compare_digest``, never ``==``."""
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, c) for c in candidates)


# --------------------------------------------------------------------------- the webhook


@dataclass(frozen=True)
class Attempt:
    """What one POST came to."""

    ok: bool
    status: int | None = None  # the HTTP status, when an HTTP answer came
    error: str | None = None  # what went wrong, for the outbox and the operator
    retry_after_s: float | None = None  # the receiver's Retry-After, in seconds
    rejected: bool = False  # a 3xx/4xx the receiver will keep giving until fixed


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None  # urllib then raises the 3xx as an HTTPError


@dataclass(frozen=True)
class Webhook:
    """The business's endpoint. ``secret`` signs every request (never logged)."""

    url: str
    secret: str = field(repr=False)
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("webhook url: must be an http:// or https:// URL with a host")
        if not self.secret:
            raise ValueError("webhook secret: must not be empty")
        if not self.timeout_s > 0:
            raise ValueError(f"webhook timeout_s: must be more than 0, got {self.timeout_s}")

    @property
    def host(self) -> str:
        """What logs and errors call the endpoint: the URL may carry a token."""
        return urlsplit(self.url).hostname or "?"

    def __repr__(self) -> str:
        return f"Webhook(host={self.host!r}, timeout_s={self.timeout_s})"

    def post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        """Send ``body`` once and classify the answer; never raises for a network fault."""
        request = urllib.request.Request(self.url, data=body, method="POST", headers=headers)
        opener = urllib.request.build_opener(_NoRedirects)
        try:
            with opener.open(request, timeout=self.timeout_s) as response:
                response.read(64 * 1024)  # let a keep-alive connection settle; body unused
                return Attempt(ok=True, status=response.status)
        except urllib.error.HTTPError as e:
            return _refused(e, self.host)
        except (urllib.error.URLError, OSError, ValueError) as e:
            # http.client's BadStatusLine/RemoteDisconnected are OSError/ValueError kin
            reason = e.reason if isinstance(e, urllib.error.URLError) else e
            return Attempt(ok=False, error=f"{_describe(reason)} from {self.host}")
        except Exception as e:  # http.client.HTTPException and anything else on the wire
            return Attempt(ok=False, error=f"{_describe(e)} from {self.host}")


def _describe(error: object) -> str:
    if isinstance(error, TimeoutError):
        return "no answer in time"
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _refused(e: urllib.error.HTTPError, host: str) -> Attempt:
    try:
        snippet = e.read(_ERROR_BODY_CHARS * 4).decode("utf-8", "replace")
    except Exception:
        snippet = ""
    snippet = " ".join(snippet.split())[:_ERROR_BODY_CHARS]
    error = f"HTTP {e.code} from {host}" + (f": {snippet}" if snippet else "")
    if 300 <= e.code < 400:
        error += (
            f" (a redirect to {urlsplit(e.headers.get('Location') or '').hostname}; not followed)"
        )
    retry_after = None
    value = (e.headers.get("Retry-After") or "").strip()
    if value.isdigit():
        retry_after = float(value)
    transient = e.code >= 500 or e.code in _RETRYABLE_4XX
    return Attempt(
        ok=False, status=e.code, error=error, retry_after_s=retry_after, rejected=not transient
    )


# --------------------------------------------------------------------------- one pass


def backoff_s(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """The wait after failed attempt ``attempt`` (1, 2, ...): between half and all of
    ``BACKOFF_BASE_S * 2**(attempt-1)``, capped at ``BACKOFF_CAP_S``. The jitter spreads
    out the retries of many items that failed together in one outage."""
    full = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** min(max(attempt, 1) - 1, 30))
    return full / 2 + rand() * full / 2


def retry_delay_s(
    attempt: int, result: Attempt, rand: Callable[[], float] = random.random
) -> float:
    if result.rejected:
        return BACKOFF_CAP_S
    delay = backoff_s(attempt, rand)
    if result.retry_after_s is not None:
        delay = max(delay, result.retry_after_s)
    return min(delay, BACKOFF_CAP_S)


def envelope(claim: Claim) -> bytes:
    """The request body: the same bytes on every attempt at one item."""
    payload = {
        "type": claim.kind,
        "id": claim.item_id,
        "idempotency_key": claim.idempotency_key,
        "created_at": iso(claim.created_at),
        "data": claim.data,
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Delivered:
    """One attempt in a pass: what was sent and what came of it."""

    kind: str
    item_id: str
    idempotency_key: str
    attempt: int
    result: Attempt
    retry_at: datetime | None  # None when delivered


@dataclass(frozen=True)
class DeliveryReport:
    attempts: tuple[Delivered, ...] = ()

    @property
    def delivered(self) -> int:
        return sum(a.result.ok for a in self.attempts)

    @property
    def failed(self) -> int:
        return sum(not a.result.ok for a in self.attempts)


def lease_for(webhook: Webhook) -> timedelta:
    """Long enough for one request's connect, send and answer, with room to spare."""
    return timedelta(seconds=3 * webhook.timeout_s + 30)


def deliver_due(
    store: Store,
    webhook: Webhook,
    *,
    now: datetime | None = None,
    limit: int = 50,
    claimer: str = "",
    rand: Callable[[], float] = random.random,
) -> DeliveryReport:
    """One pass: deliver up to ``limit`` items that are due. ``now`` fixes the pass's
    clock (the outbox's times and the signature's timestamp); by default each attempt
    reads the real clock. An item that fails is not tried again in the same pass."""
    done: list[Delivered] = []
    lease = lease_for(webhook)
    for _ in range(limit):
        at = now or utc_now()
        due = store.next_due_at()
        if due is None or due > at:
            break
        claims = store.claim_due(at, lease, 1, claimer=claimer)
        if not claims:
            break
        claim = claims[0]
        timestamp = int(at.timestamp())
        body = envelope(claim)
        result = webhook.post(
            body,
            {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                IDEMPOTENCY_HEADER: claim.idempotency_key,
                TIMESTAMP_HEADER: str(timestamp),
                SIGNATURE_HEADER: sign(webhook.secret, timestamp, body),
                ATTEMPT_HEADER: str(claim.attempt),
            },
        )
        finished = now or utc_now()
        name = f"{claim.kind} {safe_name(claim.item_id)}"
        if result.ok:
            store.mark_delivered(claim, finished)
            logger.info("delivered %s (attempt %d) to %s", name, claim.attempt, webhook.host)
            done.append(
                Delivered(
                    claim.kind, claim.item_id, claim.idempotency_key, claim.attempt, result, None
                )
            )
            continue
        retry_at = finished + timedelta(seconds=retry_delay_s(claim.attempt, result, rand))
        store.mark_failed(claim, result.error or "failed", retry_at)
        logger.log(
            logging.ERROR if result.rejected else logging.WARNING,
            "could not deliver %s (attempt %d): %s; next attempt at %s%s",
            name,
            claim.attempt,
            mask_numbers(result.error or "failed"),
            iso(retry_at),
            "; the webhook refuses it: check its URL, secret and handler"
            if result.rejected
            else "",
        )
        done.append(
            Delivered(
                claim.kind, claim.item_id, claim.idempotency_key, claim.attempt, result, retry_at
            )
        )
    return DeliveryReport(tuple(done))


# --------------------------------------------------------------------------- the loop


def run_forever(
    store: Store,
    webhook: Webhook,
    stop_event: threading.Event,
    poll_s: float = 2.0,
    *,
    wake_event: threading.Event | None = None,
    clock: Callable[[], datetime] = utc_now,
    on_report: Callable[[DeliveryReport], None] | None = None,
) -> None:
    """Deliver until ``stop_event`` is set: a pass, then wait until the next item is
    due, ``poll_s`` at most (jobs in other processes save without telling us; a poll is
    a read, no lock), or until ``wake_event`` is set. Errors are logged, never fatal.
    ``on_report`` hears every pass that attempted something (for a health check, or a
    test waiting for one)."""
    wake = wake_event or threading.Event()
    while not stop_event.is_set():
        wait = poll_s
        try:
            report = deliver_due(store, webhook, now=clock())
            if report.attempts and on_report is not None:
                on_report(report)
            due = store.next_due_at()
            if due is not None:
                wait = min(poll_s, max(0.0, (due - clock()).total_seconds()))
        except Exception:
            logger.exception("webhook delivery pass failed; trying again in %.0f s", poll_s)
        if stop_event.is_set():
            break
        if wake.wait(wait):
            wake.clear()


class DeliveryLoop:
    """``run_forever`` on a daemon thread of the worker's main process."""

    def __init__(
        self,
        store: Store,
        webhook: Webhook,
        *,
        poll_s: float = 2.0,
        clock: Callable[[], datetime] = utc_now,
        on_report: Callable[[DeliveryReport], None] | None = None,
    ) -> None:
        self._args = (store, webhook)
        self._poll_s = poll_s
        self._options = {"clock": clock, "on_report": on_report}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the delivery loop is already started")
        self._thread = threading.Thread(
            target=run_forever,
            args=(*self._args, self._stop, self._poll_s),
            kwargs={"wake_event": self._wake, **self._options},
            name="webhook-delivery",
            daemon=True,
        )
        self._thread.start()

    def wake(self) -> None:
        """Run a pass now (something was saved, or the clock moved in a test)."""
        self._wake.set()

    def stop(self, timeout_s: float | None = None) -> bool:
        """Stop after the request in flight, if any; True when the thread has ended.
        An item whose request is cut off stays claimed until its lease runs out."""
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
