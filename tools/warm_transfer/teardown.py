"""Every way out of a warm transfer that is not a handoff, in one order: a goodbye to the
person if they were being consulted when the time ran out, their leg ended, the consult
session closed, the agent's tracks audible to all again, off hold, listening again. The
caller is then told what happened (tool.py), so they never wait in silence."""

from __future__ import annotations

import asyncio
import logging

from livekit.agents import AgentSession

from config import Destination
from lifecycle import CallLifecycle
from prompts import Words
from tools.playout import resume_listening
from tools.warm_transfer.consult_session import ConsultSession
from tools.warm_transfer.hearing import Hearing
from tools.warm_transfer.hold import OnHold
from tools.warm_transfer.presence import Presence

logger = logging.getLogger("phone-assistant.warm-transfer")

# A goodbye to the person consulted, when the caller's time on hold runs out, is cut
# short after this long.
FAREWELL_TIMEOUT_S = 8.0


async def goodbye_to_consulted(
    consult: ConsultSession | None,
    words: Words,
    destination: Destination,
    presence: Presence,
    about: dict[str, str],
) -> None:
    """The person was being briefed or asked when the time ran out: they hear that the
    caller will be told, rather than a line going dead."""
    if consult is None or not consult.briefing or consult.decided.done():
        return
    consult.decide_nothing()
    text = words.warm("consult_no_answer", destination, **about)
    try:
        async with asyncio.timeout(FAREWELL_TIMEOUT_S):
            await consult.say(text, *presence.departures)
    except TimeoutError:
        logger.warning("the goodbye to %s did not play out in time", consult.identity)


async def wind_down(
    *,
    lifecycle: CallLifecycle,
    session: AgentSession,
    hold: OnHold,
    leg: str | None,
    consult: ConsultSession | None,
    hearing: Hearing | None,
) -> None:
    """``leg``: the answered leg still in the room, if any (a leg that failed to answer
    was ended by the dialer)."""
    if leg is not None:
        await lifecycle.end_leg(leg)
    if consult is not None:
        await consult.close()
    if hearing is not None:
        hearing.release()
    await hold.end()
    resume_listening(session)
