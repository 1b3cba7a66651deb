"""Example values are caught before a caller meets them: the shipped assistant.toml's
placeholders are listed by key with what to put there (check and dev/start refuse them),
the environment's are configuration errors, and .env.example copied as it is gives
"missing", never a value that looks like it works."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from config import ConfigError, load_secrets, load_settings, parse_settings
from config_placeholders import example_values, is_placeholder
from tests.conftest import FAKE_ENV, business

ROOT = Path(__file__).resolve().parents[2]
FICTIONAL = "a fictional number (area code 555 and 555-01xx are for examples; no phone answers)"
SHIPPED = {**FAKE_ENV, "ASSISTANT_CONFIG": str(ROOT / "assistant.toml")}


def test_every_example_value_of_the_shipped_file_is_named_with_what_to_put_there() -> None:
    settings = load_settings(SHIPPED)  # valid: only its values are examples

    assert example_values(settings) == [
        "business.name = 'Acme Dental': the example's business; put the name the agent "
        "answers the phone with",
        f"destinations.billing.to = '+15550100101': {FICTIONAL}; put the phone number "
        "(E.164, like +15551234567) or sip: URI of the billing team",
        "destinations.front_desk.to = 'sip:frontdesk@pbx.example.com': an example address "
        "(pbx.example.com is reserved for documentation); put the phone number (E.164, like "
        "+15551234567) or sip: URI of the front desk",
        "transfer.outbound_trunk_id = 'ST_REPLACE_ME': a placeholder; put the id of your "
        "outbound SIP trunk (lk sip outbound list; telephony/outbound-trunk.json makes one), "
        "or leave it out when no destination allows warm transfer",
        f"transfer.fallback_caller_id = '+15550100100': {FICTIONAL}; put a number your "
        "trunk may present as caller ID (one of its own), or leave it out",
    ]


def test_a_line_on_a_fictional_number_is_named() -> None:
    data = business(lines={"main": {"number": "+12125550142"}})
    settings = parse_settings(data, source="assistant.toml", secrets=load_secrets(FAKE_ENV))

    assert (
        f"lines.main.number = '+12125550142': {FICTIONAL}; put the number callers dial to "
        "reach this line (E.164, as your trunk receives it)"
    ) in example_values(settings)


def test_a_business_of_its_own_has_no_example_values() -> None:
    data = business(
        business={"name": "Bright Smile Dental"},
        lines={"main": {"number": "+14155551234"}},
        destinations=[
            {
                "key": "billing",
                "name": "the billing team",
                "description": "Invoices.",
                "to": "+14155551299",  # 555-12xx: not the fictional range
            },
            {
                "key": "front_desk",
                "name": "the front desk",
                "description": "Anything else.",
                "to": "sip:desk@pbx.brightsmile.dental;transport=tcp",
            },
        ],
        transfer={"outbound_trunk_id": "ST_8fTq2cX9mLwA", "fallback_caller_id": "+14155551234"},
    )
    settings = parse_settings(data, source="assistant.toml", secrets=load_secrets(FAKE_ENV))

    assert example_values(settings) == []


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        (
            "LIVEKIT_URL",
            "wss://your-project.livekit.cloud",
            "LIVEKIT_URL = 'wss://your-project.livekit.cloud': still a placeholder from an "
            "example; put your LiveKit server, e.g. wss://<project>.livekit.cloud",
        ),
        (
            "LIVEKIT_URL",
            "wss://<project>.livekit.cloud",
            "LIVEKIT_URL = 'wss://<project>.livekit.cloud': still a placeholder from an example",
        ),
        (
            "LIVEKIT_URL",
            "wss://livekit.example.com",
            "LIVEKIT_URL = 'wss://livekit.example.com': an example address (livekit.example.com "
            "is reserved for documentation); put your LiveKit server",
        ),
        (
            "LIVEKIT_URL",
            "https://cloud.livekit.io",
            "LIVEKIT_URL = 'https://cloud.livekit.io': that is LiveKit Cloud's dashboard, not "
            "your project's server; put your LiveKit server",
        ),
        (
            "OPENAI_API_KEY",
            "sk-...",
            "OPENAI_API_KEY: still a placeholder from an example (the value is not shown); put "
            "LLM and text-to-speech key from the OpenAI platform (API keys)",
        ),
        (
            "DEEPGRAM_API_KEY",
            "<your deepgram key>",
            "DEEPGRAM_API_KEY: still a placeholder from an example (the value is not shown)",
        ),
        (
            "LIVEKIT_API_KEY",
            "APIxxxxxxxxxxxx",
            "LIVEKIT_API_KEY: still a placeholder from an example (the value is not shown)",
        ),
        (
            "SIP_OUTBOUND_TRUNK_ID",
            "ST_xxxxxxxxxxxx",
            "SIP_OUTBOUND_TRUNK_ID = 'ST_xxxxxxxxxxxx': still a placeholder from an example; "
            "put the id of your outbound SIP trunk (lk sip outbound list), or leave it unset",
        ),
    ],
)
def test_a_placeholder_in_the_environment_is_an_error_naming_the_variable(
    variable: str, value: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**SHIPPED, variable: value})

    text = str(caught.value)
    assert "Invalid environment variables (in .env.local or the environment):" in text
    assert f"  - {problem}" in text
    assert text.count(variable) == 1  # one problem per variable, not one per rule broken
    if variable.endswith("_KEY"):
        assert value not in text


def test_keys_that_merely_contain_x_or_your_are_real_keys() -> None:
    for value in ("sk-proj-Axxxx9Qyour_k3y", "dg-3f9xxxxa11", "test-key", "sk-test"):
        assert not is_placeholder(value), value


def test_env_example_copied_as_it_is_names_every_variable_as_missing() -> None:
    copied = {k: v or "" for k, v in dotenv_values(ROOT / ".env.example").items()}

    with pytest.raises(ConfigError) as caught:
        load_secrets(copied)

    assert caught.value.sections[0][0].startswith("Missing environment variables")
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "DEEPGRAM_API_KEY",
        "OPENAI_API_KEY",
    ]


def test_typing_in_the_console_needs_only_the_openai_key() -> None:
    secrets = load_secrets({"OPENAI_API_KEY": "sk-test"}, need_livekit=False, need_deepgram=False)

    assert (secrets.openai_api_key, secrets.deepgram_api_key) == ("sk-test", "")
