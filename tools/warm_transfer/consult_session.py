"""The agent's second voice in the caller's room: an AgentSession of its own, linked to
the leg being dialed, that screens the answer and talks with the person privately.

It is the framework's own pattern for talking to the person a transfer reaches (a second
AgentSession, as livekit-agents' WarmTransferTask builds one), started on the caller's
room instead of a side room, so no MoveParticipant (LiveKit Cloud only) is needed:

* RoomIO links it to the dialed leg only; it speaks on a track of its own (BRIEF_TRACK),
  which the agent's track permissions let only that leg hear (hearing.py); it takes no
  text, writes no transcripts, and never deletes the room when it closes.
* The framework's answering-machine detection (``livekit.agents.voice.amd.AMD``) runs on
  it: AMD classifies what this session hears, with the call's own LLM, so the session
  needs speech recognition (the call's STT and VAD, or an STT in the person's language).
* The person decides by saying so (the LLM's ``accept_call`` / ``decline_call``) or on
  their keypad: 1 takes the call, 2 declines it. SIP DTMF reaches the room from every
  phone, so only the dialed leg's keys count.
* Until the briefing has been said, what the person says starts no reply: the agent
  does not talk over its own briefing, and a voicemail greeting is never answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from enum import StrEnum

from livekit import rtc
from livekit.agents import Agent, AgentSession, StopResponse, function_tool, llm, room_io
from livekit.agents.stt import STT
from livekit.agents.vad import VAD
from livekit.agents.voice.amd import AMD, AMDPredictionEvent
from livekit.agents.voice.amd.detector import DetectionOptions

from caller import SttChoice
from config import Destination, Settings
from languages import ENGLISH_ONLY_LANGUAGES
from models import build_stt
from prompts import prompt_language
from tools.outcomes import Failure, Outcome
from tools.warm_transfer.hearing import BRIEF_TRACK
from tools.warm_transfer.presence import NotReached, Presence
from waits import until

logger = logging.getLogger("phone-assistant.warm-transfer")

# Closing the session and unpublishing its track are bounded: a caller may be waiting.
CLOSE_TIMEOUT_S = 3.0
ACCEPT_KEY, DECLINE_KEY = "1", "2"


class Decision(StrEnum):
    ACCEPTED = "accepted"
    DECLINED = "declined"
    TIMED_OUT = "did not answer in time"


@dataclass(frozen=True)
class Ears:
    """How the consult hears the person answering."""

    stt: STT
    vad: VAD


def ears_for(
    main: AgentSession, settings: Settings, destination: Destination, call_language: str
) -> Ears | None:
    """The call's own STT and VAD; an STT in the person's language when the destination
    speaks another one. None when the call has no speech recognition to listen with."""
    stt, vad = main.stt, main.vad
    if stt is None or vad is None or not isinstance(main.llm, llm.LLM) or main.tts is None:
        return None
    language = destination.language
    if language is None or prompt_language(language) == prompt_language(call_language):
        return Ears(stt, vad)
    models = settings.models
    model = models.stt_phone if language in ENGLISH_ONLY_LANGUAGES else models.stt_general
    choice = SttChoice(model, language, f"destination {destination.key}", language)
    return Ears(build_stt(settings, choice, vad), vad)


class ConsultSession:
    """One dialed leg's second session; ``start`` it before the leg is dialed (AMD and
    RoomIO then hear the answer from its first word), ``close`` it when done."""

    def __init__(self, room: rtc.Room, identity: str) -> None:
        self._room = room
        self.identity = identity
        self.closed = asyncio.Event()  # the session closed: the leg left, or it failed
        self.decided: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.decision_made = asyncio.Event()  # ``decided`` has its result
        self.turn_heard = asyncio.Event()  # the person finished saying something
        self.briefing = False  # the person is being (or was) told about the caller
        self.questions_open = False  # what the person says gets an answer from the LLM
        self._session: AgentSession | None = None
        self._amd: AMD | None = None
        self._timeout = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._keys = False
        self._closing = False

    @classmethod
    async def start(
        cls,
        main: AgentSession,
        room: rtc.Room,
        identity: str,
        *,
        ears: Ears,
        instructions: str,
        conversation: str,
        detection: DetectionOptions,
    ) -> ConsultSession:
        """``instructions``: how to talk with the person (warm_transfer.md, consult);
        ``conversation``: the caller's conversation so far, given to the LLM as a
        message (what the caller said is never its instructions)."""
        consult = cls(room, identity)
        model = main.llm
        assert isinstance(model, llm.LLM) and main.tts is not None  # ears_for checked
        session: AgentSession = AgentSession(
            stt=ears.stt,
            vad=ears.vad,
            llm=model,
            tts=main.tts,
            user_away_timeout=None,
            turn_handling={
                # no reply is started before the turn ends: until the briefing none is
                # wanted (a voicemail greeting must not cost a model call)
                "preemptive_generation": {"enabled": False},
                # the briefing is not cut off by line noise, but a "yes" said over its
                # question is heard, and answered once it has been said
                "interruption": {"discard_audio_if_uninterruptible": False},
            },
        )
        consult._session = session
        session.on("close", lambda _ev: consult.closed.set())
        await session.start(
            agent=ConsultAgent(consult, instructions, conversation),
            room=room,
            room_options=room_io.RoomOptions(
                participant_identity=identity,
                audio_output=room_io.AudioOutputOptions(track_name=BRIEF_TRACK),
                text_input=False,
                text_output=False,
                close_on_disconnect=True,
                delete_room_on_close=False,  # it is the caller's room
            ),
            record=False,
        )
        consult._amd = AMD(
            session,
            llm=model,
            stt=None,  # the session's own transcripts
            ivr_detection=False,  # a menu ends the attempt; the agent navigates none
            interrupt_on_machine=True,
            participant_identity=identity,
            detection_options=detection,
        )
        await consult._amd.__aenter__()
        return consult

    @property
    def session(self) -> AgentSession:
        assert self._session is not None, "not started"
        return self._session

    # ------------------------------------------------------------------ screening

    async def verdict(self) -> AMDPredictionEvent:
        """AMD's verdict on the answer (its time limits bound this wait)."""
        assert self._amd is not None, "not started"
        try:
            return await self._amd.execute()
        finally:
            await self._amd.aclose()

    # ------------------------------------------------------------------ talking

    async def say(self, text: str, *stops: asyncio.Event, interruptible: bool = False) -> bool:
        """Say ``text`` to the person until played out, uninterruptibly unless
        ``interruptible`` (a question they may answer over: their words then end it and
        get a reply, where over uninterruptible speech the framework would drop them);
        False when a stop came first (it is cut off then) or the session cannot speak."""
        try:
            handle = self.session.say(text, allow_interruptions=interruptible)
        except RuntimeError:
            return False
        if not await until(handle.wait_for_playout(), self.closed, *stops):
            handle.interrupt(force=True)
            return False
        return interruptible or not handle.interrupted

    def forget_greeting(self) -> None:
        """What the person said before the briefing (their greeting, their reply to the
        screening question) is not a question: it does not start the first turn."""
        with contextlib.suppress(RuntimeError):
            self.session.clear_user_turn()

    def listen_for_keys(self) -> None:
        """From now on 1 takes the call and 2 declines it, pressed on the dialed phone."""
        if not self._keys:
            self._keys = True
            self._room.on("sip_dtmf_received", self._on_dtmf)

    def open_for_questions(self, timeout: float) -> None:
        """The briefing has been said: the person's questions get answers, and a
        decision is due within ``timeout`` seconds of the last thing either said."""
        self.questions_open = True
        self._timeout = timeout
        self.session.on("agent_state_changed", self._restart_timer)
        self.session.on("user_state_changed", self._restart_timer)
        self._restart_timer()

    def raise_stop(self, presence: Presence) -> None:
        """After a wait that a stop cut short: why, as the exception the flow expects
        (a hang-up first, else this session closing under it)."""
        presence.raise_departure()
        if self.closed.is_set():
            raise NotReached(
                Failure(
                    Outcome.FAILED,
                    f"the agent's session with {self.identity} closed",
                    "see the errors logged before this one (a model or the connection)",
                )
            )

    def decide_nothing(self) -> None:
        """The transfer is ending without the person's decision: nothing they say or
        press counts any more."""
        self.questions_open = False
        self._cancel_timer()
        if not self.decided.done():
            self.decided.cancel()

    def decide(self, decision: Decision, how: str) -> None:
        if self.decided.done():
            return
        logger.info("warm transfer: %s %s (%s)", self.identity, decision.value, how)
        self.questions_open = False
        self._cancel_timer()
        self.decided.set_result(decision)
        self.decision_made.set()

    # ------------------------------------------------------------------ the end

    async def close(self) -> None:
        """Stop listening and speaking, and take the briefing track away; bounded, safe
        to repeat."""
        if self._closing:
            return
        self._closing = True
        self._cancel_timer()
        if self._keys:
            self._room.off("sip_dtmf_received", self._on_dtmf)
        if not self.decided.done():
            self.decided.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                if self._amd is not None:
                    await self._amd.aclose()
                if self._session is not None:
                    await self._session.aclose()
        await self._unpublish()

    async def _unpublish(self) -> None:
        local = self._room.local_participant
        for sid, publication in list(local.track_publications.items()):
            if publication.name != BRIEF_TRACK:
                continue
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await local.unpublish_track(sid)
            except Exception as error:
                logger.warning("could not unpublish the briefing track: %r", error)

    # ------------------------------------------------------------------ events

    def _on_dtmf(self, event: rtc.SipDTMF) -> None:
        if event.participant is None or event.participant.identity != self.identity:
            return  # the caller's keys, or anyone else's
        if event.digit == ACCEPT_KEY:
            self.decide(Decision.ACCEPTED, f"pressed {ACCEPT_KEY}")
        elif event.digit == DECLINE_KEY:
            self.decide(Decision.DECLINED, f"pressed {DECLINE_KEY}")

    def _restart_timer(self, *_: object) -> None:
        """The time to decide runs while neither is speaking or the agent thinking."""
        self._cancel_timer()
        if self.decided.done():
            return
        session = self.session
        busy = session.agent_state in ("speaking", "thinking") or session.user_state == "speaking"
        if not busy:
            self._timer = asyncio.get_running_loop().call_later(
                self._timeout,
                self.decide,
                Decision.TIMED_OUT,
                f"nothing decided {self._timeout:g} s after the last word",
            )

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class ConsultAgent(Agent):
    """The consult's agent: answers the person's questions from the caller's
    conversation, and hands their decision to the consult."""

    def __init__(self, consult: ConsultSession, instructions: str, conversation: str) -> None:
        context = llm.ChatContext.empty()
        if conversation:
            context.add_message(role="user", content=conversation)
        super().__init__(instructions=instructions, chat_ctx=context)
        self._consult = consult

    async def on_user_turn_completed(
        self, turn_ctx: llm.ChatContext, new_message: llm.ChatMessage
    ) -> None:
        self._consult.turn_heard.set()
        if not self._consult.questions_open:
            raise StopResponse()  # screening, briefing, or decided: nothing to answer

    @function_tool
    async def accept_call(self) -> None:
        """The person you called says they will take the call now: they are put
        through to the caller."""
        self._consult.decide(Decision.ACCEPTED, "said so")

    @function_tool
    async def decline_call(self) -> None:
        """The person you called says they cannot or will not take the call now."""
        self._consult.decide(Decision.DECLINED, "said so")
