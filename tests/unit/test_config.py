"""Configuration: one frozen object, and a clear message for every mistake a
developer can make in assistant.toml or the environment."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, Secrets, Settings, load_settings, parse_settings
from tests.conftest import FAKE_ENV, business

ROOT = Path(__file__).resolve().parents[2]


def problems_of(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, source="assistant.toml", secrets=Secrets())
    assert str(caught.value).startswith("Configuration problems in assistant.toml:")
    return caught.value.problems


def one_destination(**fields: object) -> dict:
    dest = {"key": "billing", "name": "billing", "description": "bills", "to": "+15550100101"}
    dest.update(fields)
    return business(destinations=[dest])


def test_the_shipped_assistant_toml_is_valid() -> None:
    settings = load_settings({**FAKE_ENV, "ASSISTANT_CONFIG": str(ROOT / "assistant.toml")})
    assert settings.agent_name == "phone-assistant"
    assert settings.business_name
    assert {d.key for d in settings.destinations} >= {"billing", "front_desk"}


def test_settings_are_frozen_and_typed(settings: Settings) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.business_name = "Other"  # type: ignore[misc]
    billing = settings.destination("billing")
    assert billing is not None
    assert billing.transfer_to == "tel:+15550100101"
    assert billing.modes == {"cold", "warm"}
    assert settings.destination("front_desk").transfer_to == "sip:frontdesk@pbx.example.com"  # type: ignore[union-attr]
    assert [d.key for d in settings.destinations_for("warm")] == ["billing", "supervisor"]
    assert settings.agent_name == "phone-assistant"  # the default


def test_secrets_never_appear_in_repr(settings: Settings) -> None:
    text = repr(settings)
    for secret in ("test-key", FAKE_ENV["LIVEKIT_API_SECRET"], "dg-test", "sk-test"):
        assert secret not in text


def test_unknown_keys_are_named_with_what_is_allowed() -> None:
    data = business(agnet={"name": "x"})
    data["destinations"][0]["numbr"] = "+15550100101"
    problems = problems_of(data)
    assert any(p.startswith("agnet: unknown setting") for p in problems)
    assert any(
        p.startswith("destinations[0].numbr: unknown setting") and "to" in p for p in problems
    )


@pytest.mark.parametrize(
    ("to", "expected"),
    [
        ("+1 555 010 0101", "destinations[0].to = '+1 555 010 0101': not an E.164 phone number"),
        ("5550100101", "destinations[0].to = '5550100101': must be an E.164 number"),
        ("+0123", "destinations[0].to = '+0123': not an E.164 phone number"),
        ("sip:", "destinations[0].to = 'sip:': a sip: URI needs a host"),
        ("sip:desk@", "destinations[0].to = 'sip:desk@': a sip: URI needs a host"),
    ],
)
def test_bad_destination_addresses_are_named(to: str, expected: str) -> None:
    problems = problems_of(one_destination(to=to))
    assert any(p.startswith(expected) for p in problems), problems


def test_a_number_with_spaces_gets_its_corrected_form_suggested() -> None:
    (problem,) = problems_of(one_destination(to="+1 555 010 0101"))
    assert "+15550100101" in problem


def test_tel_uri_and_sip_uri_with_port_and_params_are_accepted() -> None:
    data = business(
        destinations=[
            {"key": "a", "name": "a", "description": "a", "to": "tel:+15550100101"},
            {
                "key": "b",
                "name": "b",
                "description": "b",
                "to": "sip:desk@10.0.0.5:5060;transport=tcp",
            },
        ]
    )
    settings = parse_settings(data, source="t", secrets=Secrets())
    assert [d.transfer_to for d in settings.destinations] == [
        "tel:+15550100101",
        "sip:desk@10.0.0.5:5060;transport=tcp",
    ]


def test_duplicate_destination_keys() -> None:
    dest = {"key": "billing", "name": "b", "description": "b", "to": "+15550100101"}
    problems = problems_of(business(destinations=[dest, dict(dest)]))
    assert problems == ["destinations[1].key = 'billing': duplicate destination key"]


def test_each_destination_field_is_checked() -> None:
    problems = problems_of(
        one_destination(
            key="Billing Team",
            modes=["hot"],
            ringing_timeout=600,
            extension="12a",
            headers={"Team": "x"},
            play_dialtone="yes",
        )
    )
    joined = "\n".join(problems)
    for expected in (
        "destinations[0].key = 'Billing Team'",
        "destinations[0].modes = 'hot': unknown mode",
        "destinations[0].ringing_timeout = 600",
        "destinations[0].extension = '12a'",
        "destinations[0].headers.Team = 'x'",
        "destinations[0].play_dialtone = 'yes'",
    ):
        assert expected in joined


def test_a_destination_missing_its_address() -> None:
    problems = problems_of(business(destinations=[{"key": "x", "name": "x", "description": "x"}]))
    assert problems == ["destinations[0].to: missing (every destination needs it)"]


def test_warm_transfer_needs_an_outbound_trunk_from_file_or_environment() -> None:
    data = business(transfer={})
    problems = problems_of(data)
    assert any(p.startswith("transfer.outbound_trunk_id: missing") for p in problems)
    settings = parse_settings(data, source="t", secrets=Secrets(sip_outbound_trunk_id="ST_env"))
    assert settings.transfer.outbound_trunk_id == "ST_env"


def test_lines_are_checked() -> None:
    problems = problems_of(
        business(
            lines={
                "main": {"number": "555-0100"},
                "es": {"number": "+15550100200", "language": "Spanish"},
                "dup": {"number": "+15550100200"},
            }
        )
    )
    joined = "\n".join(problems)
    assert "lines.main.number = '555-0100'" in joined
    assert "lines.es.language = 'Spanish'" in joined
    assert "lines.dup.number = '+15550100200': already used by lines.es" in joined


def test_missing_business_name() -> None:
    problems = problems_of(business(business={}))
    assert problems[0].startswith("business.name: missing")


def test_every_missing_secret_is_listed_at_once_with_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"ASSISTANT_CONFIG": str(ROOT / "assistant.toml")})
    text = str(caught.value)
    for name in (
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "DEEPGRAM_API_KEY",
        "OPENAI_API_KEY",
    ):
        assert f"  - {name}: " in text
    assert ".env.example" in text


def test_console_mode_needs_no_livekit_server() -> None:
    env = {k: v for k, v in FAKE_ENV.items() if not k.startswith("LIVEKIT_")}
    env["ASSISTANT_CONFIG"] = str(ROOT / "assistant.toml")
    assert load_settings(env, need_livekit=False).secrets.livekit_url == ""


def test_self_hosted_provider_urls_are_optional() -> None:
    assert load_settings(FAKE_ENV).secrets.deepgram_base_url is None
    env = {
        **FAKE_ENV,
        "OPENAI_BASE_URL": " http://gateway:8000/v1 ",
        "DEEPGRAM_BASE_URL": "http://deepgram:8080/v1/listen",
    }
    secrets = load_settings(env).secrets
    assert secrets.openai_base_url == "http://gateway:8000/v1"
    assert secrets.deepgram_base_url == "http://deepgram:8080/v1/listen"


def test_file_and_secret_problems_are_reported_together(tmp_path: Path) -> None:
    config = tmp_path / "assistant.toml"
    config.write_text(
        '[business]\nname = "X"\n[[destinations]]\nkey = "a"\nname = "a"\n'
        'description = "a"\nto = "12345"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({"ASSISTANT_CONFIG": str(config), "OPENAI_API_KEY": "sk"})
    text = str(caught.value)
    assert "DEEPGRAM_API_KEY" in text
    assert "OPENAI_API_KEY" not in text
    assert f"Configuration problems in {config}" in text
    assert "destinations[0].to = '12345'" in text


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Configuration file not found: .*nowhere.toml"):
        load_settings({**FAKE_ENV, "ASSISTANT_CONFIG": str(tmp_path / "nowhere.toml")})
    broken = tmp_path / "broken.toml"
    broken.write_text("[business\nname = 1\n")
    with pytest.raises(ConfigError, match=r"broken.toml is not valid TOML"):
        load_settings({**FAKE_ENV, "ASSISTANT_CONFIG": str(broken)})


def test_hold_music_file_must_exist(tmp_path: Path) -> None:
    problems = problems_of(
        business(transfer={"outbound_trunk_id": "ST_x", "hold_music": "hold.ogg"})
    )
    assert any(
        p.startswith("transfer.hold_music = 'hold.ogg': no such audio file") for p in problems
    )


def test_the_worker_refuses_to_start_without_secrets_and_prints_no_traceback() -> None:
    # Empty, not absent: a developer's .env.local must not fill them in (dotenv never
    # overrides a variable that is set), and empty counts as missing.
    env = {**os.environ, **dict.fromkeys(FAKE_ENV, "")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "agent.py"), "start"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    for name in ("LIVEKIT_URL", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"):
        assert name in done.stderr
