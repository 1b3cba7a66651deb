"""Opening hours on a frozen clock: an office in New York and one in Madrid, asked at
fixed instants (UTC) whether they are open and when they next open, across weekends,
holidays, nights that cross midnight and both daylight-saving changes of each zone.

2026's changes: New York springs forward on Sunday March 8 (02:00 EST -> 03:00 EDT,
07:00 UTC) and falls back on Sunday November 1 (02:00 EDT -> 01:00 EST, 06:00 UTC);
Madrid springs forward on Sunday March 29 (02:00 CET -> 03:00 CEST, 01:00 UTC) and
falls back on Sunday October 25 (03:00 CEST -> 02:00 CET, 01:00 UTC).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from config_checks import Problems
from hours import Schedule
from hours_config import parse_hours

ROOT = Path(__file__).resolve().parents[2]


def schedule(toml: str) -> Schedule:
    """The one schedule of an [hours] snippet, which must have no problems."""
    problems = Problems()
    (found,) = parse_hours(tomllib.loads(toml)["hours"], problems).values()
    assert problems.items == []
    return found


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def office(zone: str, extra: str = "") -> Schedule:
    return schedule(f'[hours.office]\ntimezone = "{zone}"\nmonday-friday = "09:00-17:00"\n{extra}')


NEW_YORK = office("America/New_York")
MADRID = office("Europe/Madrid")


# --------------------------------------------------------------------------- two zones


def test_one_instant_two_offices_each_on_its_own_clock() -> None:
    # Wednesday June 3: 10:00 in New York, 16:00 in Madrid.
    assert NEW_YORK.is_open(utc("2026-06-03 14:00"))
    assert MADRID.is_open(utc("2026-06-03 14:00"))
    # 15:00 in New York, 21:00 in Madrid.
    assert NEW_YORK.is_open(utc("2026-06-03 19:00"))
    assert not MADRID.is_open(utc("2026-06-03 19:00"))
    # 03:30 in New York, 09:30 in Madrid.
    assert not NEW_YORK.is_open(utc("2026-06-03 07:30"))
    assert MADRID.is_open(utc("2026-06-03 07:30"))


def test_opening_time_is_open_and_closing_time_is_closed() -> None:
    assert not NEW_YORK.is_open(utc("2026-06-03 12:59:59"))  # 08:59:59 EDT
    assert NEW_YORK.is_open(utc("2026-06-03 13:00"))  # 09:00 EDT
    assert NEW_YORK.is_open(utc("2026-06-03 20:59:59"))
    assert not NEW_YORK.is_open(utc("2026-06-03 21:00"))  # 17:00 EDT


def test_closed_at_the_weekend_and_opens_on_monday_morning() -> None:
    saturday_noon = utc("2026-06-06 16:00")
    assert not NEW_YORK.is_open(saturday_noon)
    assert NEW_YORK.next_opening(saturday_noon) == utc("2026-06-08 13:00")
    assert MADRID.next_opening(saturday_noon) == utc("2026-06-08 07:00")


def test_open_now_is_its_own_next_opening() -> None:
    assert NEW_YORK.next_opening(utc("2026-06-03 14:00:30")) == utc("2026-06-03 14:00:30")


def test_an_instant_in_another_offset_means_the_same_instant() -> None:
    from zoneinfo import ZoneInfo

    tokyo = datetime(2026, 6, 3, 23, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 14:00 UTC
    assert NEW_YORK.is_open(tokyo)
    assert NEW_YORK.next_opening(tokyo) == utc("2026-06-03 14:00")


def test_a_naive_instant_is_refused_rather_than_guessed() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        NEW_YORK.is_open(datetime(2026, 6, 3, 14, 0))


# --------------------------------------------------------------------------- daylight saving


def test_new_york_springs_forward_and_monday_opens_an_hour_earlier_in_utc() -> None:
    friday_evening = utc("2026-03-06 22:00")  # 17:00 EST
    assert NEW_YORK.next_opening(friday_evening) == utc("2026-03-09 13:00")  # 09:00 EDT
    assert NEW_YORK.next_opening(utc("2026-02-27 22:00")) == utc("2026-03-02 14:00")  # EST


def test_madrid_springs_forward_and_monday_opens_an_hour_earlier_in_utc() -> None:
    friday_evening = utc("2026-03-27 16:00")  # 17:00 CET
    assert MADRID.next_opening(friday_evening) == utc("2026-03-30 07:00")  # 09:00 CEST
    assert MADRID.next_opening(utc("2026-03-20 16:00")) == utc("2026-03-23 08:00")  # CET


@pytest.mark.parametrize(
    ("zone", "midnight", "jump"),
    [
        pytest.param("America/New_York", "2026-03-08 05:00", "2026-03-08 07:00", id="new-york"),
        pytest.param("Europe/Madrid", "2026-03-28 23:00", "2026-03-29 01:00", id="madrid"),
    ],
)
def test_an_opening_at_a_0230_that_does_not_exist_is_when_the_clocks_jump(
    zone: str, midnight: str, jump: str
) -> None:
    early = schedule(f'[hours.early]\ntimezone = "{zone}"\nsunday = "02:30-04:00"')
    just_before = utc(jump) - timedelta(seconds=1)  # 01:59:59 on the wall
    assert not early.is_open(just_before)
    assert early.is_open(utc(jump))  # 03:00 on the wall: past 02:30
    assert early.next_opening(utc(midnight)) == utc(jump)
    assert not early.is_open(utc(jump) + timedelta(hours=1))  # 04:00


def test_hours_inside_the_skipped_hour_never_open_that_night() -> None:
    gap = schedule('[hours.gap]\ntimezone = "America/New_York"\nsunday = "02:00-02:45"')
    # The Sunday of the change has no 02:00-02:45; the next Sunday's is at 07:00 UTC (EDT).
    assert gap.next_opening(utc("2026-03-08 05:00")) == utc("2026-03-15 06:00")


def test_a_night_crossing_the_spring_change_is_an_hour_shorter() -> None:
    night = schedule('[hours.night]\ntimezone = "America/New_York"\nsaturday = "22:00-06:00"')
    assert night.next_opening(utc("2026-03-07 20:00")) == utc("2026-03-08 03:00")  # 22:00 EST
    assert night.is_open(utc("2026-03-08 09:59"))  # 05:59 EDT
    assert not night.is_open(utc("2026-03-08 10:00"))  # 06:00 EDT: seven hours, not eight


def test_new_york_falls_back_and_a_repeated_0130_is_open_both_times() -> None:
    late = schedule('[hours.late]\ntimezone = "America/New_York"\nsunday = "01:00-03:00"')
    assert late.next_opening(utc("2026-11-01 04:00")) == utc("2026-11-01 05:00")  # 01:00 EDT
    assert late.is_open(utc("2026-11-01 05:30"))  # 01:30 EDT
    assert late.is_open(utc("2026-11-01 06:30"))  # 01:30 EST, the second time
    assert late.is_open(utc("2026-11-01 07:59"))  # 02:59 EST
    assert not late.is_open(utc("2026-11-01 08:00"))  # 03:00 EST: three hours, not two


def test_hours_inside_the_repeated_hour_happen_twice_on_the_wall_clock() -> None:
    """The rule is the wall clock's, even where it reads oddly: 01:30-04:00 on the night
    the clocks go back at 02:00 is open at 01:30, closed when the clock shows 01:00
    again, and open from the second 01:30."""
    late = schedule('[hours.late]\ntimezone = "America/New_York"\nsunday = "01:30-04:00"')
    assert late.next_opening(utc("2026-11-01 04:00")) == utc("2026-11-01 05:30")  # 01:30 EDT
    assert not late.is_open(utc("2026-11-01 06:00"))  # 01:00 EST
    assert late.next_opening(utc("2026-11-01 06:00")) == utc("2026-11-01 06:30")  # 01:30 EST


def test_madrid_falls_back_and_a_night_until_0300_is_an_hour_longer() -> None:
    bar = schedule('[hours.bar]\ntimezone = "Europe/Madrid"\nsaturday = "22:00-03:00"')
    assert bar.next_opening(utc("2026-10-24 12:00")) == utc("2026-10-24 20:00")  # 22:00 CEST
    assert bar.is_open(utc("2026-10-25 00:30"))  # 02:30 CEST
    assert bar.is_open(utc("2026-10-25 01:30"))  # 02:30 CET, the second time
    assert bar.is_open(utc("2026-10-25 01:59"))  # 02:59 CET
    assert not bar.is_open(utc("2026-10-25 02:00"))  # 03:00 CET: six hours, not five


def test_the_office_after_the_fall_change_opens_an_hour_later_in_utc() -> None:
    assert NEW_YORK.next_opening(utc("2026-10-30 21:00")) == utc("2026-11-02 14:00")  # EST
    assert MADRID.next_opening(utc("2026-10-23 15:00")) == utc("2026-10-26 08:00")  # CET


# --------------------------------------------------------------------------- holidays, nights


CHRISTMAS = office("America/New_York", "holidays = [2026-12-25]")


def test_a_holiday_is_closed_all_day() -> None:
    assert not CHRISTMAS.is_open(utc("2026-12-25 15:00"))  # Friday 10:00 EST
    assert NEW_YORK.is_open(utc("2026-12-25 15:00"))  # the same office without it


def test_next_opening_skips_a_holiday_and_the_weekend_after_it() -> None:
    thursday_evening = utc("2026-12-24 23:00")  # 18:00 EST
    assert CHRISTMAS.next_opening(thursday_evening) == utc("2026-12-28 14:00")  # Monday 09:00
    assert NEW_YORK.next_opening(thursday_evening) == utc("2026-12-25 14:00")


def test_a_date_with_its_own_hours_replaces_the_weekday() -> None:
    eve = office(
        "America/New_York", 'dates = { 2026-12-24 = "09:00-13:00", 2026-12-31 = "closed" }'
    )
    assert eve.is_open(utc("2026-12-24 17:59"))  # 12:59 EST
    assert not eve.is_open(utc("2026-12-24 18:00"))  # 13:00 EST: closes early
    assert not eve.is_open(utc("2026-12-31 15:00"))
    assert eve.next_opening(utc("2026-12-30 23:00")) == utc("2027-01-01 14:00")


def test_a_night_crossing_midnight_is_open_until_morning() -> None:
    night = schedule('[hours.night]\ntimezone = "Europe/Madrid"\nmonday-friday = "22:00-06:00"')
    assert night.is_open(utc("2026-06-01 20:00"))  # Monday 22:00 CEST
    assert night.is_open(utc("2026-06-02 03:59"))  # Tuesday 05:59
    assert not night.is_open(utc("2026-06-02 04:00"))  # Tuesday 06:00
    assert night.is_open(utc("2026-06-06 03:00"))  # Saturday 05:00: Friday's night
    assert not night.is_open(utc("2026-06-06 20:00"))  # Saturday 22:00
    assert night.next_opening(utc("2026-06-06 20:00")) == utc("2026-06-08 20:00")


def test_a_night_belongs_to_the_day_it_starts_on_around_a_holiday() -> None:
    night = schedule(
        '[hours.night]\ntimezone = "America/New_York"\nmonday-sunday = "22:00-06:00"\n'
        "holidays = [2026-12-25]"
    )
    assert night.is_open(utc("2026-12-25 10:00"))  # Christmas 05:00: the 24th's night
    assert not night.is_open(utc("2026-12-25 11:00"))  # 06:00
    assert not night.is_open(utc("2026-12-26 05:00"))  # 00:00 on the 26th: no night on the 25th
    assert night.next_opening(utc("2026-12-25 11:00")) == utc("2026-12-27 03:00")  # 26th 22:00


def test_24_00_ends_a_day_and_the_next_day_carries_on() -> None:
    late = schedule(
        '[hours.late]\ntimezone = "America/New_York"\n'
        'monday = "18:00-24:00"\ntuesday = "00:00-02:00"'
    )
    assert late.is_open(utc("2026-06-02 03:59"))  # Monday 23:59 EDT
    assert late.is_open(utc("2026-06-02 04:00"))  # Tuesday 00:00
    assert late.is_open(utc("2026-06-02 05:59"))  # Tuesday 01:59
    assert not late.is_open(utc("2026-06-02 06:00"))  # Tuesday 02:00
    assert late.next_opening(utc("2026-06-01 21:00")) == utc("2026-06-01 22:00")


def test_no_opening_within_two_weeks_is_none() -> None:
    later = schedule(
        '[hours.later]\ntimezone = "Europe/Madrid"\ndates = { 2027-06-01 = "09:00-17:00" }'
    )
    assert later.next_opening(utc("2026-06-01 12:00")) is None
    assert later.next_opening(utc("2026-06-01 12:00"), within=timedelta(days=400)) == utc(
        "2027-06-01 07:00"
    )


# --------------------------------------------------------------------------- tzdata


def test_zones_work_where_the_system_has_no_zone_database(tmp_path: Path) -> None:
    """A worker in a slim image: zoneinfo finds no zone files and falls back to the
    tzdata package. A real interpreter, with the zone search path pointing nowhere."""
    script = textwrap.dedent(
        """
        import sys, zoneinfo
        from datetime import datetime
        from config_checks import Problems
        from hours_config import parse_hours

        assert zoneinfo.TZPATH == (sys.argv[1],), zoneinfo.TZPATH
        problems = Problems()
        found = parse_hours(
            {
                "office": {"timezone": "Europe/Madrid", "monday": "09:00-17:00"},
                "typo": {"timezone": "Europe/Madird", "monday": "09:00-17:00"},
            },
            problems,
        )
        print(found["office"].zone.utcoffset(datetime(2026, 7, 1)))
        print(problems.items[0])
        """
    )
    env = {**os.environ, "PYTHONTZPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    offset, problem = done.stdout.splitlines()
    assert offset == "2:00:00"  # Madrid in summer, from tzdata
    assert "did you mean 'Europe/Madrid'?" in problem
