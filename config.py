"""The worker's configuration: one frozen object, read and validated once at start-up.

Business settings live in a checked-in TOML file (``assistant.toml``); secrets and
endpoints come from the environment. Every problem found is reported at once, naming
the file, the key and the bad value, so a developer fixes a configuration in one pass
instead of one restart per mistake.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from config_checks import (
    AGENT_NAME,
    DESCRIPTION_MAX,
    DTMF,
    E164,
    HEADERS_MAX,
    KEY,
    LANGUAGE_CODE,
    MODEL_HINT,
    MODEL_MAX,
    MODEL_NAME,
    PATH_MAX,
    TRUNK_HINT,
    TRUNK_ID,
    ConfigError,
    Problems,
    address,
    audio_problem,
    dotted,
    environment_problems,
    header_problem,
    read_config,
)

DEFAULT_CONFIG_FILE = Path(__file__).with_name("assistant.toml")
CONFIG_FILE_ENV = "ASSISTANT_CONFIG"

TransferMode = Literal["cold", "warm"]
TRANSFER_MODES: tuple[TransferMode, ...] = ("cold", "warm")

# Providers a fallback model may come from, per kind of model ("provider:model").
FALLBACK_PROVIDERS: dict[str, tuple[str, ...]] = {
    "llm": ("openai",),
    "tts": ("openai", "deepgram"),
    "stt": ("deepgram", "openai"),
}
MAX_FALLBACKS = 3


@dataclass(frozen=True, slots=True)
class Secrets:
    """Credentials and endpoints. Secret values are kept out of ``repr`` so that a
    logged or printed Settings object never leaks them."""

    livekit_url: str = ""
    livekit_api_key: str = field(default="", repr=False)
    livekit_api_secret: str = field(default="", repr=False)
    deepgram_api_key: str = field(default="", repr=False)
    openai_api_key: str = field(default="", repr=False)
    openai_base_url: str | None = None
    deepgram_base_url: str | None = None
    sip_outbound_trunk_id: str | None = None


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A fallback model: the provider that serves it ("openai", "deepgram") and its
    name there. Written "provider:model" in assistant.toml, and so by ``str``."""

    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class Models:
    llm: str = "gpt-4.1-mini"
    tts: str = "gpt-4o-mini-tts"
    voice: str = "ash"
    # nova-2-phonecall is Deepgram's model for 8 kHz telephone audio; it is English-only.
    stt_phone: str = "nova-2-phonecall"
    stt_general: str = "nova-3"
    language: str = "en-US"
    # Tried in order when the model before them fails; none differs from its primary.
    llm_fallback: tuple[ModelChoice, ...] = ()
    tts_fallback: tuple[ModelChoice, ...] = ()  # an openai one speaks with ``voice``
    stt_fallback: tuple[ModelChoice, ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    """A phone number that reaches the agent (``sip.trunkPhoneNumber``), or a line a
    dispatch rule names with the ``assistant.line`` participant attribute."""

    id: str
    number: str | None = None
    language: str | None = None
    stt_model: str | None = None
    greeting: str | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Somewhere a caller can be handed to. The LLM only ever sees ``key``; the
    address stays here, so a caller cannot talk the agent into dialing a number."""

    key: str
    name: str
    description: str
    to: str
    modes: frozenset[TransferMode]
    play_dialtone: bool = False
    ringing_timeout: float = 30.0
    extension: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def transfer_to(self) -> str:
        """The REFER target: ``tel:+E164`` for numbers, the ``sip:`` URI as configured."""
        return f"tel:{self.to}" if E164.match(self.to) else self.to

    @property
    def is_number(self) -> bool:
        return bool(E164.match(self.to))


@dataclass(frozen=True, slots=True)
class Transfer:
    outbound_trunk_id: str | None = None
    fallback_caller_id: str | None = None
    hold_music: str | None = None
    krisp: bool = False


@dataclass(frozen=True, slots=True)
class OnFailure:
    """What happens when the agent cannot go on (a provider is down): the caller hears
    a short apology, then is transferred by SIP REFER to ``transfer_to`` (a destination
    key whose modes include "cold"), or, without it, the call is ended."""

    transfer_to: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    business_name: str
    agent_name: str = "phone-assistant"
    models: Models = field(default_factory=Models)
    lines: tuple[Line, ...] = ()
    destinations: tuple[Destination, ...] = ()
    transfer: Transfer = field(default_factory=Transfer)
    secrets: Secrets = field(default_factory=Secrets)
    source: str = "<defaults>"
    # how long to wait for a SIP caller's sip.* attributes before choosing the STT model
    attributes_timeout: float = 2.0
    on_failure: OnFailure = field(default_factory=OnFailure)

    def destination(self, key: str) -> Destination | None:
        return next((d for d in self.destinations if d.key == key), None)

    @property
    def failure_destination(self) -> Destination | None:
        """Where a caller goes when the agent cannot go on, or None: end the call."""
        key = self.on_failure.transfer_to
        return self.destination(key) if key else None

    def destinations_for(self, mode: TransferMode) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if mode in d.modes)


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


def load_secrets(env: Mapping[str, str], *, need_livekit: bool = True) -> Secrets:
    """Read credentials from ``env``; console mode talks to no LiveKit server, so it
    may run without the LIVEKIT_* variables (and they are not checked)."""
    wanted = [k for k in REQUIRED_SECRETS if need_livekit or k not in _LIVEKIT_SECRETS]
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
    if invalid := environment_problems(env, skip=() if need_livekit else _LIVEKIT_SECRETS):
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
        deepgram_api_key=env["DEEPGRAM_API_KEY"].strip(),
        openai_api_key=env["OPENAI_API_KEY"].strip(),
        openai_base_url=env.get("OPENAI_BASE_URL", "").strip() or None,
        deepgram_base_url=env.get("DEEPGRAM_BASE_URL", "").strip() or None,
        sip_outbound_trunk_id=env.get("SIP_OUTBOUND_TRUNK_ID", "").strip() or None,
    )


# --------------------------------------------------------------------------- the file

_DESTINATION_KEYS = {f.name for f in dataclasses.fields(Destination)}  # its TOML keys


def _destination(raw: Any, where: str, problems: Problems) -> Destination | None:
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
    )


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
    problems.keys(raw, {"number", "language", "stt_model", "greeting"}, prefix)
    return Line(
        id=line_id,
        number=problems.text(
            raw,
            "number",
            prefix,
            pattern=E164,
            hint="must be the dialed number in E.164, like +15551234567",
        ),
        language=problems.text(
            raw,
            "language",
            prefix,
            pattern=LANGUAGE_CODE,
            hint="must be a language code like en-US, es or fr-CA",
        ),
        stt_model=problems.text(
            raw, "stt_model", prefix, limit=MODEL_MAX, pattern=MODEL_NAME, hint=MODEL_HINT
        ),
        greeting=problems.text(
            raw,
            "greeting",
            prefix,
            pattern=KEY,
            hint="must name a prompt file in prompts/ (without .md)",
        ),
    )


_MODEL_TEXTS = ("llm", "tts", "voice", "stt_phone", "stt_general")


def _models(raw: Mapping[str, Any], p: Problems) -> Models:
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
    language = p.text(
        raw,
        "language",
        "models.",
        default=defaults.language,
        pattern=LANGUAGE_CODE,
        hint="must be a language code like en-US",
    )
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


def _transfer(raw: Mapping[str, Any], source: str, secrets: Secrets, p: Problems) -> Transfer:
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


def _on_failure(
    raw: Mapping[str, Any], destinations: list[Destination], keys: set[Any], p: Problems
) -> OnFailure:
    p.keys(raw, {"transfer_to"}, "on_failure.")
    key = p.text(raw, "transfer_to", "on_failure.")
    if key is None:
        return OnFailure()
    cold = ", ".join(d.key for d in destinations if "cold" in d.modes) or 'none allows "cold"'
    dest = next((d for d in destinations if d.key == key), None)
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


def parse_settings(data: Mapping[str, Any], *, source: str, secrets: Secrets) -> Settings:
    """Turn the parsed TOML into Settings, or raise ConfigError listing every problem."""
    p = Problems()
    p.keys(
        data,
        {"business", "agent", "models", "lines", "destinations", "transfer", "on_failure"},
        "",
    )

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

    models = _models(p.table(data, "models"), p)

    lines: list[Line] = []
    lines_raw = p.table(data, "lines")
    for line_id, raw in lines_raw.items():
        if (line := _line(line_id, raw, p)) is not None:
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

    destinations: list[Destination] = []
    raw_destinations = data.get("destinations", [])
    if not isinstance(raw_destinations, list):
        p.add("destinations", raw_destinations, "must be an array of tables ([[destinations]])")
        raw_destinations = []
    for i, raw in enumerate(raw_destinations):
        if (dest := _destination(raw, f"destinations[{i}]", p)) is not None:
            destinations.append(dest)
    seen_keys: set[str] = set()
    for i, dest in enumerate(destinations):
        if dest.key in seen_keys:
            p.add(f"destinations[{i}].key", dest.key, "duplicate destination key")
        seen_keys.add(dest.key)

    transfer = _transfer(p.table(data, "transfer"), source, secrets, p)
    if any("warm" in d.modes for d in destinations) and not transfer.outbound_trunk_id:
        p.items.append(
            "transfer.outbound_trunk_id: missing; a destination allows warm transfer, which "
            "dials out through an outbound SIP trunk (set it here or in SIP_OUTBOUND_TRUNK_ID)"
        )

    raw_keys = {d.get("key") for d in raw_destinations if isinstance(d, Mapping)}
    on_failure = _on_failure(p.table(data, "on_failure"), destinations, raw_keys, p)

    if p.items or business_name is None or agent_name is None:
        raise ConfigError(f"Configuration problems in {source}:", p.items)
    return Settings(
        business_name=business_name,
        agent_name=agent_name,
        models=models,
        lines=tuple(lines),
        destinations=tuple(destinations),
        transfer=transfer,
        secrets=secrets,
        source=source,
        on_failure=on_failure,
    )


def load_settings(env: Mapping[str, str], *, need_livekit: bool = True) -> Settings:
    """Read the config file named by ASSISTANT_CONFIG (default: assistant.toml beside
    this module) and the secrets in ``env``; both kinds of problem are reported together."""
    path = Path(env.get(CONFIG_FILE_ENV) or DEFAULT_CONFIG_FILE)
    errors: list[ConfigError] = []
    secrets = Secrets()
    try:
        secrets = load_secrets(env, need_livekit=need_livekit)
    except ConfigError as e:
        errors.append(e)

    settings: Settings | None = None
    try:
        settings = parse_settings(
            read_config(path, CONFIG_FILE_ENV), source=str(path), secrets=secrets
        )
    except ConfigError as e:
        errors.append(e)
    if errors or settings is None:
        raise ConfigError.combine(errors)
    return settings
