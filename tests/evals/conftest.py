"""Live evaluations: a real LLM plays the agent, and the framework's judge grades it.

They cost money and need the network, so they run only when OPENAI_API_KEY is set
(and are skipped otherwise, including in CI).
"""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get("OPENAI_API_KEY"):
        return
    skip = pytest.mark.skip(reason="live eval: set OPENAI_API_KEY to run it")
    for item in items:
        if "evals" in item.keywords:
            item.add_marker(skip)
