"""The tables of assistant.toml with more than a name in them, one parser each:
[models], [lines], [transfer] and [on_failure], in the file's order ([[destinations]] has
config_destinations.py).

Each parser takes its table as TOML gave it and the Problems collector, records every
problem with its location (``destinations[1].to = '12345': ...``) and goes on, so
parse_settings (config.py) reports a whole configuration's mistakes in one pass. A
parser returns what it could build; anything it reported keeps the Settings from
being built at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from config_audio import audio_problem
from config_checks import (
    E164,
    KEY,
    MODEL_HINT,
    MODEL_MAX,
    MODEL_NAME,
    PATH_MAX,
    TRUNK_HINT,
    TRUNK_ID,
    Problems,
    dotted,
    language_problem,
)
from config_types import (
    Destination,
    Line,
    ModelChoice,
    Models,
    OnFailure,
    Secrets,
    Transfer,
)
from languages import (
    ENGLISH_ONLY_LANGUAGES,
    ENGLISH_ONLY_MODELS,
)

# Providers a fallback model may come from, per kind of model ("provider:model").
FALLBACK_PROVIDERS: dict[str, tuple[str, ...]] = {
    "llm": ("openai",),
    "tts": ("openai", "deepgram"),
    "stt": ("deepgram", "openai"),
}
MAX_FALLBACKS = 3


# --------------------------------------------------------------------------- [models]

_MODEL_TEXTS = ("llm", "tts", "voice", "stt_phone", "stt_general")


def parse_models(raw: Mapping[str, Any], p: Problems) -> Models:
    defaults = Models()
    p.keys(raw, {f.name for f in dataclasses.fields(Models)}, "models.")
    texts = {
        name: p.text(
            raw,
            name,
            "models.",
            default=getattr(defaults, name),
            limit=MODEL_MAX,
            pattern=MODEL_NAME,
            hint=MODEL_HINT,
        )
        for name in _MODEL_TEXTS
    }
    language = p.language(raw, "language", "models.", default=defaults.language)
    models = Models(**texts, language=language)  # type: ignore[arg-type]
    primaries = {  # the models a fallback of each kind backs up
        "llm": {ModelChoice("openai", models.llm): "models.llm"},
        "tts": {ModelChoice("openai", models.tts): "models.tts"},
        "stt": {
            ModelChoice("deepgram", models.stt_phone): "models.stt_phone",
            ModelChoice("deepgram", models.stt_general): "models.stt_general",
        },
    }
    return dataclasses.replace(
        models,
        **{f"{kind}_fallback": _fallbacks(raw, kind, primaries[kind], p) for kind in primaries},
    )


def _fallbacks(
    raw: Mapping[str, Any], kind: str, primaries: dict[ModelChoice, str], p: Problems
) -> tuple[ModelChoice, ...]:
    where = f"models.{kind}_fallback"
    allowed = FALLBACK_PROVIDERS[kind]
    entries = raw.get(f"{kind}_fallback", [])
    if not isinstance(entries, list):
        p.add(
            where,
            entries,
            f'must be a list of "provider:model" strings, like ["{allowed[0]}:<model>"]',
        )
        return ()
    if len(entries) > MAX_FALLBACKS:
        p.add(where, entries, f"at most {MAX_FALLBACKS} fallbacks")
    choices: list[ModelChoice] = []
    for i, entry in enumerate(entries[:MAX_FALLBACKS]):
        at = f"{where}[{i}]"
        provider, _, model = entry.partition(":") if isinstance(entry, str) else ("", "", "")
        if not model:
            p.add(at, entry, f'must be a "provider:model" string, like "{allowed[0]}:<model>"')
        elif provider not in allowed:
            p.add(
                at, entry, f"unknown {kind} provider {provider!r} (allowed: {', '.join(allowed)})"
            )
        elif not MODEL_NAME.match(model):
            p.add(at, entry, MODEL_HINT)
        elif kind == "tts" and provider == "deepgram" and not model.startswith("aura"):
            p.add(at, entry, "Deepgram's text-to-speech models are Aura voices: aura-2-thalia-en")
        elif (choice := ModelChoice(provider, model)) in choices:
            p.add(at, entry, "listed twice")
        elif choice in primaries:
            p.add(
                at,
                entry,
                f"a fallback must differ from the model it backs up ({primaries[choice]})",
            )
        else:
            choices.append(choice)
    return tuple(choices)


# --------------------------------------------------------------------------- [lines]


def parse_lines(raw: Mapping[str, Any], models: Models, p: Problems) -> tuple[Line, ...]:
    """Every line of ``[lines]``; two lines cannot share a dialed number, and a line's
    speech-to-text model must understand the languages the line speaks."""
    lines: list[Line] = []
    for line_id, table in raw.items():
        if (line := _line(line_id, table, p)) is not None:
            lines.append(line)
    seen_numbers: dict[str, str] = {}
    for line in lines:
        if line.number and line.number in seen_numbers:
            p.add(
                f"lines.{line.id}.number",
                line.number,
                f"already used by lines.{seen_numbers[line.number]}",
            )
        elif line.number:
            seen_numbers[line.number] = line.id
        if line.stt_model in ENGLISH_ONLY_MODELS:
            _english_only(line, models, p)
    return tuple(lines)


_LINE_KEYS = {"number", "language", "stt_model", "greeting", "voice", "tts_model"}


def _line(line_id: str, raw: Any, problems: Problems) -> Line | None:
    where = dotted("lines.", line_id)
    if not KEY.match(line_id):
        problems.add(
            where, line_id, "a line id must be lower-case letters, digits and _ (at most 40)"
        )
    if not isinstance(raw, Mapping):
        problems.add(where, raw, f"must be a table ([{where}])")
        return None
    prefix = where + "."

    def model(key: str) -> str | None:
        return problems.text(raw, key, prefix, limit=MODEL_MAX, pattern=MODEL_NAME, hint=MODEL_HINT)

    problems.keys(raw, _LINE_KEYS, prefix)
    return Line(
        id=line_id,
        number=problems.text(
            raw,
            "number",
            prefix,
            pattern=E164,
            hint="must be the dialed number in E.164, like +15551234567",
        ),
        languages=_line_languages(raw.get("language"), prefix + "language", problems),
        stt_model=model("stt_model"),
        greeting=problems.text(
            raw,
            "greeting",
            prefix,
            pattern=KEY,
            hint="must name a prompt file in prompts/<language>/ (without .md)",
        ),
        voice=model("voice"),
        tts_model=model("tts_model"),
    )


def _line_languages(value: Any, where: str, p: Problems) -> tuple[str, ...]:
    """``language = "es"`` or ``language = ["es", "en-US"]``: the line's own language
    first, then the others its callers may speak."""
    if value is None:
        return ()
    if isinstance(value, str):
        listed = [(where, value)]
    elif isinstance(value, list) and value:
        listed = [(f"{where}[{i}]", code) for i, code in enumerate(value)]
    else:
        p.add(
            where,
            value,
            'must be a language code or a non-empty list of them: "es", or ["es", "en-US"] '
            "(the line's own language first, then others its callers may speak)",
        )
        return ()
    codes: list[str] = []
    for at, code in listed:
        code = code.strip() if isinstance(code, str) else code
        if why := language_problem(code):
            p.add(at, code, why)
        elif code in codes:
            p.add(at, code, "listed twice")
        else:
            codes.append(code)
    return tuple(codes)


def _english_only(line: Line, models: Models, p: Problems) -> None:
    """An English-only Deepgram model on a line that speaks another language would not
    understand its callers (and LiveKit's plugin would quietly swap it for another)."""
    spoken = line.languages or (models.language,)
    others = [code for code in spoken if code not in ENGLISH_ONLY_LANGUAGES]
    if not others:
        return
    whose = "" if line.languages else " (models.language, the default)"
    p.add(
        f"lines.{line.id}.stt_model",
        line.stt_model,
        f"an English-only Deepgram model (it accepts {', '.join(ENGLISH_ONLY_LANGUAGES)}), "
        f"but lines.{line.id} speaks {', '.join(map(repr, others))}{whose}; use one that "
        "speaks it (nova-3, or nova-2-general) or leave stt_model out to have it chosen "
        "by language",
    )


# --------------------------------------------------------------------------- [transfer]


def parse_transfer(raw: Mapping[str, Any], source: str, secrets: Secrets, p: Problems) -> Transfer:
    p.keys(raw, {"outbound_trunk_id", "fallback_caller_id", "hold_music", "krisp"}, "transfer.")
    transfer = Transfer(
        outbound_trunk_id=p.text(
            raw, "outbound_trunk_id", "transfer.", pattern=TRUNK_ID, hint=TRUNK_HINT
        )
        or secrets.sip_outbound_trunk_id,
        fallback_caller_id=p.text(
            raw,
            "fallback_caller_id",
            "transfer.",
            pattern=E164,
            hint="must be an E.164 number your trunk may present",
        ),
        hold_music=p.text(raw, "hold_music", "transfer.", limit=PATH_MAX),
        krisp=p.flag(raw, "krisp", "transfer."),
    )
    if not transfer.hold_music or transfer.hold_music == "builtin":
        return transfer
    # Relative to the configuration file, resolved here once: users of Settings get a
    # path that works whatever the worker's current directory is.
    try:
        path = (Path(source).parent / transfer.hold_music).resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        p.add("transfer.hold_music", transfer.hold_music, f"cannot resolve the path ({e})")
        return transfer
    if not path.is_file():
        what = "a directory, not an audio file" if path.is_dir() else "no such audio file"
        p.add("transfer.hold_music", transfer.hold_music, f"{what} ({path})")
    elif why := audio_problem(path):
        p.add("transfer.hold_music", transfer.hold_music, f"{why} ({path})")
    return dataclasses.replace(transfer, hold_music=str(path))


# --------------------------------------------------------------------------- [on_failure]


def parse_on_failure(
    raw: Mapping[str, Any],
    destinations: Sequence[Destination],
    raw_destinations: Any,
    p: Problems,
) -> OnFailure:
    """Where a caller goes when the agent cannot go on: a destination that allows cold
    transfer. ``raw_destinations`` is ``destinations`` as the file wrote it, so a key
    whose destination has problems of its own is not also called unknown here."""
    p.keys(raw, {"transfer_to"}, "on_failure.")
    key = p.text(raw, "transfer_to", "on_failure.")
    if key is None:
        return OnFailure()
    cold = ", ".join(d.key for d in destinations if "cold" in d.modes) or 'none allows "cold"'
    dest = next((d for d in destinations if d.key == key), None)
    listed = raw_destinations if isinstance(raw_destinations, list) else []
    # Only text can be the key named here (a list or table would not even be hashable).
    keys = {
        d.get("key") for d in listed if isinstance(d, Mapping) and isinstance(d.get("key"), str)
    }
    if dest is None and key not in keys:  # a destination with problems has them reported
        p.add("on_failure.transfer_to", key, f"no such destination (cold destinations: {cold})")
    elif dest is not None and "cold" not in dest.modes:
        p.add(
            "on_failure.transfer_to",
            key,
            'that destination does not allow "cold" transfer, which is how a call the agent '
            f"cannot go on with is handed over (SIP REFER); cold destinations: {cold}",
        )
    return OnFailure(transfer_to=key)
