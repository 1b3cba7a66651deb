"""Connect: the person took the call. Hold ends, the consult session closes, the caller
and the person hear each other (hearing.py), the agent says one short line to both, in
the caller's language, and steps out: its session closes and the call's lifecycle
watches the two of them from then on."""

from __future__ import annotations

import logging

from livekit.agents import AgentSession

from config import Destination
from lifecycle import CallLifecycle
from prompts import Words
from tools.warm_transfer.consult_session import ConsultSession
from tools.warm_transfer.hearing import Hearing
from tools.warm_transfer.hold import OnHold
from tools.warm_transfer.introduce import SessionClosing, say_to_both
from tools.warm_transfer.presence import Presence

logger = logging.getLogger("phone-assistant.warm-transfer")


async def connect(
    session: AgentSession,
    consult: ConsultSession,
    hearing: Hearing,
    hold: OnHold,
    presence: Presence,
    words: Words,
    destination: Destination,
) -> None:
    """Raises CallerLeft / SupervisorLeft when either hangs up during the line."""
    await hold.end()
    await consult.close()
    await hearing.connect()
    try:
        await say_to_both(session, words.warm("connected", destination), presence)
    except SessionClosing:
        logger.warning(
            "warm transfer to %s: the agent's session is closing; connected without a word",
            destination.key,
        )


def step_out(
    session: AgentSession, lifecycle: CallLifecycle, supervisor: str, destination: Destination
) -> None:
    """The agent's part is over: the lifecycle watches the two of them from now on and
    the session closes at once (no speech-to-text stream, no model, nothing said after
    the handoff, not even a reply to another tool of this turn)."""
    lifecycle.connected(supervisor, destination.key)
    session.output.set_audio_enabled(False)
    session.shutdown(drain=False)
