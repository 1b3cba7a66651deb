"""The caller's voice: recorded utterances and a phone line that plays them in real time.

Offline calls run through the real VAD and the real Deepgram client, which only behave
as they do in production if they get what a SIP trunk delivers: 8 kHz mono frames of
20 ms, arriving at the rate they were spoken, with the line never going quiet between
utterances (a caller's line carries silence, not gaps). ``CallerLine`` is that line, as
the session's audio input; ``speech()`` loads the checked-in recordings it plays.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
from livekit import rtc
from livekit.agents.voice.io import AudioInput

SPEECH_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "speech"
"""The recordings, made by ``make_speech.py`` in that folder from ``transcripts.json``."""

SAMPLE_RATE = 8000  # narrowband telephony, as a SIP trunk delivers it
FRAME_SECONDS = 0.02  # one RTP packet's worth
SAMPLES_PER_FRAME = round(SAMPLE_RATE * FRAME_SECONDS)

TRANSCRIPTS: dict[str, str] = json.loads((SPEECH_DIR / "transcripts.json").read_text())
"""What each recording says, by name: what a scripted STT should answer when it hears it."""


def speech(name: str) -> list[rtc.AudioFrame]:
    """The recording ``name`` (a key of TRANSCRIPTS) as the line's 20 ms frames."""
    with wave.open(str(SPEECH_DIR / f"{name}.wav")) as w:
        if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (SAMPLE_RATE, 1, 2):
            raise ValueError(f"{name}.wav is not 8 kHz mono 16-bit; rerun make_speech.py")
        return _frames(w.readframes(w.getnframes()))


def silence(seconds: float) -> list[rtc.AudioFrame]:
    """Digital silence as line frames, to pad speech for a VAD or an STT."""
    return _frames(bytes(2 * round(seconds * SAMPLE_RATE)))


def _frames(pcm: bytes) -> list[rtc.AudioFrame]:
    """Cuts PCM16 into 20 ms frames; the last one is padded with silence, as RTP would."""
    size = 2 * SAMPLES_PER_FRAME
    pcm += bytes(-len(pcm) % size)
    return [
        rtc.AudioFrame(pcm[i : i + size], SAMPLE_RATE, 1, SAMPLES_PER_FRAME)
        for i in range(0, len(pcm), size)
    ]


@dataclass(frozen=True)
class SpokenUtterance:
    """One utterance as it went down the line, timed with ``time.monotonic()``."""

    name: str | None  # the recording's name, None for frames given directly
    text: str | None  # its transcript, when known
    seconds: float  # audio length
    started_at: float  # first speech frame handed to the reader (or dropped, if detached)
    ended_at: float  # last speech frame handed to the reader (or dropped)


@dataclass
class _Queued:
    name: str | None
    frames: list[rtc.AudioFrame]
    done: asyncio.Future[SpokenUtterance]
    position: int = 0
    started_at: float = 0.0


class CallerLine(AudioInput):
    """The caller's side of a phone call, as the agent session's audio input.

    Reading it yields a 20 ms frame every 20 ms of the event loop's clock, for as long as
    the line is open: queued speech when the caller talks, silence (or comfort noise, if
    ``noise_dbfs`` is given) otherwise. Frames are due at fixed deadlines counted from the
    first read, so a slow reader gets the frames it missed at once, as from a jitter
    buffer, and the line never drifts from real time.

    While the session has the input detached (``set_audio_enabled(False)``) the line keeps
    running and its frames are dropped, like RoomIO does: a caller who talks then is not
    heard, and ``speak()`` still takes as long as the speech.

    Set it with ``session.input.audio = line`` before ``session.start()``: the session
    then reads it instead of a room's track.
    """

    def __init__(self, *, noise_dbfs: float | None = None, seed: int = 0) -> None:
        super().__init__(label="CallerLine")
        self.spoken: list[SpokenUtterance] = []
        self.frames_read = 0
        self._queue: deque[_Queued] = deque()
        self._attached = True
        self._closed = False
        self._epoch: float | None = None
        self._noise = (
            None if noise_dbfs is None else 32768 * 10 ** (noise_dbfs / 20)  # RMS amplitude
        )
        self._rng = np.random.default_rng(seed)

    async def speak(self, speech_or_name: str | Sequence[rtc.AudioFrame]) -> SpokenUtterance:
        """Say a recording (by name) or 8 kHz mono frames, after anything already queued;
        returns once its last frame has been read, i.e. when the caller stops talking."""
        if isinstance(speech_or_name, str):
            name: str | None = speech_or_name
            frames = speech(speech_or_name)
        else:
            name, frames = None, _frames(_pcm(speech_or_name))
        if self._closed:
            raise RuntimeError("the caller's line is closed")
        queued = _Queued(name, frames, asyncio.get_running_loop().create_future())
        self._queue.append(queued)
        return await queued.done

    def on_attached(self) -> None:
        self._attached = True
        super().on_attached()

    def on_detached(self) -> None:
        self._attached = False
        super().on_detached()

    async def __anext__(self) -> rtc.AudioFrame:
        loop = asyncio.get_running_loop()
        if self._epoch is None:
            self._epoch = loop.time()
        while not self._closed:
            due = self._epoch + self.frames_read * FRAME_SECONDS
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
                if self._closed:
                    break
            self.frames_read += 1
            frame = self._next_frame()
            if self._attached:
                return frame
        raise StopAsyncIteration

    def _next_frame(self) -> rtc.AudioFrame:
        # a speak() cancelled before its first word takes it back; once begun, it is said
        while self._queue and self._queue[0].position == 0 and self._queue[0].done.cancelled():
            self._queue.popleft()
        if not self._queue:
            return self._quiet()
        queued = self._queue[0]
        frame = queued.frames[queued.position]
        queued.position += 1
        now = time.monotonic()
        if queued.position == 1:
            queued.started_at = now
        if queued.position == len(queued.frames):
            self._queue.popleft()
            spoken = SpokenUtterance(
                name=queued.name,
                text=TRANSCRIPTS.get(queued.name) if queued.name else None,
                seconds=len(queued.frames) * FRAME_SECONDS,
                started_at=queued.started_at,
                ended_at=now,
            )
            self.spoken.append(spoken)
            if not queued.done.done():  # the speaker may have been cancelled
                queued.done.set_result(spoken)
        return frame

    def _quiet(self) -> rtc.AudioFrame:
        if self._noise is None:
            return rtc.AudioFrame.create(SAMPLE_RATE, 1, SAMPLES_PER_FRAME)
        noise = self._rng.normal(0.0, self._noise, SAMPLES_PER_FRAME).round().astype(np.int16)
        return rtc.AudioFrame(noise.tobytes(), SAMPLE_RATE, 1, SAMPLES_PER_FRAME)

    async def aclose(self) -> None:
        """Hang up: readers stop, and unfinished ``speak()`` calls raise."""
        self._closed = True
        while self._queue:
            queued = self._queue.popleft()
            if not queued.done.done():
                queued.done.set_exception(RuntimeError("the line closed mid-utterance"))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _pcm(frames: Sequence[rtc.AudioFrame]) -> bytes:
    for f in frames:
        if (f.sample_rate, f.num_channels) != (SAMPLE_RATE, 1):
            raise ValueError(f"a phone line carries 8 kHz mono, not {f.sample_rate} Hz")
    return b"".join(bytes(f.data) for f in frames)
