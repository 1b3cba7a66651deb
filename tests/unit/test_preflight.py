"""`agent.py check`, the preflight, against the loopback LiveKit server: the real
livekit-api client signs, sends and decodes every request, so what is checked is what
LiveKit would answer."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import sys
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
from livekit.protocol import agent_dispatch, room, sip

# The preflight imports models (and so the model plugins) when it checks Silero VAD; a
# plugin registers only on the main thread, and these tests run the preflight in another.
import models
import preflight
from config import Settings
from preflight import Check, check_config, dispatch_checks, format_report
from tests.conftest import FAKE_ENV
from tests.support.livekit_server import LoopbackLiveKit

ROOT = Path(__file__).resolve().parents[2]

AGENT = "phone-assistant"
MAIN_NUMBER = "+15550100100"
SPANISH_NUMBER = "+15550100200"

# A business of its own: no example values left (those fail the check, see below).
CONFIG = """
[business]
name = "Bright Smile Dental"

[[destinations]]
key = "billing"
name = "the billing team"
description = "Invoices, payments and refunds."
to = "+14155551101"
modes = ["cold", "warm"]

[transfer]
outbound_trunk_id = "ST_outbound"
"""

COLD_ONLY = CONFIG.replace('["cold", "warm"]', '["cold"]').replace(
    'outbound_trunk_id = "ST_outbound"', ""
)


def inbound_trunk(
    trunk_id: str = "ST_inbound", *numbers: str, **fields: object
) -> sip.SIPInboundTrunkInfo:
    return sip.SIPInboundTrunkInfo(
        sip_trunk_id=trunk_id, numbers=numbers or [MAIN_NUMBER, SPANISH_NUMBER], **fields
    )


def dispatch_rule(
    rule_id: str = "SDR_calls", *agents: str, **fields: object
) -> sip.SIPDispatchRuleInfo:
    return sip.SIPDispatchRuleInfo(
        sip_dispatch_rule_id=rule_id,
        rule=sip.SIPDispatchRule(
            dispatch_rule_individual=sip.SIPDispatchRuleIndividual(room_prefix="call-")
        ),
        room_config=room.RoomConfiguration(
            agents=[agent_dispatch.RoomAgentDispatch(agent_name=a) for a in agents]
        ),
        **fields,
    )


def outbound_trunk(trunk_id: str = "ST_outbound") -> sip.SIPOutboundTrunkInfo:
    return sip.SIPOutboundTrunkInfo(
        sip_trunk_id=trunk_id,
        name="Acme outbound",
        address="sip.example.com",
        numbers=[MAIN_NUMBER],
        auth_username="acme",
        auth_password="trunk-password-never-printed",
    )


@pytest.fixture
async def server() -> AsyncIterator[LoopbackLiveKit]:
    async with LoopbackLiveKit() as srv:
        yield srv


@pytest.fixture
def ready(server: LoopbackLiveKit) -> LoopbackLiveKit:
    """A LiveKit project set up as the README's deploy section says: every check passes."""
    server.inbound_trunks.append(inbound_trunk(name="Acme main line"))
    server.dispatch_rules.append(dispatch_rule("SDR_calls", AGENT, name="one room per call"))
    server.outbound_trunks.append(outbound_trunk())
    return server


def environment(server: LoopbackLiveKit, config: Path, **overrides: str) -> dict[str, str]:
    return {**FAKE_ENV, **server.env(), "ASSISTANT_CONFIG": str(config), **overrides}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "assistant.toml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


async def check(env: dict[str, str]) -> tuple[int, str]:
    """``preflight.run`` as agent.py calls it: the exit code and the printed report. It
    runs its own event loop, so in a thread, while this loop serves the loopback server."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        code = await asyncio.to_thread(preflight.run, env)
    return code, out.getvalue()


def item(report: str, name: str) -> str:
    """The report's line for one check, with its fix line if any."""
    lines = report.splitlines()
    for i, line in enumerate(lines):
        if line[2:].startswith(name + ":"):
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].startswith("    ") else ""
            return line + "\n" + fix
    raise AssertionError(f"no {name!r} item in:\n{report}")


def no_secrets(report: str, env: dict[str, str]) -> None:
    for name in ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DEEPGRAM_API_KEY", "OPENAI_API_KEY"):
        assert env[name] not in report
    assert "trunk-password-never-printed" not in report
    assert "Traceback" not in report


