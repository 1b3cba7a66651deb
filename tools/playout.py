"""What the caller hears, and whether the agent hears them, while a call changes hands."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from livekit.agents import AgentSession
from livekit.agents.voice import SpeechHandle

from waits import until

logger = logging.getLogger("phone-assistant.playout")


async def say_in_full(session: AgentSession, text: str, *, caller_left: asyncio.Event) -> bool:
    """Speak ``text`` uninterruptibly and wait until it has fully played out.

    Background noise on a phone line must not cut a transfer notice short, so the
    speech is not interruptible. A hang-up still ends it: returns False when the caller
    left before the end, so nothing is done for a caller who is no longer there, and
    when the session is closing and cannot speak (what comes next is the lifecycle's).
    """
    try:
        handle = session.say(text, allow_interruptions=False)
    except RuntimeError:
        return False
    if not await until(handle.wait_for_playout(), caller_left):
        handle.interrupt(force=True)
        return False
    return not handle.interrupted


def stop_listening(session: AgentSession) -> None:
    """While a call changes hands the agent must not hear the caller: a detached audio
    input forwards no frames, so no speech-to-text, no new turn, no reply talking over a
    transfer; a half-heard sentence is dropped."""
    if session.input.audio is not None:
        session.input.set_audio_enabled(False)
    with contextlib.suppress(RuntimeError):
        session.clear_user_turn()


def resume_listening(session: AgentSession) -> None:
    """Listening again after a transfer failed; safe to call more than once, and after
    the session closed."""
    if session.input.audio is not None and not session.input.audio_enabled:
        session.input.set_audio_enabled(True)


def say_if_open(session: AgentSession, text: str) -> SpeechHandle | None:
    """``session.say``, or None when the session is closing and can say nothing more:
    whatever comes next (a rescue, the end of the call) is then the lifecycle's."""
    try:
        return session.say(text)
    except RuntimeError:
        logger.warning("the agent session is closing: could not say %r", text[:60])
        return None
