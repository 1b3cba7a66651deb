"""Speech that takes time: a silent TTS and an audio output with a playout clock.

The text-only harness plays every speech instantly, which cannot show that a REFER
waited for the notice to finish. With these, each utterance lasts ``seconds`` of real
time from first frame to end of playout, and the output records when each one started
and finished, so a test compares those times with when the server got its request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import APIConnectOptions, tts, utils
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS
from livekit.agents.voice.io import AudioOutput, AudioOutputCapabilities

SAMPLE_RATE = 24000
WAIT_LIMIT_S = 20.0


class SilentTTS(tts.TTS):
    """Turns any text into ``seconds`` of silence."""

    def __init__(self, *, seconds: float = 0.2) -> None:
        super().__init__(
            capabilities=tts.TTSCapabilities(streaming=False),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
        )
        self.seconds = seconds
        self.texts: list[str] = []

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        self.texts.append(text)
        return _Silence(tts=self, input_text=text, conn_options=conn_options)


class _Silence(tts.ChunkedStream):
    async def _run(self, output_emitter: tts.AudioEmitter) -> None:
        assert isinstance(self._tts, SilentTTS)
        output_emitter.initialize(
            request_id=utils.shortuuid("silence_"),
            sample_rate=SAMPLE_RATE,
            num_channels=1,
            mime_type="audio/pcm",
        )
        ten_ms = SAMPLE_RATE // 100
        for _ in range(round(self._tts.seconds * 100)):
            output_emitter.push(b"\x00\x00" * ten_ms)
            await asyncio.sleep(0)
        output_emitter.flush()


@dataclass
class Playout:
    started_at: float
    finished_at: float | None = None
    interrupted: bool = False


class PlayoutClock(AudioOutput):
    """Plays audio in real time: an utterance finishes ``duration`` after its first frame."""

    def __init__(self) -> None:
        super().__init__(
            label="PlayoutClock",
            next_in_chain=None,
            sample_rate=SAMPLE_RATE,
            capabilities=AudioOutputCapabilities(pause=False),
        )
        self.playouts: list[Playout] = []
        self.on_started: Callable[[Playout], None] | None = None
        self._pushed = 0.0
        self._current: Playout | None = None
        self._finish: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()

    async def started(self, n: int) -> Playout:
        """The n-th utterance (1-based), once its first frame has been played."""
        await self._until(lambda: len(self.playouts) >= n)
        return self.playouts[n - 1]

    async def finished(self, n: int) -> Playout:
        """The n-th utterance (1-based), once it has played out or been cut off."""
        await self._until(
            lambda: len(self.playouts) >= n and self.playouts[n - 1].finished_at is not None
        )
        return self.playouts[n - 1]

    async def _until(self, condition: Callable[[], bool]) -> None:
        # A bound, so a test whose speech never comes fails instead of hanging.
        async with asyncio.timeout(WAIT_LIMIT_S):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def capture_frame(self, frame: rtc.AudioFrame) -> None:
        await super().capture_frame(frame)
        if self._current is None:
            self._current = Playout(started_at=time.monotonic())
            self.playouts.append(self._current)
            self.on_playback_started(created_at=time.time())
            self._changed.set()
            if self.on_started:
                self.on_started(self._current)
        self._pushed += frame.duration

    def flush(self) -> None:
        super().flush()
        if self._current is None:
            return
        remaining = self._current.started_at + self._pushed - time.monotonic()
        self._finish = asyncio.get_running_loop().call_later(max(remaining, 0.0), self._end, False)

    def clear_buffer(self) -> None:
        if self._current is not None:
            self._end(interrupted=True)

    def _end(self, interrupted: bool) -> None:
        if self._finish:
            self._finish.cancel()
            self._finish = None
        playout, pushed = self._current, self._pushed
        if playout is None:
            return
        playout.finished_at = time.monotonic()
        playout.interrupted = interrupted
        played = min(playout.finished_at - playout.started_at, pushed)
        self._current, self._pushed = None, 0.0
        self.on_playback_finished(
            playback_position=played, interrupted=interrupted, synchronized_transcript=None
        )
        self._changed.set()
