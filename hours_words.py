"""Saying when a closed destination opens, in the call's language.

Every word comes from prompts/<language>/hours.md: the sentences, "today" / "tomorrow"
/ "on Monday" / "on Monday, January 5", the names of days and months, and how each hour
of the day is said (24 lines, so a language picks a 12- or 24-hour clock, its articles
and its parts of the day without code). A translator adds a language by adding the file;
``samples`` renders every line of it at start-up (prompts.check).

Days are counted on the schedule's wall clock: "tomorrow" is tomorrow where the
destination is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime, time, timedelta

from hours import Schedule
from prompts import PromptError, prompt_language, render_section, render_text, sections

FILE = "hours"
# The sections that are lists, one item a line: how many lines, and what they are.
LISTS = {
    "weekdays": (7, "the days from Monday to Sunday"),
    "months": (12, "the months from January to December"),
    "times": (24, "the hours from midnight (0:00) to 23:00"),
}


def when_it_opens(schedule: Schedule, at: datetime, language: str) -> str | None:
    """When ``schedule`` next opens after ``at`` (aware), as said in ``language`` (a
    code like "es-419" or a prompt folder like "es"): "tomorrow at 9 a.m."; None when it
    does not open within hours.HORIZON. At an instant it is open, that instant."""
    opening = schedule.next_opening(at)
    if opening is None:
        return None
    return spoken_when(schedule.local(opening), schedule.local(at).date(), language)


def closed_now(destination: str, schedule: Schedule, at: datetime, language: str) -> str:
    """The sentence a caller hears when ``destination`` (its spoken name in
    ``language``) is closed at ``at``: "I'm sorry, the billing team is closed right now.
    It opens tomorrow at 9 a.m."."""
    folder = prompt_language(language)
    when = when_it_opens(schedule, at, folder)
    if when is None:
        return _tidy(render_section(FILE, "closed_no_opening", folder, destination=destination))
    return _tidy(render_section(FILE, "closed", folder, destination=destination, when=when))


def spoken_when(opening: datetime, today: date, language: str) -> str:
    """``opening`` (on the schedule's wall clock) said from ``today``'s point of view:
    today, tomorrow, a weekday within the week, or a date further on."""
    folder = prompt_language(language)
    days = (opening.date() - today).days
    section = "today" if days <= 0 else "tomorrow" if days == 1 else "weekday"
    if days >= 7:
        section = "date"
    return _tidy(
        render_section(
            FILE,
            section,
            folder,
            time=spoken_time(opening.hour, opening.minute, folder),
            day=_item("weekdays", opening.weekday(), folder),
            month=_item("months", opening.month - 1, folder),
            day_number=str(opening.day),
        )
    )


def spoken_time(hour: int, minute: int, language: str) -> str:
    """A time of day (0-23, 0-59) as ``language`` says it: "9 a.m.", "las 9 y 30 de la
    mañana"."""
    folder = prompt_language(language)
    minutes = ""
    if minute:
        minutes = render_section(
            FILE, "minutes", folder, minute=str(minute), minute_padded=f"{minute:02d}"
        )
    where = f"language {folder}: prompts/{folder}/{FILE}.md, section times, line {hour + 1}"
    return _tidy(render_text(_item("times", hour, folder), where, minutes=minutes))


def samples(language: str, destinations: Iterable[str] = ()) -> dict[str, str]:
    """Every line of ``language``'s hours.md rendered, by a name for each: every hour
    with and without minutes, every weekday and month, and both sentences for each
    destination name. Raises PromptError naming the file, section (and line) at fault."""
    folder = prompt_language(language)
    for section in LISTS:
        _items(section, folder)
    rendered: dict[str, str] = {}
    for hour in range(24):
        for minute in (0, 5, 30):
            rendered[f"time:{hour:02d}:{minute:02d}"] = spoken_time(hour, minute, folder)
    monday = date(2026, 1, 5)  # a Monday; seven days on, each weekday; then each month
    for days in range(7):
        opening = datetime.combine(monday + timedelta(days=days), time(9))
        rendered[f"when:+{days}"] = spoken_when(opening, monday, folder)
    for month in range(1, 13):
        opening = datetime(2027, month, 1, 13, 30)
        rendered[f"when:month:{month}"] = spoken_when(opening, date(2026, 12, 1), folder)
    when = rendered["when:+1"]
    for name in destinations:
        rendered[f"closed:{name}"] = _tidy(
            render_section(FILE, "closed", folder, destination=name, when=when)
        )
        rendered[f"closed_no_opening:{name}"] = _tidy(
            render_section(FILE, "closed_no_opening", folder, destination=name)
        )
    return rendered


def _items(section: str, folder: str) -> tuple[str, ...]:
    """A list section's lines, exactly as many as LISTS says."""
    count, meaning = LISTS[section]
    text = sections(FILE, folder).get(section, "")
    lines = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(lines) != count:
        where = f"language {folder}: prompts/{folder}/{FILE}.md"
        found = f"has {len(lines)} lines" if lines else "is missing or empty"
        raise PromptError(
            f"{where}, section {section} {found}; it needs {count}, one a line: {meaning}"
        )
    return lines


def _item(section: str, index: int, folder: str) -> str:
    return _items(section, folder)[index]


_DOUBLED_STOP = re.compile(r"(?<!\.)\.\.(?!\.)")


def _tidy(text: str) -> str:
    """One line with single spaces (an empty {minutes} leaves two; a section's lines are
    one sentence) and one full stop where a time ends a sentence ("9 a.m." + ".")."""
    return _DOUBLED_STOP.sub(".", " ".join(text.split()))
