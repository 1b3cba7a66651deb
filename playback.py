"""Audio the agent plays on a track of its own, apart from its session: the hold music of a
warm transfer, and the apology when the session cannot go on.

Both use the framework's BackgroundAudioPlayer. Publishing and unpublishing a track are
network round trips to the SFU that can hang; music is never worth a stuck call, so both are
bounded in time here and a failure is logged and lived with: the caller waits in silence
rather than not being transferred, and a track that could not be unpublished goes away
with the room.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable

from livekit import rtc
from livekit.agents.voice.background_audio import (
    AudioConfig,
    AudioSource,
    BackgroundAudioPlayer,
    PlayHandle,
)

logger = logging.getLogger("phone-assistant.playback")

PUBLISH_TIMEOUT_S = 3.0
UNPUBLISH_TIMEOUT_S = 2.0
# BackgroundAudioPlayer mixes at 48 kHz mono; other audio is resampled to it.
MIXER_SAMPLE_RATE = 48000


class TrackPlayer:
    """A BackgroundAudioPlayer whose start and stop never hang a call."""

    def __init__(self, room: rtc.Room, what: str) -> None:
        self._room = room
        self._what = what  # for the log: "hold music", "the apology"
        self._player: BackgroundAudioPlayer | None = None

    async def start(self) -> bool:
        """Publish the track; False (logged) when it failed or took too long."""
        player = BackgroundAudioPlayer()
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await player.start(room=self._room)
        except TimeoutError:
            logger.error(
                "publishing the %s track took over %.0f s; going on without it",
                self._what,
                PUBLISH_TIMEOUT_S,
            )
            return False
        except Exception:
            logger.exception("could not publish the %s track; going on without it", self._what)
            return False
        self._player = player
        return True

    def play(self, source: AudioSource, *, volume: float = 1.0, loop: bool = False) -> PlayHandle:
        if self._player is None:
            raise RuntimeError(f"the {self._what} track is not published")
        return self._player.play(AudioConfig(source, volume=volume), loop=loop)

    async def stop(self) -> None:
        """Stop playing and unpublish the track, within a time limit; safe to repeat."""
        player, self._player = self._player, None
        if player is None:
            return
        try:
            async with asyncio.timeout(UNPUBLISH_TIMEOUT_S):
                await player.aclose()
        except TimeoutError:
            logger.error(
                "unpublishing the %s track took over %.0f s; it goes with the room",
                self._what,
                UNPUBLISH_TIMEOUT_S,
            )
        except Exception:
            logger.exception("could not unpublish the %s track", self._what)


async def at_mixer_rate(
    frames: Iterable[rtc.AudioFrame], *, trailing_silence: float = 0.0
) -> AsyncIterator[rtc.AudioFrame]:
    """Mono speech frames (24 kHz from TTS) as the player's mixer takes them (48 kHz),
    with ``trailing_silence`` seconds after, so the last word is out of every buffer
    before whoever waits on the playout acts."""
    resampler: rtc.AudioResampler | None = None
    for frame in frames:
        if frame.sample_rate == MIXER_SAMPLE_RATE:
            yield frame
            continue
        if resampler is None:
            resampler = rtc.AudioResampler(frame.sample_rate, MIXER_SAMPLE_RATE)
        for out in resampler.push(frame):
            yield out
    if resampler is not None:
        for out in resampler.flush():
            yield out
    samples = MIXER_SAMPLE_RATE // 100  # 10 ms frames
    for _ in range(round(trailing_silence * 100)):
        yield rtc.AudioFrame(bytes(2 * samples), MIXER_SAMPLE_RATE, 1, samples)
