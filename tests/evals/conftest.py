"""Live evaluations: a real LLM plays the agent, and the framework's judge grades it.

They cost money (each test makes several requests to OpenAI, billed to OPENAI_API_KEY)
and need the network, so they run only when asked for:
``LIVE_EVALS=1 OPENAI_API_KEY=sk-... uv run pytest tests/evals``. A key that merely
happens to be exported does not start them: ``uv run pytest`` stays offline and free,
and lists them as skipped with how to run them.
"""

from __future__ import annotations

import os

import pytest

ASK = "LIVE_EVALS"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    evals = [item for item in items if "evals" in item.keywords]
    if not evals:
        return
    if os.environ.get(ASK) != "1":
        skip = pytest.mark.skip(
            reason=f"live eval (a real LLM, billed to your OpenAI key): run it with "
            f"{ASK}=1 uv run pytest tests/evals"
        )
        for item in evals:
            item.add_marker(skip)
        return
    if not os.environ.get("OPENAI_API_KEY", "").strip():
        raise pytest.UsageError(
            f"{ASK}=1 asks for the live evals, which need OPENAI_API_KEY exported (they do "
            "not read .env.local)"
        )
