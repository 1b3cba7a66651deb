"""What the person a warm transfer reaches is told about the caller: who is calling (the
name they gave, else the last digits of their number), why, and a short summary of the
conversation so far, in the person's language.

The summary is written by the call's own LLM; a slow or failing model gives way to a
plain sentence, since the person who answered is listening meanwhile. The conversation
is handed to the model as a message to summarize, never as its instructions: it holds
what the caller said.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import APIConnectOptions, llm

from caller import Caller
from config import Destination
from prompts import Words

logger = logging.getLogger("phone-assistant.warm-transfer")

# The person who answered is listening meanwhile: past this, a plain sentence instead.
SUMMARY_TIMEOUT_S = 6.0


def about_caller(
    caller: Caller, name: str, reason: str, words: Words, destination: Destination
) -> dict[str, str]:
    """The ``caller`` and ``reason`` placeholders of warm_transfer.md."""
    return {"caller": name or _spoken(caller, words, destination), "reason": reason}


def _spoken(caller: Caller, words: Words, destination: Destination) -> str:
    """The caller as the person answering hears them named when they gave no name: the
    last digits of their number, spoken digit by digit, never the whole number."""
    digits = [c for c in caller.phone_number or "" if c.isascii() and c.isdigit()]
    if len(digits) < 4:
        return words.warm("caller_hidden", destination)
    return words.warm("caller_number", destination, digits=" ".join(digits[-4:]))


async def summarize(
    model: llm.LLM | None,
    history: llm.ChatContext,
    words: Words,
    destination: Destination,
    about: dict[str, str],
) -> str:
    """A spoken summary of the conversation so far, from the call's LLM, guided by
    warm_transfer.md in the answering person's language; a plain sentence when that is
    not possible."""
    fallback = words.warm("summary_fallback", destination, **about)
    text = transcript(history)
    if model is None or not text:
        return fallback
    chat_ctx = llm.ChatContext.empty()
    chat_ctx.add_message(role="system", content=words.warm("summary", destination, **about))
    chat_ctx.add_message(role="user", content=text)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_S):
            stream = model.chat(
                chat_ctx=chat_ctx,
                conn_options=APIConnectOptions(max_retry=0, timeout=SUMMARY_TIMEOUT_S),
            )
            said = (await stream.collect()).text.strip()
    except Exception as error:
        logger.warning("could not summarize the call for the person answering: %r", error)
        return fallback
    return said or fallback


def transcript(history: llm.ChatContext) -> str:
    """The conversation with the caller as plain lines, "Caller: ..." / "You: ..."."""
    lines = []
    for message in history.messages():
        if message.role in ("user", "assistant") and message.text_content:
            who = "Caller" if message.role == "user" else "You"
            lines.append(f"{who}: {message.text_content}")
    return "\n".join(lines)
