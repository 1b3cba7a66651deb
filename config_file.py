"""Reading the configuration file: the TOML document at a path, or one ConfigError
that says what is wrong with the file itself (missing, unreadable, too large, not
UTF-8, not TOML) and how to fix it. What its tables hold is config_tables.py's job.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from config_checks import ConfigError

# An assistant configuration is a few KiB; anything far larger is the wrong file.
CONFIG_MAX_BYTES = 1 << 20


def read_config(path: Path, variable: str) -> dict[str, Any]:
    """The TOML document at ``path``, or a ConfigError saying what is wrong with it;
    ``variable`` is the environment variable that names the file."""

    def unreadable(why: str) -> ConfigError:
        return ConfigError(f"Cannot read the configuration file {path}:", [why])

    try:
        if path.is_dir():
            raise unreadable(f"it is a directory; point {variable} at the TOML file")
        if path.exists() and not path.is_file():
            raise unreadable("it is not a regular file (a device, socket or pipe)")
        with path.open("rb") as file:
            raw = file.read(CONFIG_MAX_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            f"Configuration file not found: {path}",
            [
                f"create it (the repository ships an example assistant.toml) or point "
                f"{variable} at it"
            ],
        ) from None
    except PermissionError:
        raise unreadable("permission denied; make it readable by the worker's user") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL character in the path
        raise unreadable(getattr(e, "strerror", None) or str(e)) from None
    if len(raw) > CONFIG_MAX_BYTES:
        raise unreadable("it is larger than 1 MiB; an assistant configuration is a few KiB")
    try:
        text = raw.decode("utf-8-sig")  # a BOM, as some editors write, is harmless
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise unreadable(
            f"it is not UTF-8 text (byte 0x{raw[e.start]:02x} on line {line}); save it as UTF-8"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path} is not valid TOML:", [str(e)]) from None
