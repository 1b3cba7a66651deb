"""The worker's configuration: one frozen object, read and validated once at start-up.

Business settings live in a checked-in TOML file (``assistant.toml``); secrets and
endpoints come from the environment. Every problem found is reported at once, naming
the file, the key and the bad value, so a developer fixes a configuration in one pass
instead of one restart per mistake.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

DEFAULT_CONFIG_FILE = Path(__file__).with_name("assistant.toml")
CONFIG_FILE_ENV = "ASSISTANT_CONFIG"

TransferMode = Literal["cold", "warm"]
TRANSFER_MODES: tuple[TransferMode, ...] = ("cold", "warm")

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_SIP_URI = re.compile(r"^sips?:(?:[^@\s]+@)?(?P<host>[A-Za-z0-9.\-\[\]:]+?)(?::\d+)?(?:;[^\s]*)?$")
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
LANGUAGE_CODE = re.compile(r"^(multi|[a-z]{2,3}(-[A-Za-z0-9]{2,8})*)$")
_DTMF = re.compile(r"^[0-9*#wW]{1,32}$")
_SIP_HEADER = re.compile(r"^X-[A-Za-z0-9\-]+$")


class ConfigError(Exception):
    """The configuration cannot run a phone line. It holds every problem found, in
    titled sections (the file, the environment), so all are fixed in one pass."""

    def __init__(self, title: str, problems: list[str]) -> None:
        self.sections: list[tuple[str, list[str]]] = [(title, problems)]
        super().__init__()

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        combined = cls("", [])
        combined.sections = [s for e in errors for s in e.sections]
        return combined

    @property
    def problems(self) -> list[str]:
        return [p for _, problems in self.sections for p in problems]

    def __str__(self) -> str:
        return "\n".join(
            "\n".join([title, *(f"  - {p}" for p in problems)]) for title, problems in self.sections
        )


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
class Models:
    llm: str = "gpt-4.1-mini"
    tts: str = "gpt-4o-mini-tts"
    voice: str = "ash"
    # nova-2-phonecall is Deepgram's model for 8 kHz telephone audio; it is English-only.
    stt_phone: str = "nova-2-phonecall"
    stt_general: str = "nova-3"
    language: str = "en-US"


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

    def destination(self, key: str) -> Destination | None:
        return next((d for d in self.destinations if d.key == key), None)

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
    may run without the LIVEKIT_* variables."""
    wanted = [k for k in REQUIRED_SECRETS if need_livekit or k not in _LIVEKIT_SECRETS]
    missing = [k for k in wanted if not env.get(k, "").strip()]
    if missing:
        raise ConfigError(
            "Missing environment variables (put them in .env.local or the environment; "
            ".env.example lists them all):",
            [f"{k}: {REQUIRED_SECRETS[k]}" for k in missing],
        )
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


