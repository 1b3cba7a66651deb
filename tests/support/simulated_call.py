"""A whole phone call with nothing faked inside the worker: only the outside world is.

``StandIns`` runs the three services a call talks to as loopback servers speaking their
real wire protocols: OpenAI (LLM and TTS), Deepgram (STT) and the LiveKit server API
(transfers). ``answered()`` then connects a real AgentSession, built with ``agent.py``'s
own ``build_session()`` and real Silero VAD, to a caller's phone line (``CallerLine``:
recorded speech at 8 kHz, in real time) and an audio output that plays in real time
(``PlayoutClock``). What the call does is decided by the scripts given to the stand-ins.

The whole-call test and the benchmarks (bench/) both use it, so the figures the bench
prints come from the same code path the test checks.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from unittest import mock

from livekit.agents import Agent, AgentSession, JobContext
from livekit.agents.testing import fake_job_context
from livekit.agents.utils import http_context

from agent import end_job_when_session_closes
from config import Settings
from tests.support.audio import PlayoutClock
from tests.support.caller_audio import CallerLine
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
    line: CallerLine  # what the agent hears: ``await call.line.speak("yes")``
    playout: PlayoutClock  # what the caller hears, with when each utterance played
    room: StandInRoom
    job: JobContext
    shutdowns: list[str] = field(default_factory=list)


@asynccontextmanager
async def answered(
    session: AgentSession, agent: Agent, *, caller: StandInParticipant, room_name: str
) -> AsyncIterator[AnsweredCall]:
    """The call from the moment the agent answers (``session.start``) to hang-up."""
    room = StandInRoom(room_name, caller)
    line = CallerLine()
    playout = PlayoutClock()
    session.input.audio = line
    session.output.audio = playout
    async with AsyncExitStack() as stack:
        job = stack.enter_context(fake_job_context(room=room.as_room()))
        call = AnsweredCall(session, line, playout, room, job)
        job._on_shutdown = call.shutdowns.append  # the worker would end the job here
        end_job_when_session_closes(session, job)
        await stack.enter_async_context(line)
        await stack.enter_async_context(session)
        await session.start(agent)
        yield call
