"""The checks behind config.py: ASCII-only patterns, the problem collector and the
error it becomes, and the rules for text, language codes, addresses, SIP headers, and
environment URLs and secrets. (Whether an audio file plays is config_audio.py's;
reading the file is config_file.py's.)

The checks do not raise: each says what is wrong, config.py collects every answer and
raises one ConfigError, so a configuration is fixed in one pass.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from languages import STT_LANGUAGES

# re.ASCII, because \d alone also matches full-width and Arabic-Indic digits;
# \Z rather than $, because $ also matches before a trailing newline.
E164 = re.compile(r"\A\+[1-9]\d{6,14}\Z", re.ASCII)
LANGUAGE_CODE = re.compile(r"\A(?:multi|[a-z]{2,3}(?:-[A-Za-z0-9]{2,8}){0,4})\Z", re.ASCII)
KEY = re.compile(r"\A[a-z][a-z0-9_]{0,39}\Z", re.ASCII)
AGENT_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z", re.ASCII)
DTMF = re.compile(r"\A[0-9*#wW]{1,32}\Z", re.ASCII)
SIP_HEADER = re.compile(r"\AX-[A-Za-z0-9\-]{1,62}\Z", re.ASCII)
MODEL_NAME = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9._:/\-]{0,127}\Z", re.ASCII)
TRUNK_ID = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_\-]{0,63}\Z", re.ASCII)

MODEL_HINT = "must be a model name: ASCII letters, digits and . _ : / - (at most 128 characters)"
TRUNK_HINT = "must be a SIP trunk id like ST_xxxxxxxxxxxx (lk sip outbound list)"

# Longest accepted value of each kind of string: names and descriptions end up in the
# prompt and in tool descriptions, addresses and headers in SIP messages.
NAME_MAX = 80
MODEL_MAX = 128
DESCRIPTION_MAX = 300
PATH_MAX = 1024
SIP_URI_MAX = 256
HEADER_VALUE_MAX = 256
HEADERS_MAX = 16
URL_MAX = 2048
SECRET_MAX = 4096


class ConfigError(Exception):
    """The configuration cannot run a phone line. It holds every problem found, in
    titled sections (the file, the environment), so all are fixed in one pass."""

    def __init__(self, title: str, problems: list[str]) -> None:
        self.sections: list[tuple[str, list[str]]] = [(title, problems)]
        super().__init__()

    @classmethod
    def combine(cls, errors: list[ConfigError]) -> ConfigError:
        combined = cls("", [])
        combined.sections = [s for e in errors for s in e.sections]
        return combined

    @property
    def problems(self) -> list[str]:
        return [p for _, problems in self.sections for p in problems]

    def __str__(self) -> str:
        return "\n".join(
            "\n".join([title, *(f"  - {p}" for p in problems)]) for title, problems in self.sections
        )


def control_character(value: str) -> str | None:
    """The first control character or line break in ``value``, as U+XXXX, or None."""
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
            return f"U+{ord(ch):04X}"
    return None


def shown(value: Any) -> str:
    """``value`` as a message quotes it: repr, cut short when long."""
    if isinstance(value, str) and len(value) > 80:
        return f"{value[:60]!r}... ({len(value)} characters)"
    return repr(value)


def dotted(prefix: str, key: Any) -> str:
    """``prefix`` + ``key`` for a message; a key that is not plain text is quoted."""
    plain = isinstance(key, str) and key.isprintable() and key.strip() == key and key
    return f"{prefix}{key}" if plain else f"{prefix.rstrip('.')}[{key!r}]"


def text_problem(value: str, limit: int) -> str | None:
    if (ch := control_character(value)) is not None:
        return f"contains a control character or line break ({ch}), which has no place here"
    if len(value) > limit:
        return f"too long: {len(value)} characters (at most {limit})"
    return None


class Problems:
    """Collects problems with their location instead of stopping at the first one."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, value: Any, why: str) -> None:
        self.items.append(f"{where} = {shown(value)}: {why}")

    def keys(self, table: Mapping[str, Any], allowed: set[str], where: str) -> None:
        for key in table:
            if key not in allowed:
                self.items.append(
                    f"{dotted(where, key)}: unknown setting "
                    f"(allowed here: {', '.join(sorted(allowed))})"
                )

    def text(
        self,
        table: Mapping[str, Any],
        key: str,
        where: str,
        *,
        default: str | None = None,
        limit: int = NAME_MAX,
        pattern: re.Pattern[str] | None = None,
        hint: str = "",
    ) -> str | None:
        """A non-empty string without control characters, at most ``limit`` long and
        matching ``pattern`` if given; ``default`` when absent or wrong (and reported)."""
        value = table.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(f"{where}{key}", value, "must be a non-empty string")
            return default
        value = value.strip()
        why = text_problem(value, limit)
        if why is None and pattern is not None and not pattern.match(value):
            why = hint + (e164_hint(value) if pattern is E164 else "")
        if why:
            self.add(f"{where}{key}", value, why)
            return default
        return value

    def language(
        self, table: Mapping[str, Any], key: str, where: str, *, default: str | None = None
    ) -> str | None:
        """A language code of languages.STT_LANGUAGES (language_problem); ``default``
        when absent or wrong (and reported)."""
        value = table.get(key, default)
        if value is None:
            return None
        value = value.strip() if isinstance(value, str) else value
        if why := language_problem(value):
            self.add(f"{where}{key}", value, why)
            return default
        return value

    def flag(self, table: Mapping[str, Any], key: str, where: str) -> bool:
        value = table.get(key, False)
        if not isinstance(value, bool):
            self.add(f"{where}{key}", value, "must be true or false")
            return False
        return value

    def table(self, parent: Mapping[str, Any], key: str) -> Mapping[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, Mapping):
            self.add(key, value, "must be a table, e.g. [" + key + "]")
            return {}
        return value


