"""A phone call, as a unit test sets one up: a SIP caller in the stand-in room, a fake job
around it, the call's lifecycle (with a LiveKit server client pointed at the loopback
server) and the real AgentSession running our PhoneAssistant with a scripted LLM, started
with the room through the framework's RoomIO as answer_call starts it: RoomIO links the
session to the caller and closes it when they hang up.

Turns are scripted as text (``session.run(user_input=...)``). ``audio=True`` gives speech
real duration (SilentTTS, and a PlayoutClock as the session's audio output in place of
RoomIO's track), for tests about what happens before, during and after something is heard.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from unittest import mock

from livekit import rtc
from livekit.agents import NOT_GIVEN, AgentSession, JobContext, room_io
from livekit.agents.stt import STT
from livekit.agents.testing import fake_job_context
from livekit.agents.tts import TTS
from livekit.agents.utils import http_context
from livekit.agents.vad import VAD
from livekit.agents.voice.events import CloseEvent

from agent import CallTools, PhoneAssistant, keypad_for, open_call, rescue_for
from caller import Caller
from config import Settings
from greetings import GreetingAudio
from journal import Clock, utc_now
from keeping import keep_record
from lifecycle import CallLifecycle
from models import voice_for
from prompts import Words
from server_api import CallServer
from store import Store
from tests.support.audio import PlayoutClock, SilentTTS
from tests.support.cloud_host import cloud_host
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.scripted_llm import ScriptedLLM
from tests.support.stand_in_room import StandInParticipant, StandInRoom, phone_caller

ROOM = "call-room-1"


@dataclass
class Call:
    session: AgentSession
    llm: ScriptedLLM
    room: StandInRoom
    caller: StandInParticipant
    server: LoopbackLiveKit
    job: JobContext
    lifecycle: CallLifecycle
    playout: PlayoutClock | None
    shutdowns: list[str] = field(default_factory=list)  # why the worker would end the job
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Future[CloseEvent] = field(default_factory=asyncio.Future)

    def _end_job(self, reason: str) -> None:
        self.shutdowns.append(reason)
        self.ended.set()

    def _on_close(self, ev: CloseEvent) -> None:
        if not self.closed.done():
            self.closed.set_result(ev)

    async def job_ends(self, within: float = 10.0) -> str:
        """Waits until the lifecycle ends the job; returns why."""
        await asyncio.wait_for(self.ended.wait(), within)
        return self.shutdowns[-1]


@asynccontextmanager
async def phone_call(
    settings: Settings,
    caller: StandInParticipant | None = None,
    *,
    audio: bool = False,
    tts: TTS | None = None,
    greeting_audio: AsyncIterable[rtc.AudioFrame] | None = None,
    greetings: GreetingAudio | None = None,
    room: StandInRoom | None = None,
    livekit_host: str | None = None,
    language: str = "en-US",
    store: Store | None = None,
    clock: Clock | None = None,
    llm: ScriptedLLM | None = None,
    stt: STT | None = None,
    vad: VAD | None = None,
    voice_track: bool = False,
) -> AsyncIterator[Call]:
    """``tts`` replaces the SilentTTS (e.g. the real OpenAI plugin against the loopback
    server); ``greetings`` holds audio made ahead of time (the apologies, for a rescue);
    ``livekit_host`` names the loopback LiveKit server in the call's LIVEKIT_URL (e.g.
    ``project.livekit.cloud``, which livekit-api treats as LiveKit Cloud), resolved to
    127.0.0.1 for the whole call (tests/support/cloud_host.py); ``language`` is the
    call's (its fixed sentences, the instructions); ``store`` keeps messages (without
    one, the agent takes none); ``clock`` is the call's (opening hours, records).
    ``llm`` replaces the plain ScriptedLLM; ``stt`` and ``vad`` are the session's (a warm
    transfer's consult hears the person answering with them); ``voice_track``: with
    ``audio``, the agent's voice goes out on RoomIO's own track, as on a real call,
    instead of a PlayoutClock (``playout`` is then None)."""
    caller = caller or phone_caller()
    room = room or StandInRoom(ROOM, caller)
    async with AsyncExitStack() as stack:
        server = await stack.enter_async_context(LoopbackLiveKit())
        url = server.url
        if livekit_host is not None:
            url = stack.enter_context(cloud_host(server.url, livekit_host))
        await stack.enter_async_context(http_context.open())
        stack.enter_context(mock.patch.dict(os.environ, server.env()))
        job = stack.enter_context(fake_job_context(room=room))
        settings = server_settings(settings, server, url=url)
        llm = llm or ScriptedLLM()
        session = AgentSession(
            llm=llm,
            tts=(tts or SilentTTS()) if audio else None,
            stt=stt or NOT_GIVEN,
            vad=vad or NOT_GIVEN,
        )
        client = CallServer.from_settings(settings, room.name)
        assert client is not None
        participant = Caller.from_participant(caller)
        lifecycle = open_call(
            room,
            participant,
            server=client,
            end_job=lambda reason: call._end_job(reason),
            call_id=job.job.id,
            clock=clock or utc_now,
        )
        words = Words(settings, language)
        made = greetings or GreetingAudio()
        voice = voice_for(settings)
        lifecycle.rescue = rescue_for(settings, lifecycle, participant, words, voice, made)
        playout = PlayoutClock() if audio and not voice_track else None
        call = Call(session, llm, room, caller, server, job, lifecycle, playout)
        job._on_shutdown = call._end_job  # a tool or the framework ending the job
        stack.callback(lifecycle.close)
        tools = CallTools.for_call(settings, participant, lifecycle, words, store)
        agent = PhoneAssistant(
            settings,
            caller=participant,
            lifecycle=lifecycle,
            words=words,
            greeting=words.greeting(),
            greeting_audio=greeting_audio,
            tools=tools,
        )
        keypad = keypad_for(settings, participant, lifecycle, session, words, tools)
        if keypad is not None:
            stack.callback(keypad.close)
        lifecycle.watch(session)
        session.on("close", call._on_close)
        if playout is not None:
            session.output.audio = playout
        await stack.enter_async_context(session)
        # leaving the test is the job ending: its shutdown callback runs (the call torn
        # down, then its record kept, as answer_call's end_of_call does), then the worker
        # closes the session
        stack.push_async_callback(
            lambda: keep_record(
                store, settings, lifecycle, session, call.shutdowns[-1] if call.shutdowns else ""
            )
        )
        stack.push_async_callback(lifecycle.on_job_shutdown)
        await session.start(
            agent=agent,
            room=room,
            room_options=room_io.RoomOptions(
                participant_identity=caller.identity,
                audio_input=False,  # turns are scripted as text
                audio_output=audio and voice_track,  # else text, or a PlayoutClock (above)
            ),
        )
        yield call


def server_settings(
    settings: Settings, server: LoopbackLiveKit, *, url: str | None = None
) -> Settings:
    """``settings`` with the LiveKit credentials of the loopback server, reached at
    ``url`` if given (and OpenAI, when the test gave it no server, on a closed loopback
    port: no live TTS leaves the host)."""
    secrets = dataclasses.replace(
        settings.secrets,
        livekit_url=url or server.url,
        livekit_api_key=server.api_key,
        livekit_api_secret=server.api_secret,
        openai_base_url=settings.secrets.openai_base_url or "http://127.0.0.1:9/v1",
    )
    return dataclasses.replace(settings, secrets=secrets)
