"""A whole phone call with nothing faked inside the worker: only the outside world is.

``StandIns`` runs the three services a call talks to as loopback servers speaking their
real wire protocols: OpenAI (LLM and TTS), Deepgram (STT) and the LiveKit server API
(transfers). ``answered()`` then starts a real AgentSession, built with ``agent.py``'s
own ``prepare_call()`` and real Silero VAD, the way ``answer_call`` does: with the room,
through the framework's RoomIO. The room is the stand-in room (``StandInRoom``) with the
caller in it: the caller's phone line (``CallerLine``: recorded speech at 8 kHz, in real
time) is their published audio track, which RoomIO reads as it reads a SIP caller's; the
agent's voice is the track RoomIO publishes, which the room listens to (``Earpiece``).
What the call does is decided by the scripts given to the stand-ins.

The whole-call test uses it. The benchmarks (bench/) answer calls with their own copy of
the earlier wiring (``CallerLine`` as the session's input, ``PlayoutClock`` as its
output, no RoomIO), so their figures stay comparable between runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from unittest import mock

from livekit import rtc
from livekit.agents import AgentSession, JobContext
from livekit.agents.testing import fake_job_context
from livekit.agents.utils import http_context
from livekit.agents.voice.events import CloseEvent
from livekit.plugins import silero

from agent import PhoneAssistant, open_call, prepare_call, start_session
from caller import Caller
from config import Settings
from greetings import GreetingAudio
from lifecycle import CallLifecycle
from server_api import CallServer
from tests.support.caller_audio import CallerLine, Earpiece
from tests.support.deepgram_server import LoopbackDeepgram
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.openai_server import LoopbackOpenAI
from tests.support.stand_in_room import StandInParticipant, StandInRoom


@dataclass
class StandIns:
    openai: LoopbackOpenAI
    deepgram: LoopbackDeepgram
    livekit: LoopbackLiveKit

    def settings(self, base: Settings) -> Settings:
        """``base`` with its provider endpoints and keys pointed at the stand-ins."""
        secrets = dataclasses.replace(
            base.secrets,
            openai_api_key=self.openai.api_key,
            openai_base_url=self.openai.base_url,
            deepgram_api_key=self.deepgram.api_key,
            deepgram_base_url=self.deepgram.base_url,
            livekit_url=self.livekit.url,
            livekit_api_key=self.livekit.api_key,
            livekit_api_secret=self.livekit.api_secret,
        )
        return dataclasses.replace(base, secrets=secrets)

    @property
    def unexpected(self) -> list[object]:
        """Requests no script answered: speech nobody scripted, an extra LLM turn."""
        return [*self.openai.unexpected, *self.deepgram.unexpected]


@asynccontextmanager
async def stand_ins(
    *,
    llm_ttft: float = 0.0,
    tts_ttfb: float = 0.0,
    stt_latency: float = 0.0,
    speech_seconds_per_char: float = 0.02,
) -> AsyncIterator[StandIns]:
    """The three services, with the given provider latencies (none by default).

    The LIVEKIT_* variables point at the loopback server while it runs, since the job's
    API client reads them from the environment, as it does in a worker.
    """
    async with (
        LoopbackOpenAI(
            ttft=llm_ttft, tts_ttfb=tts_ttfb, speech_seconds_per_char=speech_seconds_per_char
        ) as openai_server,
        LoopbackDeepgram(latency=stt_latency) as deepgram_server,
        LoopbackLiveKit() as livekit_server,
        http_context.open(),
    ):
        with mock.patch.dict(os.environ, livekit_server.env()):
            yield StandIns(openai_server, deepgram_server, livekit_server)


@dataclass
class AnsweredCall:
    session: AgentSession
    agent: PhoneAssistant
    lifecycle: CallLifecycle
    line: CallerLine  # what the caller says: ``await call.line.speak("yes")``
    playout: Earpiece  # what the caller hears, with when each utterance played
    room: StandInRoom
    job: JobContext
    shutdowns: list[str] = field(default_factory=list)  # why the worker would end the job
    closed: asyncio.Future[CloseEvent] = field(default_factory=asyncio.Future)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    def _on_close(self, ev: CloseEvent) -> None:
        if not self.closed.done():
            self.closed.set_result(ev)

    def _end_job(self, reason: str) -> None:
        self.shutdowns.append(reason)
        self.ended.set()

    async def job_ends(self, within: float = 10.0) -> str:
        """Waits until the job is ended; returns why."""
        await asyncio.wait_for(self.ended.wait(), within)
        return self.shutdowns[0]


@asynccontextmanager
async def answered(
    settings: Settings,
    participant: StandInParticipant,
    *,
    vad: silero.VAD,
    greetings: GreetingAudio,
    room_name: str,
) -> AsyncIterator[AnsweredCall]:
    """The call from the moment the agent answers to hang-up, built as ``answer_call``
    builds it: the lifecycle (with a server client for the loopback LiveKit), the session
    and agent from ``prepare_call``, started by ``start_session`` with the room, RoomIO
    linked to the caller. The caller is in the room with their phone line published.
    Leaving is the job ending: its shutdown callback runs, then the session closes, then
    the room's audio is freed."""
    room = StandInRoom(room_name, participant, listen=True)
    line = CallerLine()
    caller = Caller.from_participant(participant)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(room.aclose)
        job = stack.enter_context(fake_job_context(room=room))
        lifecycle = open_call(
            room,
            caller,
            server=CallServer.from_settings(settings, room.name),
            end_job=lambda reason: call._end_job(reason),
            call_id=job.job.id,
        )
        stack.callback(lifecycle.close)
        session, agent = prepare_call(settings, caller, lifecycle, vad=vad, greetings=greetings)
        call = AnsweredCall(
            session, agent, lifecycle, line, Earpiece.listen_to(session, room), room, job
        )
        job._on_shutdown = call._end_job  # the framework or a tool ending the job
        room.on("disconnected", lambda reason: call.shutdowns.append(_room_left(reason)))
        session.on("close", call._on_close)
        await stack.enter_async_context(line)
        room.publish_microphone(caller.identity, line)
        await stack.enter_async_context(session)
        stack.push_async_callback(lifecycle.on_job_shutdown)
        await start_session(session, agent, room, caller, lifecycle)
        yield call


def _room_left(reason: rtc.DisconnectReason.ValueType) -> str:
    return f"room disconnected: {rtc.DisconnectReason.Name(reason)}"
