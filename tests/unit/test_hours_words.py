"""What a caller hears when a destination is closed: "It opens tomorrow at 9 a.m.", in
the call's language, with every word from prompts/<language>/hours.md; and a mistake in
that file stops the worker at start-up, naming the language, the section and the line."""

from __future__ import annotations

import shutil
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

import prompts
from config import Settings
from config_checks import Problems
from hours import Schedule
from hours_config import parse_hours
from hours_words import closed_now, spoken_time, when_it_opens

SHIPPED = Path(prompts.__file__).parent

HOURS = """
[hours.office]
timezone = "America/New_York"
monday-friday = "09:00-17:00"
holidays = [2026-12-25]
[hours.madrid]
timezone = "Europe/Madrid"
monday-thursday = "09:30-14:00"
friday = "13:00-15:00"
[hours.winter_break]
timezone = "America/New_York"
monday-friday = "09:00-17:00"
holidays = [2026-12-21, 2026-12-22, 2026-12-23, 2026-12-24, 2026-12-25, 2026-12-28,
            2026-12-29, 2026-12-30, 2026-12-31, 2027-01-01]
[hours.next_year]
timezone = "America/New_York"
dates = { 2027-06-01 = "09:00-17:00" }
"""


@pytest.fixture(scope="module")
def schedules() -> dict[str, Schedule]:
    problems = Problems()
    found = parse_hours(tomllib.loads(HOURS)["hours"], problems)
    assert problems.items == []
    return found


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


MONDAY_EVENING = utc("2026-06-01 22:30")  # 18:30 in New York
FRIDAY_EVENING = utc("2026-06-05 22:30")


def test_after_closing_the_caller_hears_it_opens_tomorrow_at_9(
    schedules: dict[str, Schedule],
) -> None:
    office = schedules["office"]
    assert closed_now("the billing team", office, MONDAY_EVENING, "en-US") == (
        "I'm sorry, the billing team is closed right now. It opens tomorrow at 9 a.m."
    )
    assert closed_now("el equipo de facturación", office, MONDAY_EVENING, "es") == (
        "Lo siento, el equipo de facturación está fuera de horario en este momento. "
        "Vuelve a atender mañana a las 9 de la mañana."
    )


@pytest.mark.parametrize(
    ("schedule", "at", "english", "spanish"),
    [
        pytest.param(
            "office",
            utc("2026-06-02 10:00"),  # Tuesday 06:00 in New York
            "today at 9 a.m.",
            "hoy a las 9 de la mañana",
            id="early-morning",
        ),
        pytest.param(
            "office",
            FRIDAY_EVENING,
            "on Monday at 9 a.m.",
            "el lunes a las 9 de la mañana",
            id="friday-evening",
        ),
        pytest.param(
            "office",
            utc("2026-12-24 23:00"),  # Thursday 18:00, Christmas on Friday
            "on Monday at 9 a.m.",
            "el lunes a las 9 de la mañana",
            id="over-christmas",
        ),
        pytest.param(
            "madrid",
            utc("2026-06-01 12:30"),  # Monday 14:30 in Madrid
            "tomorrow at 9:30 a.m.",
            "mañana a las 9 y 30 de la mañana",
            id="minutes",
        ),
        pytest.param(
            "madrid",
            utc("2026-06-04 23:30"),  # Thursday 23:30 UTC: already Friday 01:30 in Madrid
            "today at 1 p.m.",
            "hoy a la 1 de la tarde",
            id="the-destinations-today",
        ),
        pytest.param(
            "winter_break",
            utc("2026-12-22 15:00"),  # Tuesday 10:00, closed until the new year
            "on Monday, January 4, at 9 a.m.",
            "el lunes 4 de enero a las 9 de la mañana",
            id="a-week-or-more-away",
        ),
    ],
)
def test_when_it_opens_in_english_and_spanish(
    schedules: dict[str, Schedule], schedule: str, at: datetime, english: str, spanish: str
) -> None:
    assert when_it_opens(schedules[schedule], at, "en-US") == english
    assert when_it_opens(schedules[schedule], at, "es-419") == spanish


def test_closed_for_longer_than_two_weeks_says_only_closed(
    schedules: dict[str, Schedule],
) -> None:
    later = schedules["next_year"]
    assert when_it_opens(later, MONDAY_EVENING, "en") is None
    assert closed_now("the front desk", later, MONDAY_EVENING, "en") == (
        "I'm sorry, the front desk is closed right now."
    )
    assert closed_now("la recepción", later, MONDAY_EVENING, "es") == (
        "Lo siento, la recepción está fuera de horario en este momento."
    )