# --------------------------------------------------------------------------- languages

LANGUAGE_EXAMPLES = "en-US, en-GB, es, es-419, fr-CA, de, pt-BR"


def language_problem(value: Any) -> str | None:
    """Why ``value`` cannot be a language this configuration speaks, or None: it must be
    one of languages.STT_LANGUAGES exactly as Deepgram writes it, and a language, not
    Deepgram's "multi" (a line lists the languages its callers speak instead)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a language code, like {LANGUAGE_EXAMPLES}"
    if value == "multi":
        return (
            'is Deepgram\'s "listen for several languages", not a language to speak; list '
            'the languages themselves (on a line: language = ["es", "en-US"])'
        )
    if value in STT_LANGUAGES:
        return None
    if (same := _BY_LOWER.get(value.strip().lower())) is not None:
        return f"not a language code as Deepgram writes it (case matters): write {same!r}"
    return (
        "not a language code our speech-to-text (Deepgram) accepts; use one exactly as "
        f"Deepgram writes it, like {LANGUAGE_EXAMPLES} (all: languages.STT_LANGUAGES)"
    )


_BY_LOWER = {code.lower(): code for code in STT_LANGUAGES if code != "multi"}


# --------------------------------------------------------------------------- addresses

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?"
_SIP_URI = re.compile(
    r"\Asips?:"
    r"(?:(?:[A-Za-z0-9\-_.!~*&=+$]|%[0-9A-Fa-f]{2})+@)?"  # user, without ; ? , quotes
    rf"(?P<host>\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*\.?)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    r"(?:;[A-Za-z0-9\-_.!~*%]+(?:=[A-Za-z0-9\-_.!~*%\[\]/:&+$]+)?)*\Z",  # ;transport=tcp
    re.ASCII,
)
_SIP_EXAMPLE = "sip:desk@pbx.example.com or sip:+15551234567@trunk.example.com;transport=tcp"


def address(value: str) -> tuple[str | None, str]:
    """Normalise a destination address; returns (address, why-not)."""
    if value.startswith("tel:"):
        value = value[4:]
    if value.startswith("+"):
        if E164.match(value):
            return value, ""
        return None, "not an E.164 phone number like +15551234567" + e164_hint(value)
    if value.startswith(("sip:", "sips:")):
        why = sip_uri_problem(value)
        return (None, why) if why else (value, "")
    return None, (
        "must be an E.164 number (+15551234567), tel:+15551234567 or a sip: URI" + e164_hint(value)
    )


def e164_hint(value: str) -> str:
    """What to change in a number written almost as E.164, as a parenthesised hint for
    a message, or "": the digits in ASCII, no spaces, dashes, dots or parentheses, and
    the + with the country code."""
    if any(ch.isdigit() and not ch.isascii() for ch in value):
        return " (use the ASCII digits 0-9)"
    compact = re.sub(r"[\s\-.()]", "", value)
    if E164.match(compact):
        return f" (write it without spaces or punctuation: {compact})"
    if compact.isdigit() and E164.match("+" + compact):
        return " (start it with + and the country code, like +1 for the US and Canada)"
    return ""


def sip_uri_problem(value: str) -> str | None:
    """Why ``value`` cannot be the target of a SIP REFER or INVITE, or None."""
    if len(value) > SIP_URI_MAX:
        return f"too long: {len(value)} characters (at most {SIP_URI_MAX})"
    for ch in value:
        if ch.isspace() or control_character(ch):
            return f"contains a space or control character (U+{ord(ch):04X}); write {_SIP_EXAMPLE}"
        if ch in "\"'<>,":
            return f"contains {ch!r}: write the bare URI, like {_SIP_EXAMPLE}"
    if "?" in value:
        return (
            "a transfer target cannot carry ?headers; put custom SIP headers in this "
            "destination's headers table"
        )
    if not value.isascii():
        return "contains non-ASCII characters; write the host in ASCII (punycode)"
    match = _SIP_URI.match(value)
    if match is None:
        host = re.split(r"[:;]", value.split(":", 1)[1].rsplit("@", 1)[-1])[0]
        if not host.strip("."):
            return "a sip: URI needs a host, like sip:desk@pbx.example.com"
        return f"not a valid sip: URI; write it like {_SIP_EXAMPLE}"
    host, port = match.group("host"), match.group("port")
    try:
        if host.startswith("["):
            ipaddress.IPv6Address(host[1:-1])
        elif re.fullmatch(r"[0-9.]+", host):
            ipaddress.IPv4Address(host.rstrip("."))
    except ValueError:
        return f"{host} is not a valid IP address"
    if port is not None and not 1 <= int(port) <= 65535:
        return f"port {port} is out of range (1-65535)"
    return None


def header_problem(name: Any, value: Any) -> str | None:
    """Why a custom SIP header cannot be sent as configured, or None."""
    if not isinstance(name, str) or not SIP_HEADER.match(name) or not isinstance(value, str):
        return (
            "custom SIP headers must be named X-... (letters, digits and -, at most 64 "
            "characters) and have a string value"
        )
    if (ch := control_character(value)) is not None:
        return f"a SIP header value cannot contain a control character or line break ({ch})"
    if len(value) > HEADER_VALUE_MAX:
        return f"too long: {len(value)} characters (at most {HEADER_VALUE_MAX})"
    return None


# --------------------------------------------------------------------------- environment


# Endpoints: which URL schemes each may use (Deepgram streams over a websocket).
_URLS: dict[str, tuple[str, ...]] = {
    "LIVEKIT_URL": ("wss", "ws", "https", "http"),
    "OPENAI_BASE_URL": ("https", "http"),
    "DEEPGRAM_BASE_URL": ("https", "http", "wss", "ws"),
}
_URL_EXAMPLES = {
    "LIVEKIT_URL": "wss://<project>.livekit.cloud",
    "OPENAI_BASE_URL": "http://localhost:8000/v1",
    "DEEPGRAM_BASE_URL": "http://localhost:8080/v1/listen",
}
_KEYS = ("LIVEKIT_API_KEY", "LIVEKIT_API_SECRET", "DEEPGRAM_API_KEY", "OPENAI_API_KEY")


def environment_problems(env: Mapping[str, str], *, skip: tuple[str, ...] = ()) -> list[str]:
    """Problems with the variables that are set. A key or secret is named, never shown."""

    def value(name: str) -> str:
        return "" if name in skip else env.get(name, "").strip()

    problems = [
        f"{name}: {why} (the value is not shown)"
        for name in _KEYS
        if value(name) and (why := secret_problem(value(name)))
    ]
    problems += [
        f"{name} = {shown_url(value(name))}: {why}, like {_URL_EXAMPLES[name]}"
        for name, schemes in _URLS.items()
        if value(name) and (why := url_problem(value(name), schemes))
    ]
    trunk = value("SIP_OUTBOUND_TRUNK_ID")
    if trunk and not TRUNK_ID.match(trunk):
        problems.append(f"SIP_OUTBOUND_TRUNK_ID = {shown(trunk)}: {TRUNK_HINT}")
    return problems


def url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    """Why ``value`` is not a URL with one of ``schemes`` and a host, or None."""
    wanted = ", ".join(f"{s}://" for s in schemes)
    if len(value) > URL_MAX:
        return f"too long: {len(value)} characters (at most {URL_MAX})"
    if any(ch.isspace() or control_character(ch) for ch in value):
        return "contains a space or control character"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port out of range raises here
    except ValueError as e:
        return f"not a valid URL ({e})"
    if parts.scheme not in schemes or not parts.hostname:
        return f"must be a {wanted} URL with a host"
    return None


def shown_url(value: str) -> str:
    """The URL as messages show it: user and password, if any, replaced by ***."""
    head, sep, rest = value.partition("://")
    netloc = rest.split("/", 1)[0]
    if sep and "@" in netloc:
        return repr(f"{head}://***@{rest.split('@', 1)[1]}")
    return shown(value)


def secret_problem(value: str) -> str | None:
    """Why ``value`` cannot be an API key or secret, worded without quoting it."""
    if len(value) >= 2 and value[0] in "\"'" and value[-1] == value[0]:
        return "is wrapped in quotes; remove them"
    if any(not "!" <= ch <= "~" for ch in value):
        return "contains a space, a control character or a non-ASCII character; copy it again"
    if len(value) > SECRET_MAX:
        return f"is too long ({len(value)} characters, at most {SECRET_MAX})"
    return None
