"""Keep callers' phone numbers and our credentials out of the logs.

LiveKit names an inbound call after the caller's number: the SIP participant's identity
is ``sip_+15551234567`` and a per-call room is ``call-_+15551234567_aBcD``. Those names
reach log lines (ours and the framework's), their ``extra`` fields and the job's context
fields, so masking the ``sip.phoneNumber`` attribute alone is not enough. This module
masks every phone number inside any text, and a logging filter applies that to whole
records on every handler of the root logger.

The masking rule (``mask_numbers``): a phone number is
  * a run of 7 to 15 ASCII digits, optionally after ``+`` (or a URL-encoded ``%2B``),
    that is not part of a word (no letter or digit right before or after it: hex ids,
    ``AJ_…`` job ids) and not part of a decimal (no ``digit.`` before it, no ``.digit``
    after it: timestamps like ``1712345678.123``, ``0.1234567``); ``_``, ``-``, ``:``,
    ``@``, ``/`` and spaces count as separators, so ``sip_+15551234567``,
    ``call-_+15551234567_aBcD``, ``tel:+15551234567`` and ``sip:+15551234567@host``
    are all found;
  * or a written-out number: ``+`` then digit groups split by single spaces, dashes,
    dots or parentheses (``+1 (555) 123-4567``, ``+44 20 7183 8750``); a parenthesized
    area code (``(555) 123-4567``); or the dashed/dotted 3-3-4 form (``555-123-4567``,
    ``1-555-123-4567``); each with at least 7 digits in all.
UUIDs are left alone, and dates, times, IP addresses and ports, durations, status
codes and numbers under 7 digits never reach 7 digits in one run. What cannot be told
apart from a number without ``+`` (an integer of 7 to 15 digits standing alone, such as
an epoch timestamp in a message, or an int of that size in ``extra``) is masked too: a
masked timestamp costs little, a logged phone number cannot be taken back. Digits must
be ASCII; a letter right before the digits hides them (``caller15551234567`` is not
found), as it must for hex ids; LiveKit's names put ``_`` or ``-`` there.

Secrets: ``install_log_masking(secret_values(settings.secrets))`` also replaces the
LiveKit API secret and the Deepgram and OpenAI keys with ``[secret]`` wherever they
appear in a record (values shorter than 6 characters are not redacted).

A found number keeps its first digit and its last four, the rest become ``*``, and
separators stay: ``+15551234567`` -> ``+1******4567``, ``+1 (555) 123-4567`` ->
``+1 (***) ***-4567``. That tells calls apart in a log without identifying a person.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

# Numbers as parts of names and URIs. Letters or digits next to the run mean it is part
# of a word (a hex id); a digit and a dot before it, or a dot and a digit after it,
# mean it is part of a decimal or an address.
_NOT_AFTER_WORD = r"(?<![0-9A-Za-z+])(?<![0-9]\.)"
_NOT_BEFORE_WORD = r"(?![0-9A-Za-z])(?!\.[0-9])"
_NUMBERS = re.compile(
    # A UUID holds a 12-digit group; it is consumed here so that group is not a number.
    r"(?P<uuid>(?<![0-9A-Za-z])[0-9A-Fa-f]{8}(?:-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Za-z]))"
    # "+" then digit groups split by one space, dash, dot or parenthesis
    r"|(?P<written>(?<![0-9+])(?:\+|%2[Bb])\(?[0-9]{1,4}\)?"
    r"(?:(?:[ .\-]\(?|\(|\)[ .\-]?)[0-9]{1,12}\)?)+(?![0-9]))"
    # a run of digits, with or without "+"
    r"|(?P<plus>(?<![0-9+])(?:\+|%2[Bb])[0-9]{7,15}" + _NOT_BEFORE_WORD + ")"
    r"|(?P<plain>(?<![0-9A-Za-z])(?<![0-9]\.)[0-9]{7,15}" + _NOT_BEFORE_WORD + ")"
    # (555) 123-4567, 1 (555) 123 4567
    r"|(?P<area>" + _NOT_AFTER_WORD + r"(?:1[ .\-]?)?\([0-9]{2,5}\)[ .\-]?[0-9]{2,5}"
    r"(?:[ .\-][0-9]{2,5}){0,3}" + _NOT_BEFORE_WORD + ")"
    # 555-123-4567, 1.555.123.4567 (one kind of separator throughout)
    r"|(?P<dashed>" + _NOT_AFTER_WORD + r"(?<![0-9]-)(?:1(?P<s1>[.\-]))?[0-9]{3}(?P<s2>[.\-])"
    r"[0-9]{3}(?P=s2)[0-9]{4}" + _NOT_BEFORE_WORD + r"(?!-[0-9]))",
    re.ASCII,
)
_DIGIT = re.compile(r"[0-9]", re.ASCII)
_MIN_DIGITS = 7

HIDDEN = "<hidden>"
REDACTED = "[secret]"
# Shorter values would redact ordinary words; no real credential is this short.
MIN_SECRET_LENGTH = 6


def _mask_digits(run: str) -> str:
    """Keep the first digit and the last four; separators stay where they are."""
    digits = [i for i, c in enumerate(run) if "0" <= c <= "9"]
    hidden = set(digits[1:-4])
    return "".join("*" if i in hidden else c for i, c in enumerate(run))


def _replace(match: re.Match[str]) -> str:
    run = match.group(0)
    if match.lastgroup == "uuid":
        return run
    prefix = run[:3] if run[:3].upper() == "%2B" else ""  # a URL-encoded "+"
    number = run[len(prefix) :]
    if len(_DIGIT.findall(number)) < _MIN_DIGITS:
        return run
    return prefix + _mask_digits(number)


def mask_numbers(text: str) -> str:
    """``text`` with every phone number in it masked (see the module's docstring)."""
    if not text or not any("0" <= c <= "9" for c in text):
        return text
    return _NUMBERS.sub(_replace, text)


def has_numbers(text: str) -> bool:
    """Whether ``text`` holds a phone number that ``mask_numbers`` would mask."""
    return mask_numbers(text) != text


def mask_number(number: str | None) -> str:
    """One value that is meant to be a number (an attribute, a configured address):
    ``+15551234567`` -> ``+1******4567``; enough to tell calls apart in a log, not
    enough to identify a person. A short value is masked whole."""
    if not number:
        return HIDDEN
    if len(number) <= 6:
        return "*" * len(number)
    head = 2 if number.startswith("+") else 1
    return number[:head] + "*" * (len(number) - head - 4) + number[-4:]


def safe_repr(value: object, *, limit: int = 40) -> str:
    """A value from outside (an attribute a trunk set) for a log line: numbers masked,
    escaped to printable ASCII (no line breaks to forge log lines), and at most about
    ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value)
    shown = ascii(mask_numbers(text[: limit * 4]))
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def safe_name(name: str) -> str:
    """An identity or room name for a log line: numbers masked, control characters
    escaped, otherwise as it is."""
    masked = mask_numbers(name)
    return masked if masked.isprintable() else ascii(masked)[1:-1]


# --------------------------------------------------------------------------- logging

# Attributes every LogRecord has; anything else on a record came from ``extra`` or a
# filter (the job's context fields).
_STANDARD_ATTRIBUTES = frozenset(
    {
        *logging.makeLogRecord({}).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)
_MAX_DEPTH = 6
_FORMATTER = logging.Formatter()


class MaskingFilter(logging.Filter):
    """Masks phone numbers (and redacts known secret values) in a record before any
    handler formats it: the message, with its arguments rendered in; every string in
    its extra fields, however nested in dicts, lists and tuples; its traceback and stack.

    The record is changed in place, so handlers after the first see it masked too. The
    traceback is rendered into ``exc_text`` and ``exc_info`` is cleared, because some
    formatters (the framework's JSON one) would otherwise render ``exc_info`` again,
    unmasked; the framework's own process log forwarding does the same. Never raises.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        wanted = {s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_LENGTH}
        # longest first, so a secret that contains another is redacted whole
        self._secrets = tuple(sorted(wanted | set(self._secrets), key=len, reverse=True))

    def mask(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return mask_numbers(text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            self._mask_record(record)
        except Exception:
            # Something in the record would not render or mask: drop its content rather
            # than let it reach a handler unmasked.
            try:
                record.msg = "[log record withheld: it could not be masked]"
                record.args = None
                record.exc_info = None
                record.exc_text = None
                record.stack_info = None
                for key in list(record.__dict__):
                    if key not in _STANDARD_ATTRIBUTES and not key.startswith("_"):
                        setattr(record, key, None)
            except Exception:
                pass
        return True

    def _mask_record(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, Mapping) and not record.args:
            record.msg = self._mask_value(record.msg, 0)  # a structured message stays one
        else:
            try:
                message = record.getMessage()
            except Exception:
                message = f"{record.msg!s} (arguments that did not fit: {record.args!r})"
            record.msg = self.mask(message)
            record.args = None
        if isinstance(record.__dict__.get("message"), str):  # formatted by an earlier handler
            record.message = self.mask(record.message)
        if record.exc_info and record.exc_info != (None, None, None) and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        record.exc_info = None
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key in _STANDARD_ATTRIBUTES or key.startswith("_"):
                continue
            masked = self._mask_value(value, 0)
            if masked is not value:
                setattr(record, key, masked)

    def _mask_value(self, value: Any, depth: int) -> Any:
        """``value`` masked, or ``value`` itself when nothing in it needed masking; the
        caller's containers are never changed (a context dict is the job's own)."""
        if isinstance(value, str):
            masked = self.mask(value)
            return value if masked == value else masked
        if value is None or isinstance(value, bool | float | bytes):
            return value
        if isinstance(value, int):  # written out as digits like any number in the text
            text = str(value)
            masked = mask_numbers(text)
            return value if masked == text else masked
        if depth >= _MAX_DEPTH:
            return self._mask_object(value)
        if isinstance(value, Mapping):
            items = [
                (self._mask_value(k, depth + 1), self._mask_value(v, depth + 1))
                for k, v in value.items()
            ]
            changed = any(
                mk is not k or mv is not v
                for (mk, mv), (k, v) in zip(items, value.items(), strict=True)
            )
            return dict(items) if changed else value
        if type(value) in (list, tuple, set, frozenset):
            masked_items = [self._mask_value(v, depth + 1) for v in value]
            if all(m is v for m, v in zip(masked_items, value, strict=True)):
                return value
            return type(value)(masked_items)
        return self._mask_object(value)

    def _mask_object(self, value: Any) -> Any:
        """Formatters write other objects with ``str()``: if that text holds a number or
        a secret, the record gets the masked text instead of the object."""
        try:
            text = str(value)
        except Exception:
            return value
        masked = self.mask(text)
        return value if masked == text else masked


_installed: MaskingFilter | None = None
_install_lock = threading.Lock()


def install_log_masking(secrets: Iterable[str] = ()) -> MaskingFilter:
    """Attach the process's one ``MaskingFilter`` to every handler of the root logger
    (again on each call, for handlers added since; a handler never gets it twice), and
    have it redact ``secrets`` as well. Call it once the handlers exist: in the worker's
    main process when the CLI has set up logging, in each job process in prewarm."""
    global _installed
    with _install_lock:
        if _installed is None:
            _installed = MaskingFilter()
        _installed.add_secrets(secrets)
        for handler in logging.getLogger().handlers:
            handler.addFilter(_installed)  # no-op when it already has it
        return _installed


def secret_values(secrets: Any) -> tuple[str, ...]:
    """The credentials in a ``config.Secrets``: never to appear in a log."""
    names = ("livekit_api_secret", "deepgram_api_key", "openai_api_key", "webhook_secret")
    return tuple(v for v in (getattr(secrets, n, None) for n in names) if isinstance(v, str) and v)
