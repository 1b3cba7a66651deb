"""What the transfer tools share: the LLM chooses among configured destinations by key.

The schema offers an enum of keys with their descriptions and the lookup refuses
anything else, so whatever the caller says, the LLM can only name a destination from
assistant.toml; the address it resolves to never leaves this process.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from livekit.agents import AgentSession
from livekit.agents.llm import ToolError

from caller import mask_number
from config import Destination
from hours_words import closed_now, when_it_opens
from prompts import Words, language_name
from tools.outcomes import Failure
from tools.playout import say_if_open

logger = logging.getLogger("phone-assistant.transfer")

NOT_A_PHONE_CALL = (
    "This caller is not on a phone call (console or web test), so the call cannot be "
    "transferred. Tell them transfers work only on phone calls."
)


def destination_menu(
    destinations: Mapping[str, Destination], language: str, at: datetime | None = None
) -> str:
    """The destinations as the tool description lists them for the LLM, named in the call's
    language, with the language the person there speaks where it is set (a warm
    transfer's reason is spoken to them), and, at ``at`` (the call's start), whether
    each is closed and when it opens."""
    return "\n".join(
        f"- {d.key}: {d.spoken_name(language)}. {d.description}"
        + (f" (they speak {language_name(d.language)})" if d.language else "")
        + (_closed_note(d, at, language) if at is not None else "")
        for d in destinations.values()
    )


def _closed_note(destination: Destination, at: datetime, language: str) -> str:
    if destination.hours is None or destination.is_open(at):
        return ""
    when = when_it_opens(destination.hours, at, language)
    opens = f", opens {when}" if when else ""
    return f" (CLOSED now{opens}: do not offer a transfer there; say when it opens)"


def refused_when_closed(
    destination: Destination, words: Words, session: AgentSession, at: datetime
) -> str | None:
    """None while ``destination`` is open at ``at``. Outside its hours nothing is sent:
    the caller hears that it is closed and when it opens, and the LLM is told so (the
    returned text, to which the tool adds what to offer instead)."""
    hours = destination.hours
    if hours is None or hours.is_open(at):
        return None
    say_if_open(session, closed_now(destination.spoken_name(words.code), hours, at, words.code))
    when = when_it_opens(hours, at, words.code)
    logger.info("transfer to %s not sent: outside its opening hours", destination.key)
    return (
        f"{destination.key} is closed now (it opens {when or 'not within two weeks'}); "
        "nothing was sent, and the caller has been told when it opens."
    )


def destination_parameter(destinations: Mapping[str, Destination], purpose: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(destinations), "description": purpose}


def pick_destination(
    raw_arguments: Mapping[str, Any], destinations: Mapping[str, Destination], mode: str
) -> Destination:
    """The destination the LLM named, or a ToolError (nothing is sent) for any other value."""
    key = raw_arguments.get("destination")
    destination = destinations.get(key) if isinstance(key, str) else None
    if destination is None:
        raise ToolError(
            f"Unknown destination {key!r}; nothing was done. You can {mode} only to: "
            f"{', '.join(destinations)}."
        )
    return destination


def masked_address(destination: Destination) -> str:
    """The destination's address as logs show it: numbers masked like callers' numbers."""
    return f"tel:{mask_number(destination.to)}" if destination.is_number else destination.to


def report_failure(
    log: logging.Logger,
    kind: str,
    destination: Destination,
    failure: Failure,
    session: AgentSession,
    words: Words,
) -> None:
    """Log what went wrong with what to do about it (a configuration problem as an
    error), and tell the caller in plain words; the caller stays with the agent."""
    level = logging.ERROR if failure.is_configuration_problem else logging.WARNING
    log.log(
        level,
        "%s to %s (%s) failed: %s. %s",
        kind,
        destination.key,
        masked_address(destination),
        failure.detail,
        failure.advice,
    )
    say_if_open(session, words.transfer(failure.outcome, destination))
