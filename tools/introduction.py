"""The warm transfer's introduction: who is calling, why, and a summary, said to both.

The summary is written by the session's own LLM while the first sentence plays, so the
person who answered does not wait in silence; a slow or failing model gives way to a plain
sentence. Every sentence stops at once when either side hangs up.
"""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import AgentSession, APIConnectOptions, llm

from caller import Caller
from config import Destination
from prompts import Words
from tools.presence import Presence
from waits import until

logger = logging.getLogger("phone-assistant.warm-transfer")

# The person who answered is listening meanwhile: past this, a plain sentence instead.
SUMMARY_TIMEOUT_S = 6.0


class SessionClosing(Exception):
    """The agent's session is closing and cannot speak: the two are connected without
    an introduction rather than not at all."""


async def introduce(
    session: AgentSession,
    presence: Presence,
    words: Words,
    destination: Destination,
    *,
    caller: Caller,
    reason: str,
    name: str,
) -> None:
    """``words`` are in the language of the person who answered. Raises CallerLeft /
    SupervisorLeft when either hangs up, SessionClosing when the session can no longer
    speak."""
    about = {"caller": name or _spoken(caller, words, destination), "reason": reason}
    summary = asyncio.create_task(_summary(session, words, destination, about))
    try:
        opening = words.warm("introduction", destination, **about)
        await _say_to_both(session, opening, presence)
        if not await until(asyncio.shield(summary), *presence.departures):
            presence.raise_departure()
        handoff = words.warm("handoff", destination, **about)
        await _say_to_both(session, f"{summary.result()} {handoff}", presence)
    finally:
        summary.cancel()


async def _say_to_both(session: AgentSession, text: str, presence: Presence) -> None:
    """Speak uninterruptibly until played out; stop at once if either side hangs up."""
    try:
        handle = session.say(text, allow_interruptions=False)
    except RuntimeError as error:
        raise SessionClosing from error
    if not await until(handle.wait_for_playout(), *presence.departures):
        handle.interrupt(force=True)
        presence.raise_departure()


def _spoken(caller: Caller, words: Words, destination: Destination) -> str:
    """The caller as the introduction names them when they gave no name: the last digits
    of their number, spoken digit by digit, never the whole number."""
    digits = [c for c in caller.phone_number or "" if c.isascii() and c.isdigit()]
    if len(digits) < 4:
        return words.warm("caller_hidden", destination)
    return words.warm("caller_number", destination, digits=" ".join(digits[-4:]))


async def _summary(
    session: AgentSession, words: Words, destination: Destination, about: dict[str, str]
) -> str:
    """A spoken summary of the conversation so far, from the session's own LLM, guided by
    warm_transfer.md in the answering person's language; a plain sentence when that is
    not possible."""
    fallback = words.warm("summary_fallback", destination, **about)
    model = session.llm
    transcript = _transcript(session.history)
    if not isinstance(model, llm.LLM) or not transcript:
        return fallback
    chat_ctx = llm.ChatContext.empty()
    chat_ctx.add_message(role="system", content=words.warm("summary", destination, **about))
    chat_ctx.add_message(role="user", content=transcript)
    try:
        async with asyncio.timeout(SUMMARY_TIMEOUT_S):
            stream = model.chat(
                chat_ctx=chat_ctx,
                conn_options=APIConnectOptions(max_retry=0, timeout=SUMMARY_TIMEOUT_S),
            )
            text = (await stream.collect()).text.strip()
    except Exception as error:
        logger.warning("could not summarize the call for the introduction: %r", error)
        return fallback
    return text or fallback


def _transcript(history: llm.ChatContext) -> str:
    lines = []
    for message in history.messages():
        if message.role in ("user", "assistant") and message.text_content:
            who = "Caller" if message.role == "user" else "You"
            lines.append(f"{who}: {message.text_content}")
    return "\n".join(lines)
