"""``[[destinations]]``: the places a caller can be handed to, one table each.

Keys are what the LLM names, so they are unique; every destination has a name in each
language the configuration speaks. Like the other table parsers (config_tables.py) it
records every problem with its location and goes on, so one pass reports them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from config_checks import (
    DESCRIPTION_MAX,
    DTMF,
    HEADERS_MAX,
    KEY,
    Problems,
    address,
    dotted,
    header_problem,
)
from config_types import (
    TRANSFER_MODES,
    Destination,
    Line,
    Models,
    TransferMode,
)
from config_warm import warm_settings
from languages import (
    LANGUAGE_NAMES,
    STT_LANGUAGES,
    base_language,
)


def parse_destinations(
    raw: Any, models: Models, lines: Sequence[Line], p: Problems
) -> tuple[Destination, ...]:
    """Every ``[[destinations]]`` entry; keys are what the LLM names, so they are unique,
    and each has a name in every language the configuration speaks."""
    if not isinstance(raw, list):
        p.add("destinations", raw, "must be an array of tables ([[destinations]])")
        raw = []
    numbered: list[tuple[int, Destination]] = []  # with its place in the file
    for i, table in enumerate(raw):
        if (dest := _destination(table, f"destinations[{i}]", models.language, p)) is not None:
            numbered.append((i, dest))
    seen_keys: set[str] = set()
    for i, dest in numbered:
        if dest.key in seen_keys:
            p.add(f"destinations[{i}].key", dest.key, "duplicate destination key")
        seen_keys.add(dest.key)
    _spoken_names(numbered, models, lines, p)
    return tuple(dest for _, dest in numbered)


# Its TOML keys: all its fields but the one parse_destinations fills in.
_DESTINATION_KEYS = {f.name for f in dataclasses.fields(Destination)} - {"default_language"}

# The keys of ``names``: the languages of STT_LANGUAGES without region or script.
_NAME_LANGUAGES = frozenset(base_language(code) for code in STT_LANGUAGES if code != "multi")


def _destination(
    raw: Any, where: str, default_language: str, problems: Problems
) -> Destination | None:
    if not isinstance(raw, Mapping):
        problems.add(where, raw, "must be a table ([[destinations]])")
        return None
    prefix = where + "."
    problems.keys(raw, _DESTINATION_KEYS, prefix)
    key = problems.text(
        raw,
        "key",
        prefix,
        pattern=KEY,
        hint="must be lower-case letters, digits and _ (starting with a letter; at most 40)",
    )
    name = problems.text(raw, "name", prefix)
    description = problems.text(raw, "description", prefix, limit=DESCRIPTION_MAX)
    raw_to = problems.text(raw, "to", prefix, limit=1000)  # address() has the real limits
    for required, value in (
        ("key", key),
        ("name", name),
        ("description", description),
        ("to", raw_to),
    ):
        if value is None and required not in raw:
            problems.items.append(f"{prefix}{required}: missing (every destination needs it)")

    to = None
    if raw_to is not None:
        to, why = address(raw_to)
        if to is None:
            problems.add(prefix + "to", raw_to, why)

    modes_raw = raw.get("modes", ["cold"])
    modes: set[TransferMode] = set()
    if not isinstance(modes_raw, list) or not modes_raw:
        problems.add(prefix + "modes", modes_raw, 'must be a non-empty list of "cold" / "warm"')
    else:
        for mode in modes_raw:
            if mode in TRANSFER_MODES:
                modes.add(mode)
            else:
                problems.add(prefix + "modes", mode, 'unknown mode (use "cold" and/or "warm")')

    play_dialtone = problems.flag(raw, "play_dialtone", prefix)

    timeout = raw.get("ringing_timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 5 <= timeout <= 120:
        problems.add(prefix + "ringing_timeout", timeout, "must be a number of seconds, 5 to 120")
        timeout = 30

    extension = problems.text(
        raw,
        "extension",
        prefix,
        pattern=DTMF,
        hint="must be DTMF digits (0-9 * #, w for a half-second pause; at most 32)",
    )

    headers_raw = raw.get("headers", {})
    headers: dict[str, str] = {}
    if not isinstance(headers_raw, Mapping):
        problems.add(prefix + "headers", headers_raw, 'must be a table like { X-Team = "billing" }')
    elif len(headers_raw) > HEADERS_MAX:
        problems.add(prefix + "headers", dict(headers_raw), f"at most {HEADERS_MAX} headers")
    else:
        for header, value in headers_raw.items():
            if why := header_problem(header, value):
                problems.add(dotted(f"{prefix}headers.", header), value, why)
            else:
                headers[header] = value

    language = problems.language(raw, "language", prefix)
    names = _names(raw.get("names", {}), prefix + "names", default_language, problems)
    warm_mode, consult_timeout, transfer_timeout = warm_settings(
        raw, prefix, timeout, problems, warm="warm" in modes
    )

    if key is None or name is None or description is None or to is None or not modes:
        return None
    return Destination(
        key=key,
        name=name,
        description=description,
        to=to,
        modes=frozenset(modes),
        play_dialtone=play_dialtone,
        ringing_timeout=float(timeout),
        extension=extension,
        headers=MappingProxyType(headers),
        language=language,
        names=MappingProxyType(names),
        default_language=default_language,
        warm_mode=warm_mode,
        consult_timeout=consult_timeout,
        transfer_timeout=transfer_timeout,
    )


def _names(raw: Any, where: str, default_language: str, p: Problems) -> dict[str, str]:
    """``names = { es = "el equipo de facturación" }``: the name in other languages, by
    base code; ``name`` is the one in the default language."""
    if not isinstance(raw, Mapping):
        p.add(where, raw, 'must be a table like { es = "el equipo de facturación" }')
        return {}
    default = base_language(default_language)
    names: dict[str, str] = {}
    for language, value in raw.items():
        at = dotted(where + ".", language)
        if language == default:
            p.add(
                at,
                value,
                f"{language} is the default language (models.language = {default_language!r}), "
                "in which a destination's name is its name; remove this one",
            )
        elif language in _NAME_LANGUAGES:
            if (text := p.text(raw, language, where + ".")) is not None:
                names[language] = text
        elif language in STT_LANGUAGES and language != "multi":
            p.add(
                at,
                value,
                f"names are by language, not region: write {base_language(language)} = ... "
                f"(used for every {base_language(language)}-... code)",
            )
        else:
            p.add(
                at,
                value,
                "not a language: the keys of names are language codes without a region, "
                "like es, fr or de",
            )
    return names


def _spoken_names(
    numbered: Sequence[tuple[int, Destination]],
    models: Models,
    lines: Sequence[Line],
    p: Problems,
) -> None:
    """Every language the configuration speaks other than the default needs every
    destination's name in it: a Spanish line must not say "Le comunico con the billing
    team". ``numbered``: the destinations with their place in the file."""
    default = base_language(models.language)
    where: dict[str, list[str]] = {}  # language -> what configures it
    for line in lines:
        shown = repr(line.languages[0]) if len(line.languages) == 1 else repr(list(line.languages))
        for base in dict.fromkeys(base_language(code) for code in line.languages):
            where.setdefault(base, []).append(f"lines.{line.id}.language = {shown}")
    for i, dest in numbered:
        if dest.language:
            where.setdefault(base_language(dest.language), []).append(
                f"destinations[{i}].language = {dest.language!r}"
            )
    for i, dest in numbered:
        for base, configured in where.items():
            if base != default and base not in dest.names:
                p.items.append(
                    f"destinations[{i}].names.{base}: missing: {dest.key} needs its name in "
                    f"{LANGUAGE_NAMES.get(base, base)} (configured by {', '.join(configured)}); "
                    f'add names = {{ {base} = "..." }} to this destination'
                )
