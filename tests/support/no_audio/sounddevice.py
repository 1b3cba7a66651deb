"""A machine without a sound library, for console text mode in tests.

The framework's console imports sounddevice (PortAudio) before it starts, even to type,
and asks it about devices only when one is named. Text mode plays and records nothing,
so this stand-in lets it run where PortAudio is not installed; anything that would
touch a device says so.
"""

from __future__ import annotations

from typing import Any


class PortAudioError(Exception):
    pass


def query_devices(*_: Any, **__: Any) -> Any:
    raise PortAudioError("no audio devices here (tests/support/no_audio)")


def __getattr__(name: str) -> Any:
    raise PortAudioError(f"sounddevice.{name}: no audio devices here (tests/support/no_audio)")
