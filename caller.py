"""Who is calling, on which line, and which speech-to-text model suits them.

A phone caller is the room's participant of kind SIP; a room may also hold others (a
web tester, a supervisor). We identify the caller by participant identity, never by
phone number: numbers can be hidden, shared or spoofed, identities are unique in a room.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import JobContext

import languages
from config import Line, Settings
from privacy import mask_number, safe_name, safe_repr
from prompts import prompt_language

logger = logging.getLogger("phone-assistant.caller")

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
CALLER_KINDS = [SIP, rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD]

# Attributes a dispatch rule may set on the caller to pick a line or a language.
LINE_ATTRIBUTE = "assistant.line"
LANGUAGE_ATTRIBUTE = "assistant.language"

_HIDDEN_NUMBERS = {"", "anonymous", "restricted", "private", "unavailable", "unknown"}

# A number we may present to someone else as the caller's: E.164, ASCII digits only.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Caller:
    identity: str
    is_phone: bool
    attributes: Mapping[str, str]

    @classmethod
    def from_participant(cls, participant: rtc.Participant) -> Caller:
        return cls(
            identity=participant.identity,
            is_phone=participant.kind == SIP,
            attributes=dict(participant.attributes),
        )

    @property
    def phone_number(self) -> str | None:
        """The caller's number, or None when they withheld it (that is not an error)."""
        number = self.attributes.get("sip.phoneNumber", "").strip()
        return None if number.lower() in _HIDDEN_NUMBERS else number

    @property
    def caller_id(self) -> str | None:
        """The caller's number if it may be shown as caller ID to someone we dial for
        them (warm transfer): only an E.164 number in ASCII digits, else None."""
        number = self.phone_number
        return number if number and _E164.fullmatch(number) else None

    @property
    def dialed_number(self) -> str | None:
        return self.attributes.get("sip.trunkPhoneNumber") or None

    def describe(self) -> str:
        """For logs: identities carry the number by default (``sip_+15551234567``), so
        they are masked like the numbers."""
        who = safe_name(self.identity)
        if not self.is_phone:
            return f"{who} (not a phone call)"
        return (
            f"{who} (phone, from {safe_name(mask_number(self.phone_number))} "
            f"to {safe_name(mask_number(self.dialed_number))})"
        )


async def find_caller(ctx: JobContext) -> rtc.RemoteParticipant:
    """The SIP participant if one is in the room, otherwise the first SIP or standard
    participant to join (a web tester, or the console's stand-in user)."""
    if not ctx.room.isconnected():
        await ctx.connect()
    for participant in ctx.room.remote_participants.values():
        if participant.kind == SIP:
            return participant
    return await ctx.wait_for_participant(kind=CALLER_KINDS)


async def await_sip_attributes(
    room: rtc.Room, participant: rtc.Participant, *, wait: float
) -> None:
    """Wait up to ``wait`` seconds for a SIP participant's ``sip.*`` attributes, which
    can arrive after the participant joined. After that we go on with what we have: a
    default line is better than a caller left in silence."""
    if participant.kind != SIP or _has_sip_attributes(participant.attributes):
        return

    arrived = asyncio.Event()

    def on_changed(_changed: Mapping[str, str], p: rtc.Participant) -> None:
        if p.identity == participant.identity and _has_sip_attributes(p.attributes):
            arrived.set()

    room.on("participant_attributes_changed", on_changed)
    try:
        await asyncio.wait_for(arrived.wait(), wait)
    except TimeoutError:
        logger.warning(
            "SIP caller %s has no sip.* attributes after %.1fs; using the default line",
            safe_name(participant.identity),
            wait,
        )
    finally:
        room.off("participant_attributes_changed", on_changed)


def _has_sip_attributes(attributes: Mapping[str, str]) -> bool:
    return any(key.startswith("sip.") for key in attributes)


def resolve_line(caller: Caller, settings: Settings) -> Line | None:
    """The configured line this call came in on: named by the dispatch rule's
    ``assistant.line`` attribute, else matched by the dialed number."""
    if not caller.is_phone:
        return None
    if (wanted := caller.attributes.get(LINE_ATTRIBUTE)) is not None:
        for line in settings.lines:
            if line.id == wanted:
                return line
        logger.warning(
            "%s=%s names no configured line; matching by number",
            LINE_ATTRIBUTE,
            safe_repr(wanted),
        )
    dialed = caller.dialed_number
    return next((line for line in settings.lines if dialed and line.number == dialed), None)


@dataclass(frozen=True, slots=True)
class SttChoice:
    model: str
    language: str  # what Deepgram listens for: "en-US", "es", or "multi"
    reason: str
    speaks: str  # the call's language: its fixed sentences and the LLM's ("es", "en-US")


def choose_stt(caller: Caller, line: Line | None, settings: Settings) -> SttChoice:
    """The call's language and the Deepgram model that hears it.

    A line speaks its first configured language; a caller may select another one with the
    ``assistant.language`` attribute, honoured only for a language this configuration
    speaks (its prompts are complete: prompts.check at start-up). Phone audio is 8 kHz and
    noisy, so English phone calls get the phone-call model; that model is English-only,
    so other languages get the general model with their language, and a line configured
    for several languages gets Deepgram's "multi". Web and console callers get the
    general model.
    """
    models = settings.models
    if not caller.is_phone:
        return SttChoice(models.stt_general, models.language, "not a phone call", models.language)

    own = (line.languages if line else ()) or (models.language,)
    where = f"line {line.id}" if line else "default line"
    requested = _requested_language(caller, settings)
    speaks = requested or own[0]
    several = requested is None and len({prompt_language(code) for code in own}) > 1
    heard = "multi" if several else speaks
    # the phone model knows "en" and "en-US" only (Deepgram swaps it out for others)
    english = speaks in languages.ENGLISH_ONLY_LANGUAGES and not several
    override = line.stt_model if line else None
    if override and (english or override not in languages.ENGLISH_ONLY_MODELS):
        return SttChoice(override, heard, f"{where} sets the model", speaks)
    if english:
        return SttChoice(models.stt_phone, heard, f"phone call, {where}, English", speaks)
    why = "several languages" if several else f"language {speaks}"
    # the model passed over: the line's own (a caller selected another language), or the
    # phone model
    english_only = f"{where} sets {override}, which" if override else models.stt_phone
    return SttChoice(
        models.stt_general,
        heard,
        f"phone call, {where}, {why} ({english_only} is English-only)",
        speaks,
    )


def _requested_language(caller: Caller, settings: Settings) -> str | None:
    """``assistant.language`` if it names a language this configuration speaks. The value
    comes from a dispatch rule or a trunk header: it is data, and reaches neither the
    instructions nor the Deepgram request unless it is one of ours."""
    requested = caller.attributes.get(LANGUAGE_ATTRIBUTE)
    if requested is None:
        return None
    if not languages.is_supported(requested):
        reason = "not a language code the speech-to-text supports"
    elif prompt_language(requested) not in settings.prompt_languages:
        reason = "not a language this configuration speaks"
    else:
        return requested
    logger.warning("ignoring %s=%s: %s", LANGUAGE_ATTRIBUTE, safe_repr(requested), reason)
    return None