class _Problems:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, value: Any, why: str) -> None:
        self.items.append(f"{where} = {value!r}: {why}")

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                self.items.append(
                    f"{where}{key}: unknown setting (allowed here: {', '.join(sorted(allowed))})"
                )

    def text(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        *,
        default: str | None = None,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        value = table.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(f"{where}{key}", value, "must be a non-empty string")
            return default
        value = value.strip()
        if pattern is not None and not pattern.match(value):
            self.add(f"{where}{key}", value, hint)
            return default
        return value

    def table(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, Mapping):
            self.add(key, value, "must be a table, e.g. [" + key + "]")
            return {}
        return value


def _address(value: str) -> tuple[str | None, str]:
    """Normalise a destination address; returns (address, why-not)."""
    if value.startswith("tel:"):
        value = value[4:]
    if value.startswith("+"):
        compact = value.replace(" ", "").replace("-", "")
        if E164.match(value):
            return value, ""
        hint = f" (write it without spaces or dashes: {compact})" if E164.match(compact) else ""
        return None, "not an E.164 phone number like +15551234567" + hint
    if value.startswith(("sip:", "sips:")):
        match = _SIP_URI.match(value)
        if match and match.group("host").strip(".:"):
            return value, ""
        return None, "a sip: URI needs a host, like sip:desk@pbx.example.com"
    return None, "must be an E.164 number (+15551234567), tel:+15551234567 or a sip: URI"


def _destination(raw: Any, where: str, problems: _Problems) -> Destination | None:
    if not isinstance(raw, Mapping):
        problems.add(where, raw, "must be a table ([[destinations]])")
        return None
    prefix = where + "."
    problems.keys(
        raw,
        {
            "key",
            "name",
            "description",
            "to",
            "modes",
            "play_dialtone",
            "ringing_timeout",
            "extension",
            "headers",
        },
        prefix,
    )
    key = problems.text(
        raw,
        "key",
        prefix,
        pattern=_KEY,
        hint="must be lower-case letters, digits and _ (starting with a letter)",
    )
    name = problems.text(raw, "name", prefix)
    description = problems.text(raw, "description", prefix)
    raw_to = problems.text(raw, "to", prefix)
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
        to, why = _address(raw_to)
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

    play_dialtone = raw.get("play_dialtone", False)
    if not isinstance(play_dialtone, bool):
        problems.add(prefix + "play_dialtone", play_dialtone, "must be true or false")
        play_dialtone = False

    timeout = raw.get("ringing_timeout", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 5 <= timeout <= 120:
        problems.add(prefix + "ringing_timeout", timeout, "must be a number of seconds, 5 to 120")
        timeout = 30

    extension = problems.text(
        raw,
        "extension",
        prefix,
        pattern=_DTMF,
        hint="must be DTMF digits (0-9 * #, w for a half-second pause)",
    )

    headers_raw = raw.get("headers", {})
    headers: dict[str, str] = {}
    if not isinstance(headers_raw, Mapping):
        problems.add(prefix + "headers", headers_raw, 'must be a table like { X-Team = "billing" }')
    else:
        for header, value in headers_raw.items():
            if not _SIP_HEADER.match(header) or not isinstance(value, str):
                problems.add(
                    f"{prefix}headers.{header}",
                    value,
                    "custom SIP headers must be named X-... and have a string value",
                )
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


def _line(line_id: str, raw: Any, problems: _Problems) -> Line | None:
    where = f"lines.{line_id}"
    if not _KEY.match(line_id):
        problems.add(where, line_id, "a line id must be lower-case letters, digits and _")
    if not isinstance(raw, Mapping):
        problems.add(where, raw, f"must be a table ([lines.{line_id}])")
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
        stt_model=problems.text(raw, "stt_model", prefix),
        greeting=problems.text(
            raw,
            "greeting",
            prefix,
            pattern=_KEY,
            hint="must name a prompt file in prompts/ (without .md)",
        ),
    )


def parse_settings(data: Mapping[str, Any], *, source: str, secrets: Secrets) -> Settings:
    """Turn the parsed TOML into Settings, or raise ConfigError listing every problem."""
    p = _Problems()
    p.keys(data, {"business", "agent", "models", "lines", "destinations", "transfer"}, "")

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
        pattern=_AGENT_NAME,
        hint="letters, digits, '.', '_' and '-' (the dispatch rule names it)",
    )

    models_raw = p.table(data, "models")
    defaults = Models()
    p.keys(models_raw, set(Models.__slots__), "models.")
    models = Models(
        **{
            name: p.text(
                models_raw,
                name,
                "models.",
                default=getattr(defaults, name),
                pattern=LANGUAGE_CODE if name == "language" else None,
                hint="must be a language code like en-US",
            )
            for name in Models.__slots__
        }
    )

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

    transfer_raw = p.table(data, "transfer")
    p.keys(
        transfer_raw,
        {"outbound_trunk_id", "fallback_caller_id", "hold_music", "krisp"},
        "transfer.",
    )
    krisp = transfer_raw.get("krisp", False)
    if not isinstance(krisp, bool):
        p.add("transfer.krisp", krisp, "must be true or false")
        krisp = False
    transfer = Transfer(
        outbound_trunk_id=p.text(transfer_raw, "outbound_trunk_id", "transfer.")
        or secrets.sip_outbound_trunk_id,
        fallback_caller_id=p.text(
            transfer_raw,
            "fallback_caller_id",
            "transfer.",
            pattern=E164,
            hint="must be an E.164 number your trunk may present",
        ),
        hold_music=p.text(transfer_raw, "hold_music", "transfer."),
        krisp=krisp,
    )
    if any("warm" in d.modes for d in destinations) and not transfer.outbound_trunk_id:
        p.items.append(
            "transfer.outbound_trunk_id: missing; a destination allows warm transfer, which "
            "dials out through an outbound SIP trunk (set it here or in SIP_OUTBOUND_TRUNK_ID)"
        )
    if transfer.hold_music and transfer.hold_music != "builtin":
        # Relative to the configuration file, resolved here once: users of Settings get
        # a path that works whatever the worker's current directory is.
        path = (Path(source).parent / transfer.hold_music).resolve()
        if path.is_file():
            transfer = dataclasses.replace(transfer, hold_music=str(path))
        else:
            p.add("transfer.hold_music", transfer.hold_music, f"no such audio file ({path})")

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

    data: dict[str, Any] | None = None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        errors.append(
            ConfigError(
                f"Configuration file not found: {path}",
                [
                    f"create it (the repository ships an example assistant.toml) or point "
                    f"{CONFIG_FILE_ENV} at it"
                ],
            )
        )
    except tomllib.TOMLDecodeError as e:
        errors.append(ConfigError(f"{path} is not valid TOML:", [str(e)]))

    settings: Settings | None = None
    if data is not None:
        try:
            settings = parse_settings(data, source=str(path), secrets=secrets)
        except ConfigError as e:
            errors.append(e)
    if errors or settings is None:
        raise ConfigError.combine(errors)
    return settings
