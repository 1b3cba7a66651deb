"""The loopback OpenAI server, driven by the real livekit-plugins-openai LLM, TTS and STT.

The fault tests double as a record of how the plugins and the fallback adapters react to
each failure, and how many requests they make: production retry settings rest on these.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np
import openai as openai_sdk
import pytest
from livekit.agents import (
    DEFAULT_API_CONNECT_OPTIONS,
    APIConnectionError,
    APIConnectOptions,
    APIError,
    APIStatusError,
    APITimeoutError,
    llm,
    stt,
    tts,
    vad,
)
from livekit.agents.tts.fallback_adapter import DEFAULT_FALLBACK_API_CONNECT_OPTIONS
from livekit.plugins import openai, silero

from tests.support.caller_audio import TRANSCRIPTS, silence, speech
from tests.support.openai_server import SAMPLE_RATE, Fault, LoopbackOpenAI, speech_audio
from tests.support.scripted_llm import Reply, ToolCall, call, say

NO_RETRY = APIConnectOptions(max_retry=0, timeout=5.0)
RETRIES = dataclasses.replace(DEFAULT_API_CONNECT_OPTIONS, retry_interval=0.01)
"""The default 3 retries (what AgentSession passes), without the 0.1 s + 2 s + 2 s waits."""


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


# -- Faults: the server's side ------------------------------------------------------------


@dataclass
class Outcome:
    """What one turn gave the caller: the words that arrived, and the error it ended with."""

    text: str
    error: Exception | None
    seconds: float


async def attempt(model: llm.LLM, conn_options: APIConnectOptions | None = RETRIES) -> Outcome:
    """One turn, keeping what arrived before a failure. ``None``: the model's own default
    connect options (a FallbackAdapter's are max_retry=0)."""
    options = {} if conn_options is None else {"conn_options": conn_options}
    words: list[str] = []
    started = time.monotonic()
    try:
        async with model.chat(chat_ctx=caller_says("Hello?"), **options) as stream:
            async for chunk in stream:  # a loop, not a comprehension: keep what came
                words.append(chunk.delta.content or "" if chunk.delta else "")
    except APIError as e:
        return Outcome("".join(words), e, time.monotonic() - started)
    return Outcome("".join(words), None, time.monotonic() - started)


async def test_a_fault_for_a_while_then_the_retry_is_answered(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(say("Sorry about that, how can I help?"))
    outage = server.inject(Fault.overloaded(), on="chat", times=2)

    outcome = await attempt(model)

    assert outcome.text == "Sorry about that, how can I help?" and outcome.error is None
    assert [r.status for r in server.chat_requests] == [503, 503, 200]
    assert [r.fault for r in server.chat_requests] == [Fault.overloaded()] * 2 + [None]
    assert outage.hits == 2 and not outage.active


async def test_fail_model_lasts_until_cleared(server: LoopbackOpenAI, model: openai.LLM) -> None:
    server.script(say("I'm back."))
    outage = server.fail_model("gpt-4.1-mini", Fault.server_error())

    assert (await attempt(model, NO_RETRY)).error is not None
    assert (await attempt(model, NO_RETRY)).error is not None
    outage.clear()
    assert (await attempt(model, NO_RETRY)).text == "I'm back."

    assert [r.status for r in server.chat_requests] == [500, 500, 200]
    assert outage.hits == 2


async def test_faults_apply_in_the_order_injected(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(say("Finally."))
    server.inject(Fault.rate_limit())
    server.inject(Fault.drop())
    server.inject(Fault.server_error())

    assert (await attempt(model)).text == "Finally."  # the 4th attempt, the 3rd retry
    faults = [r.fault for r in server.chat_requests]
    assert faults == [Fault.rate_limit(), Fault.drop(), Fault.server_error(), None]


async def test_a_fault_applies_only_to_its_endpoint_and_model(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(say("Hello."))
    server.inject(Fault.server_error(), on="speech", times=None)
    server.fail_model("gpt-4.1", Fault.server_error())
    speaker = make_tts(server, "tts-1")
    try:
        assert (await attempt(model, NO_RETRY)).text == "Hello."  # gpt-4.1-mini
        with pytest.raises(APIStatusError):
            await synthesize(speaker, NO_RETRY)
    finally:
        await speaker.aclose()

    seen = [(r.endpoint, r.model, r.status) for r in server.requests]
    assert seen == [("chat", "gpt-4.1-mini", 200), ("speech", "tts-1", 500)]


async def test_a_hang_ends_when_the_server_closes() -> None:
    async with LoopbackOpenAI() as server:
        server.inject(Fault.hang())
        model = openai.LLM(model="gpt-4.1-mini", api_key=server.api_key, base_url=server.base_url)
        patient = APIConnectOptions(max_retry=0, timeout=30.0)
        pending = asyncio.create_task(attempt(model, patient))
        await server.wait_for_chat(1)
    outcome = await pending
    await model.aclose()

    assert isinstance(outcome.error, APIConnectionError)
    assert not isinstance(outcome.error, APITimeoutError)
    assert "Server disconnected without sending a response" in str(outcome.error)
    assert outcome.seconds < 5
    assert not server.chat_requests[0].client_gave_up


# -- Faults: the LLM plugin ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.server_error(), id="500"),
        pytest.param(Fault.status(502), id="502"),
        pytest.param(Fault.overloaded(), id="503"),
        pytest.param(Fault.rate_limit(), id="429"),
        pytest.param(Fault.insufficient_quota(), id="429-quota"),
    ],
)
async def test_llm_retries_5xx_and_429_then_fails_as_a_connection_error(
    server: LoopbackOpenAI, model: openai.LLM, fault: Fault
) -> None:
    server.inject(fault, times=None)

    outcome = await attempt(model)

    # 1 + max_retry attempts (the openai SDK itself makes none: the plugin sets max_retries=0),
    # and the last status error comes wrapped in a plain APIConnectionError
    assert len(server.chat_requests) == 4
    assert type(outcome.error) is APIConnectionError
    assert "failed to generate LLM completion after 4 attempts" in str(outcome.error)
    cause = outcome.error.__cause__
    assert isinstance(cause, APIStatusError) and cause.status_code == fault.http_status
    assert isinstance(cause.body, dict) and cause.body["type"] == fault.error_type


async def test_llm_500_without_retries_is_the_plugins_api_status_error(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.inject(Fault.server_error())

    error = (await attempt(model, NO_RETRY)).error

    assert isinstance(error, APIStatusError) and error.status_code == 500 and error.retryable
    assert error.body == {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert (error.request_id or "").startswith("req_")
    [request] = server.chat_requests
    assert request.fault == Fault.server_error() and request.status == 500


async def test_llm_default_connect_options_take_four_attempts_and_four_seconds(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.inject(Fault.server_error(), times=None)

    outcome = await attempt(model, DEFAULT_API_CONNECT_OPTIONS)

    assert isinstance(outcome.error, APIConnectionError)
    assert len(server.chat_requests) == 4
    assert 4.1 <= outcome.seconds < 6.0  # 0.1 s, then 2 s, then 2 s between attempts


async def test_llm_does_not_retry_a_400(server: LoopbackOpenAI, model: openai.LLM) -> None:
    server.inject(Fault.status(400, "Invalid 'messages[1].content'"), times=None)

    error = (await attempt(model)).error

    assert isinstance(error, APIStatusError) and error.status_code == 400
    assert not error.retryable
    assert len(server.chat_requests) == 1


@pytest.mark.parametrize(
    ("after", "attempts", "heard"),
    [
        pytest.param(0, 4, "", id="before-the-response"),
        pytest.param(1, 4, "", id="after-the-role-chunk"),
        pytest.param(2, 1, "Thanks", id="after-the-first-word"),
    ],
)
async def test_llm_retries_a_dropped_connection_until_words_have_arrived(
    server: LoopbackOpenAI, model: openai.LLM, after: int, attempts: int, heard: str
) -> None:
    server.script(say("Thanks for calling."))
    server.inject(Fault.drop(after=after), times=None)

    outcome = await attempt(model)

    assert isinstance(outcome.error, APIConnectionError)
    assert outcome.text == heard
    assert len(server.chat_requests) == attempts
    assert {r.status for r in server.chat_requests} == {200 if after else None}
    assert server.remaining == 1  # a broken answer does not use up the reply


async def test_llm_error_event_midstream_ends_the_turn_with_what_was_said(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.script(say("Thanks for calling."))
    server.inject(Fault.stream_error(after=3), times=None)

    outcome = await attempt(model)

    assert outcome.text == "Thanks for"
    assert isinstance(outcome.error, APIConnectionError)
    assert type(outcome.error.__cause__) is openai_sdk.APIError
    assert len(server.chat_requests) == 1


async def test_llm_html_200_is_an_empty_turn_not_an_error(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.inject(Fault.garbage(), times=None)

    outcome = await attempt(model)

    # the SDK's SSE decoder skips lines that are not SSE fields: no chunk, no error
    assert outcome.text == "" and outcome.error is None
    assert len(server.chat_requests) == 1


async def test_llm_retries_invalid_json_in_the_stream(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.inject(Fault.garbage(b'data: {"id": "chatcmpl-\n\n', "text/event-stream"), times=None)

    outcome = await attempt(model)

    assert isinstance(outcome.error, APIConnectionError)
    assert "JSONDecodeError" in str(outcome.error)
    assert len(server.chat_requests) == 4


async def test_llm_hang_lasts_until_the_connect_options_timeout(
    server: LoopbackOpenAI, model: openai.LLM
) -> None:
    server.inject(Fault.hang())

    outcome = await attempt(model, APIConnectOptions(max_retry=0, timeout=0.3))

    assert isinstance(outcome.error, APITimeoutError)
    assert 0.3 <= outcome.seconds < 1.5  # the LLM plugin's read timeout is conn_options.timeout
    await server.settled(0.05)
    [request] = server.chat_requests
    assert request.client_gave_up and request.status is None


# -- Faults: llm.FallbackAdapter ----------------------------------------------------------

PRIMARY_LLM, FALLBACK_LLM = "gpt-4.1-mini", "gpt-4.1"


@pytest.fixture
async def llms(server: LoopbackOpenAI) -> AsyncIterator[list[openai.LLM]]:
    """The primary and the fallback model, both served by ``server``."""
    models = [
        openai.LLM(model=name, api_key=server.api_key, base_url=server.base_url)
        for name in (PRIMARY_LLM, FALLBACK_LLM)
    ]
    yield models
    for model in models:
        await model.aclose()


def models_asked(server: LoopbackOpenAI) -> Counter[str]:
    return Counter(r.model for r in server.requests)


async def expect_asked(server: LoopbackOpenAI, asked: dict[str, int]) -> None:
    """Each model was asked exactly as often as ``asked`` says, background probes included.

    The adapters probe a failed model in the background, with retries that on a busy
    machine come further apart than ``settled``'s quiet window: wait for the counts first
    (bounded), then for quiet, so a late probe is neither missed nor a miscount."""
    for model, times in asked.items():
        with contextlib.suppress(TimeoutError):  # fewer is the assertion's to report
            await server.wait_for_requests(times, model=model, timeout=10)
    await server.settled()
    assert models_asked(server) == asked


async def test_llm_fallback_answers_while_the_primary_model_500s(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms)
    server.script(say("First."), say("Second."))
    server.fail_model(PRIMARY_LLM, Fault.server_error())

    assert (await attempt(adapter, None)).text == "First."
    # the primary once (max_retry_per_llm=0), a recovery probe of it in the background
    # (a full completion of the same turn), and the fallback
    await expect_asked(server, {PRIMARY_LLM: 2, FALLBACK_LLM: 1})

    assert (await attempt(adapter, None)).text == "Second."
    # while it is down, each turn goes to the fallback and probes the primary again
    await expect_asked(server, {PRIMARY_LLM: 3, FALLBACK_LLM: 2})
    assert {r.status for r in server.requests_for(PRIMARY_LLM)} == {500}


async def test_llm_fallback_returns_to_the_primary_after_a_probe_succeeds(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms)
    server.script(say("From the fallback."))
    outage = server.fail_model(PRIMARY_LLM, Fault.server_error())
    await attempt(adapter, None)
    await server.settled()
    outage.clear()
    # the fallback answers this turn while the probe of the primary, answered too, uses up
    # a scripted reply (which one gets which is a race, so the two are the same)
    server.script(say("Either."), say("Either."), say("Primary again."))

    assert (await attempt(adapter, None)).text == "Either."
    await server.settled()
    assert server.remaining == 1
    assert (await attempt(adapter, None)).text == "Primary again."

    assert server.chat_requests[-1].model == PRIMARY_LLM
    assert models_asked(server) == {PRIMARY_LLM: 4, FALLBACK_LLM: 2}


async def test_llm_fallback_waits_attempt_timeout_on_a_hung_primary(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms, attempt_timeout=0.5)  # the default is 5 s
    server.script(say("Still here."))
    server.fail_model(PRIMARY_LLM, Fault.hang())

    outcome = await attempt(adapter, None)

    assert outcome.text == "Still here." and 0.5 <= outcome.seconds < 1.5
    # the probe hangs for attempt_timeout as well
    await expect_asked(server, {PRIMARY_LLM: 2, FALLBACK_LLM: 1})
    assert all(r.client_gave_up for r in server.requests_for(PRIMARY_LLM))


async def test_llm_fallback_gives_up_rather_than_repeat_words_already_said(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms)
    server.script(say("Thanks for calling."))
    server.fail_model(PRIMARY_LLM, Fault.drop(after=2))

    outcome = await attempt(adapter, None)

    assert outcome.text == "Thanks" and isinstance(outcome.error, APIConnectionError)
    await server.settled()
    assert [r.model for r in server.requests] == [PRIMARY_LLM]  # no fallback, no probe


async def test_llm_fallback_with_retry_on_chunk_sent_says_the_start_twice(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms, retry_on_chunk_sent=True)
    server.script(say("Thanks for calling."))
    server.fail_model(PRIMARY_LLM, Fault.drop(after=2))

    outcome = await attempt(adapter, None)

    assert outcome.text == "ThanksThanks for calling." and outcome.error is None
    await expect_asked(server, {PRIMARY_LLM: 2, FALLBACK_LLM: 1})


async def test_llm_fallback_takes_an_html_200_for_an_empty_answer(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms)
    server.fail_model(PRIMARY_LLM, Fault.garbage())

    outcome = await attempt(adapter, None)

    assert outcome.text == "" and outcome.error is None
    await server.settled()
    assert [r.model for r in server.requests] == [PRIMARY_LLM]


async def test_llm_fallback_reruns_the_chain_under_the_sessions_connect_options(
    server: LoopbackOpenAI, llms: list[openai.LLM]
) -> None:
    adapter = llm.FallbackAdapter(llms)
    server.inject(Fault.server_error(), times=None)
    # AgentSession passes llm_conn_options (3 retries) to the adapter, which then runs
    # its whole chain 4 times; 0.2 s apart so each round's probes are done before the next
    session = dataclasses.replace(DEFAULT_API_CONNECT_OPTIONS, retry_interval=0.2)

    outcome = await attempt(adapter, session)

    assert isinstance(outcome.error, APIConnectionError)
    assert "after 4 attempts" in str(outcome.error)
    await expect_asked(server, {PRIMARY_LLM: 8, FALLBACK_LLM: 8})  # half of them probes


# -- Faults: the TTS plugin and tts.FallbackAdapter ---------------------------------------

PRIMARY_TTS, FALLBACK_TTS = "gpt-4o-mini-tts", "tts-1"
QUICK_TTS_FALLBACK = dataclasses.replace(DEFAULT_FALLBACK_API_CONNECT_OPTIONS, retry_interval=0.01)
"""The adapter's own default (max_retry=0), whose retry_interval (2 s) it hands each TTS."""
HOLD = "Please hold while I transfer you."


async def synthesize(speaker: tts.TTS, conn_options: APIConnectOptions) -> list[np.ndarray]:
    """The frames' samples, one array per frame. Cancelled, it closes the stream (and so
    the request); a stream merely dropped would go on synthesizing in the background."""
    async with speaker.synthesize(HOLD, conn_options=conn_options) as stream:
        return [np.frombuffer(ev.frame.data, dtype=np.int16) async for ev in stream]


def seconds(frames: list[np.ndarray]) -> float:
    return sum(len(f) for f in frames) / SAMPLE_RATE


@pytest.fixture
async def voices(server: LoopbackOpenAI) -> AsyncIterator[list[openai.TTS]]:
    speakers = [make_tts(server, name) for name in (PRIMARY_TTS, FALLBACK_TTS)]
    yield speakers
    for speaker in speakers:
        await speaker.aclose()


@pytest.mark.parametrize(
    ("options", "attempts"), [pytest.param(RETRIES, 4, id="3-retries"), (NO_RETRY, 1)]
)
async def test_tts_500_is_retried_then_raised_as_the_status_error_itself(
    server: LoopbackOpenAI, voices: list[openai.TTS], options: APIConnectOptions, attempts: int
) -> None:
    server.inject(Fault.server_error(), times=None)

    with pytest.raises(APIStatusError) as failed:  # not wrapped, unlike the LLM's and STT's
        await synthesize(voices[0], options)

    assert failed.value.status_code == 500
    assert len(server.speech_requests) == attempts


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.drop(), id="drop"),
        pytest.param(Fault.drop(after=3), id="drop-midway"),
        pytest.param(Fault.garbage(b"data: nope\n\n", "text/event-stream"), id="sse-garbage"),
        pytest.param(Fault.garbage(b"\x00\x01 not mp3", "audio/mpeg"), id="undecodable"),
    ],
)
async def test_tts_retries_a_broken_answer(
    server: LoopbackOpenAI, voices: list[openai.TTS], fault: Fault
) -> None:
    server.inject(fault, times=None)

    with pytest.raises(APIError):
        await synthesize(voices[0], RETRIES)

    assert len(server.speech_requests) == 4


async def test_tts_plays_an_html_200_as_audio(
    server: LoopbackOpenAI, voices: list[openai.TTS]
) -> None:
    server.inject(Fault.garbage())

    frames = await synthesize(voices[0], RETRIES)

    # text/html is not a decodable type, so the plugin assumes the pcm it asked for
    assert np.concatenate(frames).tobytes().startswith(b"<html>")
    assert len(server.speech_requests) == 1


async def test_tts_hang_is_not_cut_by_the_connect_options_timeout(
    server: LoopbackOpenAI, voices: list[openai.TTS]
) -> None:
    server.inject(Fault.hang())

    with pytest.raises(TimeoutError):
        async with asyncio.timeout(1.0):
            await synthesize(voices[0], APIConnectOptions(max_retry=0, timeout=0.2))

    # the plugin reads with httpx.Timeout(30, connect=conn_options.timeout): 30 s of silence
    await server.settled(0.05)
    assert server.speech_requests[0].client_gave_up


async def test_tts_fallback_speaks_with_the_fallback_model_while_the_primary_500s(
    server: LoopbackOpenAI, voices: list[openai.TTS]
) -> None:
    adapter = tts.FallbackAdapter(voices)
    server.fail_model(PRIMARY_TTS, Fault.server_error())

    frames = await synthesize(adapter, QUICK_TTS_FALLBACK)

    assert seconds(frames) == pytest.approx(server.speech_seconds(HOLD), abs=0.02)
    # the primary 3 times (max_retry_per_tts=2), then the fallback; the probe of the
    # primary in the background makes 3 more
    await expect_asked(server, {PRIMARY_TTS: 6, FALLBACK_TTS: 1})
    await adapter.aclose()


async def test_tts_fallback_with_default_options_is_silent_for_two_seconds(
    server: LoopbackOpenAI, voices: list[openai.TTS]
) -> None:
    adapter = tts.FallbackAdapter(voices)
    server.fail_model(PRIMARY_TTS, Fault.server_error())

    started = time.monotonic()
    async with adapter.synthesize(HOLD) as stream:
        await anext(aiter(stream))
        first_audio = time.monotonic() - started

    assert 2.1 <= first_audio < 3.5  # 0.1 s then 2 s between the primary's three attempts
    assert [r.model for r in server.requests[:3]] == [PRIMARY_TTS] * 3
    assert server.requests_for(FALLBACK_TTS)
    await adapter.aclose()


async def test_tts_fallback_keeps_the_primarys_broken_starts_instead_of_switching(
    server: LoopbackOpenAI, voices: list[openai.TTS]
) -> None:
    adapter = tts.FallbackAdapter(voices)
    server.fail_model(PRIMARY_TTS, Fault.drop(after=3))

    frames = await synthesize(adapter, QUICK_TTS_FALLBACK)  # no error

    # each of the primary's 3 attempts got ~0.13 s out before the drop, and all of it was
    # passed on: the caller hears the same start three times, then nothing
    audio = np.concatenate(frames)
    third = len(audio) // 3
    start = np.frombuffer(speech_audio(1.0), dtype=np.int16)[:third]
    assert seconds(frames) == pytest.approx(0.39, abs=0.05)
    assert all(np.array_equal(audio[i * third : (i + 1) * third], start) for i in range(3))
    await server.settled()
    assert [r.model for r in server.requests] == [PRIMARY_TTS] * 3
    await adapter.aclose()


# -- Transcription: the STT plugin without realtime, and stt.FallbackAdapter --------------

PRIMARY_STT, FALLBACK_STT = "gpt-4o-transcribe", "gpt-4o-mini-transcribe"


def make_stt(server: LoopbackOpenAI, model: str = FALLBACK_STT) -> openai.STT:
    return openai.STT(
        model=model, use_realtime=False, api_key=server.api_key, base_url=server.base_url
    )


@pytest.fixture
async def ears(server: LoopbackOpenAI) -> AsyncIterator[list[openai.STT]]:
    listeners = [make_stt(server, name) for name in (PRIMARY_STT, FALLBACK_STT)]
    yield listeners
    for listener in listeners:
        await listener.aclose()


@pytest.fixture(scope="module")
def silero_vad() -> vad.VAD:
    return silero.VAD.load()


async def test_use_realtime_is_off_by_default_for_the_transcribe_models() -> None:
    batch = openai.STT(model="gpt-4o-mini-transcribe", api_key="sk-test")
    realtime_only = openai.STT(model="gpt-realtime-whisper", api_key="sk-test", vad=None)
    try:
        assert not batch.capabilities.streaming  # so it posts files, one per utterance
        assert realtime_only.capabilities.streaming
    finally:
        await batch.aclose()
        await realtime_only.aclose()


async def test_transcription_is_a_wav_upload_answered_with_json(
    server: LoopbackOpenAI, ears: list[openai.STT]
) -> None:
    server.script_transcripts(TRANSCRIPTS["billing"])
    frames = speech("billing")

    event = await ears[1].recognize(frames, conn_options=NO_RETRY)

    assert event.type == stt.SpeechEventType.FINAL_TRANSCRIPT
    [heard] = event.alternatives
    assert heard.text == TRANSCRIPTS["billing"] and heard.language == "en"
    [request] = server.transcription_requests
    assert request.form == {"model": FALLBACK_STT, "language": "en", "response_format": "json"}
    assert (request.file_name, request.file_type) == ("file.wav", "audio/wav")
    assert (request.sample_rate, request.channels) == (8000, 1)
    assert request.audio_seconds == pytest.approx(len(frames) * 0.02)
    assert server.remaining_transcripts == 0 and server.unexpected == []


async def test_whisper_asks_for_verbose_json(server: LoopbackOpenAI) -> None:
    server.script_transcripts(TRANSCRIPTS["yes"])
    whisper = make_stt(server, "whisper-1")
    try:
        event = await whisper.recognize(speech("yes"), conn_options=NO_RETRY)
    finally:
        await whisper.aclose()

    assert event.alternatives[0].text == TRANSCRIPTS["yes"]
    assert event.alternatives[0].language == "en"  # from "language": "english"
    assert server.transcription_requests[0].response_format == "verbose_json"


async def test_unscripted_transcription_fails_and_is_reported(
    server: LoopbackOpenAI, ears: list[openai.STT]
) -> None:
    with pytest.raises(APIStatusError) as failed:
        await ears[1].recognize(speech("yes"), conn_options=NO_RETRY)

    assert failed.value.status_code == 500
    assert "no scripted transcript left" in server.unexpected[0]


async def test_audio_under_a_tenth_of_a_second_is_refused(
    server: LoopbackOpenAI, ears: list[openai.STT]
) -> None:
    server.script_transcripts("unused")

    with pytest.raises(APIStatusError) as refused:
        await ears[1].recognize(speech("yes")[:3], conn_options=RETRIES)  # 60 ms

    assert refused.value.status_code == 400 and not refused.value.retryable
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["code"] == "audio_too_short"
    assert len(server.transcription_requests) == 1


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.server_error(), id="500"),
        pytest.param(Fault.rate_limit(), id="429"),
        pytest.param(Fault.drop(), id="drop"),
        pytest.param(Fault.drop(after=5), id="drop-midway"),
        pytest.param(Fault.garbage(), id="html"),
        pytest.param(Fault.garbage(b'{"text": ', "application/json"), id="bad-json"),
    ],
)
async def test_transcription_faults_are_retried_then_fail_as_a_connection_error(
    server: LoopbackOpenAI, ears: list[openai.STT], fault: Fault
) -> None:
    server.script_transcripts(TRANSCRIPTS["yes"])
    server.inject(fault, times=None)

    with pytest.raises(APIConnectionError) as failed:
        await ears[1].recognize(speech("yes"), conn_options=RETRIES)

    assert "failed to recognize speech after 4 attempts" in str(failed.value)
    assert len(server.transcription_requests) == 4
    assert server.remaining_transcripts == 1


async def test_transcription_500_without_retries_is_the_status_error(
    server: LoopbackOpenAI, ears: list[openai.STT]
) -> None:
    server.inject(Fault.server_error())

    with pytest.raises(APIStatusError) as failed:
        await ears[1].recognize(speech("yes"), conn_options=NO_RETRY)

    assert failed.value.status_code == 500
    assert len(server.transcription_requests) == 1


async def test_stt_fallback_recognize_asks_the_primary_four_times(
    server: LoopbackOpenAI, ears: list[openai.STT], silero_vad: vad.VAD
) -> None:
    adapter = stt.FallbackAdapter(ears, vad=silero_vad)
    server.script_transcripts(TRANSCRIPTS["yes"])
    server.fail_model(PRIMARY_STT, Fault.server_error())

    event = await adapter.recognize(speech("yes"))

    assert event.alternatives[0].text == TRANSCRIPTS["yes"]
    # max_retry_per_stt=1 applies twice, as the adapter wraps each non-streaming STT in a
    # StreamAdapter whose recognize retries the inner recognize: 2 x 2, and 4 more probing
    await expect_asked(server, {PRIMARY_STT: 8, FALLBACK_STT: 1})
    await adapter.aclose()


async def test_stt_fallback_stream_loses_the_utterance_the_primary_failed_on(
    server: LoopbackOpenAI, ears: list[openai.STT], silero_vad: vad.VAD
) -> None:
    adapter = stt.FallbackAdapter(ears, vad=silero_vad)
    server.script_transcripts(TRANSCRIPTS["billing"])
    server.fail_model(PRIMARY_STT, Fault.server_error())
    primary_down = asyncio.Event()
    adapter.on("stt_availability_changed", lambda _: primary_down.set())

    finals: list[str] = []
    async with adapter.stream() as stream:

        async def listen() -> None:
            async for event in stream:
                if event.type == stt.SpeechEventType.FINAL_TRANSCRIPT:
                    finals.append(event.alternatives[0].text)

        listener = asyncio.create_task(listen())
        for frame in silence(0.3) + speech("hello") + silence(1.0):
            stream.push_frame(frame)
        await asyncio.wait_for(primary_down.wait(), 5.0)
        for frame in silence(0.3) + speech("billing") + silence(1.0):
            stream.push_frame(frame)
        stream.end_input()
        await asyncio.wait_for(listener, 10.0)

    # "hello" went to the primary, which failed twice (max_retry_per_stt=1); its audio is
    # not replayed to the fallback, which only hears what comes after the switch
    assert finals == [TRANSCRIPTS["billing"]]
    await expect_asked(server, {PRIMARY_STT: 3, FALLBACK_STT: 1})  # 1: a probe stream
    hello, again, probe = server.requests_for(PRIMARY_STT)
    assert hello.audio_seconds == again.audio_seconds != probe.audio_seconds
    await adapter.aclose()
