"""Preflight: ``uv run agent.py check`` tells whether a call would reach this agent.

It checks, without taking calls, everything between a caller dialing and the agent
answering: the configuration, the prompts and Silero VAD (the worker's own start-up
validation: what stops the worker fails here too), the LiveKit credentials, the inbound
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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api
from livekit.protocol import room as proto_room
from livekit.protocol import sip as proto_sip

import prompts
from caller import mask_number
from config import CONFIG_FILE_ENV, DEFAULT_CONFIG_FILE, ConfigError, Settings, load_settings

# One request's budget; the whole check makes at most four.
TIMEOUT_S = 10.0
_LIVEKIT_VARS = ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")
_NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, DecodeError)


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


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


# --------------------------------------------------------------------------- SIP


def dispatch_checks(
    settings: Settings,
    trunks: Sequence[proto_sip.SIPInboundTrunkInfo],
    rules: Sequence[proto_sip.SIPDispatchRuleInfo],
) -> list[Check]:
    """Inbound trunks, the dispatch rule naming this agent, and the numbers reaching it,
    from what LiveKit listed (no I/O)."""
    agent = settings.agent_name
    checks = [_trunks_check(trunks)]
    mine = [r for r in rules if agent in _agents(r)]
    if not rules:
        checks.append(
            Check(
                "dispatch rule",
                False,
                "no SIP dispatch rule, so LiveKit turns every inbound call away",
                f"lk sip dispatch create telephony/dispatch-rule.json (its roomConfig.agents "
                f'must name "{agent}"; add --trunks <inbound trunk id> to limit it to a trunk)',
            )
        )
        return checks
    if not mine:
        others = sorted({name for r in rules for name in _agents(r)})
        found = "; ".join(f"{_rule(r)} dispatches {_names(_agents(r))}" for r in rules)
        other = f'"{others[0]}"' if others else '"<the agent name in the rule>"'
        checks.append(
            Check(
                "dispatch rule",
                False,
                f'no dispatch rule dispatches agent "{agent}": {found}',
                f"set [agent] name = {other} in {settings.source}, or make the rule's "
                f'roomConfig.agents [{{"agentName": "{agent}"}}]: lk sip dispatch delete '
                f"{rules[0].sip_dispatch_rule_id}, then lk sip dispatch create "
                "telephony/dispatch-rule.json",
            )
        )
        return checks
    checks.append(
        Check(
            "dispatch rule",
            True,
            f'{", ".join(_rule(r) for r in mine)} dispatches agent "{agent}"'
            + (f" ({len(rules) - len(mine)} other rules)" if len(rules) > len(mine) else ""),
        )
    )
    if trunks:
        checks.append(_numbers_check(agent, trunks, rules, mine))
    return checks


def _trunks_check(trunks: Sequence[proto_sip.SIPInboundTrunkInfo]) -> Check:
    if not trunks:
        return Check(
            "inbound trunks",
            False,
            "no inbound SIP trunk: no number from a SIP provider reaches this LiveKit project",
            "lk sip inbound create --numbers <your number, E.164> telephony/inbound-trunk.json "
            "(a number bought from LiveKit itself needs no trunk: then only the dispatch "
            "rule matters)",
        )
    listed = "; ".join(f"{_trunk(t)}: {', '.join(t.numbers) or 'any number'}" for t in trunks)
    return Check("inbound trunks", True, listed)


def _numbers_check(
    agent: str,
    trunks: Sequence[proto_sip.SIPInboundTrunkInfo],
    rules: Sequence[proto_sip.SIPDispatchRuleInfo],
    mine: Sequence[proto_sip.SIPDispatchRuleInfo],
) -> Check:
    """Which trunk numbers a call reaches this agent on, following LiveKit's matching:
    a rule applies to the trunks in its trunk_ids (all trunks when empty) and, when set,
    only to calls to its numbers and from its inbound_numbers; for a trunk, rules naming
    it take precedence over rules for all trunks."""
    reached: list[str] = []
    elsewhere: list[str] = []
    for trunk in trunks:
        for number in trunk.numbers or [None]:
            label = number or f"any number sent to {_trunk(trunk)}"
            fitting = [r for r in rules if _applies(r, trunk, number)]
            named = any(r.trunk_ids for r in fitting if not r.inbound_numbers)
            winners = [r for r in fitting if r.trunk_ids or not named]
            ours = [r for r in winners if agent in _agents(r)]
            if ours:
                best = min(ours, key=lambda r: len(r.inbound_numbers))
                reached.append(label + _conditions(trunk, best))
            else:
                taken = ", ".join(f"{_rule(r)} ({_names(_agents(r))})" for r in winners)
                elsewhere.append(f"{label} -> {taken or 'no rule'}")
    if reached:
        detail = f'calls to {", ".join(reached)} reach "{agent}"'
        if elsewhere:
            detail += f"; not: {'; '.join(elsewhere)}"
        return Check("phone numbers", True, detail)
    trunk_ids = {t.sip_trunk_id for t in trunks}
    unknown = sorted({t for r in mine for t in r.trunk_ids if t not in trunk_ids})
    detail = f'no inbound number reaches "{agent}": ' + "; ".join(elsewhere)
    if unknown:
        detail += f"; its rule names trunks that do not exist: {', '.join(unknown)}"
    return Check(
        "phone numbers",
        False,
        detail,
        f'make the rule for "{agent}" apply to the inbound trunk holding your number: set '
        "its trunkIds to that trunk's id, or leave trunkIds empty for every trunk (a rule "
        "naming a trunk wins over rules for all trunks), and its numbers/inboundNumbers "
        "filters must let the call through",
    )


def _applies(
    rule: proto_sip.SIPDispatchRuleInfo, trunk: proto_sip.SIPInboundTrunkInfo, number: str | None
) -> bool:
    on_trunk = not rule.trunk_ids or trunk.sip_trunk_id in rule.trunk_ids
    to_number = number is None or not rule.numbers or any(_same(number, n) for n in rule.numbers)
    return on_trunk and to_number


def _conditions(trunk: proto_sip.SIPInboundTrunkInfo, rule: proto_sip.SIPDispatchRuleInfo) -> str:
    conditions = [
        f"only from {_masked(numbers)}"
        for numbers in (trunk.allowed_numbers, rule.inbound_numbers)
        if numbers
    ]
    if _pin(rule):
        conditions.append("after the caller enters the rule's PIN")
    return f" ({', '.join(conditions)})" if conditions else ""


def outbound_check(settings: Settings, trunks: Sequence[proto_sip.SIPOutboundTrunkInfo]) -> Check:
    """The outbound trunk warm transfer dials through must exist."""
    wanted = settings.transfer.outbound_trunk_id
    warm = ", ".join(d.key for d in settings.destinations_for("warm"))
    if not warm:
        return Check("outbound trunk", True, "not needed: no destination allows warm transfer")
    found = next((t for t in trunks if t.sip_trunk_id == wanted), None)
    if found is not None:
        return Check(
            "outbound trunk",
            True,
            f"{_trunk(found)} exists; warm transfer to {warm} dials through it",
        )
    existing = ", ".join(_trunk(t) for t in trunks)
    setting = f"[transfer] outbound_trunk_id in {settings.source} (or SIP_OUTBOUND_TRUNK_ID)"
    return Check(
        "outbound trunk",
        False,
        f"outbound trunk {wanted} (warm transfer to {warm}) does not exist; "
        + (f"outbound trunks here: {existing}" if trunks else "there is no outbound trunk"),
        f"set {setting} to one of them"
        if trunks
        else "lk sip outbound create telephony/outbound-trunk.json (with your provider's "
        f"address and credentials), then set {setting} to the id it prints",
    )


# --------------------------------------------------------------------------- naming


def _agents(rule: proto_sip.SIPDispatchRuleInfo) -> list[str]:
    return [a.agent_name for a in rule.room_config.agents]


def _names(agents: Iterable[str]) -> str:
    return ", ".join(f'"{a}"' for a in agents) or "no agent"


def _rule(rule: proto_sip.SIPDispatchRuleInfo) -> str:
    rid = rule.sip_dispatch_rule_id
    return f'rule "{rule.name}" ({rid})' if rule.name else f"rule {rid}"


def _trunk(trunk: proto_sip.SIPInboundTrunkInfo | proto_sip.SIPOutboundTrunkInfo) -> str:
    return f'"{trunk.name}" ({trunk.sip_trunk_id})' if trunk.name else trunk.sip_trunk_id


def _pin(rule: proto_sip.SIPDispatchRuleInfo) -> str:
    kind = rule.rule.WhichOneof("rule")
    return getattr(rule.rule, kind).pin if kind else ""


def _same(a: str, b: str) -> bool:
    """Phone numbers equal up to formatting, as LiveKit normalises them."""
    return a == b or "".join(filter(str.isdigit, a)) == "".join(filter(str.isdigit, b))


def _masked(numbers: Iterable[str]) -> str:
    return ", ".join(mask_number(n) for n in numbers)


# --------------------------------------------------------------------------- entry


async def preflight(env: Mapping[str, str]) -> list[Check]:
    """Every check. With an invalid configuration, Silero VAD and the credentials (when
    the LIVEKIT_* variables are set) are still checked, so one run reports every kind of
    problem; the SIP checks need the agent name and destinations, so they wait for a
    valid one."""
    settings, checks = check_config(env)
    checks.append(check_vad())
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


def format_report(checks: Sequence[Check]) -> str:
    lines = ["Preflight: would a call reach this agent?", ""]
    for check in checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    lines.append("")
    if failed:
        lines.append(
            f"{failed} of {len(checks)} checks failed. Fix them and run `uv run agent.py check` "
            "again (checks that need a failed one to pass run once it does)."
        )
    else:
        lines.append(f"All {len(checks)} checks passed.")
    return "\n".join(lines)


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
