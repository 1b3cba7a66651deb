"""Phone numbers and secrets stay out of the logs: the masking rule (both ways), the
logging filter on every part of a record, and its wiring in the worker's processes."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator

import pytest
from livekit.agents import AgentServer, JobExecutorType, JobProcess
from livekit.agents.testing import fake_job_context

import agent
import tests.conftest
from config import Settings
from privacy import (
    REDACTED,
    MaskingFilter,
    has_numbers,
    install_log_masking,
    mask_number,
    mask_numbers,
    safe_name,
    safe_repr,
)
from tests.conftest import FAKE_ENV, LogCapture, log_violations, rendered
from tests.support.stand_in_room import StandInRoom, phone_caller

NUMBER = "+15551234567"
MASKED = "+1******4567"
IDENTITY = "sip_+15551234567"  # LiveKit's default identity for an inbound SIP caller
ROOM = "call-_+15551234567_aBcD"  # and its default room name for an individual dispatch
MASKED_ID = "sip_+1******4567"


# --------------------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (NUMBER, MASKED),
        ("15551234567", "1******4567"),  # E.164 digits without the +
        (IDENTITY, "sip_+1******4567"),
        ("sip_15551234567", "sip_1******4567"),
        (ROOM, "call-_+1******4567_aBcD"),
        ("tel:+15551234567", "tel:+1******4567"),
        ("sip:+15551234567@pbx.example.com", "sip:+1******4567@pbx.example.com"),
        ("%2B15551234567", "%2B1******4567"),  # a URL-encoded +
        ("+1 (555) 123-4567", "+1 (***) ***-4567"),
        ("+1-555-123-4567", "+1-***-***-4567"),
        ("+44 20 7183 8750", "+4* ** **** 8750"),
        ("+33 1 23 45 67 89", "+3* * ** ** 67 89"),
        ("(555) 123-4567", "(5**) ***-4567"),
        ("555-123-4567", "5**-***-4567"),
        ("1-555-123-4567", "1-***-***-4567"),
        ("555.123.4567", "5**.***.4567"),
        ("call me on 5551234567.", "call me on 5*****4567."),
        ("15551234567,15559876543", "1******4567,1******6543"),
        ("x+15551234567", "x+1******4567"),
        ("{'room': 'call-_+15551234567_aBcD'}", "{'room': 'call-_+1******4567_aBcD'}"),
        # the boundaries: 7 digits is a number, 15 is the longest E.164 number
        ("5551234", "5**1234"),
        ("+123456789012345", "+1**********2345"),
    ],
)
def test_every_number_in_a_text_is_masked(text: str, masked: str) -> None:
    assert mask_numbers(text) == masked
    assert has_numbers(text)
    assert mask_numbers(masked) == masked  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "555123",  # 6 digits: too short to be a phone number
        "+123456",
        "1234567890123456",  # 16 digits: longer than any E.164 number (an id)
        "2024-05-01T12:34:56.789012+00:00",
        "2024-05-01 12:34:56,789",
        "12:34:56",
        "offset +05:30",
        "192.168.100.200:8080",
        "10.0.0.1",
        "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "550e8400-e29b-41d4-a716-446655440000",
        "12345678-1234-1234-1234-123456789012",  # a UUID whose every group is digits
        "deadbeef1234567890",
        "1234567890abcdef",
        "0x1234567890",
        "AJ_aB3dE5fG7hJ9",
        "RM_1a2b3c4d5e6f",
        "took 1.25 s",
        "received_at=1712345678.123",
        "p=0.12345678",
        "HTTP 503 Service Unavailable",
        "sizes 480 320 2400",
        "range 200-4000 Hz",
        "1,234,567 bytes",
        "v1.22.333",
        "+1******4567",
        "",
    ],
)
def test_ordinary_log_content_is_left_alone(text: str) -> None:
    assert mask_numbers(text) == text
    assert not has_numbers(text)


def test_a_single_number_is_masked_in_the_same_shape_everywhere() -> None:
    assert mask_number(NUMBER) == mask_numbers(NUMBER) == MASKED
    assert mask_number("+442071838750") == mask_numbers("+442071838750") == "+4*******8750"
    assert mask_number(None) == "<hidden>"
    assert mask_number("1234") == "****"


def test_values_from_outside_are_shown_masked_escaped_and_bounded() -> None:
    shown = safe_repr("French\nERROR forged line " + NUMBER + " " + "x" * 500)
    assert "\n" not in shown
    assert "\\n" in shown
    assert "15551234567" not in shown
    assert len(shown) <= 40
    assert safe_repr("fr-CA") == "'fr-CA'"
    assert "\\u" in safe_repr("Fran\u00e7ais\u202e")  # not ASCII: escaped
    assert safe_name(IDENTITY) == "sip_+1******4567"
    assert safe_name("web\ntester") == "web\\ntester"


# --------------------------------------------------------------------------- the filter


def record(msg: object, *args: object, **attributes: object) -> logging.LogRecord:
    made = logging.LogRecord("phone-assistant.test", logging.INFO, __file__, 1, msg, args, None)
    made.__dict__.update(attributes)
    return made


def test_the_message_is_rendered_with_its_arguments_and_masked() -> None:
    masking = MaskingFilter()
    rec = record("answering %s in %s after %d ms", IDENTITY, ROOM, 25)
    assert masking.filter(rec) is True
    assert rec.msg == "answering sip_+1******4567 in call-_+1******4567_aBcD after 25 ms"
    assert rec.args is None
    assert rec.getMessage() == rec.msg


def test_extra_fields_are_masked_however_nested_without_touching_the_callers_objects() -> None:
    masking = MaskingFilter()
    context = {"room": ROOM, "caller": IDENTITY}
    nested = {"participants": [IDENTITY, ("sip_+15559876543", 3)], "count": 15551234567, "n": 42}

    class Request:
        def __str__(self) -> str:
            return f"JobRequest(room={ROOM})"

    rec = record(
        "received job request", room=ROOM, fields=context, nested=nested, job_request=Request()
    )
    masking.filter(rec)

    assert rec.room == "call-_+1******4567_aBcD"
    assert rec.fields == {"room": "call-_+1******4567_aBcD", "caller": "sip_+1******4567"}
    assert rec.nested["participants"] == ["sip_+1******4567", ("sip_+1******6543", 3)]
    assert rec.nested["count"] == "1******4567"  # written out, it would read as a number
    assert rec.nested["n"] == 42
    assert rec.job_request == "JobRequest(room=call-_+1******4567_aBcD)"
    assert context == {"room": ROOM, "caller": IDENTITY}  # the job's own dict is unchanged
    assert nested["participants"][0] == IDENTITY
    assert log_violations([rendered(rec)]) == []


def test_a_traceback_that_names_the_room_is_masked() -> None:
    masking = MaskingFilter()
    try:
        raise RuntimeError(f"could not join room {ROOM}")
    except RuntimeError:
        rec = logging.LogRecord(
            "phone-assistant", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )
    rec.stack_info = f'Stack (most recent call last):\n  answer_call("{IDENTITY}")'
    masking.filter(rec)

    assert rec.exc_info is None  # else a JSON formatter would render it again, unmasked
    assert "RuntimeError: could not join room call-_+1******4567_aBcD" in rec.exc_text
    assert "Traceback (most recent call last)" in rec.exc_text
    assert "sip_+1******4567" in rec.stack_info
    formatted = logging.Formatter().format(rec)
    assert "15551234567" not in formatted
    assert "could not join room" in formatted


def test_secrets_are_redacted_wherever_they_appear() -> None:
    masking = MaskingFilter([FAKE_ENV["OPENAI_API_KEY"], "short"])
    rec = record(
        "> Authorization: Bearer %s", FAKE_ENV["OPENAI_API_KEY"], headers={"auth": "Bearer sk-test"}
    )
    masking.filter(rec)
    assert rec.msg == f"> Authorization: Bearer {REDACTED}"
    assert rec.headers == {"auth": f"Bearer {REDACTED}"}
    short = record("a short word")  # values too short to be credentials are not redacted
    masking.filter(short)
    assert short.msg == "a short word"


def test_a_structured_message_stays_structured() -> None:
    masking = MaskingFilter()
    rec = record({"event": "joined", "identity": IDENTITY})
    masking.filter(rec)
    assert rec.msg == {"event": "joined", "identity": "sip_+1******4567"}


def test_the_filter_never_raises_and_never_lets_an_unmaskable_record_through() -> None:
    masking = MaskingFilter()
    bad_args = record("%d calls from %s", "many", NUMBER)  # getMessage() raises TypeError
    assert masking.filter(bad_args) is True
    assert "15551234567" not in bad_args.getMessage()
    assert "+1******4567" in bad_args.getMessage()

    class Unprintable:
        def __str__(self) -> str:
            raise ValueError("no")

    odd = record("odd extra", thing=Unprintable())
    assert masking.filter(odd) is True
    assert odd.msg == "odd extra"

    class Hostile(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no")

    hostile = record(f"call from {NUMBER}", fields=Hostile(a=NUMBER))
    assert masking.filter(hostile) is True
    assert "15551234567" not in rendered(hostile)


# --------------------------------------------------------------------------- installing


@pytest.fixture
def root_handler() -> Iterator[tuple[logging.Handler, io.StringIO]]:
    """A handler on the root logger as the CLI adds one, taken off afterwards."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(message)s %(room)s"))
    # first, so it sees records before any other handler's filter has masked them
    logging.getLogger().handlers.insert(0, handler)
    yield handler, out
    logging.getLogger().removeHandler(handler)


