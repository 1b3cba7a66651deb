"""``uv run agent.py calls`` and ``uv run agent.py messages``: the recent ones, read from
the data directory's store (records_view.py prints them).

They need only ``[storage]`` of assistant.toml (and ASSISTANT_DATA_DIR), never a secret,
so an operator can look at a worker's records with nothing else set up.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from config import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ConfigError
from config_checks import Problems
from config_file import read_config
from config_storage import parse_storage
from records_view import calls_text, messages_text, parse_since
from store import Store, StoreError, utc_now
from store_schema import DB_NAME

CALLS_HELP = (
    "The recent calls: when, which line, how each ended (transferred, message taken, hung "
    "up, failed and why), and any the webhook has not accepted yet."
)
MESSAGES_HELP = (
    "The recent messages callers left, and any the webhook has not accepted yet, with the "
    "last delivery error."
)


def data_dir(env: Mapping[str, str]) -> Path:
    """The data directory the worker uses, from [storage] alone; raises ConfigError."""
    path = Path(env.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    raw = read_config(path, CONFIG_FILE_ENV)
    problems = Problems()
    storage = raw.get("storage", {})
    found = parse_storage(storage if isinstance(storage, Mapping) else {}, str(path), env, problems)
    if problems.items:
        raise ConfigError(f"Configuration problems in {path}:", problems.items)
    return found.data_dir


def run(
    command: str,
    env: Mapping[str, str],
    *,
    since: str | None = None,
    limit: int = 50,
    as_json: bool = False,
    show_numbers: bool = False,
) -> int:
    """``command`` is "calls" or "messages"; returns the exit status."""
    try:
        after: datetime | None = parse_since(since, now=utc_now()) if since else None
        directory = data_dir(env)
    except (ValueError, ConfigError) as error:
        print(error, file=sys.stderr)
        return 2
    if not (directory / DB_NAME).exists():
        print(f"nothing kept yet: no database in {directory}", file=sys.stderr)
        return 0
    show = calls_text if command == "calls" else messages_text
    try:
        with Store.open(directory) as store:
            text = show(store, since=after, limit=limit, as_json=as_json, show_numbers=show_numbers)
    except StoreError as error:
        print(error, file=sys.stderr)
        return 1
    print(text)
    return 0