# --------------------------------------------------------------------------- end to end


async def test_all_good_exits_0_and_names_the_numbers_reaching_the_agent(
    ready: LoopbackLiveKit, config: Path
) -> None:
    env = environment(ready, config)
    code, report = await check(env)

    assert code == 0, report
    assert "✗" not in report
    assert report.count("✓") == 8
    assert "✓ voice activity detection: Silero VAD loads" in report
    assert item(report, "dispatch rule").startswith(
        f'✓ dispatch rule: rule "one room per call" (SDR_calls) dispatches agent "{AGENT}"'
    )
    assert f'calls to {MAIN_NUMBER}, {SPANISH_NUMBER} reach "{AGENT}"' in report
    assert '"Acme main line" (ST_inbound)' in report
    assert '"Acme outbound" (ST_outbound) exists; warm transfer to billing dials' in report
    assert report.rstrip().endswith("All 8 checks passed.")
    no_secrets(report, env)


async def test_no_dispatch_rule_at_all(server: LoopbackLiveKit, config: Path) -> None:
    server.inbound_trunks.append(inbound_trunk())
    server.outbound_trunks.append(outbound_trunk())

    code, report = await check(environment(server, config))

    assert code == 1
    line = item(report, "dispatch rule")
    assert line.startswith("✗ dispatch rule: no SIP dispatch rule")
    assert "fix: lk sip dispatch create telephony/dispatch-rule.json" in line
    assert f'must name "{AGENT}"' in line
    assert "phone numbers:" not in report  # nothing to route without a rule


async def test_a_rule_for_another_agent_name_is_named_with_both_fixes(
    server: LoopbackLiveKit, config: Path
) -> None:
    server.inbound_trunks.append(inbound_trunk())
    server.dispatch_rules.append(dispatch_rule("SDR_old", "receptionist", name="front desk"))
    server.outbound_trunks.append(outbound_trunk())

    code, report = await check(environment(server, config))

    assert code == 1
    line = item(report, "dispatch rule")
    assert f'no dispatch rule dispatches agent "{AGENT}"' in line
    assert 'rule "front desk" (SDR_old) dispatches "receptionist"' in line
    assert f'set [agent] name = "receptionist" in {config}' in line
    assert f'roomConfig.agents [{{"agentName": "{AGENT}"}}]: lk sip dispatch delete SDR_old' in line


async def test_missing_outbound_trunk_lists_the_ones_that_exist(
    ready: LoopbackLiveKit, config: Path
) -> None:
    ready.outbound_trunks[:] = [outbound_trunk("ST_other"), outbound_trunk("ST_third")]

    code, report = await check(environment(ready, config))

    assert code == 1
    line = item(report, "outbound trunk")
    assert line.startswith(
        "✗ outbound trunk: outbound trunk ST_outbound (warm transfer to billing)"
    )
    assert 'outbound trunks here: "Acme outbound" (ST_other), "Acme outbound" (ST_third)' in line
    assert f"fix: set [transfer] outbound_trunk_id in {config} (or SIP_OUTBOUND_TRUNK_ID)" in line
    assert report.count("✗") == 1


async def test_no_outbound_trunk_at_all_says_how_to_create_one(
    ready: LoopbackLiveKit, config: Path
) -> None:
    ready.outbound_trunks.clear()
    _, report = await check(environment(ready, config))
    assert "there is no outbound trunk" in report
    assert "lk sip outbound create telephony/outbound-trunk.json" in report


async def test_without_warm_transfer_the_outbound_trunk_is_not_asked_for(
    ready: LoopbackLiveKit, tmp_path: Path
) -> None:
    config = tmp_path / "cold.toml"
    config.write_text(COLD_ONLY, encoding="utf-8")
    ready.outbound_trunks.clear()

    code, report = await check(environment(ready, config))

    assert code == 0, report
    assert "✓ outbound trunk: not needed" in report
    assert not ready.requests_for("ListSIPOutboundTrunk")


