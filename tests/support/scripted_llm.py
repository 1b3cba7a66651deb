"""A scripted LLM: plays the agent's side of a call, turn by turn.

Each call of ``chat()`` takes the next ``Reply`` from the script, so a test reads like
the call it checks. It records what the model was shown (instructions, history, tool
schemas), which is how tests prove what the LLM could and could not do.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.types import (
    DEFAULT_API_CONNECT_OPTIONS,
    NOT_GIVEN,
    APIConnectOptions,
    NotGivenOr,
)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One LLM turn: spoken text, tool calls, or both. ``ttft`` delays the first chunk
    (virtual provider latency for benchmarks); tests leave it at 0."""

    text: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    ttft: float = 0.0


def say(text: str) -> Reply:
    return Reply(text=text)


def call(name: str, **arguments: Any) -> Reply:
    return Reply(tool_calls=(ToolCall(name, arguments),))


@dataclass(frozen=True)
class Request:
    """What the agent sent to the LLM for one turn."""

    chat_ctx: llm.ChatContext
    tools: list[llm.Tool]

    @property
    def instructions(self) -> str:
        return "\n".join(
            m.text_content or ""
            for m in self.chat_ctx.messages()
            if m.role in ("system", "developer")
        )

    @property
    def tool_names(self) -> list[str]:
        return [
            t.info.name for t in self.tools if isinstance(t, llm.FunctionTool | llm.RawFunctionTool)
        ]

    def tool_schema(self, name: str) -> dict[str, Any]:
        """The tool as the provider receives it: name, description, JSON parameters."""
        for tool in self.tools:
            if isinstance(tool, llm.RawFunctionTool) and tool.info.name == name:
                return dict(tool.info.raw_schema)
            if isinstance(tool, llm.FunctionTool) and tool.info.name == name:
                schema: dict[str, Any] = llm.utils.build_legacy_openai_schema(tool)["function"]
                return schema
        raise AssertionError(
            f"the LLM was not offered a tool named {name!r} (it had {self.tool_names})"
        )


class ScriptExhausted(AssertionError):
    pass


class ScriptedLLM(llm.LLM):
    def __init__(self, script: list[Reply] | None = None) -> None:
        super().__init__()
        self._script = list(script or [])
        self.requests: list[Request] = []
        self.unexpected_turns = 0
        self._call_ids = itertools.count(1)

    def add(self, *replies: Reply) -> None:
        self._script.extend(replies)

    @property
    def remaining(self) -> int:
        return len(self._script)

    @property
    def model(self) -> str:
        return "scripted"

    def chat(
        self,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool] | None = None,
        conn_options: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
        parallel_tool_calls: NotGivenOr[bool] = NOT_GIVEN,
        tool_choice: NotGivenOr[llm.ToolChoice] = NOT_GIVEN,
        extra_kwargs: NotGivenOr[dict[str, Any]] = NOT_GIVEN,
    ) -> llm.LLMStream:
        self.requests.append(Request(chat_ctx=chat_ctx.copy(), tools=list(tools or [])))
        if self._script:
            reply = self._script.pop(0)
        else:
            # An empty turn, counted: raising here would only make the framework retry.
            self.unexpected_turns += 1
            reply = Reply()
        return _ScriptedStream(
            self, reply, chat_ctx=chat_ctx, tools=tools or [], conn_options=conn_options
        )

    def next_call_id(self) -> str:
        return f"call_{next(self._call_ids)}"


class _ScriptedStream(llm.LLMStream):
    def __init__(
        self,
        scripted: ScriptedLLM,
        reply: Reply,
        *,
        chat_ctx: llm.ChatContext,
        tools: list[llm.Tool],
        conn_options: APIConnectOptions,
    ) -> None:
        super().__init__(scripted, chat_ctx=chat_ctx, tools=tools, conn_options=conn_options)
        self._scripted = scripted
        self._reply = reply

    async def _run(self) -> None:
        if self._reply.ttft:
            await asyncio.sleep(self._reply.ttft)
        if self._reply.text:
            self._send(content=self._reply.text)
        if self._reply.tool_calls:
            self._send(
                tool_calls=[
                    llm.FunctionToolCall(
                        name=c.name,
                        arguments=json.dumps(c.arguments),
                        call_id=self._scripted.next_call_id(),
                    )
                    for c in self._reply.tool_calls
                ]
            )

    def _send(
        self, *, content: str | None = None, tool_calls: list[llm.FunctionToolCall] | None = None
    ) -> None:
        self._event_ch.send_nowait(
            llm.ChatChunk(
                id=str(id(self)),
                delta=llm.ChoiceDelta(
                    role="assistant", content=content, tool_calls=tool_calls or []
                ),
            )
        )
