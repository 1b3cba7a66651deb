"""Cold transfer: tell the caller where they are going, then hand the call over by SIP REFER.

After a successful REFER the caller's call continues at the destination and leaves
LiveKit, so the agent's session and the job end. Every failure keeps the caller on the
line with the agent, tells them plainly, and tells the LLM so it can offer alternatives.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from google.protobuf.duration_pb2 import Duration
from livekit import api
from livekit.agents import RunContext, get_job_context
from livekit.agents.llm import Toolset, function_tool
from livekit.protocol import sip

import prompts
from caller import Caller
from config import Destination
from tools.destinations import (
    NOT_A_PHONE_CALL,
    destination_menu,
    destination_parameter,
    masked_address,
    pick_destination,
    report_failure,
)
from tools.guard import OneTransferAtATime
from tools.outcomes import Failure, classify, from_sip_status
from tools.playout import say_in_full

logger = logging.getLogger("phone-assistant.cold-transfer")

TOOL_NAME = "transfer_call"


class ColdTransferTool(Toolset):
    """The LLM picks a destination key from an enum built from configuration; the
    address is looked up here, so the LLM can never make the agent dial a number."""

    def __init__(
        self, destinations: Sequence[Destination], caller: Caller, guard: OneTransferAtATime
    ) -> None:
        self._destinations = {d.key: d for d in destinations if "cold" in d.modes}
        self._caller = caller
        self._guard = guard
        transfer = function_tool(
            self._transfer,
            raw_schema={
                "name": TOOL_NAME,
                "description": (
                    "Forward the caller to a person or team (a cold transfer: the call leaves "
                    "you). Call it only after the caller has clearly confirmed that they want "
                    "to be transferred to that destination. Destinations:\n"
                    + destination_menu(self._destinations)
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
        with self._guard.hold(f"cold transfer to {destination.key}"):
            return await self._run(destination, context)

    async def _run(self, destination: Destination, context: RunContext) -> str | None:
        job = get_job_context(required=False)
        request = api.TransferSIPParticipantRequest(
            room_name=job.room.name if job else "",
            participant_identity=self._caller.identity,
            transfer_to=destination.transfer_to,
            play_dialtone=destination.play_dialtone,
            headers=dict(destination.headers),
            ringing_timeout=Duration(seconds=round(destination.ringing_timeout)),
        )
        what = (
            f"TransferSIPParticipant(room={request.room_name!r}, participant="
            f"{request.participant_identity!r}, transfer_to={masked_address(destination)!r}, "
            f"play_dialtone={request.play_dialtone})"
        )
        if job is None or not self._caller.is_phone:
            logger.info("not a phone call (console or web caller): would have sent %s", what)
            return NOT_A_PHONE_CALL

        notice = prompts.transfer_words("notice", destination)
        if not await say_in_full(
            context.session, notice, room=job.room, caller=self._caller.identity
        ):
            logger.info("caller hung up during the transfer notice; no REFER sent")
            return None

        logger.info("sending %s", what)
        try:
            response = await job.api.sip.transfer_sip_participant(request)
        except Exception as error:  # every failure keeps the caller on the line
            return self._failed(destination, classify(error), context)
        if response.status == sip.STS_TRANSFER_FAILED:
            reason = sip.SIPTransferReason.Name(response.reason)
            failure = from_sip_status(response.sip_status.code, response.sip_status.status, reason)
            return self._failed(destination, failure, context)

        # The caller is now connected to the destination and leaves the room: end this
        # session once the current turn is over, which also ends the job (agent.py).
        logger.info("caller transferred to %s (%s)", destination.key, masked_address(destination))
        context.speech_handle.add_done_callback(lambda _: context.session.shutdown())
        return None

    def _failed(self, destination: Destination, failure: Failure, context: RunContext) -> str:
        report_failure(logger, "cold transfer", destination, failure, context.session)
        others = [k for k in self._destinations if k != destination.key]
        alternatives = (
            f"another destination ({', '.join(others)}), " if others else ""
        ) + "or calling back later"
        unknown = (
            " The outcome is unknown: do not try this transfer again unless the caller asks."
            if not failure.outcome_known
            else ""
        )
        return (
            f"The transfer to {destination.key} did not happen: {failure.outcome.value} "
            f"({failure.detail}). The caller is still on the line with you and has been told. "
            f"Offer them {alternatives}.{unknown}"
        )
