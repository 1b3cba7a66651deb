"""A destination's warm-transfer settings: consult first by default, the two time limits,
and errors that name the setting at fault."""

from __future__ import annotations

from typing import Any

import pytest

from config import ConfigError, Secrets, parse_settings
from tests.conftest import business


def billing(**settings: Any) -> dict[str, Any]:
    data = business()
    data["destinations"][0].pop("warm_mode")
    data["destinations"][0].update(settings)
    return data


def test_a_warm_destination_consults_first_unless_told_otherwise() -> None:
    parsed = parse_settings(billing(), source="t", secrets=Secrets())
    destination = parsed.destination("billing")
    assert destination is not None
    assert (destination.warm_mode, destination.consult_timeout, destination.transfer_timeout) == (
        "consult",
        30.0,
        120.0,
    )
    introducing = parse_settings(billing(warm_mode="introduce"), source="t", secrets=Secrets())
    assert introducing.destination("billing").warm_mode == "introduce"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"warm_mode": "whisper"}, "destinations.billing.warm_mode = 'whisper': must be "
         '"consult" (screen the answer and ask the person first) or "introduce"'),
        ({"consult_timeout": 2}, "destinations.billing.consult_timeout = 2: must be a number "
         "of seconds, 5 to 120"),
        ({"consult_timeout": "30"}, "destinations.billing.consult_timeout = '30': must be a "
         "number of seconds"),
        ({"transfer_timeout": True}, "destinations.billing.transfer_timeout = True: must be "
         "a number of seconds, 30 to 600"),
        ({"ringing_timeout": 60, "transfer_timeout": 45}, "destinations.billing."
         "transfer_timeout = 45: must be longer than ringing_timeout (60 s)"),
    ],
)  # fmt: skip
def test_a_bad_warm_setting_is_named(settings: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_settings(billing(**settings), source="t", secrets=Secrets())
    assert problem in str(raised.value)


def test_a_cold_only_destination_may_ring_longer_than_a_warm_wait() -> None:
    data = business()
    data["destinations"][1]["ringing_timeout"] = 120  # the front desk: cold only
    parse_settings(data, source="t", secrets=Secrets())
