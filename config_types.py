"""The configuration's frozen types: what the rest of the worker reads.

Settings is built once at start-up (config.py) and never changes afterwards, so every
call of a worker sees the same configuration and nothing can alter it mid-call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Literal

from config_checks import E164
from config_storage import Storage, Webhook
from config_turns import TurnTaking
from hours import Schedule
from languages import base_language

TransferMode = Literal["cold", "warm"]
TRANSFER_MODES: tuple[TransferMode, ...] = ("cold", "warm")
# How a warm transfer meets whoever answers (docs/warm-transfer.md): "consult" screens the
# answer (voicemail, menus) and asks the person first, privately; "introduce" introduces
# the caller to whoever answers at once.
WarmMode = Literal["consult", "introduce"]
WARM_MODES: tuple[WarmMode, ...] = ("consult", "introduce")


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
    webhook_secret: str = field(default="", repr=False)  # signs webhook deliveries


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
    dispatch rule names with the ``assistant.line`` participant attribute.

    ``languages`` (``language = "es"`` or ``["es", "en-US"]`` in the file): the first is
    the line's own language, the one its greeting and fixed sentences are said in; the
    others are languages a caller on it may also speak (the speech-to-text then listens
    with Deepgram's "multi"). Empty: the business default, ``models.language``
    (``Settings.line_languages`` resolves it). ``voice`` and ``tts_model`` default to
    ``models.voice`` and ``models.tts``, ``stt_model`` to the choice by language."""

    id: str
    number: str | None = None
    languages: tuple[str, ...] = ()
    stt_model: str | None = None
    greeting: str | None = None
    voice: str | None = None
    tts_model: str | None = None

    @property
    def language(self) -> str | None:
        """The line's own language, or None: the business default."""
        return self.languages[0] if self.languages else None


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
    # The language of whoever answers (a warm transfer's introduction is said in it);
    # None: the business default.
    language: str | None = None
    # ``name`` in other languages, by base code ("es"); ``name`` itself is in the
    # business default language, ``default_language`` (``models.language``).
    names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    default_language: str = "en-US"
    # What to offer, in order, when a transfer here does not reach anyone: other
    # destinations' keys and "message" (take a message); see config_fallbacks.py.
    fallback: tuple[str, ...] = ()
    # When a transfer here is offered at all (hours.py); None: always.
    hours: Schedule | None = None
    # Warm transfers: how the person answering is met; how long they have to say whether
    # they take the call (consult); how long the caller waits on hold at most, all in.
    warm_mode: WarmMode = "consult"
    consult_timeout: float = 30.0
    transfer_timeout: float = 120.0

    def is_open(self, at: datetime) -> bool:
        return self.hours is None or self.hours.is_open(at)

    def spoken_name(self, language: str) -> str:
        """The name to say in ``language`` (a code: "es-419" uses ``names["es"]``).

        Start-up makes sure every destination has a name in each of
        ``Settings.languages``; a language outside them that has no name raises
        KeyError rather than putting English words into, say, a French sentence."""
        base = base_language(language)
        if base == base_language(self.default_language):
            return self.name
        if base in self.names:
            return self.names[base]
        raise KeyError(
            f"destination {self.key!r} has no name in {language!r} (names: "
            f"{', '.join(sorted(self.names)) or 'none'}; default {self.default_language})"
        )

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
    # The keypad escape: a key the caller presses ("0") -> the destination key it reaches.
    keypad: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    storage: Storage = field(default_factory=Storage)
    webhook: Webhook | None = None
    turn_taking: TurnTaking = field(default_factory=TurnTaking)

    def destination(self, key: str) -> Destination | None:
        return next((d for d in self.destinations if d.key == key), None)

    @property
    def destinations_by_key(self) -> Mapping[str, Destination]:
        return {d.key: d for d in self.destinations}

    def line_languages(self, line: Line | None) -> tuple[str, ...]:
        """A line's languages, its own first; the business default for no line or a
        line without ``language``."""
        return (line.languages if line else ()) or (self.models.language,)

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language this configuration can speak, as configured (codes like
        "es-419"): ``models.language`` first, then every line's, then every
        destination's ``language``; each once."""
        codes = [self.models.language]
        codes += [code for line in self.lines for code in line.languages]
        codes += [d.language for d in self.destinations if d.language]
        return tuple(dict.fromkeys(codes))

    @property
    def prompt_languages(self) -> tuple[str, ...]:
        """The base codes of ``languages`` ("es", "en"), the default's first, each once:
        the folders of prompts/ this configuration needs."""
        return tuple(dict.fromkeys(base_language(code) for code in self.languages))

    @property
    def failure_destination(self) -> Destination | None:
        """Where a caller goes when the agent cannot go on, or None: end the call."""
        key = self.on_failure.transfer_to
        return self.destination(key) if key else None

    def destinations_for(self, mode: TransferMode) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if mode in d.modes)
