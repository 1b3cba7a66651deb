"""The framework's end_call tool, refused when ending the call would cut someone off."""

from __future__ import annotations

from typing import Any

from livekit.agents import RunContext
from livekit.agents.beta.tools import EndCallTool

from lifecycle import CallLifecycle


class EndCall(EndCallTool):
    """``EndCallTool`` as the framework ships it (goodbye, then the session closes), asked
    of the call's lifecycle first: during a transfer or after a handoff it is refused and
    the LLM is told why. The room is deleted by the lifecycle, within a time limit, when
    the session has closed (rather than by the tool, with no limit)."""

    def __init__(self, lifecycle: CallLifecycle) -> None:
        super().__init__(delete_room=False, ignore_on_enter=True)
        self._lifecycle = lifecycle

    async def _end_call(self, ctx: RunContext) -> Any | None:
        self._lifecycle.end_requested()  # raises ToolError when refused
        return await super()._end_call(ctx)
