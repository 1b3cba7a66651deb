"""Opening hours in assistant.toml: named schedules in ``[hours]``, and a destination's
``hours``, either the name of one of them or a table of its own::

    [hours.office]
    timezone = "America/New_York"            # an IANA name: the place, not "EST"
    monday-friday = "09:00-17:00"            # a day, or a range of days
    saturday = ["09:00-12:00", "13:00-15:00"]
    sunday = "closed"                        # a day not given is closed too
    holidays = [2026-12-25, "2027-01-01"]    # closed all day
    dates = { 2026-12-24 = "09:00-13:00" }   # a date with hours of its own

    [[destinations]]
    key = "billing"
    hours = "office"                         # or { timezone = "...", monday = "..." }

A range of times may cross midnight ("22:00-06:00", open until 06:00 the next day) and
end at "24:00"; a range of days may wrap ("friday-monday"). A destination without
``hours`` is always open. See hours.py for what the hours mean across daylight saving.

Like config_tables.py, the parsers record every problem with its setting path and value
(``hours.office.monday = '9-17': not a time range like '09:00-17:00' ...``) and go on;
a schedule with problems is still returned, with the parts that were wrong left closed,
so a destination naming it is not also told the name is unknown.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cache
from itertools import pairwise
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

from config_checks import KEY, Problems, dotted
from hours import DAY_MINUTES, WEEKDAYS, Interval, Schedule

ZONE_EXAMPLES = "like 'America/New_York' or 'Europe/Madrid'"
RANGE_HINT = "not a time range like '09:00-17:00' (or a list of them, or \"closed\")"
DATE_HINT = "not a date like '2026-12-25' (year-month-day)"
CLOSED = "closed"
_SETTINGS = ("timezone", "holidays", "dates")
_ALLOWED = "timezone, holidays, dates, a day like monday or a range of days like monday-friday"
_TABLE_EXAMPLE = '{ timezone = "America/New_York", monday-friday = "09:00-17:00" }'

_RANGE = re.compile(r"\A(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\Z", re.ASCII)
_DATE = re.compile(r"\A\d{4}-\d{2}-\d{2}\Z", re.ASCII)
# Zone areas kept only for old names (US/Eastern) or fixed offsets: never suggested.
_OLD_AREAS = frozenset({"Brazil", "Canada", "Chile", "Etc", "Mexico", "US", "posix", "right"})
_UTC = ZoneInfo("UTC")
# What people write for the zones of the United States, which have one obvious place each.
_ABBREVIATIONS = {
    **dict.fromkeys(("EST", "EDT", "EST5EDT", "ET", "EASTERN"), "America/New_York"),
    **dict.fromkeys(("CST", "CDT", "CST6CDT", "CT", "CENTRAL"), "America/Chicago"),
    **dict.fromkeys(("MST", "MDT", "MST7MDT", "MT", "MOUNTAIN"), "America/Denver"),
    **dict.fromkeys(("PST", "PDT", "PST8PDT", "PT", "PACIFIC"), "America/Los_Angeles"),
}


def parse_hours(raw: Any, problems: Problems) -> dict[str, Schedule]:
    """The ``[hours]`` table: every named schedule, by name (those with problems too)."""
    if not isinstance(raw, Mapping):
        problems.add("hours", raw, "must be a table of named schedules, like [hours.office]")
        return {}
    schedules: dict[str, Schedule] = {}
    for name, table in raw.items():
        where = dotted("hours.", name)
        if not KEY.match(name):
            problems.add(
                where,
                name,
                "a schedule name must be lower-case letters, digits and _ (starting with "
                "a letter; at most 40)",
            )
        schedules[name] = parse_schedule(table, where, problems)
    return schedules


def schedule_for(
    value: Any, where: str, schedules: Mapping[str, Schedule], problems: Problems
) -> Schedule | None:
    """A destination's ``hours`` (at ``where``, e.g. "destinations[0].hours"): a name of
    ``schedules`` (parse_hours) or a table of its own. None when absent (always open)
    or wrong (and reported)."""
    if value is None:
        return None
    if isinstance(value, str):
        if value in schedules:
            return schedules[value]
        defined = ", ".join(sorted(schedules)) or "none; add one, like [hours.office]"
        problems.add(where, value, f"no such schedule in [hours] (defined: {defined})")
        return None
    if isinstance(value, Mapping):
        return parse_schedule(value, where, problems)
    problems.add(
        where,
        value,
        f'must name a schedule of [hours] (hours = "office") or be a table like {_TABLE_EXAMPLE}',
    )
    return None


def parse_schedule(raw: Any, where: str, p: Problems) -> Schedule:
    """One schedule's table, at ``where`` ("hours.office"); what was wrong is closed."""
    if not isinstance(raw, Mapping):
        p.add(where, raw, f"must be a table like {_TABLE_EXAMPLE}")
        return Schedule(zone=_UTC)
    reported = len(p.items)
    prefix = where + "."
    zone = _zone(raw.get("timezone"), prefix + "timezone", p)
    week: list[tuple[Interval, ...]] = [()] * 7
    given_by: dict[int, str] = {}  # weekday -> the key that gave its hours
    for key, value in raw.items():
        if key in _SETTINGS:
            continue
        at = dotted(prefix, key)
        days = _days(key)
        if days is None:
            p.items.append(f"{at}: unknown setting ({_did_you_mean(key)}allowed here: {_ALLOWED})")
            continue
        intervals = _intervals(value, at, p)
        if (again := next((d for d in days if d in given_by), None)) is not None:
            p.add(at, value, f"{WEEKDAYS[again]} already has its hours from {given_by[again]}")
        elif intervals is not None:
            for day in days:
                week[day] = intervals
                given_by[day] = at
    holidays = _holidays(raw.get("holidays", []), prefix + "holidays", p)
    dates = _dates(raw.get("dates", {}), prefix + "dates", holidays, p)
    if len(p.items) == reported and not any(week) and not any(dates.values()):
        p.items.append(
            f"{where}: never open (no day has hours); give some, like "
            'monday-friday = "09:00-17:00" (a destination without hours is always open)'
        )
    return Schedule(
        zone=zone,
        week=tuple(week),
        holidays=frozenset(holidays),
        dates=MappingProxyType(dates),
    )


