"""Dialing the person a warm transfer goes to, into the caller's own room.

One CreateSIPParticipant per attempt, never replayed (server_api.py), waiting for the
answer. The caller's own number is presented so the person answering sees who calls; if
the provider refuses it (SIP 403), one more attempt presents the configured fallback
number. An answer whose outcome is unknown (a 5xx from a proxy, an unreadable reply, a
dropped connection, a timeout) may mean the phone is still ringing or was just picked up:
that leg is ended, and removed again if it shows up later, rather than left to listen in.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable

from google.protobuf.duration_pb2 import Duration
from livekit import api

from caller import Caller, mask_number
from config import Destination, Settings
from lifecycle import CallLifecycle
from tools.destinations import masked_address
from tools.outcomes import Failure, Outcome, classify
from tools.warm_transfer.presence import CallerLeft, NotReached, Presence, SupervisorLeft
from waits import until

logger = logging.getLogger("phone-assistant.warm-transfer")

# How long an answered leg may take to show up in the room. LiveKit adds a SIP
# participant when it starts dialing, so this is only a safety net.
JOIN_TIMEOUT_S = 5.0


class Dialer:
    """Places the calls of one caller's warm transfers; attempts are numbered per call so
    every leg has an identity of its own."""

    def __init__(self, settings: Settings, caller: Caller, lifecycle: CallLifecycle) -> None:
        self._settings = settings
        self._caller = caller
        self._lifecycle = lifecycle
        self._attempts = itertools.count(1)

    def request(
        self, room_name: str, destination: Destination, identity: str, number: str
    ) -> api.CreateSIPParticipantRequest:
        return api.CreateSIPParticipantRequest(
            sip_trunk_id=self._settings.transfer.outbound_trunk_id or "",
            sip_call_to=destination.to,
            sip_number=number,
            room_name=room_name,
            participant_identity=identity,
            participant_name=destination.name,
            wait_until_answered=True,
            ringing_timeout=Duration(seconds=round(destination.ringing_timeout)),
            # the caller hears hold music while it rings, not a dial tone
            play_dialtone=False,
            krisp_enabled=self._settings.transfer.krisp,
            dtmf=destination.extension or "",
            headers=dict(destination.headers),
        )

    async def reach(
        self,
        destination: Destination,
        presence: Presence,
        prepare: Callable[[str], Awaitable[None]] | None = None,
    ) -> str:
        """Dial until someone answers; returns the identity of their participant. Raises
        NotReached, or CallerLeft when the caller hangs up meanwhile (the ringing leg is
        ended then, as when the wait is cancelled). ``prepare(identity)`` runs before
        each attempt is sent, while nobody of that identity is in the room yet."""
        server = self._lifecycle.server
        assert server is not None, "dialing needs a LiveKit server"
        tries = self._caller_ids()
        for attempt, (number, why) in enumerate(tries, start=1):
            identity = f"supervisor-{destination.key}-{next(self._attempts)}"
            request = self.request(server.room_name, destination, identity, number)
            presence.expect(identity)
            if prepare is not None:
                await prepare(identity)
            self._lifecycle.dialing(identity)
            logger.info(
                "warm transfer to %s: sending %s, presenting %s (one request, never replayed)",
                destination.key,
                describe(request, destination),
                why,
            )
            try:
                answered = await until(server.dial(request), presence.caller_left)
            except asyncio.CancelledError:  # the transfer's time limit: it may still ring
                await self._lifecycle.end_leg(identity)
                raise
            except Exception as error:
                failure = warm_failure(error)
                if failure.outcome_known:
                    self._lifecycle.leg_gone(identity)
                else:  # it may still be ringing, or answered: end it rather than leave it
                    await self._lifecycle.end_leg(identity)
                if _refused_caller_id(error) and attempt < len(tries):
                    logger.warning(
                        "warm transfer to %s: the provider refused the caller's number %s as "
                        "caller ID (%s); retrying once from the fallback caller ID %s. To "
                        "show callers' own numbers, allow caller-ID passthrough on outbound "
                        "trunk %s",
                        destination.key,
                        mask_number(number),
                        failure.detail,
                        mask_number(tries[attempt][0]),
                        request.sip_trunk_id,
                    )
                    continue
                raise NotReached(failure) from error
            if not answered:  # the caller hung up while it rang
                await self._lifecycle.end_leg(identity)
                raise CallerLeft
            try:
                await self._joined(presence, identity)
            except NotReached:
                await self._lifecycle.end_leg(identity)
                raise
            logger.info("warm transfer to %s: %s answered", destination.key, identity)
            return identity
        raise AssertionError("unreachable: the last try either returns or raises")

    def _caller_ids(self) -> list[tuple[str, str]]:
        """Caller IDs to try, in order, each with why: the caller's own number (the person
        answering sees who calls), else or after a refusal the configured fallback."""
        own = self._caller.caller_id
        fallback = self._settings.transfer.fallback_caller_id
        if own:
            tries = [(own, "the caller's number")]
            if fallback and fallback != own:
                tries.append((fallback, "the fallback caller ID"))
            return tries
        if fallback:
            return [(fallback, "the fallback caller ID: the caller's number is hidden")]
        return [("", "the trunk's own number: the caller's number is hidden")]

    async def _joined(self, presence: Presence, identity: str) -> None:
        """LiveKit reports an answer when the call connects; the participant is normally in
        the room already. Returns once it is; raises if either side left meanwhile."""
        if not presence.supervisor_joined.is_set() and not presence.supervisor_left.is_set():
            with contextlib.suppress(TimeoutError):
                await until(
                    presence.supervisor_joined.wait(),
                    *presence.departures,
                    timeout=JOIN_TIMEOUT_S,
                )
        if presence.caller_left.is_set():
            raise CallerLeft
        if presence.supervisor_left.is_set():
            raise SupervisorLeft
        if not presence.supervisor_joined.is_set():
            raise NotReached(
                Failure(
                    Outcome.FAILED,
                    f"the call was answered but {identity} never joined the room",
                    f"check the LiveKit SIP service logs for {identity}",
                )
            )


def describe(request: api.CreateSIPParticipantRequest, destination: Destination) -> str:
    dtmf = f"{len(request.dtmf)} DTMF digits" if request.dtmf else "no DTMF"
    caller_id = mask_number(request.sip_number) if request.sip_number else "trunk default"
    return (
        f"CreateSIPParticipant(trunk={request.sip_trunk_id!r}, to={masked_address(destination)!r}, "
        f"caller_id={caller_id}, room={request.room_name!r}, "
        f"identity={request.participant_identity!r}, "
        f"ringing_timeout={request.ringing_timeout.seconds}s, {dtmf})"
    )


def _refused_caller_id(error: BaseException) -> bool:
    return isinstance(error, api.SipCallError) and error.sip_status_code == 403


def warm_failure(error: BaseException) -> Failure:
    """classify() speaks of REFER, which a warm transfer does not use: the same outcomes,
    with advice about dialing out."""
    failure = classify(error)
    if _refused_caller_id(error):
        return Failure(
            Outcome.DECLINED,
            failure.detail,
            "the provider refused the call: check that the outbound trunk may present the "
            "fallback caller ID (transfer.fallback_caller_id) and that its credentials are right",
        )
    if failure.outcome is Outcome.REFUSED:
        return Failure(
            Outcome.FAILED,
            failure.detail,
            "the provider refused to place the call: check the outbound trunk's address, "
            "transport and credentials",
        )
    if not failure.outcome_known:
        return Failure(
            Outcome.FAILED,
            failure.detail,
            "the outcome is unknown, so the dialed leg was ended in case it was still "
            "ringing or had just been answered; check the LiveKit server and SIP service logs",
            outcome_known=False,
        )
    return failure
