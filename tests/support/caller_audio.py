"""The caller's side of a phone call: what they say, and what they hear.

Offline calls run through the real VAD and the real Deepgram client, which only behave
as they do in production if they get what a SIP trunk delivers: 8 kHz mono frames of
20 ms, arriving at the rate they were spoken, with the line never going quiet between
utterances (a caller's line carries silence, not gaps). ``CallerLine`` is that line:
played into the stand-in room as the caller's published track (``next_frame``, see
``StandInRoom.publish_microphone``), where the framework's RoomIO reads it, or read
directly as a session's audio input. ``speech()`` loads the checked-in recordings it
plays.

``Earpiece`` is the other direction: what the caller heard of the agent, from the
agent's published track, cut into utterances where the framework's own audio output
begins and ends them.
"""

from __future__ import annotations

import asyncio
import json
import time
import wave
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
from livekit import rtc
from livekit.agents.voice.io import AudioInput, AudioOutput, PlaybackFinishedEvent

from tests.support.stand_in_room import HeardFrame, StandInRoom, TrackAudio

if TYPE_CHECKING:
    from livekit.agents import AgentSession

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
    started_at: float  # first speech frame reached the agent's side (or was dropped)
    ended_at: float  # last speech frame reached the agent's side (or was dropped)


@dataclass
class _Queued:
    name: str | None
    frames: list[rtc.AudioFrame]
    done: asyncio.Future[SpokenUtterance]
    position: int = 0
    started_at: float = 0.0


class CallerLine(AudioInput):
    """The caller's phone line: queued speech when the caller talks, silence (or comfort
    noise, if ``noise_dbfs`` is given) otherwise, 20 ms at a time, in real time.

    Two ways to connect it:

    - Into a room, as the caller's published track:
      ``room.publish_microphone(identity, line)``. The track's audio source takes
      ``next_frame()`` whenever it has room for a frame and plays it in real time; the
      framework's RoomIO reads the track (and drops what it hears while the session has
      the input detached). This is how a whole call runs.
    - As the session's audio input, ``session.input.audio = line`` before
      ``session.start()``: reading it yields a 20 ms frame every 20 ms of the event
      loop's clock. Frames are due at fixed deadlines counted from the first read, so a
      slow reader gets the frames it missed at once, as from a jitter buffer, and the
      line never drifts from real time. While the session has the input detached
      (``set_audio_enabled(False)``) the line keeps running and drops its frames, as
      RoomIO does.

    Either way a caller who talks while nobody listens is not heard, and ``speak()``
    takes as long as the speech.
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

    @property
    def closed(self) -> bool:
        return self._closed

    async def speak(self, speech_or_name: str | Sequence[rtc.AudioFrame]) -> SpokenUtterance:
        """Say a recording (by name) or 8 kHz mono frames, after anything already queued;
        returns once its last frame has reached the agent's side, i.e. when the caller
        stops talking."""
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
            frame = self._next_frame(time.monotonic())
            if self._attached:
                return frame
        raise StopAsyncIteration

    def next_frame(self, heard_at: float) -> rtc.AudioFrame | None:
        """The frame the phone sends next, which the agent's side gets at ``heard_at``
        (``time.monotonic()``); None once the line is closed. For a room's audio source
        that pulls frames at its own pace (``StandInRoom.publish_microphone``)."""
        if self._closed:
            return None
        self.frames_read += 1
        return self._next_frame(heard_at)

    def _next_frame(self, at: float) -> rtc.AudioFrame:
        # a speak() cancelled before its first word takes it back; once begun, it is said
        while self._queue and self._queue[0].position == 0 and self._queue[0].done.cancelled():
            self._queue.popleft()
        if not self._queue:
            return self._quiet()
        queued = self._queue[0]
        frame = queued.frames[queued.position]
        queued.position += 1
        if queued.position == 1:
            queued.started_at = at
        if queued.position == len(queued.frames):
            self._queue.popleft()
            spoken = SpokenUtterance(
                name=queued.name,
                text=TRANSCRIPTS.get(queued.name) if queued.name else None,
                seconds=len(queued.frames) * FRAME_SECONDS,
                started_at=queued.started_at,
                ended_at=at,
            )
            # said once the agent's side has it: now when read directly, later when the
            # frame waits in a room's audio source
            delay = at - time.monotonic()
            if delay > 0:
                asyncio.get_running_loop().call_later(delay, self._said, queued, spoken)
            else:
                self._said(queued, spoken)
        return frame

    def _said(self, queued: _Queued, spoken: SpokenUtterance) -> None:
        self.spoken.append(spoken)
        if not queued.done.done():  # the speaker may have been cancelled, or hung up
            queued.done.set_result(spoken)

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


# --------------------------------------------------------------------------- what is heard

WAIT_LIMIT_S = 20.0


@dataclass
class HeardUtterance:
    """One of the agent's utterances, as its audio output played it and as the caller
    heard it. ``started_at``, ``finished_at`` and ``interrupted`` mean what they meant
    for ``PlayoutClock``, now reported by the framework's own RoomIO output, which plays
    into a real ``rtc.AudioSource``: its first frame went into the source, and the source
    had played the last one out (or it was cut off). The ``heard_*`` fields are what came
    out of the published track at the caller's end."""

    started_at: float
    finished_at: float | None = None
    interrupted: bool = False
    playback_position: float = 0.0  # seconds the output says it played
    heard_from: float | None = None  # the first audible 10 ms frame out of the track
    heard_until: float | None = None  # the last one
    heard_seconds: float = 0.0  # audible audio the caller got
    frames: list[HeardFrame] = field(default_factory=list, repr=False)
    complete: bool = False  # finished, and the track has gone quiet after it


