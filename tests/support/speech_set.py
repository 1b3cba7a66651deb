"""The turn-taking speech set (tests/fixtures/speech/turns): callers' turns at 8 kHz, each
labelled with where the caller really finished.

``SPEECH_SET`` holds the turns as turns.json labels them (make_turns.py measured the
labels on the written audio); ``frames()`` is a turn as the phone line plays it, for
``CallerLine.speak``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from livekit import rtc

from tests.support.caller_audio import SPEECH_DIR, speech

TURNS_DIR = SPEECH_DIR / "turns"
Kind = Literal["short", "number", "paused"]


@dataclass(frozen=True)
class Segment:
    """Speech between two pauses: its text and its first and last audible instants
    (seconds from the start of the recording)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class SpokenTurn:
    """What a caller says before they expect an answer."""

    name: str
    kind: Kind
    text: str
    seconds: float  # the recording's length (whole 20 ms frames)
    segments: tuple[Segment, ...]
    pauses: tuple[float, ...]  # silences between segments, seconds
    speech_end: float  # the end of the last audible 10 ms: the caller has finished

    def frames(self) -> list[rtc.AudioFrame]:
        return speech(f"turns/{self.name}")

    @property
    def trailing_silence(self) -> float:
        """Seconds of the recording after the caller finished."""
        return self.seconds - self.speech_end


def _load() -> tuple[SpokenTurn, ...]:
    manifest = json.loads((TURNS_DIR / "turns.json").read_text())
    return tuple(
        SpokenTurn(
            name=t["name"],
            kind=t["kind"],
            text=t["text"],
            seconds=t["seconds"],
            segments=tuple(Segment(**s) for s in t["segments"]),
            pauses=tuple(t["pauses"]),
            speech_end=t["speech_end"],
        )
        for t in manifest["turns"]
    )


SPEECH_SET: tuple[SpokenTurn, ...] = _load()
