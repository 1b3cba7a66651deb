"""Warm transfer: the caller waits on hold while a person is dialed into the caller's own
room; the agent introduces the caller to them, then steps out and leaves them talking.

Dialing into the caller's own room (rather than a side room and MoveParticipant) works on
self-hosted LiveKit too, and presenting the caller's own number lets the person answering
see who is calling. The flow, and where each outcome lands:

  the LLM calls the tool (after the caller confirmed); the agent stops listening
  -> hold notice, played in full           caller hangs up: nobody is dialed
  -> hold music on (never delays the dial)
  -> dial, waiting for the answer (tools/dialing.py)
       SIP 403 with the caller's number      one retry from the fallback caller ID
       busy / no answer / declined / bad number / any error
                                             hold ends, listening resumes, the caller is
                                             told, the LLM offers alternatives
       unknown outcome (5xx, timeout...)     that leg is ended too, then as above
       caller hangs up while it rings        the leg is ended, the call is over
  -> answered: hold music off, the introduction (tools/introduction.py)
       supervisor hangs up                   back to the agent, as a failure
       caller hangs up                       the call is over for both
       the agent's session is closing        they are connected without it
  -> handoff: the lifecycle watches the two, the agent's session closes (no speech-to-
     text, no model); when either hangs up the room is deleted, ending it for both.
"""

from __future__ import annotations

import logging
from typing import Any

from livekit.agents import AgentSession, RunContext
from livekit.agents.llm import ToolError, Toolset, function_tool

from caller import Caller
from config import Destination, Settings
from lifecycle import CallLifecycle
from prompts import Words
from records import AttemptOutcome, TransferMode
from tools.destinations import (
    NOT_A_PHONE_CALL,
    destination_menu,
    destination_parameter,
    pick_destination,
    refused_when_closed,
    report_failure,
)
from tools.dialing import Dialer, describe
from tools.hold_music import Hold, hold_music_for
from tools.introduction import SessionClosing, introduce
from tools.ladder import FallbackLadder
from tools.outcomes import Failure
from tools.playout import resume_listening, say_if_open, say_in_full, stop_listening
from tools.presence import CallerLeft, NotReached, Presence, SupervisorLeft

logger = logging.getLogger("phone-assistant.warm-transfer")

TOOL_NAME = "warm_transfer"
_MAX_REASON = 200
_MAX_NAME = 60


