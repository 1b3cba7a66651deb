"""``[turn_taking]``: read and checked at start-up, and what every call's session runs with.

The figures behind the defaults are the bench's (bench/phone.py, docs/performance.md);
here only that the settings are read, refused with a message naming the key and the
value, and handed to the framework: the session's turn handling and the VAD's silence.
"""

from __future__ import annotations

from typing import Any

import pytest
from livekit.agents.inference import TurnDetector

from agent import build_session
from config import ConfigError, Secrets, Settings, TurnTaking, parse_settings
from models import load_vad
from tests.conftest import business

SECRETS = Secrets(openai_api_key="sk-test", deepgram_api_key="dg-test")


def read(**turn_taking: Any) -> Settings:
    return parse_settings(
        business(turn_taking=turn_taking), source="assistant.toml", secrets=SECRETS
    )


def problems(**turn_taking: Any) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        read(**turn_taking)
    return raised.value.problems


def test_without_the_table_a_call_takes_turns_with_the_phone_tuned_defaults() -> None:
    assert read().turn_taking == TurnTaking()


def test_every_setting_is_read() -> None:
    settings = read(
        vad_silence=0.4,
        min_delay=0.2,
        max_delay=1.5,
        end_of_turn_model="auto",
        end_of_turn_threshold=0.2,
        preemptive_generation=False,
        preemptive_tts=True,
    )
    assert settings.turn_taking == TurnTaking(
        vad_silence=0.4,
        min_delay=0.2,
        max_delay=1.5,
        end_of_turn_model="auto",
        end_of_turn_threshold=0.2,
        preemptive_generation=False,
        preemptive_tts=True,
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"vad_silence": "0.3"}, "turn_taking.vad_silence = '0.3': must be a number of seconds"),
        ({"vad_silence": True}, "turn_taking.vad_silence = True: must be a number of seconds"),
        ({"max_delay": 30}, "turn_taking.max_delay = 30: must be from 0.0 to 5.0 seconds"),
        ({"min_delay": -1}, "turn_taking.min_delay = -1: must be from 0.0 to 5.0 seconds"),
        (
            {"min_delay": 1.2, "max_delay": 0.8},
            "turn_taking.max_delay = 0.8: must not be less than turn_taking.min_delay (1.2)",
        ),
        (
            {"end_of_turn_model": "cloud"},
            'turn_taking.end_of_turn_model = \'cloud\': must be "local", "auto" or "off"',
        ),
        (
            {"vad_silence": 0.2},
            "turn_taking.vad_silence = 0.2: must be at least 0.25 s with end_of_turn_model = "
            '"local"',
        ),
        ({"preemptive_tts": "yes"}, "turn_taking.preemptive_tts = 'yes': must be true or false"),
        (
            {"end_of_turn_threshold": 1.5},
            "turn_taking.end_of_turn_threshold = 1.5: must be a probability between 0 and 1",
        ),
        (
            {"end_of_turn_threshold": 0.2, "end_of_turn_model": "off"},
            "turn_taking.end_of_turn_threshold = 0.2: has no effect with end_of_turn_model",
        ),
        ({"endpointing": 0.5}, "turn_taking.endpointing: unknown setting"),
    ],
)
def test_a_wrong_setting_is_named_with_its_value(table: dict[str, Any], expected: str) -> None:
    assert any(p.startswith(expected) for p in problems(**table)), problems(**table)


def test_a_short_silence_is_allowed_when_silence_alone_decides() -> None:
    assert read(vad_silence=0.2, end_of_turn_model="off").turn_taking.vad_silence == 0.2


async def test_the_session_and_the_vad_run_with_the_settings() -> None:
    settings = read(vad_silence=0.35, min_delay=0.25, max_delay=0.9, preemptive_tts=True)
    vad = load_vad(settings)
    session = build_session(settings, None, vad)

    assert vad.min_silence_duration == 0.35
    assert isinstance(session.turn_detection, TurnDetector)
    assert session.turn_detection.model == "turn-detector-v1-mini"  # local, in every mode
    assert session.options.endpointing["min_delay"] == 0.25
    assert session.options.endpointing["max_delay"] == 0.9
    assert session.options.preemptive_generation["enabled"] is True
    assert session.options.preemptive_generation["preemptive_tts"] is True
    # no threshold set: the model's own, per language
    assert await session.turn_detection.unlikely_threshold(None) == 0.36


async def test_a_threshold_set_for_the_model_is_the_one_the_session_judges_by() -> None:
    settings = read(end_of_turn_threshold=0.2)
    session = build_session(settings, None, load_vad(settings))

    assert isinstance(session.turn_detection, TurnDetector)
    assert session.turn_detection.model == "turn-detector-v1-mini"
    assert await session.turn_detection.unlikely_threshold(None) == 0.2


async def test_without_the_model_silence_alone_ends_the_turn() -> None:
    settings = read(end_of_turn_model="off", vad_silence=0.6, preemptive_generation=False)
    session = build_session(settings, None, load_vad(settings))

    assert session.turn_detection == "vad"
    assert session.options.preemptive_generation["enabled"] is False
