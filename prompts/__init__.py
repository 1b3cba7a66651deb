"""The agent's words, as markdown files per language: prompts/<language>/<name>.md.

Every language has the same files and, in each, the same "## section" names, so a
translator works file by file without reading code (docs/translating.md). Files are read
through a tiny cached loader and filled with configuration values; ``Words`` is one
language's words for one business, what a call (or the person a warm transfer reaches)
hears. ``check()`` renders every prompt of every configured language at start-up, so a
missing file or section, a misspelt placeholder, or a sentence left in English stops the
worker before it answers a call, naming the language, the file and the section.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from config import Destination, Line, Settings
from languages import LANGUAGE_NAMES

PROMPTS_DIR = Path(__file__).parent
ORIGINAL = "en"  # the language the others are translated from

# A language's name, for the instructions ("Speak Spanish"); a code without a name gets
# a neutral phrase, never the code itself.
NEUTRAL_LANGUAGE = "the language the caller speaks"

# The moments of a transfer the caller hears about, each a section of transfer.md.
TRANSFER_MOMENTS = ("notice", "refused", "busy", "no_answer", "declined", "unreachable", "failed")
# The moments of a warm transfer, each a section of warm_transfer.md. "summary" and
# "consult" are not spoken: they tell the LLM how to summarize the conversation for the
# person called, and how to talk with them in the consult (tools/warm_transfer/).
WARM_MOMENTS = (
    "hold",
    "introduction",
    "summary",
    "summary_fallback",
    "handoff",
    "supervisor_left",
    "caller_number",
    "caller_hidden",
    "keypad_reason",
    # consult-first (warm_mode = "consult"): the caller hears these
    "still_holding",
    "voicemail",
    "ivr",
    "mailbox_full",
    "no_greeting",
    "person_declined",
    "consult_timeout",
    "transfer_timeout",
    "connected",
    # and the person called these
    "screen_question",
    "consult",
    "consult_question",
    "consult_accepted",
    "consult_declined",
    "consult_no_answer",
)
# When the agent cannot go on (rescue.py), each a section of failure.md: "transfer" when
# [on_failure] names a destination, "end" otherwise and when that transfer fails.
FAILURE_MOMENTS = ("transfer", "end")
# A destination outside its opening hours (hours_words.py), each a section of hours.md:
# the sentences, when it opens, and how days and times are said.
HOURS_SECTIONS = (
    "closed",
    "closed_no_opening",
    "today",
    "tomorrow",
    "weekday",
    "date",
    "weekdays",
    "months",
    "times",
    "minutes",
)
# Taking a message (tools/message.py), each a section of message.md: what the caller
# hears, and how the model that asks for the callback number is guided.
MESSAGE_MOMENTS = ("taken", "not_saved", "anyone", "own_number", "ask_number", "speak")
# Every file of a language: whole-file prompts (None) or their sections.
FILES: Mapping[str, tuple[str, ...] | None] = {
    "instructions": None,
    "greeting": None,
    "transfer": TRANSFER_MOMENTS,
    "warm_transfer": WARM_MOMENTS,
    "failure": FAILURE_MOMENTS,
    "hours": HOURS_SECTIONS,
    "message": MESSAGE_MOMENTS,
}
# Sections a translation may leave as the original has them: German minutes are
# ":{minute_padded}" as in English.
MAY_EQUAL_ORIGINAL = frozenset({("hours", "minutes")})
# Marks a translator leaves in a sentence still to be translated.
UNTRANSLATED_MARKS = ("TODO", "TRANSLATE", "FIXME", "XXX")


class PromptError(Exception):
    """A prompt file is missing or does not fit the values it is filled with."""


def prompt_language(code: str) -> str:
    """The prompt folder of a language code: its base ("es-419" -> "es", "en-US" -> "en")."""
    return code.split("-")[0].lower()


@cache
def prompt(name: str, language: str = ORIGINAL) -> str:
    path = PROMPTS_DIR / language / f"{name}.md"
    if not path.is_file():
        raise PromptError(
            f"language {language}: prompt file missing: prompts/{language}/{name}.md "
            f"(copy prompts/{ORIGINAL}/{name}.md and translate it)"
        )
    return path.read_text(encoding="utf-8").strip()


@cache
def sections(name: str, language: str = ORIGINAL) -> Mapping[str, str]:
    """A prompt file split at its ``## name`` headings: one file holds the words of
    one flow (a transfer), one section per moment; text before the first heading is a
    note to whoever edits the file."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in prompt(name, language).splitlines():
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


def render_text(template: str, where: str, **values: Any) -> str:
    """Fill a piece of a prompt file (one line of a section); ``where`` names it in errors."""
    return _fill(template, where, values)


def render(name: str, language: str = ORIGINAL, **values: Any) -> str:
    return _fill(
        prompt(name, language), f"language {language}: prompts/{language}/{name}.md", values
    )


def render_section(name: str, section: str, language: str = ORIGINAL, **values: Any) -> str:
    where = f"language {language}: prompts/{language}/{name}.md"
    found = sections(name, language)
    if section not in found or not found[section]:
        raise PromptError(f"{where} has no '## {section}' section (or it is empty)")
    return _fill(found[section], f"{where}, section {section}", values)


def language_name(language: str) -> str:
    """The name for a language code, only ever one from languages.LANGUAGE_NAMES."""
    base = language.split("-")[0].lower() if isinstance(language, str) else ""
    return LANGUAGE_NAMES.get(base, NEUTRAL_LANGUAGE)


