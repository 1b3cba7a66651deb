"""Warm transfer: the caller waits on hold in their own room while a person is dialed
into it; the person is screened and consulted first (or introduced at once), then the
agent steps out and leaves the two talking. flow.py reads top to bottom; one module per
phase beside it (hold, dial, screen, consult, connect, teardown), with hearing.py for
who hears whom and tool.py for what the LLM sees."""

from tools.warm_transfer.tool import TOOL_NAME, WarmTransferTool

__all__ = ["TOOL_NAME", "WarmTransferTool"]
