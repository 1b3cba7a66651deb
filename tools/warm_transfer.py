"""Warm transfer: the caller waits on hold while a person is dialed into the caller's own
room; the agent introduces the caller to them, then steps out and leaves them talking.

Dialing into the caller's own room (rather than a side room and MoveParticipant) works on
self-hosted LiveKit too, and presenting the caller's own number lets the person answering
see who is calling. The flow, and where each outcome lands:

  the LLM calls the tool (after the caller confirmed)
  -> hold notice, played in full           caller hangs up: nobody is dialed
  -> hold music on, the agent stops listening
  -> CreateSIPParticipant, waiting for the answer, from the caller's number
       SIP 403 with the caller's number      one retry from the fallback caller ID
       busy / no answer / declined / bad number / any error
                                             hold ends, listening resumes, the caller is
                                             told, the LLM offers alternatives
       caller hangs up while it rings        the dial is abandoned and the leg ended
  -> answered: hold music off, the agent introduces the caller (who, why, a summary)
       supervisor hangs up                   back to the agent, as a failure
       caller hangs up                       the supervisor's leg is ended at once
  -> handoff: the agent stops talking and listening but stays in the room (so the job
     lives on); when either side hangs up it deletes the room, ending the call for both.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from google.protobuf.duration_pb2 import Duration
from livekit import api, rtc
from livekit.agents import (
    AgentSession,
    APIConnectOptions,
    JobContext,
    RunContext,
    get_job_context,
    llm,
)
from livekit.agents.llm import ToolError, Toolset, function_tool
from livekit.agents.voice.background_audio import (
    AudioConfig,
    AudioSource,
    BackgroundAudioPlayer,
    BuiltinAudioClip,
    PlayHandle,
)

import prompts
from caller import Caller, mask_number
from config import Destination, Settings
from tools.destinations import (
    NOT_A_PHONE_CALL,
    destination_menu,
    destination_parameter,
    masked_address,
    pick_destination,
    report_failure,
)
from tools.guard import OneTransferAtATime
from tools.outcomes import Failure, Outcome, classify
from tools.playout import say_in_full

logger = logging.getLogger("phone-assistant.warm-transfer")

TOOL_NAME = "warm_transfer"

# How long an answered leg may take to show up in the room. LiveKit adds a SIP
# participant when it starts dialing, so this is only a safety net.
JOIN_TIMEOUT_S = 5.0
# The person who answered is listening to the introduction meanwhile: a slow or failing
# model gives way to a plain sentence rather than dead air.
SUMMARY_TIMEOUT_S = 6.0
HOLD_VOLUME = 0.8
_MAX_REASON = 200
_MAX_NAME = 60


# --------------------------------------------------------------------------- hold music


class HoldMusic(Protocol):
    """What the tool needs from hold music; production plays it with the framework's
    BackgroundAudioPlayer, tests record when it starts and stops."""

    async def start_hold(self) -> None: ...

    async def stop_hold(self) -> None: ...


class BackgroundHoldMusic:
    """Hold music on its own audio track in the room, looped, independent of the agent's
    speech pipeline. Stopping unpublishes the track, so nobody hears a trailing loop."""

    def __init__(self, room: rtc.Room, source: AudioSource) -> None:
        self._room = room
        self.source = source
        self._player: BackgroundAudioPlayer | None = None
        self._handle: PlayHandle | None = None

    async def start_hold(self) -> None:
        if self._player is not None:
            return
        player = BackgroundAudioPlayer()
        await player.start(room=self._room)
        self._player = player
        self._handle = player.play(AudioConfig(self.source, volume=HOLD_VOLUME), loop=True)

    async def stop_hold(self) -> None:
        player, handle = self._player, self._handle
        self._player = self._handle = None
        if handle is not None:
            handle.stop()
        if player is not None:
            await player.aclose()


def hold_music_for(room: rtc.Room, settings: Settings) -> HoldMusic:
    """The configured hold music: the framework's built-in clip, or an audio file
    (config.py resolved its path and checked that it exists)."""
    configured = settings.transfer.hold_music
    if configured is None or configured == "builtin":
        return BackgroundHoldMusic(room, BuiltinAudioClip.HOLD_MUSIC)
    return BackgroundHoldMusic(room, configured)


# --------------------------------------------------------------------------- presence


class _CallerLeft(Exception):
    """The caller hung up: nothing is left to transfer."""


class _SupervisorLeft(Exception):
    """The person dialed hung up after answering, before the handoff."""


class _NotReached(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(failure.detail)
        self.failure = failure


class _Presence:
    """The caller and the person dialed, as the room's events report them. It listens from
    before the first dial, so a hang-up at any moment is seen, even between two awaits."""

    def __init__(self, room: rtc.Room, caller: str) -> None:
        self._room = room
        self.caller = caller
        self.supervisor: str | None = None
        self.caller_left = asyncio.Event()
        self.supervisor_joined = asyncio.Event()
        self.supervisor_left = asyncio.Event()
        self.departure = asyncio.Event()  # either of the two left
        self._after_handoff: Callable[[str], None] | None = None
        room.on("participant_connected", self._on_connected)
        room.on("participant_disconnected", self._on_disconnected)
        if caller not in room.remote_participants:
            self.caller_left.set()
            self.departure.set()

    def expect(self, identity: str) -> None:
        """Watch for the participant of a new dial attempt."""
        self.supervisor = identity
        self.supervisor_joined = asyncio.Event()
        self.supervisor_left = asyncio.Event()
        self.departure = asyncio.Event()  # a failed earlier attempt's leg leaving is no news
        if self.caller_left.is_set():
            self.departure.set()
        if identity in self._room.remote_participants:
            self.supervisor_joined.set()

    def hand_off(self, on_departure: Callable[[str], None]) -> None:
        """From now on the first of the two to leave ends the call (``on_departure``)."""
        self._after_handoff = on_departure
        if self.caller_left.is_set():
            self._departed(self.caller)
        elif self.supervisor_left.is_set() and self.supervisor:
            self._departed(self.supervisor)

    def close(self) -> None:
        self._room.off("participant_connected", self._on_connected)
        self._room.off("participant_disconnected", self._on_disconnected)

    def _on_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.supervisor:
            self.supervisor_joined.set()

    def _on_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity == self.caller:
            self.caller_left.set()
        elif participant.identity == self.supervisor:
            self.supervisor_left.set()
        else:
            return
        self.departure.set()
        self._departed(participant.identity)

    def _departed(self, identity: str) -> None:
        on_departure, self._after_handoff = self._after_handoff, None
        if on_departure is not None:
            self.close()
            on_departure(identity)


async def _until(awaitable: Any, *stops: asyncio.Event) -> bool:
    """Await ``awaitable`` unless one of ``stops`` is set first; True when it completed.
    An exception from ``awaitable`` propagates; a stop cancels it."""
    work = asyncio.ensure_future(awaitable)
    waiters = [asyncio.ensure_future(stop.wait()) for stop in stops]
    try:
        await asyncio.wait({work, *waiters}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (work, *waiters):
            if not task.done():
                task.cancel()
        for task in (work, *waiters):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if work.done() and not work.cancelled():
        work.result()  # re-raises the dial's own error
        return True
    return False


# --------------------------------------------------------------------------- the tool


class WarmTransferTool(Toolset):
    """The LLM picks a destination key from an enum built from configuration (warm
    destinations only) and says why the caller is calling; addresses stay here."""

    def __init__(self, settings: Settings, caller: Caller, guard: OneTransferAtATime) -> None:
        self._settings = settings
        self._destinations = {d.key: d for d in settings.destinations_for("warm")}
        self._cold = {d.key for d in settings.destinations_for("cold")}
        self._caller = caller
        self._guard = guard
        self._attempts = itertools.count(1)
        self._background: set[asyncio.Task[None]] = set()
        self._drain_registered = False
        transfer = function_tool(
            self._transfer,
            raw_schema={
                "name": TOOL_NAME,
                "description": (
                    "Connect the caller with a person and introduce them first (a warm "
                    "transfer): the caller waits on hold while you call the destination, you "
                    "tell the person who is calling and why, then you leave them talking. "
                    "Call it only after the caller has clearly confirmed that they want to be "
                    "connected to that destination. Destinations:\n"
                    + destination_menu(self._destinations)
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "destination": destination_parameter(
                            self._destinations,
                            "The key of the destination to connect the caller to.",
                        ),
                        "reason": {
                            "type": "string",
                            "description": (
                                "Why the caller is calling, in a few words, e.g. 'a double "
                                "charge on their last invoice'. It is spoken to the person "
                                "you call."
                            ),
                        },
                        "caller_name": {
                            "type": "string",
                            "description": "The caller's name, only if they told you.",
                        },
                    },
                    "required": ["destination", "reason"],
                    "additionalProperties": False,
                },
            },
        )
        super().__init__(id="warm_transfer", tools=[transfer])

    async def _transfer(self, raw_arguments: dict[str, Any], context: RunContext) -> str | None:
        destination = pick_destination(raw_arguments, self._destinations, "warm-transfer")
        reason = _clean(raw_arguments.get("reason"), _MAX_REASON).rstrip(".")
        if not reason:
            raise ToolError("Nothing was done: give a short reason why the caller is calling.")
        name = _clean(raw_arguments.get("caller_name"), _MAX_NAME)
        with self._guard.hold(f"warm transfer to {destination.key}"):
            return await self._run(destination, reason, name, context)

    async def _run(
        self, destination: Destination, reason: str, name: str, context: RunContext
    ) -> str | None:
        job = get_job_context(required=False)
        if job is None or not self._caller.is_phone:
            request = self._request(job.room.name if job else "", destination, "-", "")
            logger.info(
                "not a phone call (console or web caller): would have sent %s",
                _describe(request, destination),
            )
            return NOT_A_PHONE_CALL

        session = context.session
        room = job.room
        presence = _Presence(room, self._caller.identity)
        hold: HoldMusic | None = None
        handed_off = False
        # Deaf from here on: the notice cannot be interrupted anyway, and a "thanks" said
        # over it must not start an LLM turn that would talk over the hold music.
        _stop_listening(session)
        try:
            hold_words = prompts.warm_words("hold", self._settings, destination)
            if not await say_in_full(session, hold_words, room=room, caller=presence.caller):
                logger.info("caller hung up during the hold notice; nobody was dialed")
                return None
            hold = hold_music_for(room, self._settings)
            await _start_hold(hold)
            supervisor = await self._reach(job, destination, presence)
            await _stop_hold(hold)
            await self._introduce(session, presence, destination, reason, name)
            self._step_out(job, session, presence, destination, supervisor)
            handed_off = True
            return None
        except _CallerLeft:
            leg = presence.supervisor
            logger.info(
                "caller hung up during the warm transfer to %s; ending %s's leg so no phone "
                "is left ringing and nobody is left on a dead line",
                destination.key,
                leg or "the supervisor",
            )
            if leg:
                await self._end_caller_gone(job, leg)
            return None
        except _SupervisorLeft:
            await _return_to_agent(hold, session)
            logger.warning(
                "warm transfer to %s: %s hung up before the handoff; the caller is back with "
                "the agent",
                destination.key,
                presence.supervisor,
            )
            session.say(prompts.warm_words("supervisor_left", self._settings, destination))
            return self._tell_llm(destination, "the person hung up before you could hand over")
        except _NotReached as not_reached:
            await _return_to_agent(hold, session)
            return self._failed(destination, not_reached.failure, context)
        except asyncio.CancelledError:
            if presence.supervisor:  # the session is closing: leave no phone ringing
                self._spawn(job, self._remove(job, presence.supervisor))
            raise
        finally:
            if not handed_off:
                presence.close()
                await _return_to_agent(hold, session)

    # ------------------------------------------------------------------ dialing

    def _caller_ids(self) -> list[tuple[str, str]]:
        """Caller IDs to try, in order, each with why: the caller's own number (the person
        answering sees who calls), else or after a refusal the configured fallback."""
        own = self._caller.phone_number
        fallback = self._settings.transfer.fallback_caller_id
        if own:
            tries = [(own, "the caller's number")]
            if fallback and fallback != own:
                tries.append((fallback, "the fallback caller ID"))
            return tries
        if fallback:
            return [(fallback, "the fallback caller ID: the caller's number is hidden")]
        return [("", "the trunk's own number: the caller's number is hidden")]

    def _request(
        self, room_name: str, destination: Destination, identity: str, number: str
    ) -> api.CreateSIPParticipantRequest:
        return api.CreateSIPParticipantRequest(
            sip_trunk_id=self._settings.transfer.outbound_trunk_id or "",
            sip_call_to=destination.to,
            sip_number=number,
            room_name=room_name,
            participant_identity=identity,
            participant_name=destination.name,
            wait_until_answered=True,
            ringing_timeout=Duration(seconds=round(destination.ringing_timeout)),
            # the caller hears hold music while it rings, not a dial tone
            play_dialtone=False,
            krisp_enabled=self._settings.transfer.krisp,
            dtmf=destination.extension or "",
            headers=dict(destination.headers),
        )

    async def _reach(self, job: JobContext, destination: Destination, presence: _Presence) -> str:
        """Dial until someone answers; returns the identity of their participant."""
        tries = self._caller_ids()
        for attempt, (number, why) in enumerate(tries, start=1):
            identity = f"supervisor-{destination.key}-{next(self._attempts)}"
            request = self._request(job.room.name, destination, identity, number)
            presence.expect(identity)
            logger.info(
                "warm transfer to %s: sending %s, presenting %s",
                destination.key,
                _describe(request, destination),
                why,
            )
            try:
                answered = await _until(
                    job.api.sip.create_sip_participant(request), presence.caller_left
                )
            except Exception as error:
                rejected_own = (
                    isinstance(error, api.SipCallError)
                    and error.sip_status_code == 403
                    and attempt < len(tries)
                )
                if rejected_own:
                    logger.warning(
                        "warm transfer to %s: the provider refused the caller's number %s as "
                        "caller ID (%s); retrying once from the fallback caller ID %s. To show "
                        "callers' own numbers, allow caller-ID passthrough on outbound trunk %s",
                        destination.key,
                        mask_number(number),
                        classify(error).detail,
                        mask_number(tries[attempt][0]),
                        request.sip_trunk_id,
                    )
                    continue
                failure = _warm_failure(error)
                if not failure.outcome_known:
                    # it may still be ringing: end it rather than leave a phone ringing
                    await asyncio.shield(self._spawn(job, self._remove(job, identity)))
                raise _NotReached(failure) from error
            if not answered:
                raise _CallerLeft
            try:
                await self._joined(presence, identity)
            except _NotReached:
                await asyncio.shield(self._spawn(job, self._remove(job, identity)))
                raise
            logger.info("warm transfer to %s: %s answered", destination.key, identity)
            return identity
        raise AssertionError("unreachable: the last try either returns or raises")

    async def _joined(self, presence: _Presence, identity: str) -> None:
        """LiveKit reports an answer when the call connects; the participant is normally in
        the room already. Returns once it is; raises if either side left meanwhile."""
        if not presence.supervisor_joined.is_set() and not presence.supervisor_left.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(JOIN_TIMEOUT_S):
                    await _until(
                        presence.supervisor_joined.wait(),
                        presence.supervisor_left,
                        presence.caller_left,
                    )
        if presence.caller_left.is_set():
            raise _CallerLeft
        if presence.supervisor_left.is_set():
            raise _SupervisorLeft
        if not presence.supervisor_joined.is_set():
            raise _NotReached(
                Failure(
                    Outcome.FAILED,
                    f"the call was answered but {identity} never joined the room",
                    f"check the LiveKit SIP service logs for {identity}",
                )
            )

    # ------------------------------------------------------------------ introducing

    async def _introduce(
        self,
        session: AgentSession,
        presence: _Presence,
        destination: Destination,
        reason: str,
        name: str,
    ) -> None:
        """Who, why and a summary, to both of them; the summary is written while the first
        sentence plays, so the person who answered does not wait in silence."""
        words = {"caller": name or self._caller_spoken(), "reason": reason}
        summary = asyncio.create_task(self._summary(session, destination, words))
        try:
            opening = prompts.warm_words("introduction", self._settings, destination, **words)
            await self._say_to_both(session, opening, presence)
            if not await _until(asyncio.shield(summary), presence.departure):
                self._raise_departure(presence)
            handoff = prompts.warm_words("handoff", self._settings, destination, **words)
            await self._say_to_both(session, f"{summary.result()} {handoff}", presence)
        finally:
            summary.cancel()

    async def _say_to_both(self, session: AgentSession, text: str, presence: _Presence) -> None:
        """Speak uninterruptibly until played out; stop at once if either side hangs up."""
        handle = session.say(text, allow_interruptions=False)
        if not await _until(handle.wait_for_playout(), presence.departure):
            handle.interrupt(force=True)
            self._raise_departure(presence)

    @staticmethod
    def _raise_departure(presence: _Presence) -> None:
        if presence.caller_left.is_set():
            raise _CallerLeft
        raise _SupervisorLeft

    def _caller_spoken(self) -> str:
        """The caller as the introduction names them when they gave no name: the last
        digits of their number, spoken digit by digit, never the whole number."""
        digits = [c for c in self._caller.phone_number or "" if c.isdigit()]
        if len(digits) < 4:
            return "a caller whose number is hidden"
        return "a caller from a number ending in " + " ".join(digits[-4:])

    async def _summary(
        self, session: AgentSession, destination: Destination, words: dict[str, str]
    ) -> str:
        """A spoken summary of the conversation so far, from the session's own LLM, guided
        by prompts/warm_transfer.md; a plain sentence when that is not possible."""
        fallback = prompts.warm_words("summary_fallback", self._settings, destination, **words)
        model = session.llm
        transcript = _transcript(session.history)
        if not isinstance(model, llm.LLM) or not transcript:
            return fallback
        chat_ctx = llm.ChatContext.empty()
        chat_ctx.add_message(
            role="system",
            content=prompts.warm_words("summary", self._settings, destination, **words),
        )
        chat_ctx.add_message(role="user", content=transcript)
        try:
            async with asyncio.timeout(SUMMARY_TIMEOUT_S):
                stream = model.chat(
                    chat_ctx=chat_ctx,
                    conn_options=APIConnectOptions(max_retry=0, timeout=SUMMARY_TIMEOUT_S),
                )
                text = (await stream.collect()).text.strip()
        except Exception as error:
            logger.warning("could not summarize the call for the introduction: %r", error)
            return fallback
        return text or fallback

    # ------------------------------------------------------------------ stepping out

    def _step_out(
        self,
        job: JobContext,
        session: AgentSession,
        presence: _Presence,
        destination: Destination,
        supervisor: str,
    ) -> None:
        """The agent goes quiet for good but stays in the room: its session is not closed,
        because agent.py ends the job when the session closes, and this job must keep
        watching the call. Its input stays detached (from the hold), its output is
        detached now, and the LLM gets no more turns (the tool returns nothing)."""
        session.output.set_audio_enabled(False)
        logger.info(
            "warm transfer to %s done: %s and %s are talking; the call ends for both when "
            "either hangs up",
            destination.key,
            self._caller.identity,
            supervisor,
        )
        room_name = job.room.name

        def on_departure(identity: str) -> None:
            self._spawn(job, self._end_call(job, room_name, identity))

        presence.hand_off(on_departure)

    async def _end_call(self, job: JobContext, room_name: str, who_left: str) -> None:
        logger.info(
            "warm-transferred call: %s hung up; deleting room %s so the other side is not "
            "left on a dead line",
            who_left,
            room_name,
        )
        try:
            await job.api.room.delete_room(api.DeleteRoomRequest(room=room_name))
        except Exception as error:
            logger.error(
                "could not delete room %s after %s hung up (%s): the other side stays on the "
                "line until they hang up. The API key needs the roomCreate grant",
                room_name,
                who_left,
                classify(error).detail,
            )
        job.shutdown(reason=f"warm-transferred call ended: {who_left} hung up")

    async def _end_caller_gone(self, job: JobContext, supervisor: str) -> None:
        """The caller is gone, so the call is over: end the supervisor's leg directly, and
        delete the room too, which also ends a leg that was not yet a participant."""
        room_name = job.room.name

        async def end_legs() -> None:
            await asyncio.gather(
                self._remove(job, supervisor),
                self._delete(job, room_name),
            )

        await asyncio.shield(self._spawn(job, end_legs()))

    async def _remove(self, job: JobContext, identity: str) -> None:
        try:
            await job.api.room.remove_participant(
                api.RoomParticipantIdentity(room=job.room.name, identity=identity)
            )
        except api.TwirpError as error:
            if error.code != "not_found":  # already gone: that is what we wanted
                logger.error("could not end %s's leg: %s", identity, classify(error).detail)
        except Exception as error:
            logger.error("could not end %s's leg: %s", identity, classify(error).detail)

    async def _delete(self, job: JobContext, room_name: str) -> None:
        try:
            await job.api.room.delete_room(api.DeleteRoomRequest(room=room_name))
        except Exception as error:
            logger.error("could not delete room %s: %s", room_name, classify(error).detail)

    def _spawn(self, job: JobContext, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Requests that must reach the server even if the tool is cancelled or the job is
        shutting down: the job waits for them before it exits."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        if not self._drain_registered:
            self._drain_registered = True
            job.add_shutdown_callback(self._drain)
        return task

    async def _drain(self) -> None:
        if self._background:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await asyncio.gather(*self._background, return_exceptions=True)

    # ------------------------------------------------------------------ failures

    def _failed(self, destination: Destination, failure: Failure, context: RunContext) -> str:
        report_failure(logger, "warm transfer", destination, failure, context.session)
        return self._tell_llm(destination, f"{failure.outcome.value} ({failure.detail})")

    def _tell_llm(self, destination: Destination, what: str) -> str:
        others = [k for k in self._destinations if k != destination.key]
        offers = []
        if others:
            offers.append(f"a warm transfer to another destination ({', '.join(others)})")
        if destination.key in self._cold:
            offers.append(f"a direct transfer to {destination.key} with transfer_call")
        elif self._cold:
            offers.append(f"a direct transfer with transfer_call ({', '.join(self._cold)})")
        offers.append("calling back later")
        return (
            f"The warm transfer to {destination.key} did not happen: {what}. The caller is "
            f"back on the line with you, off hold, and has been told. Offer them "
            f"{', or '.join(offers)}."
        )


# --------------------------------------------------------------------------- helpers


def _clean(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit].strip() if isinstance(value, str) else ""


def _describe(request: api.CreateSIPParticipantRequest, destination: Destination) -> str:
    dtmf = f"{len(request.dtmf)} DTMF digits" if request.dtmf else "no DTMF"
    return (
        f"CreateSIPParticipant(trunk={request.sip_trunk_id!r}, to={masked_address(destination)!r}, "
        f"caller_id={mask_number(request.sip_number) if request.sip_number else 'trunk default'}"
        f", room={request.room_name!r}, identity={request.participant_identity!r}, "
        f"ringing_timeout={request.ringing_timeout.seconds}s, {dtmf})"
    )


def _warm_failure(error: BaseException) -> Failure:
    """classify() speaks of REFER, which a warm transfer does not use: the same outcomes,
    with advice about dialing out."""
    failure = classify(error)
    if isinstance(error, api.SipCallError) and error.sip_status_code == 403:
        return Failure(
            Outcome.DECLINED,
            failure.detail,
            "the provider refused the call: check that the outbound trunk may present the "
            "fallback caller ID (transfer.fallback_caller_id) and that its credentials are right",
        )
    if failure.outcome is Outcome.REFUSED:
        return Failure(
            Outcome.FAILED,
            failure.detail,
            "the provider refused to place the call: check the outbound trunk's address, "
            "transport and credentials",
        )
    if not failure.outcome_known:
        return Failure(
            Outcome.FAILED,
            failure.detail,
            "the outcome is unknown, so the dialed leg was ended in case it was still "
            "ringing; check the LiveKit server and SIP service logs",
            outcome_known=False,
        )
    return failure


def _transcript(history: llm.ChatContext) -> str:
    lines = []
    for message in history.messages():
        if message.role in ("user", "assistant") and message.text_content:
            who = "Caller" if message.role == "user" else "You"
            lines.append(f"{who}: {message.text_content}")
    return "\n".join(lines)


def _stop_listening(session: AgentSession) -> None:
    """While on hold the agent must not hear the caller: a detached audio input forwards
    no frames, so no speech-to-text and no LLM turns; a half-heard sentence is dropped."""
    if session.input.audio is not None:
        session.input.set_audio_enabled(False)
    with contextlib.suppress(RuntimeError):
        session.clear_user_turn()


async def _return_to_agent(hold: HoldMusic | None, session: AgentSession) -> None:
    """Off hold and listening again; safe to call more than once."""
    if hold is not None:
        await _stop_hold(hold)
    if session.input.audio is not None and not session.input.audio_enabled:
        session.input.set_audio_enabled(True)


async def _start_hold(hold: HoldMusic) -> None:
    try:
        await hold.start_hold()
    except Exception:  # silence on hold beats no transfer
        logger.exception(
            "could not start hold music (transfer.hold_music in the configuration); the "
            "caller waits in silence"
        )


async def _stop_hold(hold: HoldMusic) -> None:
    try:
        await hold.stop_hold()
    except Exception:
        logger.exception("could not stop hold music")
