"""What a failed transfer means, for the caller, for the LLM and for whoever reads the log.

Shared by cold and warm transfer. We branch on the SIP status in the error's metadata,
never on the Twirp code: LiveKit has mapped the same SIP status to different Twirp codes
in different server versions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

import aiohttp
from google.protobuf.message import DecodeError
from livekit import api


class Outcome(StrEnum):
    """Moments the caller hears about; each is a section of prompts/transfer.md."""

    REFUSED = "refused"  # the trunk would not transfer (REFER not allowed / not enabled)
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    UNREACHABLE = "unreachable"  # the address does not exist: a configuration problem
    FAILED = "failed"  # anything else, including an unknown outcome (timeout)


_BY_SIP_CODE: dict[int, Outcome] = {
    403: Outcome.REFUSED,
    405: Outcome.REFUSED,
    501: Outcome.REFUSED,
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    408: Outcome.NO_ANSWER,
    480: Outcome.NO_ANSWER,
    487: Outcome.NO_ANSWER,
    603: Outcome.DECLINED,
    404: Outcome.UNREACHABLE,
    410: Outcome.UNREACHABLE,
    484: Outcome.UNREACHABLE,
    604: Outcome.UNREACHABLE,
}
_BY_TRANSFER_REASON: dict[str, Outcome] = {
    "STR_RINGING_TIMEOUT": Outcome.NO_ANSWER,
    "STR_REJECTED": Outcome.DECLINED,
}

_ADVICE: dict[Outcome, str] = {
    Outcome.REFUSED: (
        "the SIP trunk refused to transfer the call: enable call transfer (SIP REFER), and "
        "PSTN transfer for phone numbers, on the provider's trunk (Twilio: Elastic SIP "
        "trunk > Features > Call Transfer). Some trunks accept only tel: targets, not sip: URIs"
    ),
    Outcome.BUSY: "the destination was busy",
    Outcome.NO_ANSWER: "nobody answered at the destination",
    Outcome.DECLINED: "the destination declined the call",
    Outcome.UNREACHABLE: (
        "configuration problem: the destination address does not exist or is incomplete; "
        "check its 'to' in assistant.toml"
    ),
}


@dataclass(frozen=True, slots=True)
class Failure:
    outcome: Outcome
    detail: str  # what happened, for the log and the LLM: "SIP 486 Busy Here"
    advice: str  # what a developer should do about it
    outcome_known: bool = True  # False after a timeout: the transfer may have happened
    sip_status: int | None = None  # the final SIP status, when the SIP side gave one

    @property
    def is_configuration_problem(self) -> bool:
        return self.outcome in (Outcome.UNREACHABLE, Outcome.REFUSED)


def from_sip_status(code: int | None, status: str | None, reason: str | None = None) -> Failure:
    outcome = _BY_SIP_CODE.get(code or 0) or _BY_TRANSFER_REASON.get(reason or "", Outcome.FAILED)
    parts = [f"SIP {code} {status or ''}".strip() if code else "", reason or ""]
    detail = ", ".join(p for p in parts if p) or "the transfer failed"
    advice = _ADVICE.get(outcome, "the provider ended the call attempt with this status")
    return Failure(outcome, detail, advice, sip_status=code or None)


def classify(error: BaseException) -> Failure:
    """Any exception a transfer request can raise, as a Failure.

    An error that may have come after the server acted is an unknown outcome, not a
    failure: an HTTP 5xx without a SIP status (a proxy timing out while the phone rings
    answers 504), an answer that cannot be decoded, a dropped connection, a timeout. The
    call may have been transferred, or the dialed phone may be ringing."""
    if isinstance(error, api.SipCallError):
        return from_sip_status(error.sip_status_code, error.sip_status, error.sip_transfer_reason)
    if isinstance(error, api.TwirpError):
        detail = f"LiveKit API error {error.code} (HTTP {error.status}): {error.message}"
        if error.status >= 500:
            return _unknown(detail)
        if error.status == 401 or error.code == "unauthenticated":
            advice = "LiveKit rejected the credentials: check LIVEKIT_API_KEY / LIVEKIT_API_SECRET"
        elif error.code == "permission_denied":
            advice = "the API key lacks the grants SIP calls need (sip.call and room admin)"
        elif error.code == "not_found":
            advice = "LiveKit does not know the room, participant or trunk named in the request"
        else:
            advice = "the LiveKit server refused the request"
        return Failure(Outcome.FAILED, detail, advice)
    if isinstance(error, asyncio.TimeoutError | TimeoutError):
        return _unknown("no answer from the LiveKit server in time")
    if isinstance(error, DecodeError):
        return _unknown(f"the LiveKit server's answer could not be decoded ({error})")
    if isinstance(error, aiohttp.ClientConnectorError):
        # the request never reached the server: nothing happened
        return Failure(
            Outcome.FAILED,
            f"could not reach the LiveKit server: {error}",
            "check LIVEKIT_URL and that the server is reachable from the worker",
        )
    if isinstance(error, aiohttp.ClientError):
        return _unknown(f"the connection to the LiveKit server broke: {type(error).__name__}")
    return Failure(Outcome.FAILED, f"{type(error).__name__}: {error}", "unexpected error")


def _unknown(detail: str) -> Failure:
    return Failure(
        Outcome.FAILED,
        detail,
        "the outcome is unknown (the request may have been carried out), so it is not "
        "retried automatically; check the LiveKit server and SIP service logs",
        outcome_known=False,
    )
