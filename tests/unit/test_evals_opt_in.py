"""The live evals spend money, so they run only when asked for (LIVE_EVALS=1), never
because an OPENAI_API_KEY happens to be exported: `uv run pytest` stays offline."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pytest_evals(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``pytest tests/evals`` as a developer runs it, in a shell with ``env`` exported."""
    clean = {k: v for k, v in os.environ.items() if k not in ("LIVE_EVALS", "OPENAI_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "tests/evals", "-q", "-rs", "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**clean, **env, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_an_exported_openai_key_does_not_start_the_live_evals(tmp_path: Path) -> None:
    # a key that would be billed; OPENAI_BASE_URL goes nowhere, so a run would fail
    run = pytest_evals(
        tmp_path, OPENAI_API_KEY="sk-proj-a-real-looking-key", OPENAI_BASE_URL="http://127.0.0.1:9"
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 skipped" in run.stdout
    assert "passed" not in run.stdout and "failed" not in run.stdout
    assert "run it with LIVE_EVALS=1 uv run pytest tests/evals" in run.stdout


def test_asking_for_the_live_evals_without_a_key_says_what_is_missing(tmp_path: Path) -> None:
    run = pytest_evals(tmp_path, LIVE_EVALS="1")

    assert run.returncode == 4  # pytest's usage error: nothing ran
    assert "LIVE_EVALS=1 asks for the live evals, which need OPENAI_API_KEY" in run.stderr
