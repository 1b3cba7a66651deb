"""The tools of one call: end_call always, a transfer tool for each transfer mode a
destination allows (sharing one fallback ladder), take_message when the call has a store,
and the keypad escape, which runs the same transfer tools without an LLM turn.
"""

from __future__ import annotations

from dataclasses import dataclass

from livekit.agents import AgentSession
from livekit.agents.llm import Toolset

from caller import Caller
from config import Settings
from keypad import Keypad
from lifecycle import CallLifecycle
from prompts import Words
from store import Store
from tools.cold_transfer import TOOL_NAME as COLD_TOOL
from tools.cold_transfer import ColdTransferTool
from tools.end_call import EndCall
from tools.ladder import FallbackLadder
from tools.message import TakeMessageTool
from tools.warm_transfer import TOOL_NAME as WARM_TOOL
from tools.warm_transfer import WarmTransferTool


@dataclass(frozen=True)
class CallTools:
    """end_call always; a transfer tool for each transfer mode a destination allows.
    The keypad escape runs the same transfer tools."""

    end_call: EndCall
    cold: ColdTransferTool | None
    warm: WarmTransferTool | None
    message: TakeMessageTool | None = None

    @classmethod
    def for_call(
        cls,
        settings: Settings,
        caller: Caller,
        lifecycle: CallLifecycle,
        words: Words,
        store: Store | None = None,
    ) -> CallTools:
        """``store``: where messages are kept; without one, no messages are taken."""
        modes = {"cold": COLD_TOOL, "warm": WARM_TOOL}
        modes = {mode: tool for mode, tool in modes.items() if settings.destinations_for(mode)}
        ladder = FallbackLadder(
            settings.destinations_by_key,
            clock=lifecycle.journal.clock,
            messages=store is not None,
            tools=modes,
        )
        return cls(
            end_call=EndCall(lifecycle),
            cold=ColdTransferTool(settings.destinations, caller, lifecycle, words, ladder)
            if "cold" in modes
            else None,
            warm=WarmTransferTool(settings, caller, lifecycle, words, ladder)
            if "warm" in modes
            else None,
            message=TakeMessageTool(
                settings.destinations_by_key,
                caller,
                lifecycle,
                words,
                store,
                deliver=settings.webhook is not None,
            )
            if store is not None
            else None,
        )

    def all(self) -> list[Toolset]:
        tools = (self.end_call, self.cold, self.warm, self.message)
        return [tool for tool in tools if tool is not None]


def keypad_for(
    settings: Settings,
    caller: Caller,
    lifecycle: CallLifecycle,
    session: AgentSession,
    words: Words,
    tools: CallTools,
) -> Keypad | None:
    """The keypad escape of ``[keypad]``, for a caller on a phone (one with a keypad)."""
    if not caller.is_phone or not settings.keypad:
        return None
    return Keypad(
        {digit: settings.destinations_by_key[key] for digit, key in settings.keypad.items()},
        caller=caller.identity,
        lifecycle=lifecycle,
        session=session,
        words=words,
        cold=tools.cold,
        warm=tools.warm,
    )
