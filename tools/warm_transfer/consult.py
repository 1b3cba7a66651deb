"""The consult: the person who answered is told, privately, who is calling (the name they
gave, else the last digits of their number), why, and a short summary, in the
destination's language; they may ask questions, answered from the caller's conversation,
and they take the call or decline it by saying so or on their keypad (1 / 2).

The caller hears none of it (hearing.py). Whatever the person says when declining is
never repeated to the caller: the caller hears a fixed sentence, the LLM only the
typed outcome.
"""

from __future__ import annotations

import asyncio

from livekit.agents import AgentSession, llm

from config import Destination
from prompts import Words
from tools.warm_transfer.briefing import summarize
from tools.warm_transfer.consult_session import ConsultSession, Decision
from tools.warm_transfer.endings import Ending, NotTaken
from tools.warm_transfer.presence import CallerLeft, Presence
from waits import until


async def consult(
    consult: ConsultSession,
    presence: Presence,
    words: Words,
    destination: Destination,
    about: dict[str, str],
    main: AgentSession,
) -> None:
    """Brief the person and wait for their answer; returns once they take the call.
    ``words`` are in their language, ``main`` is the agent's session with the caller
    (its LLM writes the summary of its conversation). Raises NotTaken (declined, or no
    answer in time, after a goodbye to them), CallerLeft / SupervisorLeft, or
    NotReached when the consult session closes under it."""
    consult.briefing = True
    consult.listen_for_keys()  # a "1" during the briefing counts
    consult.forget_greeting()
    model = main.llm if isinstance(main.llm, llm.LLM) else None
    summary = asyncio.create_task(summarize(model, main.history, words, destination, about))
    stops = (*presence.departures, consult.closed, consult.decision_made)
    try:
        opening = words.warm("introduction", destination, **about)
        if await _say(consult, presence, opening) and await until(asyncio.shield(summary), *stops):
            # from here on they may answer, even over the end of the question
            consult.open_for_questions(destination.consult_timeout)
            question = words.warm("consult_question", destination, **about)
            await _say(consult, presence, f"{summary.result()} {question}", interruptible=True)
    finally:
        summary.cancel()
    if not consult.decided.done() and not consult.questions_open:
        consult.open_for_questions(destination.consult_timeout)
    if not await until(asyncio.shield(consult.decided), *presence.departures, consult.closed):
        consult.raise_stop(presence)

    decision = consult.decided.result()
    if decision is Decision.ACCEPTED:
        accepted = words.warm("consult_accepted", destination, **about)
        if not await consult.say(accepted, *presence.departures):
            consult.raise_stop(presence)
        return
    declined = decision is Decision.DECLINED
    farewell = "consult_declined" if declined else "consult_no_answer"
    await consult.say(words.warm(farewell, destination, **about), presence.caller_left)
    if presence.caller_left.is_set():
        raise CallerLeft
    if declined:
        raise NotTaken(Ending.PERSON_DECLINED, f"{consult.identity} declined")
    raise NotTaken(
        Ending.CONSULT_TIMEOUT,
        f"{consult.identity} said neither yes nor no within consult_timeout "
        f"({destination.consult_timeout:g} s)",
    )


async def _say(
    consult: ConsultSession, presence: Presence, text: str, *, interruptible: bool = False
) -> bool:
    """Part of the briefing; False when the person decided meanwhile (the rest is
    skipped); raises when either hangs up."""
    stops = (*presence.departures, consult.decision_made)
    if await consult.say(text, *stops, interruptible=interruptible):
        return True
    if consult.decision_made.is_set():
        return False
    consult.raise_stop(presence)
    return False
