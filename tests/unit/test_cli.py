"""agent.py's command line before anything is set up: every command is listed and
explained by --help without a key or a configuration, and a worker that would take
calls refuses to start on an example value or a malformed LIVEKIT_URL, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FAKE_ENV

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["console", "check", "dev", "start", "calls", "messages", "connect", "download-files"]


def agent_py(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python agent.py args`` on a fresh clone: no keys anywhere (each set and empty,
    so a developer's .env.local cannot fill one in) unless ``env`` gives them."""
    blank = dict.fromkeys([*FAKE_ENV, "OPENAI_BASE_URL", "DEEPGRAM_BASE_URL"], "")
    return subprocess.run(
        [sys.executable, str(ROOT / "agent.py"), *args],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "COLUMNS": "120"}
        | blank
        | env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_help_lists_every_command_with_ours_among_them(tmp_path: Path) -> None:
    done = agent_py("--help", tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    listed = [
        line.split()[1]
        for line in done.stdout.splitlines()
        if line.startswith("│ ") and len(line.split()) > 1 and line.split()[1] in COMMANDS
    ]
    assert listed == COMMANDS
    assert "First steps: console --text" in done.stdout
    assert "Deprecated" not in done.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_commands_help_needs_no_key_and_runs_nothing(command: str, tmp_path: Path) -> None:
    done = agent_py(command, "--help", tmp_path=tmp_path)

    assert done.returncode == 0, done.stderr
    assert f"Usage: agent.py {command} [OPTIONS]" in done.stdout
    assert "Missing environment variables" not in done.stderr
    assert "checks failed" not in done.stdout  # check printed its help, not a report
    assert "lk agent" not in done.stdout  # the framework's advice does not run this project


def test_dev_help_does_not_offer_the_reload_the_framework_removed(tmp_path: Path) -> None:
    done = agent_py("dev", "--help", tmp_path=tmp_path)

    assert "--reload" not in done.stdout
    assert "It does not reload on code changes" in done.stdout.replace("\n", " ").replace("  ", " ")


def test_a_worker_will_not_take_calls_with_the_shipped_example_values(tmp_path: Path) -> None:
    done = agent_py(
        "start", tmp_path=tmp_path, **FAKE_ENV, ASSISTANT_CONFIG=str(ROOT / "assistant.toml")
    )

    assert done.returncode == 2
    assert f"Example values left in {ROOT / 'assistant.toml'}" in done.stderr
    assert "  - business.name = 'Acme Dental': the example's business" in done.stderr
    assert "  - transfer.outbound_trunk_id = 'ST_REPLACE_ME': a placeholder" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_livekit_url_without_a_scheme_stops_the_worker_at_start(tmp_path: Path) -> None:
    done = agent_py("dev", tmp_path=tmp_path, **FAKE_ENV | {"LIVEKIT_URL": "livekit.acme.dental"})

    assert done.returncode == 2
    assert (
        "LIVEKIT_URL = 'livekit.acme.dental': must be a wss://, ws://, https://, http:// URL "
        "with a host, like wss://<project>.livekit.cloud"
    ) in done.stderr
    assert "Traceback" not in done.stderr