def test_installing_is_idempotent_and_reaches_every_root_handler(
    root_handler: tuple[logging.Handler, io.StringIO],
) -> None:
    handler, out = root_handler
    first = install_log_masking(["a-secret-value"])
    second = install_log_masking()
    assert first is second
    assert handler.filters.count(first) == 1
    assert all(first in h.filters for h in logging.getLogger().handlers)

    logging.getLogger("livekit.agents").info("received job request", extra={"room": ROOM})
    logging.getLogger("phone-assistant").info("key a-secret-value", extra={"room": "-"})
    assert out.getvalue().splitlines() == [
        "received job request call-_+1******4567_aBcD",
        f"key {REDACTED} -",
    ]


async def test_a_job_logs_its_room_and_caller_masked(
    settings: Settings,
    root_handler: tuple[logging.Handler, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """answer_call sets the job's log context fields; the framework adds them to records
    in a filter that runs after ours, so they must be masked when they are set."""
    handler, out = root_handler
    handler.setFormatter(logging.Formatter("%(message)s room=%(room)s caller=%(caller)s"))
    install_log_masking()  # ours first, as in a job process (prewarm runs before the job)
    room = StandInRoom(ROOM, phone_caller(IDENTITY, number=NUMBER))

    class PastTheContextFields(Exception):
        pass

    def stop(*_args: object, **_kwargs: object) -> None:
        raise PastTheContextFields

    monkeypatch.setattr(agent, "prepare_call", stop)
    with fake_job_context(room=room.as_room()) as ctx:
        ctx.proc.userdata.update(settings=settings, vad=None, greetings=None, llm=None, tts=None)
        ctx._on_setup()  # the framework's context-fields filter, after ours
        try:
            with pytest.raises(PastTheContextFields):
                await agent.answer_call(ctx)
            logging.getLogger("phone-assistant").info("the caller said goodbye")
        finally:
            for h in ctx._handlers_with_filter:
                h.removeFilter(ctx._log_filter)

    assert ctx.log_context_fields == {
        "room": "call-_+1******4567_aBcD",
        "caller": "sip_+1******4567",
    }
    assert out.getvalue().splitlines()[-1] == (
        "the caller said goodbye room=call-_+1******4567_aBcD caller=sip_+1******4567"
    )


def test_the_worker_masks_its_handlers_once_the_cli_has_made_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """main() hooks install_log_masking to "worker_started", which the server emits
    after the CLI set up logging (dev, start, console) and before any job request."""
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    secret = "a-secret-only-this-worker-has-0123456789"  # not one the log check knows
    monkeypatch.setenv("LIVEKIT_API_SECRET", secret)
    out = io.StringIO()

    def run_app(running: AgentServer) -> None:
        handler = logging.StreamHandler(out)  # what the CLI's setup_logging does
        handler.setFormatter(logging.Formatter("%(message)s %(room)s"))
        logging.getLogger().handlers.insert(0, handler)  # before the tests' own capture
        try:
            running.emit("worker_started")
            logging.getLogger("livekit.agents").info("received job request", extra={"room": ROOM})
            logging.getLogger("livekit.agents").info("using %s", secret, extra={"room": "-"})
        finally:
            logging.getLogger().removeHandler(handler)

    monkeypatch.setattr(agent.commands, "run", lambda running, _argv: run_app(running))
    # the shipped example values and the console's sound library are other tests' subject
    monkeypatch.setattr(agent.commands, "refuse_examples", lambda *_: None)
    monkeypatch.setattr(agent.commands, "prepare_console", lambda _typing: None)
    for command in ("start", "console"):
        monkeypatch.setattr(agent, "server", AgentServer(setup_fnc=agent.prewarm))
        agent.main(["agent.py", command])

    assert (
        out.getvalue().splitlines()
        == [
            "received job request call-_+1******4567_aBcD",
            f"using {REDACTED} -",
        ]
        * 2
    )


def test_each_job_process_masks_its_handlers_in_prewarm(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in FAKE_ENV.items():
        monkeypatch.setenv(key, value)
    secret = "dg-key-only-this-process-has-0123456789"
    monkeypatch.setenv("DEEPGRAM_API_KEY", secret)
    forwarder = logging.Handler()  # stands in for the job process's LogQueueHandler
    logging.getLogger().addHandler(forwarder)

    class PastInstalling(Exception):
        pass

    def stop(*_args: object, **_kwargs: object) -> None:
        raise PastInstalling

    monkeypatch.setattr(agent.silero.VAD, "load", stop)
    try:
        proc = JobProcess(
            executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None
        )
        with pytest.raises(PastInstalling):
            agent.prewarm(proc)
        (masking,) = [f for f in forwarder.filters if isinstance(f, MaskingFilter)]
        assert masking.mask(f"Token {secret} for {IDENTITY}") == f"Token {REDACTED} for {MASKED_ID}"
    finally:
        logging.getLogger().removeHandler(forwarder)


# --------------------------------------------------------------------------- the log check


def test_the_log_check_finds_numbers_and_secrets_and_passes_ordinary_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert log_violations([f"INFO answering {IDENTITY}"])
    assert log_violations([f'INFO joined {{"room": "{ROOM}"}}'])
    assert log_violations([f"DEBUG > Authorization: Token {FAKE_ENV['DEEPGRAM_API_KEY']}"])
    assert log_violations(["DEBUG key loopback-secret-long-enough-for-hs256-jwt"])
    ordinary = [
        "INFO answering sip_+1******4567 (phone, from +1******4567 to +1******0000)",
        "DEBUG request 12345678-1234-1234-1234-123456789012 took 1.25 s, at 1712345678.123",
        "INFO 2024-05-01T12:34:56.789012+00:00 HTTP 503 from 192.168.100.200:8080",
    ]
    assert log_violations(ordinary) == []
    # the plain digit-run check stands on its own, not trusting privacy.py's detection
    monkeypatch.setattr(tests.conftest, "has_numbers", lambda _text: False)
    assert log_violations([f"INFO answering {IDENTITY}"])
    assert log_violations(["INFO from 15551234567"])
    assert log_violations(ordinary) == []


@pytest.mark.allow_unmasked_logs("shows that the check catches a field added after masking")
async def test_the_log_check_catches_context_fields_set_unmasked() -> None:
    """Why answer_call masks the context fields itself: the framework adds them after
    our filter has run, and the autouse check would fail a test that set them raw."""
    (capture,) = [h for h in logging.getLogger().handlers if isinstance(h, LogCapture)]
    with fake_job_context(room=StandInRoom(ROOM).as_room()) as ctx:
        ctx._on_setup()
        try:
            ctx.log_context_fields = {"room": ROOM}  # as answer_call used to set them
            logging.getLogger("phone-assistant").info("the caller said goodbye")
        finally:
            for h in ctx._handlers_with_filter:
                h.removeFilter(ctx._log_filter)
    assert f'"room": "{ROOM}"' in capture.lines[-1]
    assert log_violations(capture.lines[-1:])
