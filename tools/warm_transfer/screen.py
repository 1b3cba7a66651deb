"""Screening: is it a person who answered? The framework's answering-machine detection
decides, on the consult session (consult_session.py), before anyone says a word to them.

  a person                  -> the consult
  a voicemail greeting      -> ended: VOICEMAIL
  an automated menu (IVR)   -> ended: IVR (the agent navigates none)
  a mailbox that is full    -> ended: MAILBOX_FULL
  nothing said at all       -> ended: NO_GREETING (AMD's no-speech timeout)
  anything else uncertain   -> a person who has not spoken yet: asked once who they are
                               ("Hello, is this the billing team?"), then the consult

The dialed leg hears nothing meanwhile (hearing.py): a machine that answered never heard
the caller or the agent.
"""

from __future__ import annotations

import logging
from enum import Enum

from livekit.agents.voice.amd import AMDCategory, AMDPredictionEvent
from livekit.agents.voice.amd.detector import DetectionOptions

from config import Destination
from prompts import Words
from tools.outcomes import Failure, Outcome
from tools.warm_transfer.consult_session import ConsultSession
from tools.warm_transfer.endings import Ending, NotTaken
from tools.warm_transfer.presence import NotReached, Presence
from waits import until

logger = logging.getLogger("phone-assistant.warm-transfer")

# AMD's own defaults (10 s of silence is "nobody spoke", 20 s in all); tests shorten them.
DETECTION: DetectionOptions = {}
# After "Hello, is this the billing team?", the briefing starts when they answer or
# after this long.
REPLY_WAIT_S = 6.0

_MACHINES = {
    AMDCategory.MACHINE_VM: Ending.VOICEMAIL,
    AMDCategory.MACHINE_IVR: Ending.IVR,
    AMDCategory.MACHINE_UNAVAILABLE: Ending.MAILBOX_FULL,
}


class Verdict(Enum):
    PERSON = "a person"
    ASK_FIRST = "probably a person, not heard clearly"


async def screen(consult: ConsultSession, presence: Presence) -> Verdict:
    """AMD's verdict on the answered leg. Raises NotTaken for a machine or silence,
    CallerLeft / SupervisorLeft when either hangs up, NotReached when nothing could be
    heard of the leg."""
    found: list[AMDPredictionEvent] = []

    async def verdict() -> None:
        found.append(await consult.verdict())

    try:
        heard = await until(verdict(), *presence.departures)
    except RuntimeError as error:  # AMD closed before a verdict: the session went away
        consult.raise_stop(presence)
        raise NotReached(_unheard(f"the answering-machine detection stopped: {error}")) from error
    if not heard:
        presence.raise_departure()
    (prediction,) = found
    what = f"AMD: {prediction.category.value} ({prediction.reason})"
    logger.info(
        "warm transfer: %s answered; %s after %.1f s of speech",
        consult.identity,
        what,
        prediction.speech_duration,
    )
    if prediction.category in _MACHINES:
        raise NotTaken(_MACHINES[prediction.category], what)
    if prediction.is_human:
        return Verdict.PERSON
    if prediction.reason == "no_speech_timeout":
        raise NotTaken(Ending.NO_GREETING, what)
    if prediction.reason == "participant_missing":
        presence.raise_departure()
        raise NotReached(_unheard(f"{what}: its audio never reached the agent"))
    return Verdict.ASK_FIRST


async def ask_once(
    consult: ConsultSession, words: Words, destination: Destination, presence: Presence
) -> None:
    """The answer was not clearly a person: ask who it is once, and listen for the
    reply (briefly); whatever comes, they are then treated as a person."""
    consult.turn_heard.clear()
    if not await consult.say(words.warm("screen_question", destination), *presence.departures):
        consult.raise_stop(presence)
    stops = (*presence.departures, consult.closed)
    await until(consult.turn_heard.wait(), *stops, timeout=REPLY_WAIT_S)
    consult.raise_stop(presence)


def _unheard(detail: str) -> Failure:
    return Failure(
        Outcome.FAILED,
        detail,
        "the agent could not listen to the answered leg: check that the SIP participant "
        "publishes audio and the agent subscribes to it",
    )
