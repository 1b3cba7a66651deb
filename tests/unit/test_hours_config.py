"""Opening hours as assistant.toml writes them: every mistake is reported with its
setting path and value, all of them in one pass, the way the rest of the configuration
is (config_checks.Problems)."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from config_checks import Problems
from hours import Interval, Schedule
from hours_config import parse_hours, schedule_for

OFFICE = """
[hours.office]
timezone = "America/New_York"
monday-friday = "09:00-17:00"
saturday = ["09:00-12:00", "13:00-15:00"]
sunday = "closed"
holidays = [2026-12-25, "2027-01-01"]
dates = { 2026-12-24 = "09:00-13:00", 2026-12-31 = "closed" }
"""


def parsed(toml: str) -> tuple[dict[str, Schedule], list[str]]:
    problems = Problems()
    schedules = parse_hours(tomllib.loads(toml).get("hours", {}), problems)
    return schedules, problems.items


def test_the_documented_shape_reads_as_written() -> None:
    schedules, problems = parsed(OFFICE)
    assert problems == []
    office = schedules["office"]
    nine_to_five = (Interval(9 * 60, 17 * 60),)
    assert office.timezone == "America/New_York"
    assert office.week == (
        *[nine_to_five] * 5,
        (Interval(9 * 60, 12 * 60), Interval(13 * 60, 15 * 60)),
        (),
    )
    assert {str(day) for day in office.holidays} == {"2026-12-25", "2027-01-01"}
    assert {str(day): hours for day, hours in office.dates.items()} == {
        "2026-12-24": (Interval(9 * 60, 13 * 60),),
        "2026-12-31": (),
    }


def test_ranges_of_days_may_wrap_round_the_week_and_days_not_given_are_closed() -> None:
    schedules, problems = parsed(
        '[hours.weekend]\ntimezone = "Europe/Madrid"\nfriday-monday = "10:00-14:00"'
    )
    assert problems == []
    open_days = [i for i, hours in enumerate(schedules["weekend"].week) if hours]
    assert open_days == [0, 4, 5, 6]  # Monday, Friday, Saturday, Sunday


def test_a_range_crossing_midnight_and_one_ending_at_midnight() -> None:
    schedules, problems = parsed(
        '[hours.night]\ntimezone = "UTC"\nmonday = "22:00-06:00"\n'
        'tuesday = "18:00-24:00"\nwednesday = "18:00-00:00"\nthursday = " 9:00 - 17:30 "'
    )
    assert problems == []
    monday, tuesday, wednesday, thursday = schedules["night"].week[:4]
    assert monday == (Interval(22 * 60, 6 * 60),) and monday[0].crosses_midnight
    assert tuesday == wednesday == (Interval(18 * 60, 24 * 60),)
    assert thursday == (Interval(9 * 60, 17 * 60 + 30),)


HEAD = '[hours.office]\ntimezone = "America/New_York"\nmonday = "09:00-17:00"\n'

# (what the file says, the problem reported)
MISTAKES: list[Any] = [
    pytest.param(
        '[hours.office]\ntimezone = "America/New_York"\nmonday = "9-17"',
        "hours.office.monday = '9-17': not a time range like '09:00-17:00' (or a list of "
        'them, or "closed")',
        id="not a range",
    ),
    pytest.param(
        HEAD + 'tuesday = ["09:00-12:00", "noon-17:00"]',
        "hours.office.tuesday[1] = 'noon-17:00': not a time range like '09:00-17:00' (or a "
        'list of them, or "closed")',
        id="not a range in a list",
    ),
    pytest.param(
        HEAD + "tuesday = 9",
        "hours.office.tuesday = 9: not a time range like '09:00-17:00' (or a list of them, "
        'or "closed")',
        id="a number",
    ),
    pytest.param(
        HEAD + "tuesday = []",
        "hours.office.tuesday = []: not a time range like '09:00-17:00' (or a list of them, "
        'or "closed")',
        id="an empty list",
    ),
    pytest.param(
        HEAD + 'tuesday = "09:00-25:00"',
        "hours.office.tuesday = '09:00-25:00': 25:00 is not a time of day (00:00 to 23:59, "
        "or 24:00 for the end of the day)",
        id="hour 25",
    ),
    pytest.param(
        HEAD + 'tuesday = "09:60-17:00"',
        "hours.office.tuesday = '09:60-17:00': 09:60 is not a time of day (00:00 to 23:59, "
        "or 24:00 for the end of the day)",
        id="minute 60",
    ),
    pytest.param(
        HEAD + 'tuesday = "24:00-06:00"',
        "hours.office.tuesday = '24:00-06:00': a range cannot start at 24:00 (that is 00:00 "
        "of the next day)",
        id="starts at 24:00",
    ),
    pytest.param(
        HEAD + 'tuesday = "10:00-10:00"',
        "hours.office.tuesday = '10:00-10:00': opens and closes at the same time; for the "
        "whole day write '00:00-24:00'",
        id="empty range",
    ),
    pytest.param(
        HEAD + 'tuesday = ["09:00-12:00", "11:00-13:00"]',
        "hours.office.tuesday = ['09:00-12:00', '11:00-13:00']: 09:00-12:00 and 11:00-13:00 "
        "overlap; make them one range",
        id="overlapping ranges",
    ),
    pytest.param(
        HEAD + 'tuesday = ["22:00-06:00", "23:00-23:30"]',
        "hours.office.tuesday = ['22:00-06:00', '23:00-23:30']: 22:00-06:00 and 23:00-23:30 "
        "overlap; make them one range",
        id="overlapping a night",
    ),
    pytest.param(
        HEAD + 'tuesday = ["closed", "09:00-12:00"]',
        "hours.office.tuesday[0] = 'closed': \"closed\" is a whole day's hours, not one of "
        "its ranges",
        id="closed in a list",
    ),
    pytest.param(
        HEAD + 'monday-friday = "10:00-18:00"',
        "hours.office.monday-friday = '10:00-18:00': monday already has its hours from "
        "hours.office.monday",
        id="a day given twice",
    ),
    pytest.param(
        HEAD + 'wendesday = "09:00-17:00"',
        "hours.office.wendesday: unknown setting (did you mean wednesday? allowed here: "
        "timezone, holidays, dates, a day like monday or a range of days like monday-friday)",
        id="a misspelt day",
    ),
    pytest.param(
        HEAD + 'Tuesday = "09:00-17:00"',
        "hours.office.Tuesday: unknown setting (did you mean tuesday? allowed here: timezone, "
        "holidays, dates, a day like monday or a range of days like monday-friday)",
        id="a capital letter",
    ),
    pytest.param(
        HEAD + 'tue-fri = "09:00-17:00"',
        "hours.office.tue-fri: unknown setting (did you mean tuesday-friday? allowed here: "
        "timezone, holidays, dates, a day like monday or a range of days like monday-friday)",
        id="abbreviated days",
    ),
    pytest.param(
        HEAD + 'time_zone = "Europe/Madrid"',
        "hours.office.time_zone: unknown setting (did you mean timezone? allowed here: "
        "timezone, holidays, dates, a day like monday or a range of days like monday-friday)",
        id="a misspelt setting",
    ),
    pytest.param(
        '[hours.office]\nmonday = "09:00-17:00"',
        "hours.office.timezone: missing (every schedule needs its time zone, an IANA name "
        "like 'America/New_York' or 'Europe/Madrid')",
        id="no time zone",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "America/New York"\nmonday = "09:00-17:00"',
        "hours.office.timezone = 'America/New York': unknown time zone (did you mean "
        "'America/New_York'?); use an IANA name (Area/City), like 'America/New_York' or "
        "'Europe/Madrid'",
        id="a zone with a space",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "Madrid"\nmonday = "09:00-17:00"',
        "hours.office.timezone = 'Madrid': unknown time zone (did you mean 'Europe/Madrid'?); "
        "use an IANA name (Area/City), like 'America/New_York' or 'Europe/Madrid'",
        id="a city alone",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "Mars/Olympus_Mons"\nmonday = "09:00-17:00"',
        "hours.office.timezone = 'Mars/Olympus_Mons': unknown time zone; use an IANA name "
        "(Area/City), like 'America/New_York' or 'Europe/Madrid'",
        id="no such zone",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "../../etc/passwd"\nmonday = "09:00-17:00"',
        "hours.office.timezone = '../../etc/passwd': unknown time zone; use an IANA name "
        "(Area/City), like 'America/New_York' or 'Europe/Madrid'",
        id="a path",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "EST"\nmonday = "09:00-17:00"',
        "hours.office.timezone = 'EST': an abbreviation or rule, not a place (did you mean "
        "'America/New_York'?): it may not follow the place's daylight-saving changes; use "
        "the place's IANA name (Area/City), like 'America/New_York' or 'Europe/Madrid', or "
        "'UTC'",
        id="an abbreviation",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "PST"\nmonday = "09:00-17:00"',
        "hours.office.timezone = 'PST': unknown time zone (did you mean "
        "'America/Los_Angeles'?); use an IANA name (Area/City), like 'America/New_York' or "
        "'Europe/Madrid'",
        id="an abbreviation zoneinfo does not know",
    ),
    pytest.param(
        '[hours.office]\ntimezone = ""\nmonday = "09:00-17:00"',
        "hours.office.timezone = '': must be a time zone: an IANA name like "
        "'America/New_York' or 'Europe/Madrid'",
        id="an empty zone",
    ),
    pytest.param(
        HEAD + 'holidays = "2026-12-25"',
        "hours.office.holidays = '2026-12-25': must be a list of dates, like "
        '["2026-12-25", "2027-01-01"]',
        id="holidays not a list",
    ),
    pytest.param(
        HEAD + 'holidays = ["12/25/2026"]',
        "hours.office.holidays[0] = '12/25/2026': not a date like '2026-12-25' (year-month-day)",
        id="a date written otherwise",
    ),
    pytest.param(
        HEAD + 'holidays = ["2026-02-30"]',
        "hours.office.holidays[0] = '2026-02-30': no such date (year-month-day)",
        id="no such date",
    ),
    pytest.param(
        HEAD + "holidays = [2026-12-25T09:00:00]",
        "hours.office.holidays[0] = datetime.datetime(2026, 12, 25, 9, 0): not a date like "
        "'2026-12-25' (year-month-day), without a time of day",
        id="a date with a time",
    ),
    pytest.param(
        HEAD + 'holidays = [2026-12-25, "2026-12-25"]',
        "hours.office.holidays[1] = '2026-12-25': listed twice",
        id="a holiday twice",
    ),
    pytest.param(
        HEAD + 'dates = "2026-12-24"',
        "hours.office.dates = '2026-12-24': must be a table of dates and their hours, like "
        '{ 2026-12-24 = "09:00-13:00" }',
        id="dates not a table",
    ),
    pytest.param(
        HEAD + 'dates = { christmas_eve = "09:00-13:00" }',
        "hours.office.dates.christmas_eve: not a date like '2026-12-25' (year-month-day)",
        id="a date that is not one",
    ),
    pytest.param(
        HEAD + 'dates = { 2026-12-24 = "9-13" }',
        "hours.office.dates.2026-12-24 = '9-13': not a time range like '09:00-17:00' (or a "
        'list of them, or "closed")',
        id="a date's hours",
    ),
    pytest.param(
        HEAD + 'holidays = [2026-12-24]\ndates = { 2026-12-24 = "09:00-13:00" }',
        "hours.office.dates.2026-12-24 = '09:00-13:00': 2026-12-24 is in holidays too; keep one",
        id="a date in holidays too",
    ),
    pytest.param(
        '[hours.office]\ntimezone = "America/New_York"\nsunday = "closed"',
        "hours.office: never open (no day has hours); give some, like monday-friday = "
        '"09:00-17:00" (a destination without hours is always open)',
        id="never open",
    ),
    pytest.param(
        "[hours]\noffice = 5",
        'hours.office = 5: must be a table like { timezone = "America/New_York", '
        'monday-friday = "09:00-17:00" }',
        id="a schedule that is not a table",
    ),
    pytest.param(
        '[hours.Office]\ntimezone = "UTC"\nmonday = "09:00-17:00"',
        "hours.Office = 'Office': a schedule name must be lower-case letters, digits and _ "
        "(starting with a letter; at most 40)",
        id="a schedule name",
    ),
    pytest.param(
        'hours = "office"',
        "hours = 'office': must be a table of named schedules, like [hours.office]",
        id="hours not a table",
    ),
]


@pytest.mark.parametrize(("toml", "problem"), MISTAKES)
def test_a_mistake_is_named_with_its_setting_and_value(toml: str, problem: str) -> None:
    _schedules, problems = parsed(toml)
    assert problems == [problem]


def test_every_mistake_of_a_file_is_reported_in_one_pass() -> None:
    _schedules, problems = parsed(
        '[hours.office]\ntimezone = "Eastern"\nmonday = "9-5"\ntuesday = "09:00-17:00"\n'
        'holidays = ["xmas"]\n[hours.shop]\nmonday = "10:00-18:00"'
    )
    assert [p.split(" ", 1)[0].rstrip(":") for p in problems] == [
        "hours.office.timezone",
        "hours.office.monday",
        "hours.office.holidays[0]",
        "hours.shop.timezone",
    ]
    assert "(did you mean 'America/New_York'?)" in problems[0]


# --------------------------------------------------------------------------- a destination's hours


def test_a_destination_names_a_schedule_or_has_its_own() -> None:
    schedules, _ = parsed(OFFICE)
    problems = Problems()
    assert (
        schedule_for("office", "destinations[0].hours", schedules, problems) is schedules["office"]
    )
    own = schedule_for(
        {"timezone": "Europe/Madrid", "monday-friday": "08:00-15:00"},
        "destinations[1].hours",
        schedules,
        problems,
    )
    assert own is not None and own.timezone == "Europe/Madrid"
    assert schedule_for(None, "destinations[2].hours", schedules, problems) is None  # always open
    assert problems.items == []


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param(
            "ofice",
            "destinations[0].hours = 'ofice': no such schedule in [hours] (defined: office)",
            id="unknown name",
        ),
        pytest.param(
            {"timezone": "America/New_York", "monday": "9-17"},
            "destinations[0].hours.monday = '9-17': not a time range like '09:00-17:00' (or a "
            'list of them, or "closed")',
            id="own table",
        ),
        pytest.param(
            ["office"],
            "destinations[0].hours = ['office']: must name a schedule of [hours] (hours = "
            '"office") or be a table like { timezone = "America/New_York", monday-friday = '
            '"09:00-17:00" }',
            id="a list",
        ),
    ],
)
def test_a_destinations_hours_mistake_names_the_destination(value: Any, problem: str) -> None:
    schedules, _ = parsed(OFFICE)
    problems = Problems()
    schedule_for(value, "destinations[0].hours", schedules, problems)
    assert problems.items == [problem]


def test_no_schedules_at_all_says_how_to_add_one() -> None:
    problems = Problems()
    schedule_for("office", "destinations[0].hours", {}, problems)
    assert problems.items == [
        "destinations[0].hours = 'office': no such schedule in [hours] (defined: none; add "
        "one, like [hours.office])"
    ]


def test_a_schedule_with_problems_is_not_also_called_unknown() -> None:
    schedules, problems = parsed('[hours.office]\ntimezone = "Nowhere/Special"\nmonday = "9-5"')
    assert len(problems) == 2
    more = Problems()
    assert schedule_for("office", "destinations[0].hours", schedules, more) is not None
    assert more.items == []
