"""What the business keeps and where it goes: ``[storage]`` (the data directory of the
embedded SQLite database, how long delivered items are kept, whether call records carry
the transcript) and ``[webhook]`` (where messages and call records are delivered; the
shared secret that signs them comes from the environment, WEBHOOK_SECRET).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config_checks import PATH_MAX, Problems, url_problem
from delivery import Webhook

DEFAULT_DATA_DIR = "data"
DEFAULT_RETENTION_DAYS = 90
MIN_SECRET = 16
WEBHOOK_SECRET = "WEBHOOK_SECRET"


@dataclass(frozen=True, slots=True)
class Storage:
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    retention_days: int = DEFAULT_RETENTION_DAYS
    transcripts: bool = False


def parse_storage(
    raw: Mapping[str, Any], source: str, env: Mapping[str, str], p: Problems
) -> Storage:
    """``data_dir`` is relative to the configuration file; ASSISTANT_DATA_DIR overrides it
    (a Docker volume)."""
    p.keys(raw, {"data_dir", "retention_days", "transcripts"}, "storage.")
    written = env.get("ASSISTANT_DATA_DIR", "").strip() or p.text(
        raw, "data_dir", "storage.", default=DEFAULT_DATA_DIR, limit=PATH_MAX
    )
    data_dir = (Path(source).parent / (written or DEFAULT_DATA_DIR)).resolve()
    if data_dir.exists() and not data_dir.is_dir():
        p.add("storage.data_dir", written, f"exists and is not a directory ({data_dir})")
    days = raw.get("retention_days", DEFAULT_RETENTION_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        p.add("storage.retention_days", days, "must be a whole number of days from 1 to 3650")
        days = DEFAULT_RETENTION_DAYS
    return Storage(data_dir, days, p.flag(raw, "transcripts", "storage."))


def parse_webhook(raw: Mapping[str, Any], secret: str, p: Problems) -> Webhook | None:
    """``secret`` is WEBHOOK_SECRET, from the environment (Secrets)."""
    p.keys(raw, {"url", "timeout"}, "webhook.")
    url = p.text(raw, "url", "webhook.", limit=PATH_MAX)
    if url is None:
        if "timeout" in raw:
            p.items.append("webhook.timeout: set without webhook.url")
        return None
    if why := url_problem(url, ("https", "http")):
        p.add("webhook.url", url, why)
    timeout = raw.get("timeout", 10)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 1 <= timeout <= 60:
        p.add("webhook.timeout", timeout, "must be a number of seconds from 1 to 60")
        timeout = 10
    secret = secret.strip()
    if len(secret) < MIN_SECRET:
        p.items.append(
            f"{WEBHOOK_SECRET}: {'too short' if secret else 'missing'}; webhook.url is set, so "
            f"deliveries are signed with this shared secret (at least {MIN_SECRET} characters, "
            "e.g. from `openssl rand -hex 32`; give the same value to the receiver)"
        )
    if p.items:
        return None  # the settings are not built anyway
    return Webhook(url, secret, float(timeout))
