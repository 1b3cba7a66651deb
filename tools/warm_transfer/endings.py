"""The ways a warm transfer ends without handing the caller over, once someone (or some
machine) has answered: each is a section of warm_transfer.md the caller hears, a record
of the attempt, and what the LLM is told. Failures before the answer (busy, no answer, a
declined or failed dial) are tools/outcomes.py's; a hang-up is presence.py's."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from records import AttemptOutcome


class Ending(StrEnum):
    """Its value is the section of warm_transfer.md the caller hears."""

    VOICEMAIL = "voicemail"  # a voicemail greeting answered
    IVR = "ivr"  # an automated menu ("press 1 for...") answered
    MAILBOX_FULL = "mailbox_full"  # a machine that takes no message (full, not set up)
    NO_GREETING = "no_greeting"  # answered, and nobody said anything
    PERSON_DECLINED = "person_declined"  # the person said no, or pressed 2
    CONSULT_TIMEOUT = "consult_timeout"  # the person did not say yes or no in time
    TRANSFER_TIMEOUT = "transfer_timeout"  # the caller's whole wait reached its limit


@dataclass(frozen=True)
class _Meaning:
    attempt: AttemptOutcome
    told: str  # what happened, for the LLM (it must not guess more than this)


_MEANINGS: dict[Ending, _Meaning] = {
    Ending.VOICEMAIL: _Meaning(
        AttemptOutcome.VOICEMAIL,
        "their voicemail answered, not a person (you cannot leave a voicemail there)",
    ),
    Ending.IVR: _Meaning(
        AttemptOutcome.VOICEMAIL, "an automated phone menu answered, not a person"
    ),
    Ending.MAILBOX_FULL: _Meaning(
        AttemptOutcome.VOICEMAIL,
        "a machine answered that takes no messages (mailbox full or not set up)",
    ),
    Ending.NO_GREETING: _Meaning(
        AttemptOutcome.NO_ANSWER, "the call was answered but nobody said anything"
    ),
    Ending.PERSON_DECLINED: _Meaning(
        AttemptOutcome.DECLINED,
        "the person who answered could not take the call now (do not guess or repeat "
        "their reasons; you were not told them)",
    ),
    Ending.CONSULT_TIMEOUT: _Meaning(
        AttemptOutcome.NO_ANSWER,
        "the person who answered did not say whether they could take the call in time",
    ),
    Ending.TRANSFER_TIMEOUT: _Meaning(
        AttemptOutcome.NO_ANSWER, "it took longer than the time a caller is kept on hold"
    ),
}


class NotTaken(Exception):
    """Someone or something answered, and the caller is not handed over: the leg is
    ended and the caller comes back to the agent, off hold."""

    def __init__(self, ending: Ending, detail: str) -> None:
        super().__init__(detail)
        self.ending = ending
        self.detail = detail  # for the log and the call's record

    @property
    def attempt(self) -> AttemptOutcome:
        return _MEANINGS[self.ending].attempt

    @property
    def told(self) -> str:
        return _MEANINGS[self.ending].told
