"""The caller's side of a warm transfer's wait: the hold notice, hold music that never
delays the dial and never outlives the hold, and a short reassurance every ~20 s.

The music plays on a track of its own (the framework's BackgroundAudioPlayer, through
playback.TrackPlayer), looped, independent of the agent's speech. Starting it does not
wait for the track to be published, so a slow SFU cannot hold up the dial; ending it
cancels a start still in progress and unpublishes within a time limit, so a hanging
player cannot keep a hung-up call alive. The reassurance is said by the agent's own
session, in the caller's language, over the music.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.voice.background_audio import AudioSource, BuiltinAudioClip

from config import Destination, Settings
from playback import TrackPlayer
from prompts import Words
from tools.playout import say_if_open, say_in_full

HOLD_VOLUME = 0.8
# A caller on hold hears that they are not forgotten this often.
REASSURE_EVERY_S = 20.0


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


class OnHold:
    """One warm transfer's hold, from the notice to the moment the caller is connected
    or back with the agent."""

    def __init__(
        self,
        session: AgentSession,
        words: Words,
        destination: Destination,
        room: rtc.Room,
        settings: Settings,
    ) -> None:
        self._session = session
        self._words = words  # the caller's language
        self._destination = destination
        self._room = room
        self._settings = settings
        self.music: Hold | None = None
        self._reassuring: asyncio.Task[None] | None = None

    async def notice(self, caller_left: asyncio.Event) -> bool:
        """The hold notice, played in full; False when the caller hung up meanwhile (or
        the session is closing): then nobody is dialed."""
        text = self._words.warm("hold", self._destination)
        return await say_in_full(self._session, text, caller_left=caller_left)

    def begin(self) -> None:
        """Music on, and a reassurance every REASSURE_EVERY_S while it lasts."""
        self.music = hold_music_for(self._room, self._settings)
        self.music.begin()
        self._reassuring = asyncio.create_task(self._reassure(), name="warm-transfer.reassure")

    async def end(self) -> None:
        """Off hold: no more reassurance, music off; safe to repeat."""
        reassuring, self._reassuring = self._reassuring, None
        if reassuring is not None:
            reassuring.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reassuring
        if self.music is not None:
            await self.music.end()

    async def _reassure(self) -> None:
        text = self._words.warm("still_holding", self._destination)
        while True:
            await asyncio.sleep(REASSURE_EVERY_S)  # a timer: the caller has waited this long
            say_if_open(self._session, text)