# --------------------------------------------------------------------------- time zones


def zone_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a schedule's time zone, or None: an IANA name of a place
    (Area/City) or "UTC". An abbreviation like EST is refused even where zoneinfo knows
    it: it is a fixed offset or rule, not the place, and may not follow the place's
    daylight-saving changes."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a time zone: an IANA name {ZONE_EXAMPLES}"
    if value == "UTC":
        return None
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):  # ZoneInfoNotFoundError is a KeyError
        close = _closest_zone(value)
        guess = f" (did you mean {close!r}?)" if close else ""
        return f"unknown time zone{guess}; use an IANA name (Area/City), {ZONE_EXAMPLES}"
    if "/" not in value:
        close = _ABBREVIATIONS.get(value.upper())
        guess = f" (did you mean {close!r}?)" if close else ""
        return (
            f"an abbreviation or rule, not a place{guess}: it may not follow the place's "
            f"daylight-saving changes; use the place's IANA name (Area/City), "
            f"{ZONE_EXAMPLES}, or 'UTC'"
        )
    return None


def _zone(value: Any, where: str, p: Problems) -> ZoneInfo:
    if value is None:
        p.items.append(
            f"{where}: missing (every schedule needs its time zone, an IANA name {ZONE_EXAMPLES})"
        )
        return _UTC
    if why := zone_problem(value):
        p.add(where, value, why)
        return _UTC
    return ZoneInfo(value)


@cache
def _zone_names() -> Mapping[str, str]:
    """Lower-cased zone names and city names -> the zone, for suggestions. Read from the
    system's zone database or the tzdata package, whichever zoneinfo uses."""
    names: dict[str, str] = {}
    for zone in sorted(available_timezones()):
        area, _, city = zone.rpartition("/")
        if area and area.split("/")[0] not in _OLD_AREAS:
            names[zone.lower()] = zone
            names.setdefault(city.lower(), zone)
    return MappingProxyType(names)


def _closest_zone(value: str) -> str | None:
    if (zone := _ABBREVIATIONS.get(value.strip().upper())) is not None:
        return zone
    key = value.strip().replace(" ", "_").lower()
    names = _zone_names()
    if key in names:
        return names[key]
    close = difflib.get_close_matches(key, list(names), n=1, cutoff=0.8)
    return names[close[0]] if close else None


# --------------------------------------------------------------------------- days and times


def _days(key: str) -> tuple[int, ...] | None:
    """The weekdays (0 = Monday) a key gives hours to: "monday", "monday-friday", or a
    range wrapping round the week ("friday-monday"); None when it is not one."""
    if key in WEEKDAYS:
        return (WEEKDAYS.index(key),)
    first, dash, last = key.partition("-")
    if not dash or first == last or first not in WEEKDAYS or last not in WEEKDAYS:
        return None
    start, end = WEEKDAYS.index(first), WEEKDAYS.index(last)
    return tuple((start + i) % 7 for i in range((end - start) % 7 + 1))