@pytest.mark.parametrize(
    ("hour", "minute", "english", "spanish"),
    [
        (0, 0, "12 a.m.", "las 12 de la noche"),
        (1, 5, "1:05 a.m.", "la 1 y 5 de la madrugada"),
        (12, 0, "12 p.m.", "las 12 del mediodía"),
        (13, 0, "1 p.m.", "la 1 de la tarde"),
        (17, 45, "5:45 p.m.", "las 5 y 45 de la tarde"),
        (23, 30, "11:30 p.m.", "las 11 y 30 de la noche"),
    ],
)
def test_how_a_time_is_said(hour: int, minute: int, english: str, spanish: str) -> None:
    assert spoken_time(hour, minute, "en") == english
    assert spoken_time(hour, minute, "es") == spanish


# --------------------------------------------------------------------------- the file


@pytest.fixture
def translated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A prompts folder holding a copy of the shipped English and Spanish files."""
    for language in ("en", "es"):
        shutil.copytree(SHIPPED / language, tmp_path / language)
    monkeypatch.setattr(prompts, "PROMPTS_DIR", tmp_path)
    prompts.prompt.cache_clear()
    prompts.sections.cache_clear()
    yield tmp_path
    prompts.prompt.cache_clear()
    prompts.sections.cache_clear()


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_the_words_come_from_the_file(translated: Path, schedules: dict[str, Schedule]) -> None:
    edit(translated / "en" / "hours.md", "9{minutes} a.m.", "9{minutes} in the morning")
    edit(translated / "en" / "hours.md", "tomorrow at {time}", "first thing tomorrow, {time}")
    assert when_it_opens(schedules["office"], MONDAY_EVENING, "en") == (
        "first thing tomorrow, 9 in the morning"
    )


def test_every_configured_language_renders_its_hours_at_start_up(settings: Settings) -> None:
    rendered = prompts.check(settings)
    assert rendered["en:hours:when:+1"] == "tomorrow at 9 a.m."
    assert rendered["es:hours:when:+1"] == "mañana a las 9 de la mañana"
    assert rendered["es:hours:closed:la recepción"] == (
        "Lo siento, la recepción está fuera de horario en este momento. Vuelve a atender "
        "mañana a las 9 de la mañana."
    )
    assert rendered["en:hours:time:13:05"] == "1:05 p.m."


HOURS_ES = "language es: prompts/es/hours.md"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        pytest.param(
            "la 1 {minutes} de la madrugada\n",
            "",
            f"{HOURS_ES}, section times has 23 lines; it needs 24, one a line: the hours "
            "from midnight (0:00) to 23:00",
            id="an hour missing",
        ),
        pytest.param(
            "domingo\n",
            "",
            f"{HOURS_ES}, section weekdays has 6 lines; it needs 7, one a line: the days from "
            "Monday to Sunday",
            id="a day missing",
        ),
        pytest.param(
            "las 8 {minutes} de la mañana\nlas 9 {minutes} de la mañana",
            "las 8 {minutes} de la mañana\nlas 9 {minutos} de la mañana",
            f"{HOURS_ES}, section times, line 10 uses the placeholder {{minutos}}, which is not "
            "available there (available: minutes)",
            id="a translated placeholder in a line",
        ),
        pytest.param(
            "el {day} a {time}",
            "el {dia} a {time}",
            f"{HOURS_ES}, section weekday uses the placeholder {{dia}}, which is not "
            "available there (available: day, day_number, month, time)",
            id="a translated placeholder in a sentence",
        ),
        pytest.param(
            "## tomorrow",
            "## mañana",
            f"{HOURS_ES} has no '## tomorrow' section (or it is empty); every language needs: "
            + ", ".join(prompts.HOURS_SECTIONS),
            id="a translated section name",
        ),
        pytest.param(
            "hoy a {time}",
            "today at {time}",
            f"{HOURS_ES}, section today is still the en text, not translated: 'today at {{time}}'",
            id="a sentence left in English",
        ),
    ],
)
def test_a_mistake_in_hours_md_stops_the_worker(
    settings: Settings, translated: Path, old: str, new: str, message: str
) -> None:
    prompts.check(settings)  # the shipped files are complete
    edit(translated / "es" / "hours.md", old, new)
    prompts.prompt.cache_clear()
    prompts.sections.cache_clear()
    with pytest.raises(prompts.PromptError) as caught:
        prompts.check(settings)
    assert str(caught.value) == message


def test_minutes_may_be_written_as_english_writes_them(
    settings: Settings, translated: Path
) -> None:
    """A language that writes minutes ":30" as English does is not told to translate them."""
    edit(translated / "es" / "hours.md", "## minutes\ny {minute}", "## minutes\n:{minute_padded}")
    rendered = prompts.check(settings)  # not "still the en text"
    assert ":30" in rendered["es:hours:time:09:30"]
