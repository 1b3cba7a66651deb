"""The other end of a consult-first warm transfer, as the unit tests script it.

``DestinationPhone`` is the person (or machine) dialed, as LiveKit SIP presents them in
the caller's room: the dial (CreateSIPParticipant at the loopback server) makes them join
at once with their phone line published, before it rings; the test then answers, speaks
(a recording on the line, heard by the consult session's real VAD and the real Deepgram
plugin, against the loopback Deepgram, which returns the scripted transcript), presses
keys and hangs up. ``ScreeningLLM`` answers the answering-machine detection's requests
(those offering ``save_prediction``) from a queue of verdicts of their own, apart from
the call's script, since how often AMD asks depends on when speech ends. ``SpeechLog``
is the call's text-to-speech (silent), telling a test when a sentence is spoken.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from livekit import rtc
from livekit.agents import llm, tts
from livekit.agents.types import DEFAULT_API_CONNECT_OPTIONS, APIConnectOptions
from livekit.plugins import deepgram, silero
from livekit.protocol import models, sip
from livekit.protocol import room as room_pb

from config import Settings
from tests.support.audio import SilentTTS
from tests.support.call import Call, phone_call
from tests.support.caller_audio import CallerLine
from tests.support.deepgram_server import LoopbackDeepgram
from tests.support.hearing_model import who_hears_whom
from tests.support.livekit_server import LoopbackLiveKit, RecordedRequest, Reply
from tests.support.scripted_llm import Request, ScriptedLLM, _ScriptedStream, call
from tests.support.stand_in_room import SIP, StandInParticipant, StandInRoom

PARTICIPANT_REMOVED = rtc.DisconnectReason.PARTICIPANT_REMOVED

# What LiveKit SIP grants a SIP participant (livekit/protocol sip/token.go BuildSIPToken).
SIP_PERMISSION = models.ParticipantPermission(
    can_subscribe=True, can_publish=True, can_publish_data=True, can_update_metadata=True
)


class ScreeningLLM(ScriptedLLM):
    """The call's LLM: AMD's classification requests get ``verdicts`` in order (the last
    one again when they run out), every other request the script."""

    def __init__(self) -> None:
        super().__init__()
        self.verdicts: deque[str] = deque()
        self.screenings: list[Request] = []
        self._last = "uncertain"

    def chat(
        self, *, chat_ctx: llm.ChatContext, tools: list[llm.Tool] | None = None, **kw: Any
    ) -> llm.LLMStream:
        names = {getattr(getattr(t, "info", None), "name", None) for t in tools or []}
        if "save_prediction" not in names:
            return super().chat(chat_ctx=chat_ctx, tools=tools, **kw)
        self.screenings.append(Request(chat_ctx=chat_ctx.copy(), tools=list(tools or [])))
        if self.verdicts:
            self._last = self.verdicts.popleft()
        reply = call("save_prediction", label=self._last)
        return _ScriptedStream(
            self,
            reply,
            chat_ctx=chat_ctx,
            tools=tools or [],
            conn_options=kw.get("conn_options", DEFAULT_API_CONNECT_OPTIONS),
        )


class SpeechLog(SilentTTS):
    """SilentTTS that lets a test wait until some text has been spoken (synthesized)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def synthesize(
        self, text: str, *, conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS
    ) -> tts.ChunkedStream:
        stream = super().synthesize(text, conn_options=conn_options)
        self._changed.set()
        return stream

    async def spoken(self, part: str, *, within: float = 20.0) -> str:
        """The first text spoken that holds ``part``, waiting for it."""
        async with asyncio.timeout(within):
            while True:
                for text in self.texts:
                    if part in text:
                        return text
                self._changed.clear()
                await self._changed.wait()


