"""The direct introduction (``warm_mode = "introduce"``): the moment the person's line
answers, the agent tells both who is calling, why, and a summary, then steps out.

The summary is written while the first sentence plays, so the person who answered does
not wait in silence. Every sentence stops at once when either side hangs up.
"""

from __future__ import annotations

import asyncio

from livekit.agents import AgentSession, llm

from caller import Caller
from config import Destination
from prompts import Words
from tools.warm_transfer.briefing import about_caller, summarize
from tools.warm_transfer.presence import Presence
from waits import until


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
    about = about_caller(caller, name, reason, words, destination)
    model = session.llm if isinstance(session.llm, llm.LLM) else None
    summary = asyncio.create_task(summarize(model, session.history, words, destination, about))
    try:
        opening = words.warm("introduction", destination, **about)
        await say_to_both(session, opening, presence)
        if not await until(asyncio.shield(summary), *presence.departures):
            presence.raise_departure()
        handoff = words.warm("handoff", destination, **about)
        await say_to_both(session, f"{summary.result()} {handoff}", presence)
    finally:
        summary.cancel()


async def say_to_both(session: AgentSession, text: str, presence: Presence) -> None:
    """Speak uninterruptibly until played out; stop at once if either side hangs up."""
    try:
        handle = session.say(text, allow_interruptions=False)
    except RuntimeError as error:
        raise SessionClosing from error
    if not await until(handle.wait_for_playout(), *presence.departures):
        handle.interrupt(force=True)
        presence.raise_departure()
