"""The other end of a warm transfer, as unit tests script it: the supervisor's phone
(answered, ringing, hung up) at the loopback LiveKit server, hold music recorded at the
tool's edge, and a timeline of what happened in order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from livekit import rtc
from livekit.agents.voice.io import AudioInput
from livekit.protocol import sip

from config import Settings
from tests.support.call import Call
from tests.support.livekit_server import Hang, RecordedRequest, Reply
from tests.support.scripted_llm import Reply as LLMReply
from tests.support.scripted_llm import call
from tests.support.stand_in_room import SIP, StandInParticipant
from tools.warm_transfer import hold

REASON = "a double charge for a cleaning"
SUPERVISOR = "supervisor-supervisor-1"  # the first dial's identity


@dataclass
class Timeline:
    """What happened, in order: hold music, dialing, answers, what the agent said."""

    events: list[str] = field(default_factory=list)

    def add(self, event: str) -> None:
        self.events.append(event)

    def of(self, *prefixes: str) -> list[str]:
        return [e for e in self.events if e.startswith(prefixes)]


class RecordingHold:
    """Hold music at the tool's edge: records when it starts and stops."""

    def __init__(self, timeline: Timeline) -> None:
        self._timeline = timeline
        self.started_at: float | None = None
        self.stopped_at: float | None = None

    def begin(self) -> None:
        self.started_at = time.monotonic()
        self._timeline.add("hold music on")

    async def end(self) -> None:
        if self.started_at is not None and self.stopped_at is None:
            self.stopped_at = time.monotonic()
            self._timeline.add("hold music off")


def record_holds(monkeypatch: pytest.MonkeyPatch, timeline: Timeline) -> list[RecordingHold]:
    """The warm transfer's hold music, recorded on ``timeline`` instead of played."""
    made: list[RecordingHold] = []

    def recording(_room: rtc.Room, _settings: Settings) -> RecordingHold:
        made.append(RecordingHold(timeline))
        return made[-1]

    monkeypatch.setattr(hold, "hold_music_for", recording)
    return made


def answers(c: Call, timeline: Timeline, *, then: Callable[[str], None] | None = None) -> Any:
    """The supervisor's phone: it rings, is answered, and the SIP participant joins the
    caller's room; ``then(identity)`` runs right after (e.g. they hang up at once)."""

    async def answer(request: RecordedRequest) -> Reply:
        message = request.message
        timeline.add(f"dial {message.participant_identity}")
        c.room.join(
            StandInParticipant(
                identity=message.participant_identity,
                kind=SIP,
                attributes={"sip.callStatus": "active", "sip.phoneNumber": message.sip_call_to},
            )
        )
        timeline.add(f"answered {message.participant_identity}")
        if then is not None:
            then(message.participant_identity)
        return sip.SIPParticipantInfo(
            participant_id="PA_supervisor",
            participant_identity=message.participant_identity,
            room_name=message.room_name,
            sip_call_id="SCL_supervisor",
        )

    return answer


def rings_until(action: Callable[[str], None]) -> Callable[[RecordedRequest], Awaitable[Reply]]:
    """The supervisor's phone rings (the request stays pending) and ``action`` happens."""

    async def ring(request: RecordedRequest) -> Reply:
        action(request.message.participant_identity)
        return Hang()

    return ring


def warm_to(destination: str = "supervisor", **extra: Any) -> LLMReply:
    """The LLM's warm_transfer call."""
    arguments = {"destination": destination, "reason": REASON, **extra}
    return call("warm_transfer", **arguments)


class ListeningProbe(AudioInput):
    """The caller's audio input as RoomIO provides it: records whether the session is
    listening (attached) or not (detached). It never delivers a frame."""

    def __init__(self) -> None:
        super().__init__(label="ListeningProbe")
        self.changes: list[str] = []
        self._never = asyncio.Event()

    async def __anext__(self) -> rtc.AudioFrame:
        await self._never.wait()
        raise StopAsyncIteration

    def on_attached(self) -> None:
        self.changes.append("listening")

    def on_detached(self) -> None:
        self.changes.append("not listening")
