"""What assistant.toml says about reaching a person: each destination's opening hours
(``hours = "office"``, a schedule of ``[hours]``), its fallback ladder for when nobody
can take the call (``fallback = ["front_desk", "message"]``) and the keypad escape
(``[keypad] "0" = "front_desk"``).

Both only ever name configured destinations (or "message"), so neither the LLM nor the
caller can reach anything else. Parsed after the destinations, reported through the same
Problems collector as the rest of the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from config_checks import Problems
from config_types import Destination
from hours import Schedule
from hours_config import schedule_for

MESSAGE = "message"  # a ladder step: take a message for the destination
MAX_LADDER = 5
KEYPAD_KEYS = "0123456789*#"


def parse_reach(
    raw_destinations: Any,
    destinations: Sequence[Destination],
    schedules: Mapping[str, Schedule],
    p: Problems,
) -> tuple[Destination, ...]:
    """The destinations with their opening ``hours`` (a schedule of ``[hours]`` by name,
    or a table of its own) and their ``fallback`` ladders checked: other destinations'
    keys or "message", each once, in the order they are offered."""
    listed = raw_destinations if isinstance(raw_destinations, list) else []
    raw_by_key = {
        d["key"]: d for d in listed if isinstance(d, Mapping) and isinstance(d.get("key"), str)
    }
    keys = {d.key for d in destinations}
    result = []
    for destination in destinations:
        raw = raw_by_key.get(destination.key, {})
        where = f"destinations.{destination.key}"
        hours = schedule_for(raw.get("hours"), f"{where}.hours", schedules, p)
        ladder = _ladder(raw.get("fallback"), f"{where}.fallback", destination, keys, p)
        result.append(dataclasses.replace(destination, fallback=ladder, hours=hours))
    return tuple(result)


def _ladder(
    raw: Any, where: str, destination: Destination, keys: set[str], p: Problems
) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(step, str) for step in raw):
        p.add(where, raw, 'must be a list of destination keys or "message"')
        return ()
    others = ", ".join(sorted(keys - {destination.key})) or "none"
    ladder: list[str] = []
    for step in raw:
        if step == destination.key:
            p.add(where, step, "a destination cannot be its own fallback")
        elif step in ladder:
            p.add(where, step, "listed twice")
        elif step != MESSAGE and step not in keys:
            p.add(where, step, f'no such destination (destinations: {others}; or "message")')
        else:
            ladder.append(step)
    if len(ladder) > MAX_LADDER:
        p.add(where, raw, f"at most {MAX_LADDER} steps (a caller will not sit through more)")
        return tuple(ladder[:MAX_LADDER])
    return tuple(ladder)


def parse_keypad(
    raw: Mapping[str, Any], destinations: Sequence[Destination], p: Problems
) -> Mapping[str, str]:
    """``[keypad]``: a key of the phone's keypad -> the destination it reaches."""
    keys = {d.key for d in destinations}
    known = ", ".join(sorted(keys)) or "none configured"
    keypad: dict[str, str] = {}
    for key, target in raw.items():
        where = f"keypad.{key}" if key.isalnum() else f'keypad."{key}"'
        if len(key) != 1 or key not in KEYPAD_KEYS:
            p.items.append(f'{where}: not a keypad key (one of 0-9, * or #, quoted: "0" = ...)')
        elif not isinstance(target, str) or target not in keys:
            p.add(where, target, f"no such destination (destinations: {known})")
        else:
            keypad[key] = target
    return MappingProxyType(keypad)