class DestinationPhone:
    """The phone a warm transfer dials. ``dialed()`` is the loopback server's answer to
    CreateSIPParticipant: the leg joins the room and publishes its line, rings until
    ``answer()``, then the request returns (wait_until_answered)."""

    def __init__(self, room: StandInRoom, server: LoopbackLiveKit, caller: str) -> None:
        """``caller``: the caller's identity in ``room``."""
        self._room = room
        self._server = server
        self._caller = caller
        self.line = CallerLine()
        self.identity = ""
        self.answered_at: float | None = None
        self.joined = asyncio.Event()
        self.answered = asyncio.Event()
        self._pick_up = asyncio.Event()

    def dialed(self) -> Callable[[RecordedRequest], Awaitable[Reply]]:
        async def respond(request: RecordedRequest) -> Reply:
            message = request.message
            self.identity = message.participant_identity
            room = self._room
            self._server.participants.setdefault(message.room_name, []).append(
                models.ParticipantInfo(
                    identity=self.identity, kind=models.ParticipantInfo.Kind.SIP,
                    permission=SIP_PERMISSION,
                )
            )  # fmt: skip
            room.join(
                StandInParticipant(
                    self.identity,
                    kind=SIP,
                    attributes={"sip.callStatus": "dialing"},
                )
            )
            room.publish_microphone(self.identity, self.line)  # before it rings, as SIP does
            self.joined.set()
            await self._pick_up.wait()
            if self.identity not in room.remote_participants:  # gone while it rang
                return sip.SIPParticipantInfo()
            room.set_attributes(self.identity, **{"sip.callStatus": "active"})
            self.answered_at = time.monotonic()
            self.answered.set()
            return sip.SIPParticipantInfo(
                participant_id="PA_destination",
                participant_identity=self.identity,
                room_name=message.room_name,
                sip_call_id="SCL_destination",
            )

        return respond

    def removed(self) -> Callable[[RecordedRequest], Awaitable[Reply]]:
        """The loopback server's answer to RemoveParticipant for this leg: it leaves the
        room, as LiveKit ends a removed participant's call."""

        async def remove(request: RecordedRequest) -> Reply:
            if request.message.identity in self._room.remote_participants:
                self._room.hang_up(request.message.identity, PARTICIPANT_REMOVED)
            return room_pb.RemoveParticipantResponse()

        return remove

    def answer(self) -> None:
        self._pick_up.set()

    async def say(self, recording: str) -> None:
        """Speak a recording (tests/fixtures/speech) on the line; the loopback Deepgram
        hears it as the next scripted transcript."""
        await self.line.speak(recording)

    def press(self, digit: str) -> None:
        self._room.press(self.identity, digit)

    def hang_up(self) -> None:
        self._room.hang_up(self.identity)

    def heard(self) -> set[str]:
        """Who hears whom in the room now (tests/support/hearing_model.py)."""
        return who_hears_whom(
            self._room,
            self._server,
            names={self._caller: "the caller", self.identity: "the destination"},
            subscribes_from={self._caller: 0.0, self.identity: self.answered_at},
        )


@dataclass
class ConsultCall:
    c: Call
    deepgram: LoopbackDeepgram
    phone: DestinationPhone
    llm: ScreeningLLM
    speech: SpeechLog


@asynccontextmanager
async def consult_call(
    settings: Settings, vad: silero.VAD, *, dialed: bool = True
) -> AsyncIterator[ConsultCall]:
    """A phone call whose agent has speech recognition (the real Deepgram plugin against
    the loopback Deepgram, and ``vad``), a voice on RoomIO's own track (silent), and the
    caller's phone line published. ``dialed``: the destination's phone is what the dial
    reaches (else the test scripts CreateSIPParticipant); a removed leg leaves the room."""
    async with LoopbackDeepgram() as dg:
        stt = deepgram.STT(
            model="nova-2-phonecall", language="en-US", api_key=dg.api_key, base_url=dg.base_url
        )
        screening = ScreeningLLM()
        speech = SpeechLog()
        async with phone_call(
            settings,
            audio=True,
            voice_track=True,
            tts=speech,
            llm=screening,
            stt=stt,
            vad=vad,
        ) as c:
            c.room.publish_microphone(c.caller.identity)  # the caller's line (silent)
            phone = DestinationPhone(c.room, c.server, c.caller.identity)
            if dialed:
                c.server.respond("CreateSIPParticipant", phone.dialed())
            c.server.respond("RemoveParticipant", *(phone.removed() for _ in range(4)))
            try:
                yield ConsultCall(c, dg, phone, screening, speech)
            finally:
                await phone.line.aclose()
                await c.room.aclose()
