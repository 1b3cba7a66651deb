"""A phone call, as a test sets one up: a SIP caller in a stand-in room, a fake job
around it, the loopback LiveKit server behind ``job.api``, and the real AgentSession
running our PhoneAssistant with a scripted LLM."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from unittest import mock

from livekit import rtc
from livekit.agents import AgentSession, JobContext
from livekit.agents.testing import fake_job_context
from livekit.agents.tts import TTS
from livekit.agents.utils import http_context

import prompts
from agent import PhoneAssistant, end_job_when_session_closes
from caller import Caller
from config import Settings
from tests.support.audio import PlayoutClock, SilentTTS
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.scripted_llm import ScriptedLLM
from tests.support.stand_in_room import StandInParticipant, StandInRoom, phone_caller


@dataclass
class Call:
    session: AgentSession
    llm: ScriptedLLM
    room: StandInRoom
    caller: StandInParticipant
    server: LoopbackLiveKit
    job: JobContext
    playout: PlayoutClock | None
    shutdowns: list[str] = field(default_factory=list)


@asynccontextmanager
async def phone_call(
    settings: Settings,
    caller: StandInParticipant | None = None,
    *,
    audio: bool = False,
    tts: TTS | None = None,
    greeting_audio: AsyncIterable[rtc.AudioFrame] | None = None,
) -> AsyncIterator[Call]:
    """``audio=True`` gives speech real duration (SilentTTS + PlayoutClock), for tests
    about what happens before, during and after something is heard; ``tts`` replaces
    the SilentTTS (e.g. the real OpenAI plugin against the loopback server)."""
    caller = caller or phone_caller()
    room = StandInRoom("call-room-1", caller)
    async with LoopbackLiveKit() as server, http_context.open():
        with (
            mock.patch.dict(os.environ, server.env()),
            fake_job_context(room=room.as_room()) as job,
        ):
            llm = ScriptedLLM()
            session = AgentSession(llm=llm, tts=(tts or SilentTTS()) if audio else None)
            playout = PlayoutClock() if audio else None
            if playout:
                session.output.audio = playout
            call = Call(session, llm, room, caller, server, job, playout)
            job._on_shutdown = call.shutdowns.append  # the worker would end the job here
            end_job_when_session_closes(session, job)
            agent = PhoneAssistant(
                settings,
                caller=Caller.from_participant(caller),  # type: ignore[arg-type]
                language="en-US",
                greeting=prompts.greeting(settings, line=None),
                greeting_audio=greeting_audio,
            )
            async with session:
                await session.start(agent)
                yield call
