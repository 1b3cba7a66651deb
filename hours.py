"""Opening hours: when a destination takes calls, in its own time zone.

A Schedule is the sign on the door: a weekly timetable in local wall-clock time, dates
closed all day (holidays) and dates with hours of their own. Whether it is open at an
instant is a question about the clock on the wall there: what local day and time it
shows, and whether that day's hours include that time. So it stays right across
daylight-saving changes without special cases:

- the clocks go back (01:00-02:00 happens twice): a place open at 01:30 is open both
  times, and a night that ends at 02:00 lasts an hour longer;
- the clocks go forward (02:00-03:00 never happens): a place that opens at 02:30 is open
  from the moment the clocks jump to 03:00, and a place open only 02:00-02:30 does not
  open that night.

An interval belongs to the day it starts on: ``monday = "22:00-06:00"`` is open from
Monday 22:00 to Tuesday 06:00, and a holiday on Tuesday closes Tuesday's own hours, not
the end of Monday's night. 24:00 is the end of a day.

Reading schedules from assistant.toml is hours_config.py's; saying when a place opens,
in the call's language, is hours_words.py's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_MINUTES = 24 * 60
# How far ahead next_opening looks: past a two-week closure, "closed" is all a caller hears.
HORIZON = timedelta(days=14)


def clock(minutes: int) -> str:
    """Minutes after midnight as the configuration writes them: 540 -> "09:00"."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """Open from ``start`` to ``end``, in minutes after local midnight of the day it
    starts on. An ``end`` at or before ``start`` is on the next day (22:00-06:00);
    1440 is 24:00, the end of the day."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if not (0 <= self.start < DAY_MINUTES and 0 < self.end <= DAY_MINUTES):
            raise ValueError(f"not an interval of a day: {self.start}-{self.end} minutes")
        if self.start == self.end:
            raise ValueError(f"an empty interval: {self}")

    @property
    def crosses_midnight(self) -> bool:
        return self.end <= self.start

    @property
    def minutes(self) -> int:
        """How long it lasts on the wall clock."""
        return self.end - self.start + (DAY_MINUTES if self.crosses_midnight else 0)

    def __str__(self) -> str:
        return f"{clock(self.start)}-{clock(self.end)}"


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"needs an aware datetime (UTC), not a naive one: {at.isoformat()}")
    return at.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a destination is open. ``week``: the intervals of each weekday, Monday
    first; a date in ``dates`` has its own intervals instead (none: closed), a date in
    ``holidays`` none at all. Dates are local to ``zone``."""

    zone: ZoneInfo
    week: tuple[tuple[Interval, ...], ...] = ((),) * 7
    holidays: frozenset[date] = frozenset()
    dates: Mapping[date, tuple[Interval, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if len(self.week) != 7:
            raise ValueError(f"a week has 7 days, not {len(self.week)}")

    @property
    def timezone(self) -> str:
        """The zone's IANA name, "America/New_York"."""
        return self.zone.key

    def hours_on(self, day: date) -> tuple[Interval, ...]:
        """The intervals that start on local date ``day``."""
        if day in self.dates:
            return self.dates[day]
        if day in self.holidays:
            return ()
        return self.week[day.weekday()]

    def local(self, at: datetime) -> datetime:
        """``at`` (aware) on the wall clock of ``zone``."""
        return _utc(at).astimezone(self.zone)

    def is_open(self, at: datetime) -> bool:
        """Whether it is open at instant ``at`` (an aware datetime, normally UTC)."""
        local = self.local(at)
        # Intervals are whole minutes, so the minute the clock shows decides.
        minute = local.hour * 60 + local.minute
        today = local.date()
        if any(
            i.start <= minute and (i.crosses_midnight or minute < i.end)
            for i in self.hours_on(today)
        ):
            return True
        yesterday = self.hours_on(today - timedelta(days=1))
        return any(i.crosses_midnight and minute < i.end for i in yesterday)

    def next_opening(self, at: datetime, within: timedelta = HORIZON) -> datetime | None:
        """The first instant from ``at`` on at which it is open, in UTC: ``at`` itself
        when it is open then; None when it does not open within ``within``."""
        start = _utc(at)
        if self.is_open(start):
            return start
        # is_open only changes at the instants _changes lists, and holds from each of
        # them to the next, so the first of them at which it is open is the opening.
        return next((m for m in self._changes(start, start + within) if self.is_open(m)), None)

    def _changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Every instant in (start, end] at which ``is_open`` may change: each opening
        and closing time on the wall clock (both instants of a repeated one) and each
        change of the zone's UTC offset (where the clock jumps over a time)."""
        found = set(self._offset_changes(start, end))
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        last = end.astimezone(self.zone).date()
        while day <= last:
            midnight = datetime.combine(day, time())
            for interval in self.hours_on(day):
                for minutes in (interval.start, interval.start + interval.minutes):
                    wall = midnight + timedelta(minutes=minutes)
                    for fold in (0, 1):
                        found.add(wall.replace(tzinfo=self.zone, fold=fold).astimezone(UTC))
            day += timedelta(days=1)
        return sorted(m for m in found if start < m <= end)

    def _offset_changes(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """The instants in (start, end] at which the zone's UTC offset changes, to the
        second. zoneinfo does not list them; an hourly scan finds each (zones change
        offset months apart) and a bisection places it."""

        def offset(seconds: int | float) -> timedelta | None:
            return datetime.fromtimestamp(seconds, self.zone).utcoffset()

        lo = int(start.timestamp())  # floor: transitions fall on whole seconds
        stop = end.timestamp()
        before = offset(lo)
        while lo < stop:
            hi = min(lo + 3600, int(stop))
            if hi <= lo:
                return
            if (after := offset(hi)) != before:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
                yield datetime.fromtimestamp(hi, UTC)
                before = after
            lo = hi
