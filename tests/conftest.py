"""Shared fixtures: a configuration shaped like a real business's, and fake secrets.

Nothing here reaches the network: tests that need LiveKit, OpenAI or Deepgram use the
loopback stand-ins in tests/support.

Every test's logs are checked (``no_numbers_or_secrets_in_logs``): a test fails if
anything logged during it still shows a full phone number or a secret after the
production masking, so a new log line that leaks one is caught where it is added.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from config import Secrets, Settings, parse_settings
from privacy import has_numbers, install_log_masking, mask_numbers

if TYPE_CHECKING:
    from tests.support.supervisor import RecordingHold, Timeline

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
            "names": {"es": "el equipo de facturación"},
            "description": "Invoices, payments and refunds.",
            "to": "+15550100101",
            "modes": ["cold", "warm"],
            # the tests of the direct introduction; consult-first is the default, and
            # tests/unit/test_consult_transfer.py sets it
            "warm_mode": "introduce",
        },
        {
            "key": "front_desk",
            "name": "the front desk",
            "names": {"es": "la recepción"},
            "description": "Appointments and anything else a person should handle.",
            "to": "sip:frontdesk@pbx.example.com",
            "modes": ["cold"],
        },
        {
            "key": "supervisor",
            "name": "the duty supervisor",
            "names": {"es": "el supervisor de turno"},
            "description": "Complaints and anything urgent.",
            "to": "+15550100199",
            "modes": ["warm"],
            "extension": "42",
            "warm_mode": "introduce",
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


# --------------------------------------------------------------------------- log check

UNMASKED_LOGS_MARKER = "allow_unmasked_logs"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{UNMASKED_LOGS_MARKER}(reason): this test logs raw phone numbers or secrets on "
        "purpose; its logs are not checked",
    )


def _loopback_defaults() -> set[str]:
    """The keys the loopback servers use unless a test gives others."""
    found: set[str] = set()
    try:
        from tests.support.deepgram_server import LoopbackDeepgram
        from tests.support.livekit_server import LoopbackLiveKit
        from tests.support.openai_server import LoopbackOpenAI
    except Exception:  # a support module being edited should not hide every other result
        return found
    for cls, name in (
        (LoopbackLiveKit, "api_secret"),
        (LoopbackOpenAI, "api_key"),
        (LoopbackDeepgram, "api_key"),
    ):
        default = inspect.signature(cls.__init__).parameters.get(name)
        if default is not None and isinstance(default.default, str):
            found.add(default.default)
    return found


_ENV_SECRETS = ("LIVEKIT_API_SECRET", "DEEPGRAM_API_KEY", "OPENAI_API_KEY")
# Secrets the tests use: FAKE_ENV's, the loopback servers', and real ones when a live
# eval runs with them.
TEST_SECRETS: frozenset[str] = frozenset(
    {
        *(FAKE_ENV[name] for name in _ENV_SECRETS),
        "loopback-secret-long-enough-for-hs256-jwt",
        *_loopback_defaults(),
        *(value for name in _ENV_SECRETS if len(value := os.environ.get(name, "")) >= 6),
    }
)

# Independent of privacy.py, on purpose: 7 to 15 digits in a row (after an optional +)
# that are not part of a word or a decimal. UUIDs are taken out first (a group of one
# can be all digits).
_DIGIT_RUN = re.compile(r"(?<![0-9A-Za-z.])\+?[0-9]{7,15}(?![0-9A-Za-z]|\.[0-9])")
_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_STANDARD_ATTRIBUTES = {*logging.makeLogRecord({}).__dict__, "message", "asctime", "taskName"}


def rendered(record: logging.LogRecord) -> str:
    """A record as a log reader sees it: level, logger, message, traceback, and the
    extra fields as the framework's formatters write them (JSON, str() for objects)."""
    from livekit.agents.cli.log import JsonFormatter

    text = logging.Formatter("%(levelname)s %(name)s %(message)s").format(record)
    extra = {
        key: value
        for key, value in record.__dict__.items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }
    if extra:
        text += " " + json.dumps(extra, cls=JsonFormatter.JsonEncoder, ensure_ascii=False)
    if record.stack_info:
        text += "\n" + record.stack_info
    return text


def log_violations(lines: Iterable[str], secrets: Iterable[str] = TEST_SECRETS) -> list[str]:
    """What in these rendered log lines should never have been logged, described
    without repeating it."""
    found = []
    for line in lines:
        if has_numbers(line):
            masked = mask_numbers(line)
            at = next(i for i, (a, b) in enumerate(zip(line, masked, strict=False)) if a != b)
            found.append(f"a phone number (privacy.has_numbers) in: {_around(line, at)}")
        elif run := _DIGIT_RUN.search(_UUID.sub("<uuid>", line)):
            found.append(
                f"a run of 7+ digits in: {_around(_UUID.sub('<uuid>', line), run.start())}"
            )
        for secret in secrets:
            if secret and secret in line:
                found.append(f"a secret ({secret[:3]}...) in: {_around(line, line.index(secret))}")
    return found


def _around(line: str, at: int) -> str:
    """Where in the line, with every digit hidden (the report must not leak either)."""

    def hidden(text: str) -> str:
        return re.sub(r"[0-9]", "#", text).replace("\n", "\\n")

    return f"{hidden(line[:40])}... at {at}: ...{hidden(line[max(0, at - 40) : at + 40])}..."


class LogCapture(logging.Handler):
    """Keeps every record it is given, rendered as a log reader would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(rendered(record))
        except Exception as e:  # a record that cannot be rendered is reported, not lost
            self.lines.append(f"<unrenderable record from {record.name}: {type(e).__name__}>")


@pytest.fixture(autouse=True)
def no_numbers_or_secrets_in_logs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Capture everything logged during the test, at DEBUG and from every logger, on a
    root handler masked by ``install_log_masking`` as the worker masks its handlers;
    fail the test if any of it shows a full phone number or a test secret.

    Opt out with ``@pytest.mark.allow_unmasked_logs("why")``."""
    root = logging.getLogger()
    capture = LogCapture()
    level = root.level
    before = {h: list(h.filters) for h in root.handlers}
    # First of the root's handlers: a filter changes the record for the handlers after
    # it, so only the first sees it as a worker with one handler (a job process) does.
    root.handlers.insert(0, capture)
    root.setLevel(logging.DEBUG)
    masking = install_log_masking(TEST_SECRETS)
    # pytest's own handlers live across tests: take the filter off those it was put on
    attached = [h for h, filters in before.items() if masking not in filters]
    try:
        yield
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        for handler in attached:
            handler.removeFilter(masking)
    if request.node.get_closest_marker(UNMASKED_LOGS_MARKER):
        return
    problems = log_violations(list(capture.lines))
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        pytest.fail(
            f"logged what must never be logged (masking is privacy.py's job):\n  {shown}{more}",
            pytrace=False,
        )


@pytest.fixture
def timeline() -> Timeline:
    """What happened in a warm transfer, in order (tests/support/supervisor.py)."""
    from tests.support.supervisor import Timeline

    return Timeline()


@pytest.fixture
def holds(monkeypatch: pytest.MonkeyPatch, timeline: Timeline) -> list[RecordingHold]:
    """The warm transfer's hold music, recorded on the timeline instead of played."""
    from tests.support.supervisor import record_holds

    return record_holds(monkeypatch, timeline)


@pytest.fixture(autouse=True)
def data_dir_of_its_own(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a test starts the way the worker starts (load_settings from the
    environment, prewarm) keeps its messages and records in a directory of its own, never
    in the repository's data/."""
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path_factory.mktemp("data")))
