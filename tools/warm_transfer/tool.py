"""The warm_transfer tool the LLM calls (and the keypad escape runs): which destination,
why, and what the LLM is told when the caller is not handed over. The transfer itself is
flow.py's."""

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
from tools.ladder import FallbackLadder
from tools.outcomes import Failure
from tools.playout import say_if_open
from tools.warm_transfer.dial import Dialer, describe
from tools.warm_transfer.endings import NotTaken
from tools.warm_transfer.flow import WarmTransfer
from tools.warm_transfer.presence import CallerLeft, NotReached, SupervisorLeft

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

        flow = WarmTransfer(
            settings=self._settings,
            destination=destination,
            caller=self._caller,
            lifecycle=self._lifecycle,
            session=session,
            words=self._words,
            answering=self.answering_words(destination),
            reason=reason,
            name=name,
            dialer=self._dialer,
        )
        journal = self._lifecycle.journal
        try:
            await flow.run()
            return None  # handed over, or the caller hung up before anyone was dialed
        except CallerLeft:
            logger.info(
                "the caller hung up during the warm transfer to %s; the call is over",
                destination.key,
            )
            self._attempt(flow, AttemptOutcome.FAILED, "the caller hung up")
            return None
        except SupervisorLeft:
            logger.warning(
                "warm transfer to %s: %s hung up before the handoff; the caller is back with "
                "the agent",
                destination.key,
                flow.presence.supervisor,
            )
            self._attempt(flow, AttemptOutcome.FAILED, "the person hung up before the handoff")
            say_if_open(session, self._words.warm("supervisor_left", destination))
            return self._tell_llm(destination, "the person hung up before you could hand over")
        except NotReached as not_reached:
            journal.attempt(destination.key, TransferMode.WARM, flow.started, not_reached.failure)
            return self._failed(destination, not_reached.failure, session)
        except NotTaken as not_taken:
            logger.info(
                "warm transfer to %s not handed over: %s (%s)",
                destination.key,
                not_taken.ending.value,
                not_taken.detail,
            )
            self._attempt(flow, not_taken.attempt, not_taken.detail)
            say_if_open(session, self._words.warm(not_taken.ending.value, destination))
            return self._tell_llm(destination, f"{not_taken.ending.value}: {not_taken.told}")

    def answering_words(self, destination: Destination) -> Words:
        """The person who answers hears their destination's language, if it sets one."""
        if destination.language is None:
            return self._words
        return Words(self._settings, destination.language)

    def _attempt(self, flow: WarmTransfer, outcome: AttemptOutcome, detail: str) -> None:
        self._lifecycle.journal.attempt(
            flow.destination.key, TransferMode.WARM, flow.started, outcome=outcome, detail=detail
        )

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


def _clean(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit].strip() if isinstance(value, str) else ""
