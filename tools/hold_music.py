"""Hold music while a warm transfer dials: it never delays the dial, never outlives the hold.

It plays on a track of its own (the framework's BackgroundAudioPlayer, through
playback.TrackPlayer), looped, independent of the agent's speech. Starting it does not
wait for the track to be published, so a slow SFU cannot hold up the dial; ending it
cancels a start still in progress and unpublishes within a time limit, so a hanging
player cannot keep a hung-up call alive.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from livekit import rtc
from livekit.agents.voice.background_audio import AudioSource, BuiltinAudioClip

from config import Settings
from playback import TrackPlayer

HOLD_VOLUME = 0.8


class Hold(Protocol):
    """What the warm transfer needs from hold music (tests record it at this edge)."""

    def begin(self) -> None: ...

    async def end(self) -> None: ...


class HoldMusic:
    def __init__(self, room: rtc.Room, source: AudioSource) -> None:
        self.source = source
        self._player = TrackPlayer(room, "hold music")
        self._starting: asyncio.Task[None] | None = None

    def begin(self) -> None:
        """Start the music in the background; returns at once."""
        if self._starting is None:
            self._starting = asyncio.create_task(self._start())

    async def end(self) -> None:
        """Stop it, whatever state it is in; bounded, and safe to repeat."""
        starting, self._starting = self._starting, None
        if starting is not None and not starting.done():
            starting.cancel()
        if starting is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await starting
        await self._player.stop()

    async def _start(self) -> None:
        if await self._player.start():
            self._player.play(self.source, volume=HOLD_VOLUME, loop=True)


def hold_music_for(room: rtc.Room, settings: Settings) -> Hold:
    """The configured hold music: the framework's built-in clip, or an audio file
    (config.py resolved its path and checked that it decodes)."""
    configured = settings.transfer.hold_music
    if configured is None or configured == "builtin":
        return HoldMusic(room, BuiltinAudioClip.HOLD_MUSIC)
    return HoldMusic(room, configured)
