"""The call as the framework's test harness runs it: greeting, conversation, goodbye.

The scripted LLM plays the agent's side; everything else is the real AgentSession.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from livekit.agents import AgentSession

from agent import PhoneAssistant
from caller import Caller
from config import Settings
from lifecycle import CallLifecycle
from prompts import Words
from tests.support.call import phone_call
from tests.support.scripted_llm import ScriptedLLM, call, say
from tests.support.stand_in_room import StandInRoom, phone_caller


@pytest.fixture
async def session(settings: Settings) -> AsyncIterator[AgentSession]:
    async with AgentSession(llm=ScriptedLLM()) as session:
        yield session


def assistant(settings: Settings) -> PhoneAssistant:
    """The agent with no room behind it (its tools would only log what they would do)."""
    caller = phone_caller()
    lifecycle = CallLifecycle(
        StandInRoom("call-1", caller), caller.identity, server=None, end_job=lambda _: None
    )
    return PhoneAssistant(
        settings,
        caller=Caller.from_participant(caller),
        lifecycle=lifecycle,
        words=Words(settings, "en-US"),
        greeting=Words(settings, "en-US").greeting(),
    )


def script(session: AgentSession) -> ScriptedLLM:
    assert isinstance(session.llm, ScriptedLLM)
    return session.llm


async def test_the_caller_is_greeted_with_the_business_name_before_anything_else(
    session: AgentSession, settings: Settings
) -> None:
    result = await session.start(assistant(settings), capture_run=True)

    result.expect.next_event().is_agent_handoff(new_agent_type=PhoneAssistant)
    greeting = result.expect.next_event().is_message(role="assistant").event().item
    assert greeting.text_content == "Thank you for calling Acme Dental. How can I help you today?"
    result.expect.no_more_events()
    assert script(session).requests == []  # a fixed greeting: no LLM round trip


async def test_a_normal_exchange(session: AgentSession, settings: Settings) -> None:
    await session.start(assistant(settings))
    script(session).add(say("We are open from eight to six, Monday to Friday."))

    result = await session.run(user_input="When are you open?")

    reply = result.expect.next_event().is_message(role="assistant").event().item
    assert reply.text_content == "We are open from eight to six, Monday to Friday."
    result.expect.no_more_events()
    (request,) = script(session).requests
    assert request.chat_ctx.items[-1].text_content == "When are you open?"


async def test_the_agent_ends_the_call_with_the_frameworks_end_call_tool(
    settings: Settings,
) -> None:
    async with phone_call(settings) as c:
        c.llm.add(call("end_call"), say("Goodbye, and thanks for calling!"))

        result = await c.session.run(user_input="That's all, thanks. Bye!")

        result.expect.next_event().is_function_call(name="end_call")
        result.expect.next_event().is_function_call_output()
        farewell = result.expect.next_event().is_message(role="assistant").event().item
        assert farewell.text_content == "Goodbye, and thanks for calling!"
        result.expect.no_more_events()
        # no aclose() here: the tool itself closes the session once the goodbye is said,
        # then the call is over for the caller: the room is deleted and the job ends
        await asyncio.wait_for(asyncio.shield(c.closed), 5)
        await c.job_ends()
        delete = await c.server.wait_for_request("DeleteRoom")
        assert delete.message.room == "call-room-1"


async def test_the_instructions_list_the_configured_destinations(
    session: AgentSession, settings: Settings
) -> None:
    await session.start(assistant(settings))
    script(session).add(say("Sure."))
    await session.run(user_input="Hi")

    instructions = script(session).requests[0].instructions
    assert "Acme Dental" in instructions
    assert "- billing: the billing team. Invoices, payments and refunds." in instructions
    assert "- front_desk: the front desk." in instructions
    assert "- supervisor: the duty supervisor." in instructions
    assert "+15550100101" not in instructions  # the LLM never sees an address
    assert "sip:frontdesk" not in instructions
    assert "end_call" in script(session).requests[0].tool_names