def destination_list(destinations: Iterable[Destination], language: str) -> str:
    """The destinations as the instructions list them for the LLM (keys, never addresses),
    each by its name in the call's language, the way the agent should say it."""
    lines = [
        f"- {d.key}: {d.spoken_name(language)}. {d.description} "
        f"(transfer: {' or '.join(sorted(d.modes))})"
        for d in destinations
    ]
    return "\n".join(lines) or "- (none configured: you cannot transfer calls)"


class Words:
    """One language's fixed sentences for one business: what a caller on a line of that
    language hears, or what the person a warm transfer reaches hears in theirs."""

    def __init__(self, settings: Settings, language: str) -> None:
        self._settings = settings
        self.code = language  # as configured: "es", "en-US"
        self.language = prompt_language(language)  # its prompt folder: "es", "en"

    def instructions(self) -> str:
        return render(
            "instructions",
            self.language,
            business_name=self._settings.business_name,
            language_name=language_name(self.code),
            destinations=destination_list(self._settings.destinations, self.code),
        )

    def greeting(self, line: Line | None = None) -> str:
        name = (line.greeting if line else None) or "greeting"
        return render(name, self.language, business_name=self._settings.business_name)

    def transfer(self, moment: str, destination: Destination) -> str:
        return render_section(
            "transfer", moment, self.language, destination=destination.spoken_name(self.code)
        )

    def warm(
        self,
        moment: str,
        destination: Destination,
        *,
        caller: str = "",
        reason: str = "",
        digits: str = "",
    ) -> str:
        """Every warm-transfer section gets the same placeholders, so an editor may move
        words between sections without learning which section knows what."""
        return render_section(
            "warm_transfer",
            moment,
            self.language,
            destination=destination.spoken_name(self.code),
            business_name=self._settings.business_name,
            caller=caller,
            reason=reason,
            digits=digits,
        )

    def failure(self, moment: str) -> str:
        destination = self._settings.failure_destination
        return render_section(
            "failure",
            moment,
            self.language,
            destination=destination.spoken_name(self.code) if destination else "",
            business_name=self._settings.business_name,
        )

    def message(self, moment: str, destination: Destination | None = None, **values: str) -> str:
        """A moment of taking a message for ``destination`` (None: for anyone at the
        business). ``values``: caller (their name), number."""
        return render_section(
            "message",
            moment,
            self.language,
            destination=self.message_for(destination),
            language_name=language_name(self.code),
            **{"caller": "", "number": "", **values},
        )

    def message_for(self, destination: Destination | None) -> str:
        if destination is not None:
            return destination.spoken_name(self.code)
        return render_section("message", "anyone", self.language)

    def apologies(self) -> list[str]:
        """The apologies this configuration can need: made ahead of time, like greetings."""
        moments = FAILURE_MOMENTS if self._settings.failure_destination else ("end",)
        return [self.failure(moment) for moment in moments]


# --------------------------------------------------------------------------- start-up


def check(settings: Settings) -> Mapping[str, str]:
    """Render every prompt of every configured language; returns them by name. Raises
    PromptError naming the language, the file and the section at fault."""
    rendered: dict[str, str] = {}
    for code in settings.languages:
        words = Words(settings, code)
        _check_complete(words.language)
        key = words.language
        rendered[f"{key}:instructions"] = words.instructions()
        for line in (None, *settings.lines):
            rendered[f"{key}:greeting:{line.id if line else 'default'}"] = words.greeting(line)
        for destination in settings.destinations:
            for moment in TRANSFER_MOMENTS:
                rendered[f"{key}:transfer:{moment}:{destination.key}"] = words.transfer(
                    moment, destination
                )
        for destination in settings.destinations_for("warm"):
            for moment in WARM_MOMENTS:
                rendered[f"{key}:warm_transfer:{moment}:{destination.key}"] = words.warm(
                    moment, destination, caller="Dana", reason="a bill", digits="4 5 6 7"
                )
        for moment in FAILURE_MOMENTS:
            rendered[f"{key}:failure:{moment}"] = words.failure(moment)
        for destination in (None, *settings.destinations):
            for moment in MESSAGE_MOMENTS:
                rendered[f"{key}:message:{moment}:{destination.key if destination else ''}"] = (
                    words.message(moment, destination, caller="Dana", number="555 010 0123")
                )
        # Imported here: hours_words builds on this module.
        from hours_words import samples

        names = [d.spoken_name(code) for d in settings.destinations]
        for sample, text in samples(words.language, names).items():
            rendered[f"{key}:hours:{sample}"] = text
    return rendered


def _check_complete(language: str) -> None:
    """Every file and section of the original exists in ``language``, and none of its
    sentences is still the original's or carries a translator's mark."""
    for name, moments in FILES.items():
        where = f"language {language}: prompts/{language}/{name}.md"
        if moments is None:
            texts = {"": prompt(name, language)}
            originals = {"": prompt(name, ORIGINAL)}
        else:
            found = sections(name, language)
            missing = [m for m in moments if not found.get(m)]
            if missing:
                raise PromptError(
                    f"{where} has no '## {missing[0]}' section (or it is empty); every "
                    f"language needs: {', '.join(moments)}"
                )
            texts = {m: found[m] for m in moments}
            originals = dict(sections(name, ORIGINAL))
        for section, text in texts.items():
            at = f"{where}, section {section}" if section else where
            if any(mark in text for mark in UNTRANSLATED_MARKS):
                raise PromptError(f"{at} is marked as not translated yet: {text[:60]!r}")
            if (
                language != ORIGINAL
                and text == originals.get(section)
                and (name, section) not in MAY_EQUAL_ORIGINAL
            ):
                raise PromptError(
                    f"{at} is still the {ORIGINAL} text, not translated: {text[:60]!r}"
                )
