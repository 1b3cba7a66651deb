"""``uv run agent.py calls`` and ``uv run agent.py messages``: the recent ones, read from
the data directory's store (records_view.py prints them).

They need only ``[storage]`` of assistant.toml (and ASSISTANT_DATA_DIR), never a secret,
so an operator can look at a worker's records with nothing else set up.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

from config import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ConfigError
from config_checks import Problems
from config_file import read_config
from config_storage import parse_storage
from records_view import calls_text, messages_text, parse_since
from store import Store, StoreError, utc_now
from store_schema import DB_NAME

COMMANDS = ("calls", "messages")


def parser(command: str) -> argparse.ArgumentParser:
    what = "calls, with how each ended" if command == "calls" else "messages callers left"
    cli = argparse.ArgumentParser(
        prog=f"agent.py {command}",
        description=f"Show the recent {what}, and anything the webhook has not accepted yet.",
    )
    cli.add_argument("--since", help="how far back: 90m, 24h, 7d, 2w, or a date (2026-12-01)")
    cli.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    cli.add_argument("--json", action="store_true", help="JSON for scripts")
    cli.add_argument(
        "--show-numbers", action="store_true", help="show phone numbers in full (masked by default)"
    )
    return cli


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


def run(command: str, argv: Sequence[str], env: Mapping[str, str]) -> int:
    options = parser(command).parse_args(list(argv))
    try:
        since: datetime | None = (
            parse_since(options.since, now=utc_now()) if options.since else None
        )
        directory = data_dir(env)
    except (ValueError, ConfigError) as error:
        print(error, file=sys.stderr)
        return 2
    if not (directory / DB_NAME).exists():
        print(f"nothing kept yet: no database in {directory}", file=sys.stderr)
        return 0
    try:
        with Store.open(directory) as store:
            show = calls_text if command == "calls" else messages_text
            print(
                show(
                    store,
                    since=since,
                    limit=options.limit,
                    as_json=options.json,
                    show_numbers=options.show_numbers,
                )
            )
    except StoreError as error:
        print(error, file=sys.stderr)
        return 1
    return 0
