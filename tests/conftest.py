"""Shared fixtures: a configuration shaped like a real business's, and fake secrets.

Nothing here reaches the network: tests that need LiveKit, OpenAI or Deepgram use the
loopback stand-ins in tests/support.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from config import Secrets, Settings, parse_settings

FAKE_ENV = {
    "LIVEKIT_URL": "http://127.0.0.1:1",
    "LIVEKIT_API_KEY": "test-key",
    "LIVEKIT_API_SECRET": "test-secret-that-is-long-enough-for-hs256",
    "DEEPGRAM_API_KEY": "dg-test",
    "OPENAI_API_KEY": "sk-test",
}

BUSINESS: dict[str, Any] = {
    "business": {"name": "Acme Dental"},
    "lines": {
        "spanish": {"number": "+15550100200", "language": "es"},
        "sales": {"number": "+15550100300", "stt_model": "nova-2-general"},
    },
    "destinations": [
        {
            "key": "billing",
            "name": "the billing team",
            "description": "Invoices, payments and refunds.",
            "to": "+15550100101",
            "modes": ["cold", "warm"],
        },
        {
            "key": "front_desk",
            "name": "the front desk",
            "description": "Appointments and anything else a person should handle.",
            "to": "sip:frontdesk@pbx.example.com",
            "modes": ["cold"],
        },
        {
            "key": "supervisor",
            "name": "the duty supervisor",
            "description": "Complaints and anything urgent.",
            "to": "+15550100199",
            "modes": ["warm"],
            "extension": "42",
        },
    ],
    "transfer": {"outbound_trunk_id": "ST_outbound", "fallback_caller_id": "+15550100100"},
}


def business(**overrides: Any) -> dict[str, Any]:
    """A deep copy of BUSINESS with top-level tables replaced, for one test's variant."""
    data = copy.deepcopy(BUSINESS)
    data.update(overrides)
    return data


@pytest.fixture
def settings() -> Settings:
    return parse_settings(
        business(),
        source="test.toml",
        secrets=Secrets(
            **{
                "livekit_url": FAKE_ENV["LIVEKIT_URL"],
                "livekit_api_key": FAKE_ENV["LIVEKIT_API_KEY"],
                "livekit_api_secret": FAKE_ENV["LIVEKIT_API_SECRET"],
                "deepgram_api_key": FAKE_ENV["DEEPGRAM_API_KEY"],
                "openai_api_key": FAKE_ENV["OPENAI_API_KEY"],
            }
        ),
    )
