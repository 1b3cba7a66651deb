"""Cold transfer: tell the caller where they are going, then hand the call over by SIP REFER.

The agent stops listening before the notice, so nothing the caller says starts a turn that
would talk over the transfer. The REFER is one request, never replayed (server_api.py).
After it succeeds the caller's call continues at the destination and leaves LiveKit, so
the session closes and the lifecycle ends the job. Every failure keeps the caller on the
line with the agent, listening again, tells them plainly, and tells the LLM so it can
offer alternatives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from livekit.agents import AgentSession, RunContext, get_job_context
from livekit.agents.llm import Toolset, function_tool
from livekit.protocol import sip

from caller import Caller
from config import Destination
from lifecycle import CallLifecycle
from prompts import Words
from records import TransferMode
from tools.destinations import (
    NOT_A_PHONE_CALL,
    destination_menu,
    destination_parameter,
    masked_address,
    pick_destination,
    refused_when_closed,
    report_failure,
)
from tools.ladder import FallbackLadder
from tools.outcomes import Failure, classify, from_sip_status
from tools.playout import resume_listening, say_in_full, stop_listening

logger = logging.getLogger("phone-assistant.cold-transfer")

TOOL_NAME = "transfer_call"


class ColdTransferTool(Toolset):
    """The LLM picks a destination key from an enum built from configuration; the
    address is looked up here, so the LLM can never make the agent dial a number."""

    def __init__(
        self,
        destinations: Sequence[Destination],
        caller: Caller,
        lifecycle: CallLifecycle,
        words: Words,
        ladder: FallbackLadder | None = None,
    ) -> None:
        """``ladder``: what to offer next when a transfer fails (shared by the call's
        transfer tools); without one, every other destination."""
        self._destinations = {d.key: d for d in destinations if "cold" in d.modes}
        self._caller = caller
        self._lifecycle = lifecycle
        self._words = words  # the caller's language
        self._ladder = ladder
        transfer = function_tool(
            self._transfer,
            raw_schema={
                "name": TOOL_NAME,
                "description": (
                    "Forward the caller to a person or team (a cold transfer: the call leaves "
                    "you). Call it only after the caller has clearly confirmed that they want "
                    "to be transferred to that destination. Destinations:\n"
                    + destination_menu(self._destinations, words.code, lifecycle.journal.clock())
                ),
                "parameters": {
                    "type": "object",
                    "properties": {
                        "destination": destination_parameter(
                            self._destinations, "The key of the destination to transfer to."
                        )
                    },
                    "required": ["destination"],
                    "additionalProperties": False,
                },
            },
        )
        super().__init__(id="cold_transfer", tools=[transfer])

    async def _transfer(self, raw_arguments: dict[str, Any], context: RunContext) -> str | None:
        destination = pick_destination(raw_arguments, self._destinations, "transfer")
        with self._lifecycle.transferring(f"cold transfer to {destination.key}"):
            return await self.transfer(destination, context.session)

    async def transfer(self, destination: Destination, session: AgentSession) -> str | None:
        """The transfer itself, inside ``lifecycle.transferring``: what the LLM's tool
        call and the keypad escape (keypad.py) both run. Returns what the LLM is told, or
        None when the call has left the agent."""
        now = self._lifecycle.journal.clock()
        if told := refused_when_closed(destination, self._words, session, now):
            return f"{told} {self._alternatives(destination)}"
        server = self._lifecycle.server
        job = get_job_context(required=False)
        room_name = server.room_name if server else job.room.name if job else ""
        what = (
            f"TransferSIPParticipant(room={room_name!r}, participant="
            f"{self._caller.identity!r}, transfer_to={masked_address(destination)!r}, "
            f"play_dialtone={destination.play_dialtone})"
        )
        if server is None or not self._caller.is_phone:
            logger.info("not a phone call (console or web caller): would have sent %s", what)
            return NOT_A_PHONE_CALL

        stop_listening(session)
        notice = self._words.transfer("notice", destination)
        if not await say_in_full(session, notice, caller_left=self._lifecycle.caller_left):
            logger.info("the notice did not play to the end (the caller hung up); no REFER sent")
            return None

        logger.info("sending %s (one request, never replayed)", what)
        started = self._lifecycle.journal.clock()
        try:
            response = await server.transfer(
                server.refer_request(self._caller.identity, destination)
            )
        except Exception as error:  # every failure keeps the caller on the line
            return self._failed(destination, classify(error), session, started)
        if response.status == sip.STS_TRANSFER_FAILED:
            reason = sip.SIPTransferReason.Name(response.reason)
            failure = from_sip_status(response.sip_status.code, response.sip_status.status, reason)
            return self._failed(destination, failure, session, started)

        # The caller's call continues at the destination: the agent has nothing more to say
        # (not even a reply to another tool of this turn), so its session ends now.
        self._lifecycle.journal.attempt(destination.key, TransferMode.COLD, started)
        self._lifecycle.handed_over(
            f"{destination.key} ({masked_address(destination)})", destination.key
        )
        session.shutdown(drain=False)
        return None

    def _failed(
        self, destination: Destination, failure: Failure, session: AgentSession, started: datetime
    ) -> str:
        self._lifecycle.journal.attempt(destination.key, TransferMode.COLD, started, failure)
        resume_listening(session)
        report_failure(logger, "cold transfer", destination, failure, session, self._words)
        unknown = (
            " The outcome is unknown: do not try this transfer again unless the caller asks."
            if not failure.outcome_known
            else ""
        )
        return (
            f"The transfer to {destination.key} did not happen: {failure.outcome.value} "
            f"({failure.detail}). The caller is still on the line with you and has been told. "
            f"{self._alternatives(destination)}{unknown}"
        )

    def _alternatives(self, destination: Destination) -> str:
        others = [k for k in self._destinations if k != destination.key]
        default = (
            "Offer them "
            + (f"another destination ({', '.join(others)}), " if others else "")
            + "or calling back later."
        )
        return self._ladder.offer(destination, default) if self._ladder else default
