"""Say something the caller must hear in full before the call changes hands."""

from __future__ import annotations

import asyncio
import contextlib

from livekit import rtc
from livekit.agents import AgentSession


async def say_in_full(session: AgentSession, text: str, *, room: rtc.Room, caller: str) -> bool:
    """Speak ``text`` uninterruptibly and wait until it has fully played out.

    Background noise on a phone line must not cut a transfer notice short, so the
    speech is not interruptible. A hang-up still ends it: returns False when the caller
    (participant identity ``caller``) left before the end, so nothing is done for a
    caller who is no longer there.
    """
    handle = session.say(text, allow_interruptions=False)
    hung_up = asyncio.Event()

    def on_disconnected(participant: rtc.RemoteParticipant) -> None:
        if participant.identity == caller:
            hung_up.set()

    room.on("participant_disconnected", on_disconnected)
    played = asyncio.ensure_future(handle.wait_for_playout())
    gone = asyncio.ensure_future(hung_up.wait())
    try:
        if caller not in room.remote_participants:
            hung_up.set()
        await asyncio.wait({played, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        room.off("participant_disconnected", on_disconnected)
        for waiter in (played, gone):
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter

    if hung_up.is_set():
        handle.interrupt(force=True)
        return False
    return not handle.interrupted