async def test_bad_credentials_are_one_clear_item_without_a_traceback(
    ready: LoopbackLiveKit, config: Path
) -> None:
    env = environment(ready, config, LIVEKIT_API_SECRET="not-the-secret-of-this-key-at-all")

    code, report = await check(env)

    assert code == 1
    line = item(report, "LiveKit credentials")
    assert line.startswith(
        f"✗ LiveKit credentials: LiveKit rejected LIVEKIT_API_KEY/LIVEKIT_API_SECRET for "
        f"{ready.url}"
    )
    assert "fix: copy the API key and its secret" in line
    assert "dispatch rule" not in report  # every SIP call would be rejected the same way
    no_secrets(report, env)


async def test_unreachable_server_names_the_url_and_the_fix(config: Path) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    env = {**FAKE_ENV, "LIVEKIT_URL": url, "ASSISTANT_CONFIG": str(config)}

    code, report = await check(env)

    assert code == 1
    line = item(report, "LiveKit credentials")
    assert line.startswith(f"✗ LiveKit credentials: cannot reach LiveKit at {url}")
    assert "fix: set LIVEKIT_URL to your LiveKit server" in line


async def test_a_url_without_scheme_is_caught_before_connecting(config: Path) -> None:
    env = {**FAKE_ENV, "LIVEKIT_URL": "acme.livekit.cloud", "ASSISTANT_CONFIG": str(config)}
    _, report = await check(env)
    assert "LIVEKIT_URL = 'acme.livekit.cloud' is not a ws(s):// or http(s):// URL" in report


async def test_invalid_config_reports_each_problem_and_still_checks_credentials(
    ready: LoopbackLiveKit, tmp_path: Path
) -> None:
    config = tmp_path / "broken.toml"
    config.write_text(
        CONFIG.replace('to = "+14155551101"', 'to = "12345"').replace(
            'name = "Bright Smile Dental"', 'nmae = "Bright Smile Dental"'
        ),
        encoding="utf-8",
    )
    env = environment(ready, config, DEEPGRAM_API_KEY="")

    code, report = await check(env)

    assert code == 1
    assert "✗ configuration: destinations.billing.to = '12345': must be an E.164 number" in report
    assert "✗ configuration: business.name: missing" in report
    assert f"    fix: edit {config}" in report
    assert "✗ configuration: DEEPGRAM_API_KEY is not set" in report
    # LiveKit is still asked whether the key works, so one run shows both kinds of
    # problem; the SIP checks need the agent name and destinations, so they wait.
    assert "✓ LiveKit credentials" in report
    assert ready.requests_for("ListRooms")
    assert not ready.requests_for("ListSIPDispatchRule")
    no_secrets(report, {**env, "DEEPGRAM_API_KEY": FAKE_ENV["DEEPGRAM_API_KEY"]})


async def test_the_shipped_examples_fail_the_check_each_with_what_to_put_there(
    ready: LoopbackLiveKit,
) -> None:
    env = environment(ready, ROOT / "assistant.toml")

    code, report = await check(env)

    assert code == 1
    examples = [line for line in report.splitlines() if line.startswith("✗ configuration:")]
    assert [line.split(" = ")[0] for line in examples] == [
        "✗ configuration: business.name",
        "✗ configuration: destinations.billing.to",
        "✗ configuration: destinations.front_desk.to",
        "✗ configuration: transfer.outbound_trunk_id",
        "✗ configuration: transfer.fallback_caller_id",
    ]
    assert "put the name the agent answers the phone with" in examples[0]
    assert f"    fix: edit {ROOT / 'assistant.toml'}" in report
    assert "✓ configuration" not in report
    assert "✓ LiveKit credentials" in report  # the rest is still checked