class Earpiece:
    """What the caller hears of the agent's voice: the track RoomIO publishes, read by
    the stand-in room (``TrackAudio``), cut into utterances where the RoomIO audio output
    begins and ends them (its ``playback_started`` / ``playback_finished`` events).

    An utterance is complete once the output has reported it finished and the track has
    carried silence after that moment, so everything it played has been heard; audio
    heard outside every utterance is kept in ``stray``.

    Same surface as ``PlayoutClock``: ``playouts``, ``started(n)``, ``finished(n)``,
    ``on_started``. Speech of all zeros (``SilentTTS``) is never *heard*; its utterances
    still start and finish.
    """

    def __init__(self) -> None:
        self.playouts: list[HeardUtterance] = []
        self.stray: list[HeardFrame] = []
        self.on_started: Callable[[HeardUtterance], None] | None = None
        self.output: AudioOutput | None = None
        self.track: TrackAudio | None = None
        self.error: Exception | None = None  # why it could not bind, if it could not
        self._changed = asyncio.Event()

    @classmethod
    def listen_to(
        cls, session: AgentSession, room: StandInRoom, *, track_name: str = "roomio_audio"
    ) -> Earpiece:
        """Set up before ``session.start(room=...)``: when RoomIO publishes its track the
        earpiece binds to that track and to the session's RoomIO output, before anything
        can play (RoomIO plays nothing until the track is subscribed)."""
        earpiece = cls()

        def on_published(publication: rtc.LocalTrackPublication, _track: rtc.Track) -> None:
            if publication.name != track_name or earpiece.output is not None:
                return
            published = room.local_participant.publishing(track_name)
            try:
                earpiece.bind(_room_io_sink(session.output.audio), published and published.audio)
            except Exception as e:  # raised to the test by started() / finished()
                earpiece.error = e
                earpiece._changed.set()

        room.on("local_track_published", on_published)
        return earpiece

    def bind(self, output: AudioOutput, track: TrackAudio | None) -> None:
        self.output = output
        output.on("playback_started", self._playback_started)
        output.on("playback_finished", self._playback_finished)
        self.track = track
        if track is not None:
            track.listen(self._heard)

    async def started(self, n: int) -> HeardUtterance:
        """The n-th utterance (1-based), once its first frame has gone into the track."""
        await self._until(lambda: len(self.playouts) >= n)
        return self.playouts[n - 1]

    async def finished(self, n: int) -> HeardUtterance:
        """The n-th utterance (1-based), once it has played out or been cut off, and
        everything of it that played has been heard."""
        await self._until(lambda: len(self.playouts) >= n and self.playouts[n - 1].complete)
        return self.playouts[n - 1]

    async def _until(self, condition: Callable[[], bool]) -> None:
        # A bound, so a test whose speech never comes fails instead of hanging.
        async with asyncio.timeout(WAIT_LIMIT_S):
            while not condition():
                if self.error is not None:
                    raise self.error
                self._changed.clear()
                await self._changed.wait()

    def _open(self) -> HeardUtterance | None:
        last = self.playouts[-1] if self.playouts else None
        return last if last is not None and not last.complete else None

    def _playback_started(self, _ev: object) -> None:
        if (previous := self._open()) is not None:
            self._complete(previous)  # the next one began: the previous one is over
        utterance = HeardUtterance(started_at=time.monotonic())
        self.playouts.append(utterance)
        self._changed.set()
        if self.on_started:
            self.on_started(utterance)

    def _playback_finished(self, ev: PlaybackFinishedEvent) -> None:
        utterance = self._open()
        if utterance is None or utterance.finished_at is not None:
            return
        utterance.finished_at = time.monotonic()
        utterance.interrupted = ev.interrupted
        utterance.playback_position = ev.playback_position
        if self.track is None or self.track.closed:
            self._complete(utterance)

    def _heard(self, heard: HeardFrame | None) -> None:
        utterance = self._open()
        if heard is None:  # the track is gone
            if utterance is not None and utterance.finished_at is not None:
                self._complete(utterance)
            return
        if heard.audible:
            if utterance is None:
                self.stray.append(heard)
                return
            if utterance.heard_from is None:
                utterance.heard_from = heard.at
            utterance.heard_until = heard.at
            utterance.heard_seconds += heard.frame.duration
            utterance.frames.append(heard)
        elif (
            utterance is not None
            and utterance.finished_at is not None
            and heard.at >= utterance.finished_at
        ):
            self._complete(utterance)

    def _complete(self, utterance: HeardUtterance) -> None:
        utterance.complete = True
        self._changed.set()


def _room_io_sink(output: AudioOutput | None) -> AudioOutput:
    """The sink at the end of the session's audio chain that RoomIO made (its label)."""
    while output is not None:
        if output.label == "RoomIO":
            return output
        output = output.next_in_chain
    raise RuntimeError("the session's audio output is not RoomIO's")
