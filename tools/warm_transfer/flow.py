"""A warm transfer, top to bottom. The caller waits on hold in their own room while the
person is dialed into it, from the caller's own number (works on self-hosted LiveKit
too: no MoveParticipant), then the agent steps out and leaves the two talking.

  hold      the notice, played in full (the caller hangs up: nobody is dialed); then
            music and a short reassurance every ~20 s (hold.py)
  dial      one CreateSIPParticipant per attempt, waiting for the answer (dial.py);
            busy, no answer, declined, failed: back to the agent
  -- warm_mode = "consult" (the default); the caller hears none of it (hearing.py) --
  screen    the framework's answering-machine detection on a second session linked to
            the answered leg (screen.py): voicemail, menus, silence end the attempt
  consult   the person hears who is calling and why, may ask, and takes the call or
            not, by voice or keypad (consult.py)
  connect   the two hear each other, one line to both, the agent steps out (connect.py)
  -- warm_mode = "introduce" --
  introduce the moment the line answers, the agent introduces the caller to whoever
            answered, to both, and steps out (introduce.py)
  teardown  any other way out: the leg ended, the caller back with the agent, off hold
            (teardown.py); tool.py tells the caller and the LLM what happened

The caller's whole wait, from the end of the notice to the handoff, is bounded by the
destination's transfer_timeout. A hang-up by either side at any moment is seen
(presence.py) and ends the wait it interrupts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from livekit.agents import AgentSession

from caller import Caller
from config import Destination, Settings
from lifecycle import CallLifecycle
from prompts import Words
from records import TransferMode
from tools.outcomes import Failure, Outcome
from tools.playout import stop_listening
from tools.warm_transfer import screen as screening
from tools.warm_transfer.briefing import about_caller, transcript
from tools.warm_transfer.connect import connect, step_out
from tools.warm_transfer.consult import consult
from tools.warm_transfer.consult_session import ConsultSession, Ears, ears_for
from tools.warm_transfer.dial import Dialer
from tools.warm_transfer.endings import Ending, NotTaken
from tools.warm_transfer.hearing import Hearing
from tools.warm_transfer.hold import OnHold
from tools.warm_transfer.introduce import SessionClosing, introduce
from tools.warm_transfer.presence import NotReached, Presence
from tools.warm_transfer.teardown import goodbye_to_consulted, wind_down

logger = logging.getLogger("phone-assistant.warm-transfer")


class WarmTransfer:
    """One warm transfer: ``run`` it inside the lifecycle's ``transferring``."""

    def __init__(
        self,
        *,
        settings: Settings,
        destination: Destination,
        caller: Caller,
        lifecycle: CallLifecycle,
        session: AgentSession,
        words: Words,
        answering: Words,
        reason: str,
        name: str,
        dialer: Dialer,
    ) -> None:
        """``words``: the caller's language; ``answering``: the person's."""
        self.destination = destination
        self._caller = caller
        self._lifecycle = lifecycle
        self._session = session
        self._words = words
        self._answering = answering
        self._dialer = dialer
        self._about = about_caller(caller, name, reason, answering, destination)
        self._reason, self._name = reason, name
        self._room = lifecycle.room
        self.presence = Presence(self._room, lifecycle.caller_left)
        self.hold = OnHold(session, words, destination, self._room, settings)
        self.started = lifecycle.journal.clock()
        self._hold_began = 0.0  # the event loop's clock when the notice had played
        self.answered: str | None = None  # the leg that answered, until it is connected
        self._hearing: Hearing | None = None
        self._consult: ConsultSession | None = None
        self._ears: Ears | None = None
        if destination.warm_mode == "consult":
            self._ears = ears_for(session, settings, destination, words.code)
            if self._ears is None:
                logger.error(
                    "warm transfer to %s: the call has no speech recognition, LLM or voice "
                    "to screen and consult with; introducing the caller directly instead",
                    destination.key,
                )

    async def run(self) -> None:
        """Returns when the caller was handed over, or when they hung up during the notice
        (nobody was dialed). Otherwise raises CallerLeft, SupervisorLeft, NotReached or
        NotTaken, once the caller is back with the agent, off hold."""
        stop_listening(self._session)  # deaf from here on: no turn talks over the hold
        handed_over = False
        try:
            if not await self.hold.notice(self.presence.caller_left):
                logger.info("the hold notice did not play to the end; nobody was dialed")
                return
            self.started = self._lifecycle.journal.clock()
            self._hold_began = asyncio.get_running_loop().time()
            if self._ears is not None:
                await self._consult_first(self._ears)
            else:
                await self._introduce()
            handed_over = True
        finally:
            if not handed_over:
                await wind_down(
                    lifecycle=self._lifecycle,
                    session=self._session,
                    hold=self.hold,
                    leg=self._leg_to_end(),
                    consult=self._consult,
                    hearing=self._hearing,
                )
            self.presence.close()
            await self.hold.end()

    # ------------------------------------------------------------------ the two modes

    async def _consult_first(self, ears: Ears) -> None:
        server = self._lifecycle.server
        assert server is not None, "a warm transfer needs a LiveKit server"
        hearing = self._hearing = Hearing(self._room, server, self._caller.identity)
        hearing.hold()  # the caller hears the agent and the music; nobody else hears them
        self.hold.begin()
        try:
            async with self._time_limit():
                self.answered = await self._dialer.reach(
                    self.destination, self.presence, lambda leg: self._prepare(leg, ears)
                )
                session = self._consulting()
                if await screening.screen(session, self.presence) is screening.Verdict.ASK_FIRST:
                    await screening.ask_once(
                        session, self._answering, self.destination, self.presence
                    )
                await hearing.open_to_briefing()
                await consult(
                    session,
                    self.presence,
                    self._answering,
                    self.destination,
                    self._about,
                    self._session,
                )
        except NotTaken as stop:
            if stop.ending is Ending.TRANSFER_TIMEOUT:
                await goodbye_to_consulted(
                    self._consult, self._answering, self.destination, self.presence, self._about
                )
            raise
        await connect(
            self._session,
            self._consulting(),
            hearing,
            self.hold,
            self.presence,
            self._words,
            self.destination,
        )
        hearing.release()  # the two talk: nothing is private any more
        self._handed_over()

    async def _introduce(self) -> None:
        self.hold.begin()
        async with self._time_limit():
            self.answered = await self._dialer.reach(self.destination, self.presence)
        await self.hold.end()
        try:
            await introduce(
                self._session,
                self.presence,
                self._answering,
                self.destination,
                caller=self._caller,
                reason=self._reason,
                name=self._name,
            )
        except SessionClosing:
            logger.warning(
                "warm transfer to %s: the agent's session is closing and cannot speak; "
                "connecting the caller with %s without an introduction",
                self.destination.key,
                self.answered,
            )
        self._handed_over()

    # ------------------------------------------------------------------ helpers

    async def _prepare(self, leg: str, ears: Ears) -> None:
        """Before each dial attempt: the leg will hear nothing and be heard by nobody,
        and a consult session waits for it, listening from its first word."""
        assert self._hearing is not None
        self._hearing.expect(leg)
        if self._consult is not None:  # an earlier attempt's
            await self._consult.close()
            self._consult = None
        try:
            self._consult = await ConsultSession.start(
                self._session,
                self._room,
                leg,
                ears=ears,
                instructions=self._answering.warm("consult", self.destination, **self._about),
                conversation=transcript(self._session.history),
                detection=screening.DETECTION,
            )
        except Exception as error:  # nothing was dialed yet
            logger.exception("warm transfer to %s: the consult could not start", leg)
            raise NotReached(
                Failure(
                    Outcome.FAILED,
                    f"the consult session could not start: {type(error).__name__}",
                    "see the error logged with it",
                )
            ) from error

    def _consulting(self) -> ConsultSession:
        assert self._consult is not None, "prepared before the dial"
        return self._consult

    def _handed_over(self) -> None:
        assert self.answered is not None
        journal = self._lifecycle.journal
        journal.attempt(self.destination.key, TransferMode.WARM, self.started)
        step_out(self._session, self._lifecycle, self.answered, self.destination)

    def _leg_to_end(self) -> str | None:
        """The answered leg, unless it already left (a leg that did not answer was dealt
        with by the dialer)."""
        if self.answered is None or self.presence.supervisor_left.is_set():
            return None
        return self.answered

    @contextlib.asynccontextmanager
    async def _time_limit(self) -> AsyncIterator[None]:
        """The caller's whole wait, counted from the end of the notice."""
        limit = self.destination.transfer_timeout
        elapsed = asyncio.get_running_loop().time() - self._hold_began
        try:
            async with asyncio.timeout(max(limit - elapsed, 0.0)) as timer:
                yield
        except TimeoutError as error:
            if not timer.expired():
                raise
            raise NotTaken(
                Ending.TRANSFER_TIMEOUT,
                f"no handoff within transfer_timeout ({limit:g} s)",
            ) from error
