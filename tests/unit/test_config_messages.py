"""Configuration errors say where the mistake is the way a person reads the file: a
destination by its key (``destinations.billing.to``), and every phone number setting
with the same hint for a number written almost right."""

from __future__ import annotations

import pytest

from config import ConfigError, Secrets, parse_settings
from tests.conftest import business


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, source="assistant.toml", secrets=Secrets())
    return caught.value.problems


def test_a_destination_is_named_by_its_key_not_its_place_in_the_file() -> None:
    data = business()
    data["destinations"][1]["to"] = "+1 555 010 0102"  # front_desk, the second
    data["destinations"][2]["ringing_timeout"] = 600  # supervisor, the third

    assert problems_of(data) == [
        "destinations.front_desk.to = '+1 555 010 0102': not an E.164 phone number like "
        "+15551234567 (write it without spaces or punctuation: +15550100102)",
        "destinations.supervisor.ringing_timeout = 600: must be a number of seconds, 5 to 120",
    ]


def test_a_destination_without_a_key_of_its_own_is_named_by_its_place() -> None:
    data = business()
    data["destinations"][0]["key"] = "Billing!"  # not a key: its place is its only name
    data["destinations"][0]["to"] = "12345"

    problems = problems_of(data)

    assert "destinations[0].key = 'Billing!': must be lower-case letters" in problems[0]
    assert problems[1].startswith("destinations[0].to = '12345': must be an E.164 number")


@pytest.mark.parametrize(
    ("table", "setting", "where"),
    [
        (
            "transfer",
            {"outbound_trunk_id": "ST_out", "fallback_caller_id": "+1 (555) 010-0100"},
            "transfer.fallback_caller_id",
        ),
        ("lines", {"main": {"number": "+1 555-010-0100"}}, "lines.main.number"),
    ],
)
def test_every_number_setting_says_how_to_write_a_number_written_almost_right(
    table: str, setting: dict, where: str
) -> None:
    problems = problems_of(business(**{table: setting}))

    assert len(problems) == 1
    assert problems[0].startswith(f"{where} = ")
    assert problems[0].endswith("(write it without spaces or punctuation: +15550100100)")


def test_a_number_without_its_country_code_is_told_to_start_with_it() -> None:
    data = business(transfer={"outbound_trunk_id": "ST_out", "fallback_caller_id": "5550100100"})

    (problem,) = problems_of(data)

    assert problem.endswith("(start it with + and the country code, like +1 for the US and Canada)")
