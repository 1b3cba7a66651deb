"""Preflight: ``uv run agent.py check`` tells whether a call would reach this agent.

It checks, without taking calls, everything between a caller dialing and the agent
answering: the configuration, the prompts and Silero VAD (the worker's own start-up
validation: what stops the worker fails here too, example values left in the
configuration among it), the LiveKit credentials, the inbound
trunks and the dispatch rule that must name this agent, and, when a destination allows
warm transfer, the outbound trunk it dials through.

Each check is a ``Check`` (✓ or ✗, what was found, how to fix it). Secrets are never
printed. The business's trunk numbers are shown in full (they are its own published
numbers, and the point of the report is to say exactly which ones reach the agent);
callers' numbers, from allow-lists, are masked as in the logs.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping
from urllib.parse import urlparse

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

import prompts
from config import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ConfigError, Settings, load_settings
from config_placeholders import example_values
from preflight_report import Check, format_report
from preflight_sip import dispatch_checks, outbound_check

# One request's budget; the whole check makes at most four.
TIMEOUT_S = 10.0
_LIVEKIT_VARS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, DecodeError)


# --------------------------------------------------------------------------- config


def check_config(env: Mapping[str, str]) -> tuple[Settings | None, list[Check]]:
    """The worker's start-up validation (settings, secrets, every prompt), as checks."""
    try:
        settings = load_settings(env)
    except ConfigError as e:
        return None, [_config_problem(title, p) for title, ps in e.sections for p in ps]
    try:
        prompts.check(settings)
    except prompts.PromptError as e:
        return settings, [Check("prompts", False, str(e), "fix the prompt file it names")]
    if examples := example_values(settings):  # valid, but not this business's
        return settings, [
            Check("configuration", False, example, f"edit {settings.source}")
            for example in examples
        ]
    return settings, [
        Check(
            "configuration",
            True,
            f"{settings.source} and every prompt are valid (agent name "
            f'"{settings.agent_name}"; transfer destinations: '
            f"{', '.join(d.key for d in settings.destinations) or 'none'})",
        )
    ]


def _config_problem(title: str, problem: str) -> Check:
    """One problem of a ConfigError section, with the fix its section implies."""
    title = title.rstrip(":")
    if title.startswith("Missing environment variables"):
        variable, _, what = problem.partition(": ")
        return Check(
            "configuration",
            False,
            f"{variable} is not set",
            f"set it to {what} (in .env.local or the environment; .env.example lists them all)",
        )
    if title.startswith("Invalid environment variables"):
        variable = problem.split(" ", 1)[0].rstrip(":")
        return Check(
            "configuration",
            False,
            problem,
            f"correct {variable} in .env.local, or in the environment if it is set there "
            "(a variable set in the environment wins over .env.local)",
        )
    if title.startswith("Configuration problems in "):
        path = title.removeprefix("Configuration problems in ")
        return Check("configuration", False, problem, f"edit {path}")
    if title.startswith("Configuration file not found"):
        return Check("configuration", False, title, problem)
    if title.startswith("Cannot read the configuration file"):
        return Check(
            "configuration",
            False,
            f"{title}: {problem}",
            f"point {CONFIG_FILE_ENV} at the assistant's TOML file, UTF-8 text the worker's "
            f"user can read (unset, it is {DEFAULT_CONFIG_FILE})",
        )
    if title.endswith("is not valid TOML"):
        return Check("configuration", False, f"{title}: {problem}", "fix the TOML syntax there")
    return Check("configuration", False, f"{title}: {problem}", "see the message")


def check_vad() -> Check:
    """Silero VAD, which every call needs: the worker does not start without it."""
    from models import vad_problem  # loads the model plugins: only when checking

    problem = vad_problem()
    if problem is not None:  # the message says how to fix it
        return Check("voice activity detection", False, problem)
    return Check("voice activity detection", True, "Silero VAD loads")


def check_storage(settings: Settings) -> Check:
    """The data directory (messages, call records) and what waits for the webhook."""
    from keeping import storage_status

    ok, detail = storage_status(settings)
    fix = "" if ok else "set storage.data_dir (or ASSISTANT_DATA_DIR) to a writable directory"
    return Check("storage", ok, detail, fix)


# --------------------------------------------------------------------------- LiveKit


