"""``agent.py calls`` / ``agent.py messages`` as an operator runs them: only assistant.toml's
[storage] (or ASSISTANT_DATA_DIR) is needed, no secret; the output is records_view's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from records_cli import run
from store import Store
from tests.support.sample_records import CALLER, a_call, a_message


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    config = tmp_path / "assistant.toml"
    config.write_text('[business]\nname = "Acme"\n\n[storage]\ndata_dir = "kept"\n')
    return {"ASSISTANT_CONFIG": str(config)}  # no keys at all


def test_messages_are_listed_from_the_configured_data_directory(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    with Store.open(tmp_path / "kept") as store:
        store.save_message(a_message(about="please call about the invoice"))

    assert run("messages", env) == 0
    out = capsys.readouterr().out
    assert "please call about the invoice" in out
    assert CALLER not in out  # masked unless asked for

    assert run("messages", env, as_json=True, show_numbers=True) == 0
    listed = json.loads(capsys.readouterr().out)
    assert CALLER in json.dumps(listed)


def test_calls_are_listed_and_the_data_dir_can_come_from_the_environment(
    tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "volume"
    with Store.open(elsewhere) as store:
        store.save_call(a_call())
    assert run("calls", {**env, "ASSISTANT_DATA_DIR": str(elsewhere)}, since="3650d") == 0
    assert capsys.readouterr().out.strip()


def test_nothing_kept_yet_and_a_bad_since_are_said_plainly(
    env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run("calls", env) == 0
    assert "nothing kept yet" in capsys.readouterr().err
    assert run("calls", env, since="yesterday-ish") == 2
    assert "--since" in capsys.readouterr().err