def _did_you_mean(key: str) -> str:
    words = [*_SETTINGS, *WEEKDAYS]
    parts = [difflib.get_close_matches(part.lower(), words, n=1) for part in key.split("-")]
    if len(parts) <= 2 and all(parts):
        guess = "-".join(match[0] for match in parts)
        if guess != key:
            return f"did you mean {guess}? "
    return ""


def _intervals(value: Any, at: str, p: Problems) -> tuple[Interval, ...] | None:
    """A day's hours: "closed", a range, or a list of ranges; None when wrong."""
    if value == CLOSED:
        return ()
    if isinstance(value, str):
        one = _interval(value, at, p)
        return None if one is None else (one,)
    if not isinstance(value, list) or not value:
        p.add(at, value, RANGE_HINT)
        return None
    parsed = [_interval(item, f"{at}[{i}]", p) for i, item in enumerate(value)]
    intervals = sorted(i for i in parsed if i is not None)
    if len(intervals) < len(parsed):
        return None
    for earlier, later in pairwise(intervals):
        if later.start < earlier.start + earlier.minutes:
            p.add(at, value, f"{earlier} and {later} overlap; make them one range")
            return None
    return tuple(intervals)


def _interval(text: Any, at: str, p: Problems) -> Interval | None:
    if text == CLOSED:
        p.add(at, text, '"closed" is a whole day\'s hours, not one of its ranges')
        return None
    match = _RANGE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        p.add(at, text, RANGE_HINT)
        return None
    hours = (int(match[1]), int(match[2])), (int(match[3]), int(match[4]))
    start, end = (h * 60 + m if (h, m) <= (24, 0) and m < 60 else None for h, m in hours)
    if start is None or end is None:
        bad = match[1 if start is None else 3] + ":" + match[2 if start is None else 4]
        why = f"{bad} is not a time of day (00:00 to 23:59, or 24:00 for the end of the day)"
    elif start == DAY_MINUTES:
        why = "a range cannot start at 24:00 (that is 00:00 of the next day)"
    elif start == end:
        why = "opens and closes at the same time; for the whole day write '00:00-24:00'"
    else:
        return Interval(start, end or DAY_MINUTES)  # "22:00-00:00" ends at 24:00
    p.add(at, text, why)
    return None


# --------------------------------------------------------------------------- dates


def _date(value: Any) -> tuple[date | None, str]:
    """A date written "2026-12-25" or as a TOML date (2026-12-25); (None, why) if not."""
    if isinstance(value, datetime):  # a datetime is a date too
        return None, DATE_HINT + ", without a time of day"
    if isinstance(value, date):
        return value, ""
    if not isinstance(value, str) or not _DATE.match(value.strip()):
        return None, DATE_HINT
    try:
        return date.fromisoformat(value.strip()), ""
    except ValueError:
        return None, "no such date (year-month-day)"


def _holidays(raw: Any, where: str, p: Problems) -> set[date]:
    if not isinstance(raw, list):
        p.add(where, raw, 'must be a list of dates, like ["2026-12-25", "2027-01-01"]')
        return set()
    days: set[date] = set()
    for i, item in enumerate(raw):
        day, why = _date(item)
        if day is None:
            p.add(f"{where}[{i}]", item, why)
        elif day in days:
            p.add(f"{where}[{i}]", item, "listed twice")
        else:
            days.add(day)
    return days


def _dates(
    raw: Any, where: str, holidays: set[date], p: Problems
) -> dict[date, tuple[Interval, ...]]:
    """``dates = { 2026-12-24 = "09:00-13:00" }``: dates with hours of their own."""
    if not isinstance(raw, Mapping):
        example = '{ 2026-12-24 = "09:00-13:00" }'
        p.add(where, raw, f"must be a table of dates and their hours, like {example}")
        return {}
    dates: dict[date, tuple[Interval, ...]] = {}
    for key, value in raw.items():
        at = dotted(where + ".", key)
        day, why = _date(key)
        intervals = _intervals(value, at, p)
        if day is None:
            p.items.append(f"{at}: {why}")
        elif day in holidays:
            p.add(at, value, f"{day} is in holidays too; keep one")
        elif intervals is not None:
            dates[day] = intervals
    return dates
