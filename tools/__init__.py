"""The LLM's tools. Transfers share one guard: a call is handed over once at a time."""

from __future__ import annotations

from livekit.agents.llm import Toolset

from caller import Caller
from config import Settings
from tools.cold_transfer import ColdTransferTool
from tools.guard import OneTransferAtATime
from tools.warm_transfer import WarmTransferTool


def transfer_tools(settings: Settings, caller: Caller) -> list[Toolset]:
    guard = OneTransferAtATime()
    tools: list[Toolset] = []
    if settings.destinations_for("cold"):
        tools.append(ColdTransferTool(settings.destinations, caller, guard))
    if settings.destinations_for("warm"):
        tools.append(WarmTransferTool(settings, caller, guard))
    return tools
