"""The loopback OpenAI server, driven by the real livekit-plugins-openai LLM and TTS."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import numpy as np
import openai as openai_sdk
import pytest
from livekit.agents import APIConnectOptions, APIStatusError, llm
from livekit.plugins import openai

from tests.support.openai_server import SAMPLE_RATE, LoopbackOpenAI
from tests.support.scripted_llm import Reply, ToolCall, call, say

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)


@pytest.fixture
async def server() -> AsyncIterator[LoopbackOpenAI]:
    async with LoopbackOpenAI() as srv:
        yield srv


@pytest.fixture
async def model(server: LoopbackOpenAI) -> AsyncIterator[openai.LLM]:
    client = openai.LLM(model="gpt-4.1-mini", api_key=server.api_key, base_url=server.base_url)
    yield client
    await client.aclose()


@llm.function_tool
async def transfer_call(destination: str) -> str:
    """Transfer the caller to a person.

    Args:
        destination: Who to transfer to, e.g. "billing".
    """
    return f"transferring to {destination}"


def caller_says(text: str) -> llm.ChatContext:
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="system", content="You answer the phone for Acme Dental.")
    ctx.add_message(role="user", content=text)
    return ctx


async def turn(
    model: openai.LLM, said: str | llm.ChatContext, tools: list[llm.Tool] | None = None
) -> list[llm.ChatChunk]:
    ctx = caller_says(said) if isinstance(said, str) else said
    async with model.chat(chat_ctx=ctx, tools=tools, conn_options=NO_RETRY) as stream:
        return [chunk async for chunk in stream]


def spoken(chunks: list[llm.ChatChunk]) -> str:
    return "".join(c.delta.content or "" for c in chunks if c.delta)


def tool_calls(chunks: list[llm.ChatChunk]) -> list[llm.FunctionToolCall]:
    return [t for c in chunks if c.delta for t in c.delta.tool_calls]


async def test_text_reply_streams_word_by_word(server: LoopbackOpenAI, model: openai.LLM) -> None:
    server.script(say("Thanks for calling Acme Dental, how can I help?"))

    chunks = await turn(model, "Hello?")

    assert spoken(chunks) == "Thanks for calling Acme Dental, how can I help?"
    assert len([c for c in chunks if c.delta and c.delta.content]) == 9
    assert not tool_calls(chunks)
    request = await server.wait_for_chat(1)
    assert request.last_user_text == "Hello?"
    assert request.instructions == "You answer the phone for Acme Dental."
    assert request.body["model"] == "gpt-4.1-mini"
    assert server.unexpected == []


async def test_tool_call_arrives_whole_with_the_tool_offered(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(call("transfer_call", destination="billing"))

    chunks = await turn(model, "I have a question about my bill.", tools=[transfer_call])

    [tool_call] = tool_calls(chunks)
    assert tool_call.name == "transfer_call"
    assert json.loads(tool_call.arguments) == {"destination": "billing"}
    assert tool_call.call_id.startswith("call_")
    request = await server.wait_for_chat(1)
    assert request.tool_names == ["transfer_call"]
    assert "destination" in request.body["tools"][0]["function"]["parameters"]["properties"]


async def test_the_next_turn_carries_the_tool_result(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(call("transfer_call", destination="billing"), say("Transferring you now."))
    ctx = caller_says("Billing, please.")

    [tool_call] = tool_calls(await turn(model, ctx, tools=[transfer_call]))
    ids = {"call_id": tool_call.call_id, "name": tool_call.name}
    ctx.insert(llm.FunctionCall(**ids, arguments=tool_call.arguments))
    ctx.insert(llm.FunctionCallOutput(**ids, output="ok", is_error=False))
    assert spoken(await turn(model, ctx, tools=[transfer_call])) == "Transferring you now."

    second = await server.wait_for_chat(2)
    assistant, result = second.messages[-2:]
    assert assistant["tool_calls"][0]["id"] == tool_call.call_id
    assert result == {"role": "tool", "tool_call_id": tool_call.call_id, "content": "ok"}
    assert second.last_user_text == "Billing, please."
    assert server.remaining == 0 and server.unexpected == []


async def test_text_then_two_tool_calls_in_one_reply(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(
        Reply(
            text="One moment.",
            tool_calls=(ToolCall("transfer_call", {"destination": "billing"}),) * 2,
        )
    )

    chunks = await turn(model, "Billing please.", tools=[transfer_call])

    assert spoken(chunks) == "One moment."
    assert [c.name for c in tool_calls(chunks)] == ["transfer_call", "transfer_call"]
    assert len({c.call_id for c in tool_calls(chunks)}) == 2


async def test_usage_comes_last_when_asked_for(server: LoopbackOpenAI, model: openai.LLM) -> None:
    server.script(say("Sure."))

    chunks = await turn(model, "Can you help?")

    assert server.chat_requests[0].body["stream_options"] == {"include_usage": True}
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


async def test_wrong_key_is_refused_like_openai(server: LoopbackOpenAI) -> None:
    model = openai.LLM(model="gpt-4.1-mini", api_key="sk-wrong-key", base_url=server.base_url)
    try:
        with pytest.raises(APIStatusError) as refused:
            await turn(model, "Hello?")
    finally:
        await model.aclose()

    assert refused.value.status_code == 401
    assert (refused.value.request_id or "").startswith("req_")
    assert not refused.value.retryable
    assert isinstance(refused.value.body, dict) and refused.value.body["code"] == "invalid_api_key"
    assert server.chat_requests == []


async def test_exhausted_script_fails_the_turn_and_is_reported(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(say("Hello."))
    await turn(model, "Hi")

    with pytest.raises(APIStatusError) as failed:
        await turn(model, "Are you still there?")

    assert failed.value.status_code == 500
    assert len(server.unexpected) == 1
    assert "no scripted reply left" in server.unexpected[0]
    assert "Are you still there?" in server.unexpected[0]


async def test_ttft_delays_the_first_chunk() -> None:
    async with LoopbackOpenAI(ttft=0.2) as server:
        server.script(Reply(text="Hello there.", ttft=0.1))
        slow = openai.LLM(model="gpt-4.1-mini", api_key=server.api_key, base_url=server.base_url)
        try:
            started = time.monotonic()
            async with slow.chat(chat_ctx=caller_says("Hi"), conn_options=NO_RETRY) as stream:
                async for chunk in stream:
                    if chunk.delta and chunk.delta.content:
                        first_chunk = time.monotonic() - started
                        break
        finally:
            await slow.aclose()

    assert 0.3 <= first_chunk < 2.0


async def test_models_list_answers_the_real_sdk(server: LoopbackOpenAI) -> None:
    async with openai_sdk.AsyncOpenAI(api_key=server.api_key, base_url=server.base_url) as sdk:
        models = [m.id async for m in sdk.models.list()]
    assert "gpt-4.1-mini" in models


def make_tts(server: LoopbackOpenAI, model: str, response_format: str = "pcm") -> openai.TTS:
    return openai.TTS(
        model=model,
        voice="ash",
        response_format=response_format,
        api_key=server.api_key,
        base_url=server.base_url,
    )


@pytest.mark.parametrize(
    ("model", "stream_format"), [("gpt-4o-mini-tts", "sse"), ("tts-1", "audio")]
)
async def test_speech_is_real_audio_of_the_expected_length(
    server: LoopbackOpenAI, model: str, stream_format: str
) -> None:
    text = "Please hold while I transfer you to billing."
    tts = make_tts(server, model)
    try:
        frames = [ev.frame async for ev in tts.synthesize(text, conn_options=NO_RETRY)]
    finally:
        await tts.aclose()

    assert {f.sample_rate for f in frames} == {SAMPLE_RATE}
    duration = sum(f.samples_per_channel for f in frames) / SAMPLE_RATE
    assert duration == pytest.approx(len(text) * 0.06, abs=0.02)
    samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in frames])
    assert np.abs(samples).max() > 1000  # audible, not silence
    [request] = server.speech_requests
    assert request.body["input"] == text
    assert request.body["voice"] == "ash" and request.body["response_format"] == "pcm"
    assert request.body["stream_format"] == stream_format


async def test_short_speech_lasts_at_least_the_minimum(server: LoopbackOpenAI) -> None:
    tts = make_tts(server, "gpt-4o-mini-tts")
    try:
        frames = [ev.frame async for ev in tts.synthesize("Hi.", conn_options=NO_RETRY)]
    finally:
        await tts.aclose()
    assert sum(f.duration for f in frames) == pytest.approx(0.3, abs=0.02)


async def test_non_pcm_format_is_refused_naming_it(server: LoopbackOpenAI) -> None:
    tts = make_tts(server, "gpt-4o-mini-tts", response_format="mp3")
    try:
        with pytest.raises(APIStatusError) as refused:
            async for _ in tts.synthesize("Hello.", conn_options=NO_RETRY):
                pass
    finally:
        await tts.aclose()

    assert refused.value.status_code == 400
    assert "'mp3'" in str(refused.value)


async def test_tts_ttfb_delays_the_first_audio() -> None:
    async with LoopbackOpenAI(tts_ttfb=0.25) as server:
        tts = make_tts(server, "gpt-4o-mini-tts")
        try:
            started = time.monotonic()
            async with tts.synthesize("Hello.", conn_options=NO_RETRY) as stream:
                async for _ in stream:
                    first_frame = time.monotonic() - started
                    break
        finally:
            await tts.aclose()

    assert 0.25 <= first_frame < 2.0
    [request] = server.speech_requests
    assert request.first_byte_at is not None
    assert request.first_byte_at - request.received_at >= 0.25
