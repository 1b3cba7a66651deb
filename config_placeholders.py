"""Example values left in a configuration: the shipped assistant.toml's placeholders
(ST_REPLACE_ME, example.com addresses, fictional 555-01xx numbers, the example business)
and the documentation's in the environment (``wss://your-project.livekit.cloud``,
``<key>``, ``sk-...``).

They are valid values, so the value rules of config_checks.py let them through; a
worker answering with them would transfer real callers to a fictional number. So
``agent.py check`` and ``dev``/``start`` refuse them, naming each key and what to put
there; ``console`` (which dials nobody) runs with them and says they are there.
Placeholders in the environment are never useful (the provider refuses them), so
``environment_placeholder`` makes them configuration errors everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from config_checks import shown
from config_types import Settings

# The business name of the shipped assistant.toml.
EXAMPLE_BUSINESS = "Acme Dental"

# North American numbers no phone answers, which examples use: area code 555 (never
# assigned) and 555-0100 to 555-0199 in any area code (reserved for fiction).
FICTIONAL_NUMBER = re.compile(r"\A\+1(?:555[0-9]{7}|[2-9][0-9]{2}55501[0-9]{2})\Z", re.ASCII)

# Host names reserved for documentation and testing (RFC 2606, RFC 6761).
_EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")
_EXAMPLE_TLDS = (".example", ".invalid", ".test")

# A value written to be replaced: REPLACE_ME, CHANGE_ME, <your key>, your-project,
# sk-..., placeholder, or nothing but x's after a key's prefix (APIxxxxxxxx, ST_xxxx).
_PLACEHOLDER = re.compile(
    r"replace|change_?me|placeholder|<[^>]*>|(?:\A|[^a-z])your[-_]|\.\.\.|\u2026"
    r"|\A[A-Za-z]{0,4}[-_]?(?:proj-)?x{4,}\Z",
    re.IGNORECASE,
)

_FICTIONAL = "a fictional number (area code 555 and 555-01xx are for examples; no phone answers)"
_EXAMPLE_HOST = "an example address ({host} is reserved for documentation)"


def is_placeholder(value: str) -> bool:
    """Whether ``value`` reads as a placeholder someone was meant to replace."""
    return bool(_PLACEHOLDER.search(value))


def example_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return host.endswith(_EXAMPLE_TLDS) or any(
        host == domain or host.endswith("." + domain) for domain in _EXAMPLE_DOMAINS
    )


def example_values(settings: Settings) -> list[str]:
    """Every example value left in ``settings``' file, as ``key = value: what it is;
    what to put there``. (The environment's are configuration errors already.)"""
    return list(_example_values(settings))


def _example_values(settings: Settings) -> Iterator[str]:
    if settings.business_name == EXAMPLE_BUSINESS:
        yield (
            f"business.name = {shown(settings.business_name)}: the example's business; "
            "put the name the agent answers the phone with"
        )
    for line in settings.lines:
        if line.number and FICTIONAL_NUMBER.match(line.number):
            yield (
                f"lines.{line.id}.number = {shown(line.number)}: {_FICTIONAL}; put the "
                "number callers dial to reach this line (E.164, as your trunk receives it)"
            )
    for dest in settings.destinations:
        if (why := _example_address(dest.to)) is not None:
            yield (
                f"destinations.{dest.key}.to = {shown(dest.to)}: {why}; put the phone "
                f"number (E.164, like +15551234567) or sip: URI of {dest.name}"
            )
    transfer = settings.transfer
    trunk = transfer.outbound_trunk_id
    if trunk and is_placeholder(trunk) and trunk != settings.secrets.sip_outbound_trunk_id:
        yield (
            f"transfer.outbound_trunk_id = {shown(trunk)}: a placeholder; put the id of your "
            "outbound SIP trunk (lk sip outbound list; telephony/outbound-trunk.json makes "
            "one), or leave it out when no destination allows warm transfer"
        )
    caller_id = transfer.fallback_caller_id
    if caller_id and FICTIONAL_NUMBER.match(caller_id):
        yield (
            f"transfer.fallback_caller_id = {shown(caller_id)}: {_FICTIONAL}; put a number "
            "your trunk may present as caller ID (one of its own), or leave it out"
        )


def _example_address(to: str) -> str | None:
    if FICTIONAL_NUMBER.match(to):
        return _FICTIONAL
    if to.startswith(("sip:", "sips:")):
        host = re.split(r"[:;]", to.split(":", 1)[1].rsplit("@", 1)[-1])[0]
        if example_host(host):
            return _EXAMPLE_HOST.format(host=host)
    return None


def environment_placeholder(name: str, value: str) -> str | None:
    """Why the environment variable ``name`` still holds an example instead of a real
    value, or None. For URLs: an example host or LiveKit Cloud's dashboard."""
    if is_placeholder(value):
        return "still a placeholder from an example"
    if "://" in value:
        host = value.split("://", 1)[1].split("/", 1)[0].rsplit("@", 1)[-1].split(":")[0]
        if example_host(host):
            return _EXAMPLE_HOST.format(host=host)
        if name == "LIVEKIT_URL" and host.lower() == "cloud.livekit.io":
            return "that is LiveKit Cloud's dashboard, not your project's server"
    return None
