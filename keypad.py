"""The keypad escape: a caller who presses a configured key reaches a person, whatever the
LLM is doing or thinks.

A caller stuck with a confused agent (or who simply prefers a person) presses, say, 0, and
is transferred to the destination ``[keypad]`` names for that key: by cold transfer when the
destination allows it (no one needs to be briefed), else by warm transfer with a fixed
reason from prompts (warm_transfer.md, keypad_reason). It runs the same transfer as the
LLM's tools, inside the lifecycle's ``transferring``, so it never overlaps another transfer
and never acts once the call is handed over or ending. SIP DTMF arrives as the room's
``sip_dtmf_received``; only the caller's own presses count (a dialed supervisor's keys do
not). If the transfer fails, the caller has heard why and the LLM is asked for a reply so
it offers the alternatives it was told about.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping

from livekit import rtc
from livekit.agents import AgentSession, AgentTask
from livekit.agents.llm import ToolError

from config import Destination
from lifecycle import CallLifecycle, Phase
from prompts import Words
from tools.cold_transfer import ColdTransferTool
from tools.warm_transfer import WarmTransferTool

logger = logging.getLogger("phone-assistant.keypad")


class Keypad:
    """Listens for the caller's key presses for the call's life (``close`` stops it)."""

    def __init__(
        self,
        keys: Mapping[str, Destination],
        *,
        caller: str,
        lifecycle: CallLifecycle,
        session: AgentSession,
        words: Words,
        cold: ColdTransferTool | None,
        warm: WarmTransferTool | None,
    ) -> None:
        self._keys = dict(keys)
        self._caller = caller
        self._lifecycle = lifecycle
        self._session = session
        self._words = words
        self._cold = cold
        self._warm = warm
        self._room = lifecycle.room
        if self._keys:
            self._room.on("sip_dtmf_received", self._on_dtmf)

    def close(self) -> None:
        if self._keys:
            self._room.off("sip_dtmf_received", self._on_dtmf)

    def _on_dtmf(self, event: rtc.SipDTMF) -> None:
        if event.participant is None or event.participant.identity != self._caller:
            return
        destination = self._keys.get(event.digit)
        if destination is None:
            return
        if isinstance(self._session.current_agent, AgentTask):
            # a workflow is asking for something (a callback number): its keys are input
            return
        if self._lifecycle.phase is not Phase.TALKING:
            logger.info(
                "keypad %s pressed during %s: ignored", event.digit, self._lifecycle.phase.value
            )
            return
        logger.info("keypad %s pressed: transferring to %s", event.digit, destination.key)
        self._lifecycle.spawn(self._escape(event.digit, destination))

    async def _escape(self, digit: str, destination: Destination) -> None:
        try:
            with self._lifecycle.transferring(f"keypad {digit}: transfer to {destination.key}"):
                # whatever the agent was saying or about to say gives way to the transfer
                _interrupt(self._session)
                told = await self._hand_over(destination)
        except ToolError as refused:  # another transfer started first, or the call is ending
            logger.info("keypad %s: no transfer: %s", digit, refused)
            return
        if told is not None:  # it failed: the caller has heard why and is back with the agent
            # a closing session says nothing more: the lifecycle takes it from there
            with contextlib.suppress(RuntimeError):
                self._session.generate_reply(
                    instructions=(
                        f"The caller pressed {digit} on the keypad to reach "
                        f"{destination.key}. {told}"
                    )
                )

    async def _hand_over(self, destination: Destination) -> str | None:
        if self._cold is not None and "cold" in destination.modes:
            return await self._cold.transfer(destination, self._session)
        if self._warm is not None and "warm" in destination.modes:
            reason = self._warm.answering_words(destination).warm("keypad_reason", destination)
            return await self._warm.transfer(destination, reason, "", self._session)
        raise ToolError(f"{destination.key} allows no transfer mode this call has")


def _interrupt(session: AgentSession) -> None:
    with contextlib.suppress(RuntimeError):  # nothing to interrupt, or the session is closing
        session.interrupt(force=True)
