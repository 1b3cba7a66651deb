"""Speech-to-text that fails without ever giving up.

A Deepgram that accepts the connection and never completes the handshake makes the plugin
retry forever, each failure reported as recoverable: the session never closes, and the
agent is deaf while the caller talks to it. So a streak of speech-to-text errors that
lasts longer than a caller would wait counts as an outage, as an unrecoverable error
would. A transcript, or a quiet spell with no error, ends the streak.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from livekit.agents import AgentSession
from livekit.agents.voice.events import ErrorEvent, UserInputTranscribedEvent

# Errors this close together belong to one streak: a stalled connect fails once per
# connect timeout (models.STT_CONNECT: 5 s) plus the retry interval.
STREAK_GAP_S = 12.0
# A streak this long means the caller has not been heard for that long.
OUTAGE_AFTER_S = 15.0


class SpeechToTextWatch:
    def __init__(self, on_outage: Callable[[str], None]) -> None:
        self._on_outage = on_outage
        self._first: float | None = None
        self._last = 0.0
        self._reported = False

    def attach(self, session: AgentSession) -> None:
        session.on("error", self._on_error)
        session.on("user_input_transcribed", self._on_transcribed)

    def _on_error(self, ev: ErrorEvent) -> None:
        error = ev.error
        if getattr(error, "type", None) != "stt_error" or not error.recoverable:
            return  # unrecoverable ones close the session (models.SESSION_CONNECT)
        now = time.monotonic()
        if self._first is None or now - self._last > STREAK_GAP_S:
            self._first = now
        self._last = now
        if now - self._first >= OUTAGE_AFTER_S and not self._reported:
            self._reported = True
            self._on_outage(
                f"speech-to-text has failed for {now - self._first:.0f} s without recovering "
                f"({type(error.error).__name__})"
            )

    def _on_transcribed(self, _: UserInputTranscribedEvent) -> None:
        self._first = None
