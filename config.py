"""The worker's configuration: one frozen object, read and validated once at start-up.

Business settings live in a checked-in TOML file (``assistant.toml``); secrets and
endpoints come from the environment. Every problem found is reported at once, naming
the file, the key and the bad value, so a developer fixes a configuration in one pass
instead of one restart per mistake.

The flow, top to bottom here: ``load_settings`` reads the secrets (``load_secrets``)
and the file (config_file.py), then ``parse_settings`` turns the file's tables into
Settings, each table by its parser (config_tables.py, config_destinations.py and the
other config_*.py), with the checks of config_checks.py. The frozen types are in
config_types.py. Everything the rest of the worker imports is importable from here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from config_checks import (
    AGENT_NAME,
    E164,
    KEY,
    LANGUAGE_CODE,
    ConfigError,
    Problems,
    environment_problems,
    shown_url,
)
from config_destinations import parse_destinations
from config_fallbacks import parse_keypad, parse_reach
from config_file import read_config
from config_placeholders import environment_placeholder
from config_storage import WEBHOOK_SECRET, parse_storage, parse_webhook
from config_tables import (
    FALLBACK_PROVIDERS,
    MAX_FALLBACKS,
    parse_lines,
    parse_models,
    parse_on_failure,
    parse_transfer,
)
from config_turns import TurnTaking, parse_turn_taking
from config_types import (
    TRANSFER_MODES,
    Destination,
    Line,
    ModelChoice,
    Models,
    OnFailure,
    Secrets,
    Settings,
    Transfer,
    TransferMode,
)
from hours_config import parse_hours

# Importable from config as before the split (the rest of the worker imports from here).
__all__ = [
    "CONFIG_FILE_ENV",
    "DEFAULT_CONFIG_FILE",
    "E164",
    "FALLBACK_PROVIDERS",
    "LANGUAGE_CODE",
    "MAX_FALLBACKS",
    "REQUIRED_SECRETS",
    "TRANSFER_MODES",
    "ConfigError",
    "Destination",
    "Line",
    "ModelChoice",
    "Models",
    "OnFailure",
    "Secrets",
    "Settings",
    "Transfer",
    "TransferMode",
    "TurnTaking",
    "load_secrets",
    "load_settings",
    "parse_settings",
]

DEFAULT_CONFIG_FILE = Path(__file__).with_name("assistant.toml")
CONFIG_FILE_ENV = "ASSISTANT_CONFIG"


def load_settings(
    env: Mapping[str, str], *, need_livekit: bool = True, need_deepgram: bool = True
) -> Settings:
    """Read the config file named by ASSISTANT_CONFIG (default: assistant.toml beside
    this module) and the secrets in ``env``; both kinds of problem are reported together.
    ``need_*``: see ``load_secrets``."""
    path = Path(env.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    errors: list[ConfigError] = []
    secrets = Secrets()
    try:
        secrets = load_secrets(env, need_livekit=need_livekit, need_deepgram=need_deepgram)
    except ConfigError as e:
        errors.append(e)

    settings: Settings | None = None
    try:
        settings = parse_settings(
            read_config(path, CONFIG_FILE_ENV), source=str(path), secrets=secrets, env=env
        )
    except ConfigError as e:
        errors.append(e)
    if errors or settings is None:
        raise ConfigError.combine(errors)
    return settings


# --------------------------------------------------------------------------- secrets

REQUIRED_SECRETS: dict[str, str] = {
    "LIVEKIT_URL": "your LiveKit server, e.g. wss://<project>.livekit.cloud "
    "(LiveKit Cloud: Settings > API keys; self-hosted: your server's URL)",
    "LIVEKIT_API_KEY": "an API key of that LiveKit project or server",
    "LIVEKIT_API_SECRET": "the secret of that API key",
    "DEEPGRAM_API_KEY": "speech-to-text key from the Deepgram console (API Keys)",
    "OPENAI_API_KEY": "LLM and text-to-speech key from the OpenAI platform (API keys)",
}
_LIVEKIT_SECRETS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")


# What to put in the optional variables, for a placeholder found in one.
_OPTIONAL_SECRETS: dict[str, str] = {
    "OPENAI_BASE_URL": "an OpenAI-compatible server's URL, or leave it unset for OpenAI",
    "DEEPGRAM_BASE_URL": "a self-hosted Deepgram's /v1/listen URL, or leave it unset for "
    "Deepgram's cloud",
    "SIP_OUTBOUND_TRUNK_ID": "the id of your outbound SIP trunk (lk sip outbound list), or "
    "leave it unset",
}


def load_secrets(
    env: Mapping[str, str], *, need_livekit: bool = True, need_deepgram: bool = True
) -> Secrets:
    """Read credentials from ``env``. Console mode talks to no LiveKit server, and typing
    in it (``console --text``) hears nothing, so those may run without the LIVEKIT_*
    variables or DEEPGRAM_API_KEY (which are then not checked)."""
    unneeded = (() if need_livekit else _LIVEKIT_SECRETS) + (
        () if need_deepgram else ("DEEPGRAM_API_KEY",)
    )
    wanted = [k for k in REQUIRED_SECRETS if k not in unneeded]
    missing = [k for k in wanted if not env.get(k, "").strip()]
    errors: list[ConfigError] = []
    if missing:
        errors.append(
            ConfigError(
                "Missing environment variables (put them in .env.local or the environment; "
                ".env.example lists them all):",
                [f"{k}: {REQUIRED_SECRETS[k]}" for k in missing],
            )
        )
    if invalid := _invalid_variables(env, skip=unneeded):
        errors.append(
            ConfigError(
                "Invalid environment variables (in .env.local or the environment):", invalid
            )
        )
    if errors:
        raise ConfigError.combine(errors)
    return Secrets(
        livekit_url=env.get("LIVEKIT_URL", "").strip(),
        livekit_api_key=env.get("LIVEKIT_API_KEY", "").strip(),
        livekit_api_secret=env.get("LIVEKIT_API_SECRET", "").strip(),
        deepgram_api_key=env.get("DEEPGRAM_API_KEY", "").strip(),
        openai_api_key=env["OPENAI_API_KEY"].strip(),
        openai_base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
        deepgram_base_url=env.get("DEEPGRAM_BASE_URL", "").strip() or None,
        sip_outbound_trunk_id=env.get("SIP_OUTBOUND_TRUNK_ID", "").strip() or None,
        webhook_secret=env.get(WEBHOOK_SECRET, "").strip(),
    )


def _invalid_variables(env: Mapping[str, str], *, skip: Sequence[str]) -> list[str]:
    """One problem per variable: for a key or secret, that it is a placeholder first (a
    pasted "<your key>" is better told so than that it holds a space); for a URL or id,
    that it is malformed first (the scheme must be fixed whatever the host)."""
    placeholders = environment_placeholders(env, skip=skip)
    malformed = {
        problem.split(" ", 1)[0].rstrip(":"): problem
        for problem in environment_problems(env, skip=skip)
    }
    for name in placeholders:
        if _is_secret(name):
            malformed.pop(name, None)
    return [*malformed.values()] + [p for n, p in placeholders.items() if n not in malformed]


def _is_secret(name: str) -> bool:
    return name.endswith(("_KEY", "_SECRET"))


def environment_placeholders(env: Mapping[str, str], *, skip: Sequence[str] = ()) -> dict[str, str]:
    """The variables still holding an example's placeholder, with the problem to report:
    what it is and what to put there (a key or secret is named, never shown)."""
    found: dict[str, str] = {}
    for name, what in {**REQUIRED_SECRETS, **_OPTIONAL_SECRETS}.items():
        value = "" if name in skip else env.get(name, "").strip()
        if not value or (why := environment_placeholder(name, value)) is None:
            continue
        if _is_secret(name):
            found[name] = f"{name}: {why} (the value is not shown); put {what}"
        else:
            found[name] = f"{name} = {shown_url(value)}: {why}; put {what}"
    return found


def by_key(problems: list[str], raw_destinations: Any) -> list[str]:
    """``problems`` with each destination named by its key, as people know it
    (``destinations.billing.to``), rather than by its place among the [[destinations]]
    (``destinations[0].to``). A destination whose key is missing, malformed or shared
    with another keeps its place, the only name that is certainly its own."""
    listed = raw_destinations if isinstance(raw_destinations, list) else []
    keys = [d.get("key") if isinstance(d, Mapping) else None for d in listed]
    names = {
        i: f"destinations.{key}"
        for i, key in enumerate(keys)
        if isinstance(key, str) and KEY.match(key) and keys.count(key) == 1
    }
    return [
        _PLACE.sub(lambda m: names.get(int(m.group(1)), m.group(0)), problem)
        for problem in problems
    ]


_PLACE = re.compile(r"\bdestinations\[([0-9]+)\]")


# --------------------------------------------------------------------------- the file

_TABLES = {
    "business",
    "agent",
    "models",
    "lines",
    "destinations",
    "transfer",
    "on_failure",
    "keypad",
    "storage",
    "webhook",
    "hours",
    "turn_taking",
}


def parse_settings(
    data: Mapping[str, Any],
    *,
    source: str,
    secrets: Secrets,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Turn the parsed TOML into Settings, or raise ConfigError listing every problem.
    ``env`` may override a setting that is not a secret (ASSISTANT_DATA_DIR)."""
    p = Problems()
    p.keys(data, _TABLES, "")

    business = p.table(data, "business")
    p.keys(business, {"name"}, "business.")
    business_name = p.text(business, "name", "business.")
    if business_name is None and "name" not in business:
        p.items.append("business.name: missing (the name the agent answers the phone with)")

    agent = p.table(data, "agent")
    p.keys(agent, {"name"}, "agent.")
    agent_name = p.text(
        agent,
        "name",
        "agent.",
        default="phone-assistant",
        pattern=AGENT_NAME,
        hint="letters, digits, '.', '_' and '-', at most 64 (the dispatch rule names it)",
    )

    models = parse_models(p.table(data, "models"), p)
    lines = parse_lines(p.table(data, "lines"), models, p)
    # after the lines: every destination needs a name in each language a line speaks
    destinations = parse_destinations(data.get("destinations", []), models, lines, p)
    schedules = parse_hours(data.get("hours", {}), p)
    destinations = parse_reach(data.get("destinations"), destinations, schedules, p)
    keypad = parse_keypad(p.table(data, "keypad"), destinations, p)
    storage = parse_storage(p.table(data, "storage"), source, env or {}, p)
    webhook = parse_webhook(p.table(data, "webhook"), secrets.webhook_secret, p)
    turn_taking = parse_turn_taking(p.table(data, "turn_taking"), p)

    transfer = parse_transfer(p.table(data, "transfer"), source, secrets, p)
    if any("warm" in d.modes for d in destinations) and not transfer.outbound_trunk_id:
        p.items.append(
            "transfer.outbound_trunk_id: missing; a destination allows warm transfer, which "
            "dials out through an outbound SIP trunk (set it here or in SIP_OUTBOUND_TRUNK_ID)"
        )

    on_failure = parse_on_failure(
        p.table(data, "on_failure"), destinations, data.get("destinations"), p
    )

    if p.items or business_name is None or agent_name is None:
        raise ConfigError(
            f"Configuration problems in {source}:", by_key(p.items, data.get("destinations"))
        )
    return Settings(
        business_name=business_name,
        agent_name=agent_name,
        models=models,
        lines=lines,
        destinations=destinations,
        transfer=transfer,
        secrets=secrets,
        source=source,
        on_failure=on_failure,
        keypad=keypad,
        storage=storage,
        webhook=webhook,
        turn_taking=turn_taking,
    )
