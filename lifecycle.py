"""How a call ends. The job's life is the call's life, not the agent session's.

A call ends in one of three ways, and only these:

* the caller was **handed over**: by SIP REFER (cold transfer: the caller leaves LiveKit),
  or to a person dialed into the room (warm transfer: the two talk, the agent has stepped
  out and its session is closed);
* the call was **ended on purpose**: the agent said goodbye (end_call), or the caller hung up;
* the agent **could not go on** (a provider failed, its session closed under it): the
  caller hears an apology made before the call and is sent to the fallback destination,
  or the call is ended for them (rescue.py).

The session is one phase of the call, so its close means what the phase says: after a cold
transfer or end_call the call is over; after a warm handoff the call goes on without it and
this object watches the room until one side hangs up; with the caller still waiting and
nothing decided, the agent could not go on. Whatever way the job ends, every leg it dialed
is ended and the room is deleted (bounded in time), so nobody is left on a line with no
agent, and no phone the job dialed keeps ringing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator
from enum import StrEnum
from typing import Any, Protocol

from livekit import rtc
from livekit.agents import AgentSession
from livekit.agents.llm import ToolError
from livekit.agents.voice.events import CloseEvent, CloseReason, ErrorEvent
from livekit.agents.voice.room_io.types import DEFAULT_CLOSE_ON_DISCONNECT_REASONS

from journal import CallJournal
from outage import SpeechToTextWatch
from records import Outcome
from server_api import CallServer

logger = logging.getLogger("phone-assistant.lifecycle")

# The job waits this long on its way out for what is still running (a rescue, a leg
# being ended) before it tears the call down regardless.
DRAIN_TIMEOUT_S = 15.0


class Phase(StrEnum):
    TALKING = "talking with the agent"
    TRANSFERRING = "being transferred"
    HANDED_OVER = "handed over by SIP REFER"
    CONNECTED = "connected with the person dialed"
    ENDING = "being ended by the agent"
    RESCUING = "being rescued: the agent could not go on"
    OVER = "over"


class Rescue(Protocol):
    """What happens when the agent cannot go on (rescue.py): returns how the call ended."""

    async def run(self, why: str, caller_left: asyncio.Event) -> str: ...


class CallLifecycle:
    """One per call, created when the caller is found, before the session starts."""

    def __init__(
        self,
        room: rtc.Room,
        caller: str,
        *,
        server: CallServer | None,
        end_job: Callable[[str], None],
        rescue: Rescue | None = None,
        journal: CallJournal | None = None,
    ) -> None:
        """``caller`` is the caller's participant identity; ``server`` is None when the
        call has no LiveKit server behind it (console mode); ``end_job`` ends the job
        (``JobContext.shutdown``); ``journal`` notes how the call ended, for its record."""
        self._room = room
        self.journal = journal or CallJournal(call_id=room.name, caller_number=None)
        self._caller = caller
        self._server = server
        self._end_job = end_job
        self.rescue = rescue  # set with the session (agent.prepare_call)
        self._phase = Phase.TALKING
        self._transfer: str | None = None
        self._supervisor: str | None = None
        self._session: AgentSession | None = None
        self._dialed: set[str] = set()  # legs this job dialed that may still be up
        self._forbidden: set[str] = set()  # legs ended on purpose: removed again if seen
        self._tasks: set[asyncio.Task[Any]] = set()
        self._teardown_task: asyncio.Task[None] | None = None
        self._finishing = False
        self._outage: str | None = None  # why the lifecycle closed the session itself
        self.caller_left = asyncio.Event()
        room.on("participant_connected", self._on_participant_connected)
        room.on("participant_disconnected", self._on_participant_disconnected)
        room.on("disconnected", self._on_room_disconnected)
        if caller not in room.remote_participants:
            self.caller_left.set()

    @property
    def phase(self) -> Phase:
        return self._phase

    @property
    def server(self) -> CallServer | None:
        return self._server

    @property
    def room(self) -> rtc.Room:
        return self._room

    def watch(self, session: AgentSession) -> None:
        """Follow the agent's session: its close means what the call's phase says."""
        self._session = session
        session.on("close", self._on_session_close)
        session.on("error", self._on_session_error)
        SpeechToTextWatch(self._stt_outage).attach(session)

    # ------------------------------------------------------------------ what tools ask

    @contextlib.contextmanager
    def transferring(self, what: str) -> Iterator[None]:
        """A transfer runs inside this: one at a time, never once the call is handed over
        or ending. Raises ToolError (the LLM is told why) when it may not start."""
        if self._phase is not Phase.TALKING:
            raise ToolError(self._refusal("start a transfer"))
        self._phase, self._transfer = Phase.TRANSFERRING, what
        try:
            yield
        finally:
            if self._phase is Phase.TRANSFERRING:
                self._phase = Phase.TALKING
            self._transfer = None

    def end_requested(self) -> None:
        """The agent wants to end the call (end_call): allowed only while it is talking
        with the caller. Raises ToolError otherwise, so a goodbye in the same turn as a
        transfer cannot hang up on the caller and the person who answered."""
        if self._phase is not Phase.TALKING:
            raise ToolError(self._refusal("end the call"))
        self._phase = Phase.ENDING
        self.journal.ended(Outcome.HANDLED_BY_AGENT, reason="the agent ended the call")
        logger.info("the agent is ending the call")

    def handed_over(self, where: str, destination: str | None = None) -> None:
        """A REFER was accepted: the caller's call continues elsewhere."""
        self._phase = Phase.HANDED_OVER
        self.journal.ended(Outcome.COLD_TRANSFER, destination)
        logger.info("caller handed over by SIP REFER to %s", where)

    def connected(self, supervisor: str, destination: str | None = None) -> None:
        """Warm handoff done: the caller and ``supervisor`` talk, the agent steps out. From
        now on the first of the two to hang up ends the call for the other."""
        self._phase, self._supervisor = Phase.CONNECTED, supervisor
        self.journal.ended(Outcome.WARM_TRANSFER, destination)
        logger.info(
            "caller connected with %s; the call ends for both when either hangs up", supervisor
        )
        if self.caller_left.is_set():
            self._finish("the caller hung up at the handoff")
        elif supervisor not in self._room.remote_participants:
            self._finish(f"{supervisor} hung up at the handoff")

    def dialing(self, identity: str) -> None:
        """A leg is being dialed into the room: it is ended on every way out of the job."""
        self._dialed.add(identity)

    def leg_gone(self, identity: str) -> None:
        """The server said that leg failed (busy, declined...): nothing left to end."""
        self._dialed.discard(identity)

    async def end_leg(self, identity: str) -> None:
        """End a leg that may still ring or may have been answered (an unknown outcome, an
        abandoned dial). If it shows up in the room later, it is removed again."""
        self._forbidden.add(identity)
        if self._server is not None:
            await asyncio.shield(self._spawn(self._server.remove(identity)))

    def spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``work`` even if the tool that started it is cancelled; the job waits for it
        (bounded) before it tears the call down."""
        return self._spawn(work)

    # ------------------------------------------------------------------ the job's end

    async def on_job_shutdown(self) -> None:
        """The job's shutdown callback: whoever ended the job, let what runs finish
        (bounded), then end every dialed leg and delete the room."""
        pending = [t for t in self._tasks if t is not asyncio.current_task()]
        if pending:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DRAIN_TIMEOUT_S):
                    await asyncio.gather(*pending, return_exceptions=True)
        await self.teardown()
        if self._server is not None:
            await self._server.aclose()

    async def teardown(self) -> None:
        """End every leg the job dialed and delete the room; once, however often asked."""
        if self._teardown_task is None:
            self._teardown_task = asyncio.ensure_future(self._teardown())
        await asyncio.shield(self._teardown_task)

    async def _teardown(self) -> None:
        self._phase = Phase.OVER
        if self._server is None:
            return
        legs = sorted(self._dialed)
        self._dialed.clear()
        await asyncio.gather(
            *(self._server.remove(leg) for leg in legs), self._server.delete_room()
        )

    def _finish(self, reason: str) -> None:
        """The call is over: tear it down, then end the job."""
        if self._finishing:
            return
        self._finishing = True
        self._phase = Phase.OVER

        async def finish() -> None:
            logger.info("call over (%s): ending every leg and deleting the room", reason)
            await self.teardown()
            self._end_job(reason)

        self._spawn(finish())

    # ------------------------------------------------------------------ events

    def _on_session_close(self, ev: CloseEvent) -> None:
        why = ev.reason.value + (f": {ev.error.error}" if ev.error is not None else "")
        if self._outage is not None:
            why = self._outage
        phase = self._phase
        if phase is Phase.CONNECTED:
            logger.info("agent session closed after the handoff (%s); watching the call", why)
        elif phase in (Phase.OVER, Phase.RESCUING):
            pass
        elif (
            phase in (Phase.HANDED_OVER, Phase.ENDING)
            or self.caller_left.is_set()
            or ev.reason in (CloseReason.PARTICIPANT_DISCONNECTED, CloseReason.JOB_SHUTDOWN)
        ):
            self._finish(f"session closed: {why}")
        else:
            self.cannot_go_on(f"the agent session closed ({why})")

    def cannot_go_on(self, why: str) -> None:
        """The caller is still there and the agent cannot talk with them any more."""
        if self._phase in (Phase.OVER, Phase.RESCUING):
            return
        if self.caller_left.is_set():
            self.journal.ended(Outcome.CALLER_HUNG_UP, reason=why)
        else:
            self.journal.ended(Outcome.FAILED, reason=why)
        if self.rescue is None or self.caller_left.is_set():
            self._finish(why)
            return
        self._phase = Phase.RESCUING
        logger.error("%s while the caller was waiting", why)
        rescue = self.rescue

        async def rescue_then_finish() -> None:
            try:
                outcome = await rescue.run(why, self.caller_left)
            except Exception:
                logger.exception("the rescue failed; ending the call")
                outcome = "the rescue failed"
            self._finish(outcome)

        self._spawn(rescue_then_finish())

    def _stt_outage(self, why: str) -> None:
        """The agent is deaf: close its session as an unrecoverable error would."""
        logger.error("%s", why)
        if self._phase is Phase.TALKING and self._session is not None:
            self._outage = why
            self._session.shutdown(drain=False)

    def _on_session_error(self, ev: ErrorEvent) -> None:
        error = ev.error
        if getattr(error, "recoverable", True):
            return
        kind = getattr(error, "type", "model_error").removesuffix("_error").upper()
        names = (getattr(ev.source, "provider", ""), getattr(ev.source, "model", ""))
        model = " ".join(str(name) for name in names if name)
        detail = _describe(getattr(error, "error", error))
        logger.error("%s (%s) failed and will not recover: %s", kind, model, detail)
        session = self._session
        if (
            kind == "STT"
            and self._phase is Phase.TALKING
            and session is not None
            and session.current_speech is not None
        ):
            # The framework closes the session right after this, cutting off what the agent
            # is saying: the greeting, when Deepgram is down from the start. Its voice still
            # works, so close it first, letting that speech finish before the rescue.
            self._outage = f"{kind} ({model}) failed: {detail}"
            session.shutdown(drain=True)

    def _on_participant_disconnected(self, participant: rtc.RemoteParticipant) -> None:
        identity = participant.identity
        self._dialed.discard(identity)
        if identity == self._caller:
            self.caller_left.set()
            if self._phase in (Phase.TALKING, Phase.TRANSFERRING):
                during = " during a transfer" if self._phase is Phase.TRANSFERRING else ""
                self.journal.ended(Outcome.CALLER_HUNG_UP, reason=f"the caller hung up{during}")
            if self._phase is Phase.CONNECTED:
                self._finish("the caller hung up")
            elif self._phase in (Phase.TALKING, Phase.TRANSFERRING, Phase.ENDING):
                self._close_session_for_departure(participant)
        elif identity == self._supervisor and self._phase is Phase.CONNECTED:
            self._finish(f"{identity} hung up")

    def _close_session_for_departure(self, participant: rtc.RemoteParticipant) -> None:
        """RoomIO closes the session when the caller hangs up normally; for any other way
        of leaving (a dropped trunk, a timeout) nobody would: close it here."""
        session = self._session
        if session is None:
            self._finish("the caller left before the agent answered")
        elif participant.disconnect_reason not in DEFAULT_CLOSE_ON_DISCONNECT_REASONS:
            session.shutdown(drain=False)

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if participant.identity in self._forbidden and self._server is not None:
            logger.warning(
                "%s joined after its leg was ended (the dial's outcome was unknown); removing it",
                participant.identity,
            )
            self._spawn(self._server.remove(participant.identity))

    def _on_room_disconnected(self, *_: object) -> None:
        if self._phase is not Phase.OVER:
            self._finish("the agent was disconnected from the room")

    # ------------------------------------------------------------------ helpers

    def _refusal(self, action: str) -> str:
        match self._phase:
            case Phase.TRANSFERRING:
                return (
                    f"Refused: a transfer is already in progress ({self._transfer}). Wait "
                    f"for its outcome; do not {action} meanwhile."
                )
            case Phase.HANDED_OVER | Phase.CONNECTED:
                return (
                    f"Refused: the caller has already been handed over ({self._phase}); "
                    f"there is nothing more to do and no need to {action}."
                )
            case Phase.ENDING:
                return f"Refused: the call is already ending; cannot {action}."
            case _:
                return f"Refused: the call is {self._phase}; cannot {action}."

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def close(self) -> None:
        """Stop listening to the room (tests, and the job's very end)."""
        self._room.off("participant_connected", self._on_participant_connected)
        self._room.off("participant_disconnected", self._on_participant_disconnected)
        self._room.off("disconnected", self._on_room_disconnected)


def _describe(error: object) -> str:
    """A provider's error for the log: its type and message (not the retry flags the
    plugins' own text carries, which read as if it might still recover)."""
    message = getattr(error, "message", None) or str(error)
    status = getattr(error, "status_code", None)
    code = f" {status}" if isinstance(status, int) and status > 0 else ""
    return f"{type(error).__name__}{code}: {message}"
