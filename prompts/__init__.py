"""The agent's words, as markdown files beside this module.

Loaded through a tiny cached loader and filled with configuration values. Every prompt
is rendered once by ``check()`` at start-up, so a missing file or a misspelt placeholder
stops the worker before it answers a call, not in the middle of one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from config import Destination, Line, Settings
from languages import LANGUAGE_NAMES

PROMPTS_DIR = Path(__file__).parent

# A language's name, for the instructions ("Speak Spanish"); a code without a name (a
# line configured with one) gets a neutral phrase, never the code itself.
NEUTRAL_LANGUAGE = "the language the caller speaks"


class PromptError(Exception):
    """A prompt file is missing or does not fit the values it is filled with."""


@cache
def prompt(name: str) -> str:
    path = PROMPTS_DIR / f"{name}.md"
    if not path.is_file():
        raise PromptError(f"prompt file missing: {path} (the agent needs it to speak)")
    return path.read_text(encoding="utf-8").strip()


@cache
def sections(name: str) -> Mapping[str, str]:
    """A prompt file split at its ``## name`` headings: one file holds the words of
    one flow (a transfer), one section per moment; text before the first heading is a
    note to whoever edits the file."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in prompt(name).splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
        elif current is not None:
            current.append(line)
    return {key: "\n".join(lines).strip() for key, lines in found.items()}


def _fill(template: str, where: str, values: Mapping[str, Any]) -> str:
    """Fill ``{placeholders}``; an unknown one is an error naming the file and the
    placeholder rather than a bare KeyError."""
    try:
        return template.format_map(values)
    except KeyError as e:
        known = ", ".join(sorted(values)) or "none"
        raise PromptError(
            f"{where} uses the placeholder {{{e.args[0]}}}, which is not available "
            f"there (available: {known})"
        ) from None
    except (ValueError, IndexError) as e:
        raise PromptError(f"{where}: {e} (write a literal brace as {{{{ or }}}})") from None


def render(name: str, **values: Any) -> str:
    return _fill(prompt(name), f"prompts/{name}.md", values)


def render_section(name: str, section: str, **values: Any) -> str:
    found = sections(name)
    if section not in found or not found[section]:
        raise PromptError(f"prompts/{name}.md has no '## {section}' section (or it is empty)")
    return _fill(found[section], f"prompts/{name}.md, section {section}", values)


def language_name(language: str) -> str:
    """The name for a language code, only ever one from languages.LANGUAGE_NAMES."""
    base = language.split("-")[0].lower() if isinstance(language, str) else ""
    return LANGUAGE_NAMES.get(base, NEUTRAL_LANGUAGE)


def destination_list(destinations: Iterable[Destination]) -> str:
    lines = [
        f"- {d.key}: {d.name}. {d.description} (transfer: {' or '.join(sorted(d.modes))})"
        for d in destinations
    ]
    return "\n".join(lines) or "- (none configured: you cannot transfer calls)"


def instructions(settings: Settings, language: str) -> str:
    return render(
        "instructions",
        business_name=settings.business_name,
        language_name=language_name(language),
        destinations=destination_list(settings.destinations),
    )


def greeting(settings: Settings, line: Line | None) -> str:
    name = (line.greeting if line else None) or "greeting"
    return render(name, business_name=settings.business_name)


# The moments of a transfer the caller hears about, each a section of prompts/transfer.md.
TRANSFER_MOMENTS = ("notice", "refused", "busy", "no_answer", "declined", "unreachable", "failed")


def transfer_words(moment: str, destination: Destination) -> str:
    return render_section("transfer", moment, destination=destination.name)


# The moments of a warm transfer, each a section of prompts/warm_transfer.md. "summary" is
# not spoken: it tells the LLM how to summarize the conversation for the person called.
WARM_MOMENTS = (
    "hold",
    "introduction",
    "summary",
    "summary_fallback",
    "handoff",
    "supervisor_left",
)


def warm_words(
    moment: str,
    settings: Settings,
    destination: Destination,
    *,
    caller: str = "the caller",
    reason: str = "their call",
) -> str:
    """Every warm-transfer section gets the same placeholders, so an editor may move
    words between sections without learning which section knows what."""
    return render_section(
        "warm_transfer",
        moment,
        destination=destination.name,
        business_name=settings.business_name,
        caller=caller,
        reason=reason,
    )


# What the caller hears when the agent cannot go on (rescue.py), each a section of
# prompts/failure.md: "transfer" when [on_failure] names a destination, "end" otherwise
# and when that transfer fails.
FAILURE_MOMENTS = ("transfer", "end")


def failure_words(moment: str, settings: Settings) -> str:
    destination = settings.failure_destination
    return render_section(
        "failure",
        moment,
        destination=destination.name if destination else "a person who can help",
        business_name=settings.business_name,
    )


def every_failure_words(settings: Settings) -> list[str]:
    """The apologies this configuration can need: made ahead of time, like the greetings."""
    moments = FAILURE_MOMENTS if settings.failure_destination else ("end",)
    return [failure_words(moment, settings) for moment in moments]


def check(settings: Settings) -> Mapping[str, str]:
    """Render every prompt the configuration will use; returns them by name."""
    rendered = {"instructions": instructions(settings, settings.models.language)}
    for line in (None, *settings.lines):
        rendered[f"greeting:{line.id if line else 'default'}"] = greeting(settings, line)
    for destination in settings.destinations:
        for moment in TRANSFER_MOMENTS:
            rendered[f"transfer:{moment}:{destination.key}"] = transfer_words(moment, destination)
    for moment in FAILURE_MOMENTS:
        rendered[f"failure:{moment}"] = failure_words(moment, settings)
    for destination in settings.destinations_for("warm"):
        for moment in WARM_MOMENTS:
            rendered[f"warm_transfer:{moment}:{destination.key}"] = warm_words(
                moment, settings, destination
            )
    return rendered
