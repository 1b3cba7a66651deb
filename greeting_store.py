"""Greeting audio kept on disk, so a worker makes it once rather than once per call.

Every call runs in a job process of its own, and each one used to synthesize the
greetings and apologies again while it warmed up: one text-to-speech request per text
per call, for audio that only changes when the words or the voice do. Here the audio is
kept in the data directory (``storage.data_dir``/greetings), one WAV per text, named by
a hash of everything that shapes it: the text, the TTS model, the voice and the TTS
endpoint (``OPENAI_BASE_URL``; none for OpenAI's). A changed greeting or voice is a
different file, so stale audio is never replayed; files of old greetings are small and
left in place.

Several job processes warm up at once when a worker starts. ``exclusive`` makes them
take turns, so one synthesizes what is missing and the others find it on disk; files
are written to a temporary name and renamed, so no process ever reads half a file.
Whatever goes wrong here (a read-only or full disk, a damaged file) costs only the
saving: the process synthesizes as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
import wave
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from livekit import rtc

if TYPE_CHECKING:
    from greetings import Voice

logger = logging.getLogger("phone-assistant.greetings")

FORMAT = 1  # part of every file's name: raise it if what is stored changes
FRAME_SECONDS = 0.2  # frames are cut as the TTS plugin's emitter cuts them
LOCK_POLL_S = 0.05


@dataclass(frozen=True)
class GreetingStore:
    """A directory of synthesized greetings, shared by every process of a worker."""

    directory: Path
    endpoint: str = ""  # where the TTS runs; "" for the provider's own service

    def path(self, text: str, voice: Voice) -> Path:
        key = json.dumps([FORMAT, self.endpoint, voice.model, voice.voice, text])
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()[:40]}.wav"

    def load(self, text: str, voice: Voice) -> tuple[rtc.AudioFrame, ...] | None:
        """The stored audio, or None when there is none (or it cannot be read)."""
        path = self.path(text, voice)
        try:
            with wave.open(str(path)) as w:
                if w.getsampwidth() != 2:
                    raise wave.Error(f"{w.getsampwidth() * 8}-bit samples")
                rate, channels = w.getframerate(), w.getnchannels()
                pcm = w.readframes(w.getnframes())
        except FileNotFoundError:
            return None
        except (OSError, EOFError, wave.Error) as error:
            logger.warning("stored greeting %s unreadable (%s); making it again", path.name, error)
            return None
        return _frames(pcm, rate, channels) or None

    def save(self, text: str, voice: Voice, frames: Sequence[rtc.AudioFrame]) -> None:
        """Store ``frames`` (all of one rate and channel count) under their key."""
        first = frames[0]
        path = self.path(text, voice)
        tmp: str | None = None
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            with os.fdopen(fd, "wb") as file, wave.open(file, "wb") as w:
                w.setnchannels(first.num_channels)
                w.setsampwidth(2)
                w.setframerate(first.sample_rate)
                w.writeframes(b"".join(bytes(f.data) for f in frames))
            os.replace(tmp, path)
        except OSError as error:
            logger.warning("could not store a greeting in %s (%s)", self.directory, error)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)

    @contextlib.asynccontextmanager
    async def exclusive(self, *, within: float) -> AsyncIterator[bool]:
        """Hold the store's lock (an ``flock``, released if the process dies); yields
        False if another process held it for ``within`` seconds, or there is no lock to
        take (the directory cannot be written), and the caller goes on without it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            logger.warning("greetings in %s not shared (%s)", self.directory, error)
            yield False
            return
        try:
            yield await _lock(fd, within)
        finally:
            os.close(fd)  # releases the lock


async def _lock(fd: int, within: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(LOCK_POLL_S)


def _frames(pcm: bytes, rate: int, channels: int) -> tuple[rtc.AudioFrame, ...]:
    size = 2 * channels * round(rate * FRAME_SECONDS)
    return tuple(
        rtc.AudioFrame(chunk, rate, channels, len(chunk) // (2 * channels))
        for chunk in (pcm[i : i + size] for i in range(0, len(pcm), size))
    )