class WarmTransferTool(Toolset):
    """The LLM picks a destination key from an enum built from configuration (warm
    destinations only) and says why the caller is calling; addresses stay here."""

    def __init__(
        self,
        settings: Settings,
        caller: Caller,
        lifecycle: CallLifecycle,
        words: Words,
        ladder: FallbackLadder | None = None,
    ) -> None:
        """``ladder``: what to offer next when a transfer fails (shared by the call's
        transfer tools); without one, the other destinations and modes."""
        self._settings = settings
        self._ladder = ladder
        self._words = words  # the caller's language
        self._destinations = {d.key: d for d in settings.destinations_for("warm")}
        self._cold = {d.key for d in settings.destinations_for("cold")}
        self._caller = caller
        self._lifecycle = lifecycle
        self._dialer = Dialer(settings, caller, lifecycle)
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
                    + destination_menu(self._destinations, words.code, lifecycle.journal.clock())
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
                                "you call: write it in their language (the destination's "
                                "language where the list gives one, else the language you "
                                "speak with the caller)."
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
        with self._lifecycle.transferring(f"warm transfer to {destination.key}"):
            return await self.transfer(destination, reason, name, context.session)

    async def transfer(
        self, destination: Destination, reason: str, name: str, session: AgentSession
    ) -> str | None:
        """The transfer itself, inside ``lifecycle.transferring``: what the LLM's tool
        call and the keypad escape (keypad.py) both run. Returns what the LLM is told, or
        None when the call has left the agent."""
        now = self._lifecycle.journal.clock()
        if told := refused_when_closed(destination, self._words, session, now):
            return f"{told} {self._alternatives(destination)}"
        server = self._lifecycle.server
        if server is None or not self._caller.is_phone:
            room_name = server.room_name if server else ""
            request = self._dialer.request(room_name, destination, "-", "")
            logger.info(
                "not a phone call (console or web caller): would have sent %s",
                describe(request, destination),
            )
            return NOT_A_PHONE_CALL

        room = self._lifecycle.room
        presence = Presence(room, self._lifecycle.caller_left)
        hold: Hold | None = None
        journal = self._lifecycle.journal
        started = journal.clock()

        def failed_attempt(detail: str) -> None:
            journal.attempt(
                destination.key, TransferMode.WARM, started, outcome=AttemptOutcome.FAILED,
                detail=detail,
            )  # fmt: skip

        # Deaf from here on: the notice cannot be interrupted anyway, and a "thanks" said
        # over it must not start an LLM turn that would talk over the hold music.
        stop_listening(session)
        try:
            hold_words = self._words.warm("hold", destination)
            if not await say_in_full(session, hold_words, caller_left=presence.caller_left):
                logger.info("the hold notice did not play to the end; nobody was dialed")
                return None
            hold = hold_music_for(room, self._settings)
            hold.begin()
            started = journal.clock()
            supervisor = await self._dialer.reach(destination, presence)
            await hold.end()
            try:
                await introduce(
                    session,
                    presence,
                    self.answering_words(destination),
                    destination,
                    caller=self._caller,
                    reason=reason,
                    name=name,
                )
            except SessionClosing:
                logger.warning(
                    "warm transfer to %s: the agent's session is closing and cannot speak; "
                    "connecting the caller with %s without an introduction",
                    destination.key,
                    supervisor,
                )
            journal.attempt(destination.key, TransferMode.WARM, started)
            self._step_out(session, supervisor, destination)
            return None
        except CallerLeft:
            logger.info(
                "the caller hung up during the warm transfer to %s; the call is over",
                destination.key,
            )
            failed_attempt("the caller hung up")
            if presence.supervisor:
                await self._lifecycle.end_leg(presence.supervisor)
            return None
        except SupervisorLeft:
            await self._back_to_agent(hold, session)
            logger.warning(
                "warm transfer to %s: %s hung up before the handoff; the caller is back with "
                "the agent",
                destination.key,
                presence.supervisor,
            )
            failed_attempt("the person hung up before the handoff")
            say_if_open(session, self._words.warm("supervisor_left", destination))
            return self._tell_llm(destination, "the person hung up before you could hand over")
        except NotReached as not_reached:
            await self._back_to_agent(hold, session)
            journal.attempt(destination.key, TransferMode.WARM, started, not_reached.failure)
            return self._failed(destination, not_reached.failure, session)
        finally:
            presence.close()
            if hold is not None:
                await hold.end()

    def answering_words(self, destination: Destination) -> Words:
        """The person who answers hears their destination's language, if it sets one."""
        if destination.language is None:
            return self._words
        return Words(self._settings, destination.language)

    def _step_out(self, session: AgentSession, supervisor: str, destination: Destination) -> None:
        """The agent's part is over: the lifecycle watches the two of them from now on and
        the session closes at once (no speech-to-text stream, no model, nothing said after
        the handoff, not even a reply to another tool of this turn)."""
        self._lifecycle.connected(supervisor, destination.key)
        session.output.set_audio_enabled(False)
        session.shutdown(drain=False)

    @staticmethod
    async def _back_to_agent(hold: Hold | None, session: AgentSession) -> None:
        if hold is not None:
            await hold.end()
        resume_listening(session)

    def _failed(self, destination: Destination, failure: Failure, session: AgentSession) -> str:
        report_failure(logger, "warm transfer", destination, failure, session, self._words)
        unknown = (
            " The outcome is unknown (their phone may have rung or been answered; that call "
            "was ended): do not try this transfer again unless the caller asks."
            if not failure.outcome_known
            else ""
        )
        return self._tell_llm(destination, f"{failure.outcome.value} ({failure.detail})") + unknown

    def _tell_llm(self, destination: Destination, what: str) -> str:
        return (
            f"The warm transfer to {destination.key} did not happen: {what}. The caller is "
            f"back on the line with you, off hold, and has been told. "
            f"{self._alternatives(destination)}"
        )

    def _alternatives(self, destination: Destination) -> str:
        others = [k for k in self._destinations if k != destination.key]
        offers = []
        if others:
            offers.append(f"a warm transfer to another destination ({', '.join(others)})")
        if destination.key in self._cold:
            offers.append(f"a direct transfer to {destination.key} with transfer_call")
        elif self._cold:
            offers.append(f"a direct transfer with transfer_call ({', '.join(self._cold)})")
        offers.append("calling back later")
        default = f"Offer them {', or '.join(offers)}."
        return self._ladder.offer(destination, default) if self._ladder else default


# --------------------------------------------------------------------------- helpers


def _clean(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit].strip() if isinstance(value, str) else ""