async def check_credentials(lk: api.LiveKitAPI, url: str) -> Check:
    """One cheap authenticated call (ListRooms): is the server there, and does it
    accept the key? The key and secret themselves are never printed."""
    name = "LiveKit credentials"
    url_fix = (
        "set LIVEKIT_URL to your LiveKit server (LiveKit Cloud: wss://<project>.livekit.cloud; "
        "self-hosted: your server's address) and check it is reachable from here"
    )
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.netloc:
        return Check(
            name, False, f"LIVEKIT_URL = {url!r} is not a ws(s):// or http(s):// URL", url_fix
        )
    try:
        await lk.room.list_rooms(proto_room.ListRoomsRequest())
    except api.ServerError as e:
        if e.status == 401:
            return Check(
                name,
                False,
                f"LiveKit rejected LIVEKIT_API_KEY/LIVEKIT_API_SECRET for {url}",
                "copy the API key and its secret of the project LIVEKIT_URL names (LiveKit "
                "Cloud: Settings > API keys; self-hosted: the keys in the server's config) "
                "into .env.local or the environment",
            )
        return Check(name, False, f"{url} answered {_server_error(e)}", url_fix)
    except _NETWORK_ERRORS as e:
        return Check(name, False, f"cannot reach LiveKit at {url}: {_network_error(e)}", url_fix)
    return Check(name, True, f"{url} accepted LIVEKIT_API_KEY/LIVEKIT_API_SECRET")


async def check_livekit(settings: Settings, lk: api.LiveKitAPI) -> list[Check]:
    """Credentials, then what LiveKit would do with a call: trunks, dispatch rule,
    numbers reaching this agent, and the outbound trunk warm transfer needs."""
    credentials = await check_credentials(lk, settings.secrets.livekit_url)
    if not credentials.ok:
        return [credentials]  # every other request would fail the same way
    checks = [credentials]
    try:
        trunks = (await lk.sip.list_inbound_trunk(proto_sip.ListSIPInboundTrunkRequest())).items
        rules = (await lk.sip.list_dispatch_rule(proto_sip.ListSIPDispatchRuleRequest())).items
        outbound = []
        if settings.destinations_for("warm"):
            request = proto_sip.ListSIPOutboundTrunkRequest()
            outbound = (await lk.sip.list_outbound_trunk(request)).items
    except (api.ServerError, *_NETWORK_ERRORS) as e:
        why = _server_error(e) if isinstance(e, api.ServerError) else _network_error(e)
        fix = (
            "make sure this LiveKit server has SIP (LiveKit Cloud does; a self-hosted server "
            "needs the LiveKit SIP service and Redis)"
        )
        return [*checks, Check("SIP", False, f"listing SIP trunks and rules failed: {why}", fix)]
    return [*checks, *dispatch_checks(settings, trunks, rules), outbound_check(settings, outbound)]


def _server_error(e: api.ServerError) -> str:
    return f"HTTP {e.status} ({e.code}{': ' + e.message if e.message else ''})"


def _network_error(e: BaseException) -> str:
    if isinstance(e, TimeoutError):
        return f"no answer within {TIMEOUT_S:g} s"
    if isinstance(e, DecodeError):
        return "the answer is not LiveKit's API (is this the LiveKit server's URL?)"
    return str(e) or type(e).__name__


# --------------------------------------------------------------------------- entry


async def preflight(env: Mapping[str, str]) -> list[Check]:
    """Every check. With an invalid configuration, Silero VAD and the credentials (when
    the LIVEKIT_* variables are set) are still checked, so one run reports every kind of
    problem; the SIP checks need the agent name and destinations, so they wait for a
    valid one."""
    settings, checks = check_config(env)
    checks.append(check_vad())
    if settings is not None:
        checks.append(check_storage(settings))
    if settings is not None:
        s = settings.secrets
        url, key, secret = s.livekit_url, s.livekit_api_key, s.livekit_api_secret
    else:
        url, key, secret = (env.get(name, "").strip() for name in _LIVEKIT_VARS)
    if not (url and key and secret):
        return checks  # already reported as missing variables
    client_timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
    async with api.LiveKitAPI(url, key, secret, timeout=client_timeout) as lk:
        if settings is None:
            checks.append(await check_credentials(lk, url))
        else:
            checks += await check_livekit(settings, lk)
    return checks


def run(env: Mapping[str, str]) -> int:
    """``agent.py check``: print the report; exit status 0 when every check passed."""
    checks = asyncio.run(preflight(env))
    report = format_report(checks)
    try:
        print(report)
    except UnicodeEncodeError:  # a terminal that cannot show ✓/✗
        print(
            report.replace("✓", "[ok]").replace("✗", "[FAIL]").encode("ascii", "replace").decode()
        )
    sys.stdout.flush()
    return 0 if all(check.ok for check in checks) else 1
