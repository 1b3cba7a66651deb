"""Who is still on the line during a warm transfer, and the ways the transfer stops short."""

from __future__ import annotations

import asyncio

from livekit import rtc

from tools.outcomes import Failure


class CallerLeft(Exception):
    """The caller hung up: nothing is left to transfer."""


class SupervisorLeft(Exception):
    """The person dialed hung up after answering, before the handoff."""


class NotReached(Exception):
    """Nobody answered, or the dial failed: the caller goes back to the agent."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class Presence:
    """The person being dialed, as the room's events report them, next to the caller's
    departure (``caller_left``, kept by the call's lifecycle). It listens from before the
    first dial, so a hang-up at any moment is seen, even between two awaits."""

    def __init__(self, room: rtc.Room, caller_left: asyncio.Event) -> None:
        self._room = room
        self.caller_left = caller_left
        self.supervisor: str | None = None
        self.supervisor_joined = asyncio.Event()
        self.supervisor_left = asyncio.Event()
        room.on("participant_connected", self._on_connected)
        room.on("participant_disconnected", self._on_disconnected)

    def expect(self, identity: str) -> None:
        """Watch for the participant of a new dial attempt (an earlier attempt's leg
        leaving is no news)."""
        self.supervisor = identity
        self.supervisor_joined = asyncio.Event()
        self.supervisor_left = asyncio.Event()
        if identity in self._room.remote_participants:
            self.supervisor_joined.set()

    @property
    def departures(self) -> tuple[asyncio.Event, asyncio.Event]:
        """Either of the two hanging up ends whatever is being waited for."""
        return self.caller_left, self.supervisor_left

    def raise_departure(self) -> None:
        if self.caller_left.is_set():
            raise CallerLeft
        if self.supervisor_left.is_set():
            raise SupervisorLeft

    def close(self) -> None:
        self._room.off("participant_connected", self._on_connected)
        self._room.off("participant_disconnected", self._on_disconnected)

    def _on_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.supervisor:
            self.supervisor_joined.set()

    def _on_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.supervisor:
            self.supervisor_left.set()