async def test_a_broken_prompt_is_reported_and_the_livekit_checks_still_run(
    ready: LoopbackLiveKit, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(_settings: Settings) -> None:
        raise preflight.prompts.PromptError("prompts/greeting.md uses the placeholder {nme}")

    monkeypatch.setattr(preflight.prompts, "check", broken)
    checks = await preflight.preflight(environment(ready, config))
    assert [(c.name, c.ok) for c in checks][:4] == [
        ("prompts", False),
        ("voice activity detection", True),
        ("storage", True),
        ("LiveKit credentials", True),
    ]
    assert "{nme}" in checks[0].detail


async def test_a_vad_that_cannot_load_fails_as_the_worker_would_stop(
    ready: LoopbackLiveKit, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker does not start without Silero VAD (agent._startup_settings); the
    preflight says so too, with the same message, and still checks everything else."""

    def broken(*_args: object, **_kwargs: object) -> models.silero.VAD:
        raise RuntimeError("onnxruntime: illegal instruction")

    monkeypatch.setattr(models.silero.VAD, "load", broken)

    code, report = await check(environment(ready, config))

    assert code == 1
    line = item(report, "voice activity detection")
    assert line.startswith(
        "✗ voice activity detection: Silero VAD could not be loaded "
        "(RuntimeError: onnxruntime: illegal instruction)"
    )
    assert "uv sync --locked" in line
    assert report.count("✗") == 1
    assert report.count("✓") == 7  # the configuration, storage and every LiveKit check
    assert "Traceback" not in report


def config_checks(env: dict[str, str]) -> list[Check]:
    settings, checks = check_config(env)
    assert settings is None
    return checks


def test_an_invalid_environment_variable_names_where_to_correct_it(config: Path) -> None:
    env = {
        **FAKE_ENV,
        "ASSISTANT_CONFIG": str(config),
        "OPENAI_BASE_URL": "ftp://models.example.com",
        "DEEPGRAM_API_KEY": '"dg-test"',
    }
    found = {c.detail.split(" ")[0].rstrip(":"): c for c in config_checks(env)}

    assert set(found) == {"OPENAI_BASE_URL", "DEEPGRAM_API_KEY"}
    url = found["OPENAI_BASE_URL"]
    assert url.detail.startswith("OPENAI_BASE_URL = 'ftp://models.example.com': must be a")
    assert url.fix.startswith("correct OPENAI_BASE_URL in .env.local, or in the environment")
    assert "wins over .env.local" in url.fix
    key = found["DEEPGRAM_API_KEY"]
    assert (
        key.detail == "DEEPGRAM_API_KEY: is wrapped in quotes; remove them (the value is not shown)"
    )
    assert key.fix.startswith("correct DEEPGRAM_API_KEY in .env.local")
    assert '"dg-test"' not in key.detail + key.fix


def test_an_unreadable_configuration_file_says_where_to_point_assistant_config(
    tmp_path: Path,
) -> None:
    (problem,) = config_checks({**FAKE_ENV, "ASSISTANT_CONFIG": str(tmp_path)})

    assert problem.detail == (
        f"Cannot read the configuration file {tmp_path}: it is a directory; point "
        "ASSISTANT_CONFIG at the TOML file"
    )
    assert problem.fix.startswith("point ASSISTANT_CONFIG at the assistant's TOML file")
    assert "assistant.toml" in problem.fix  # where it is when ASSISTANT_CONFIG is unset


@pytest.mark.parametrize(
    "case", ["missing variable", "invalid variable", "problem", "not found", "unreadable", "TOML"]
)
def test_every_kind_of_configuration_error_gets_its_own_fix(tmp_path: Path, case: str) -> None:
    """No section of a ConfigError falls through to the generic fix."""
    broken = tmp_path / "broken.toml"
    broken.write_text(
        {"problem": "[business]\nnmae = 'x'\n", "TOML": "[business\n"}.get(case, CONFIG)
    )
    env = {**FAKE_ENV, "ASSISTANT_CONFIG": str(broken)}
    env.update(
        {
            "missing variable": {"OPENAI_API_KEY": ""},
            "invalid variable": {"LIVEKIT_URL": "livekit.example.com"},
            "not found": {"ASSISTANT_CONFIG": str(tmp_path / "missing.toml")},
            "unreadable": {"ASSISTANT_CONFIG": str(tmp_path)},
        }.get(case, {})
    )
    checks = config_checks(env)

    assert checks
    assert all(c.fix and c.fix != "see the message" for c in checks), checks


async def agent_py_check(env: dict[str, str]) -> tuple[int | None, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "agent.py"),
        "check",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    return proc.returncode, out.decode(), err.decode()


async def test_agent_py_check_runs_the_preflight_as_a_subprocess(
    ready: LoopbackLiveKit, config: Path
) -> None:
    # Every variable set (empty counts as unset), so a developer's .env.local cannot fill
    # any in: dotenv never overrides a variable that is set.
    env = {**os.environ, **environment(ready, config), "SIP_OUTBOUND_TRUNK_ID": ""}

    code, stdout, stderr = await agent_py_check(env)

    assert code == 0, stdout + stderr
    assert "All 8 checks passed." in stdout
    assert f"calls to {MAIN_NUMBER}, {SPANISH_NUMBER}" in stdout
    assert "Traceback" not in stderr
    assert {r.method for r in ready.requests} == {
        "ListRooms",
        "ListSIPInboundTrunk",
        "ListSIPDispatchRule",
        "ListSIPOutboundTrunk",
    }

    ready.dispatch_rules.clear()
    code, stdout, stderr = await agent_py_check(env)

    assert code == 1, stdout + stderr
    assert "✗ dispatch rule: no SIP dispatch rule" in stdout
    assert "Traceback" not in stderr


# --------------------------------------------------------------------------- routing


def reach(
    settings: Settings,
    trunks: Iterable[sip.SIPInboundTrunkInfo],
    *rules: sip.SIPDispatchRuleInfo,
) -> Check:
    checks = dispatch_checks(settings, list(trunks), list(rules))
    return next(c for c in checks if c.name == "phone numbers")


def test_a_rule_without_trunk_ids_serves_every_trunk(settings: Settings) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_a", "+15550100100"), inbound_trunk("ST_b", "+15550100300")],
        dispatch_rule("SDR_all", AGENT),
    )
    assert numbers.ok
    assert numbers.detail == f'calls to +15550100100, +15550100300 reach "{AGENT}"'


def test_trunk_ids_limit_a_rule_to_those_trunks(settings: Settings) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_a", "+15550100100"), inbound_trunk("ST_b", "+15550100300")],
        dispatch_rule("SDR_a", AGENT, trunk_ids=["ST_a"]),
    )
    assert numbers.ok
    assert numbers.detail == f'calls to +15550100100 reach "{AGENT}"; not: +15550100300 -> no rule'


def test_a_rule_naming_the_trunk_wins_over_a_rule_for_all_trunks(settings: Settings) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_a", "+15550100100")],
        dispatch_rule("SDR_ours", AGENT),
        dispatch_rule("SDR_theirs", "receptionist", trunk_ids=["ST_a"]),
    )
    assert not numbers.ok
    assert '+15550100100 -> rule SDR_theirs ("receptionist")' in numbers.detail
    assert "trunkIds" in numbers.fix


def test_a_rule_naming_a_deleted_trunk_is_reported(settings: Settings) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_new", "+15550100100")],
        dispatch_rule("SDR_ours", AGENT, trunk_ids=["ST_deleted"]),
    )
    assert not numbers.ok
    assert "its rule names trunks that do not exist: ST_deleted" in numbers.detail


def test_caller_filters_narrow_the_route_and_caller_numbers_are_masked(
    settings: Settings,
) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_a", "+15550100100")],
        dispatch_rule("SDR_vip", AGENT, inbound_numbers=["+15557654321"]),
    )
    assert numbers.ok
    # The business's own number in full, the caller's masked as in the logs.
    assert numbers.detail == f'calls to +15550100100 (only from +1******4321) reach "{AGENT}"'
    assert "+15557654321" not in numbers.detail


def test_a_rule_limited_to_called_numbers_reaches_only_those(settings: Settings) -> None:
    numbers = reach(
        settings,
        [inbound_trunk("ST_a", "+15550100100", "+15550100200")],
        dispatch_rule("SDR_es", AGENT, numbers=["+1 555 010 0200"]),
    )
    assert numbers.detail == f'calls to +15550100200 reach "{AGENT}"; not: +15550100100 -> no rule'


def test_no_inbound_trunk_is_a_failure_with_the_create_command(settings: Settings) -> None:
    checks = dispatch_checks(settings, [], [dispatch_rule("SDR_all", AGENT)])
    trunks = next(c for c in checks if c.name == "inbound trunks")
    assert not trunks.ok
    assert trunks.fix.startswith("lk sip inbound create --numbers")
    assert [c.name for c in checks] == ["inbound trunks", "dispatch rule"]


def test_the_report_marks_each_item_and_gives_each_failure_its_fix() -> None:
    report = format_report(
        [Check("one", True, "fine", "unused fix"), Check("two", False, "broken", "do this")]
    )
    assert "✓ one: fine\n✗ two: broken\n    fix: do this" in report
    assert "unused fix" not in report
    assert "1 of 2 checks failed" in report
