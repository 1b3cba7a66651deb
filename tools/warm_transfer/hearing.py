"""Who hears whom during a consult-first warm transfer, inside the caller's own room.

The caller (C) waits on hold while the person dialed (D) is screened and briefed in the
same room, so nobody may hear what is not for them:

  phase                C hears                       D hears
  hold, ringing,       the agent's voice, the music  nothing
  screening
  consult              the agent's voice, the music  the briefing (a track of its own)
  connect              D, the agent's voice          C, the agent's voice

LiveKit's SIP service subscribes each phone leg to every audio track in the room and
mixes them all into the call, so what a leg hears is decided on the server with three
controls (docs/warm-transfer.md cites the server and SIP sources they were checked
against):

* the agent's track subscription permissions (``set_track_subscription_permissions``),
  kept by track name and sent again whenever the agent publishes or unpublishes a track:
  the one race-free control, enforced by the server for SIP subscribers, and valid for
  an identity before it joins (a track not listed is denied);
* D's ``can_subscribe`` gate (UpdateParticipant, with a copy of its current permission,
  since the request replaces the whole grant), closed as D joins, before its phone is
  answered, and opened for the consult once D's wish for C's track has been withdrawn;
* UpdateSubscriptions: C's subscription to D's track is withdrawn as it appears (that
  track carries no phone audio before the answer), again shortly after and when D
  answers (a withdrawal that arrives before the SIP service's own subscription is
  dropped by the server), and every few seconds while private (the SIP service replays
  its subscriptions after a signal resume). At connect both are subscribed.

What no control here can keep private: DTMF, which the SIP service relays between the
legs as room data (a "1" pressed by D may reach C's phone as a tone).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from livekit import rtc
from livekit.protocol import models

from server_api import CallServer

logger = logging.getLogger("phone-assistant.warm-transfer")

VOICE_TRACK = "roomio_audio"  # the agent session's voice (RoomIO's default track name)
HOLD_TRACK = "background_audio"  # hold music (BackgroundAudioPlayer's track name)
BRIEF_TRACK = "consult_audio"  # the consult session's voice (consult_session.py)

# A withdrawal that reached the server before the SIP service subscribed is dropped:
# sent again this long after the track appeared.
REISSUE_AFTER_S = 0.75
# While private, the withdrawals are repeated this often (a SIP leg's signal resume
# re-subscribes what it had).
REASSERT_EVERY_S = 5.0
_ANSWERED = "active"  # the sip.callStatus of an answered leg


class Hearing:
    """One consult-first transfer's controls, from the hold to the connect (or back)."""

    def __init__(self, room: rtc.Room, server: CallServer, caller: str) -> None:
        self._room = room
        self._server = server
        self._caller = caller
        self._destination: str | None = None
        self._allowed: dict[str, frozenset[str]] = {}  # identity -> agent track names
        self._ears_open = False  # D's gate is open (the consult)
        self._private = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ the phases

    def hold(self) -> None:
        """Before dialing: the caller hears the agent's voice and the hold music, and
        nobody else hears anything of the agent."""
        self._allowed = {self._caller: frozenset({VOICE_TRACK, HOLD_TRACK})}
        self._private = True
        room = self._room
        room.on("local_track_published", self._on_local_track)
        room.on("local_track_unpublished", self._on_local_track)
        room.on("participant_connected", self._on_participant_connected)
        room.on("track_published", self._on_track_published)
        room.on("participant_attributes_changed", self._on_attributes_changed)
        self._apply()
        self._reassert_later()

    def expect(self, destination: str) -> None:
        """A leg is about to be dialed: it hears nothing of the agent, its gate closes as
        it joins, and the caller does not hear it."""
        if self._destination is not None and self._destination != destination:
            self._allowed.pop(self._destination, None)
        self._destination = destination
        self._ears_open = False
        self._allowed[destination] = frozenset()
        self._apply()
        if destination in self._room.remote_participants:
            self._spawn(self._gate(destination, can_subscribe=False))
            self._withdraw_caller()

    async def open_to_briefing(self) -> None:
        """The consult: the person answering hears the briefing track and nothing else
        (never the caller, the music or the hold words)."""
        destination = self._require_destination()
        await self._settle()
        self._allowed[destination] = frozenset({BRIEF_TRACK})
        self._apply()
        caller_tracks = self._audio_of(self._caller)
        if caller_tracks:  # D's SIP leg wished for them when it answered: withdrawn first
            await self._server.subscribe(destination, caller_tracks, subscribe=False)
        if not await self._gate(destination, can_subscribe=True):
            logger.error(
                "%s could not be let hear the briefing; it will not hear the agent",
                destination,
            )
        self._ears_open = True

    async def connect(self) -> None:
        """The two hear each other, and the agent's voice for its last line."""
        destination = self._require_destination()
        self._private = False
        self._cancel_timers()
        await self._settle()  # a withdrawal still on its way must not land after this
        self._allowed = {
            self._caller: frozenset({VOICE_TRACK}),
            destination: frozenset({VOICE_TRACK}),
        }
        self._apply()
        await asyncio.gather(
            self._subscribe(self._caller, self._audio_of(destination)),
            self._subscribe(destination, self._audio_of(self._caller)),
        )

    def release(self) -> None:
        """The transfer is over (handed over or back with the agent): everyone may hear
        the agent's tracks again, and nothing is watched or sent any more."""
        self._private = False
        room = self._room
        room.off("local_track_published", self._on_local_track)
        room.off("local_track_unpublished", self._on_local_track)
        room.off("participant_connected", self._on_participant_connected)
        room.off("track_published", self._on_track_published)
        room.off("participant_attributes_changed", self._on_attributes_changed)
        self._cancel_timers()
        for task in self._tasks:
            task.cancel()
        if room.isconnected():
            room.local_participant.set_track_subscription_permissions(allow_all_participants=True)

    # ------------------------------------------------------------------ the controls

    def _apply(self) -> None:
        """The permission table for the agent's tracks as published now, by name."""
        if not self._room.isconnected():
            return
        sids: dict[str, list[str]] = {}
        for sid, publication in self._room.local_participant.track_publications.items():
            sids.setdefault(publication.name, []).append(sid)
        table = [
            rtc.ParticipantTrackPermission(
                participant_identity=identity,
                allow_all=False,
                allowed_track_sids=[sid for name in sorted(names) for sid in sids.get(name, [])],
            )
            for identity, names in self._allowed.items()
        ]
        self._room.local_participant.set_track_subscription_permissions(
            allow_all_participants=False, participant_permissions=table
        )

    async def _gate(self, identity: str, *, can_subscribe: bool) -> bool:
        """Open or close ``identity``'s subscriptions, keeping the rest of its
        permission as the server has it (the request replaces the whole grant)."""
        info = await self._server.participant(identity)
        if info is None:
            if not can_subscribe:
                logger.error(
                    "could not read %s's permission to keep it from hearing the caller: the "
                    "caller's own voice may reach it before it takes the call",
                    identity,
                )
            return False
        permission = models.ParticipantPermission()
        permission.CopyFrom(info.permission)
        permission.can_subscribe = can_subscribe
        return await self._server.set_permission(identity, permission)

    async def _regate(self, destination: str) -> None:
        """The leg joined (or joined again after a reconnect, with all its wishes back):
        its gate as the phase wants it."""
        if not self._ears_open:
            await self._gate(destination, can_subscribe=False)
            return
        if tracks := self._audio_of(self._caller):
            await self._server.subscribe(destination, tracks, subscribe=False)
        await self._gate(destination, can_subscribe=True)

    async def _subscribe(self, identity: str, tracks: list[str]) -> None:
        if tracks:
            await self._server.subscribe(identity, tracks, subscribe=True)

    def _withdraw_caller(self) -> None:
        """The caller does not hear the person dialed (before the connect)."""
        if not self._private or self._destination is None:
            return
        if tracks := self._audio_of(self._destination):
            self._spawn(self._server.subscribe(self._caller, tracks, subscribe=False))

    def _withdraw_destination(self) -> None:
        """The person dialed, its gate open for the consult, does not hear the caller."""
        if not (self._private and self._ears_open) or self._destination is None:
            return
        if tracks := self._audio_of(self._caller):
            self._spawn(self._server.subscribe(self._destination, tracks, subscribe=False))

    # ------------------------------------------------------------------ the room's events

    def _on_local_track(self, publication: rtc.LocalTrackPublication, *_: object) -> None:
        self._apply()

    def _on_participant_connected(self, participant: rtc.RemoteParticipant) -> None:
        if not self._private:
            return
        if participant.identity == self._destination:  # joins before its phone rings
            self._spawn(self._regate(participant.identity))
        elif participant.identity == self._caller:  # the caller's leg reconnected
            self._withdraw_caller()

    def _on_track_published(
        self, publication: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
    ) -> None:
        if publication.kind != rtc.TrackKind.KIND_AUDIO:
            return
        if participant.identity == self._destination:
            self._withdraw_caller()
            self._later(REISSUE_AFTER_S, self._withdraw_caller)
        elif participant.identity == self._caller:
            self._withdraw_destination()

    def _on_attributes_changed(self, changed: dict[str, str], participant: rtc.Participant) -> None:
        if participant.identity == self._destination and changed.get("sip.callStatus") == (
            _ANSWERED
        ):
            self._withdraw_caller()

    # ------------------------------------------------------------------ helpers

    def _audio_of(self, identity: str) -> list[str]:
        participant = self._room.remote_participants.get(identity)
        if participant is None:
            return []
        return [
            sid
            for sid, publication in participant.track_publications.items()
            if publication.kind == rtc.TrackKind.KIND_AUDIO
        ]

    def _require_destination(self) -> str:
        if self._destination is None:
            raise RuntimeError("no leg was dialed")
        return self._destination

    def _reassert_later(self) -> None:
        def reassert() -> None:
            self._withdraw_caller()
            self._withdraw_destination()
            if self._private:
                self._reassert_later()

        self._later(REASSERT_EVERY_S, reassert)

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        def run() -> None:
            self._timers.discard(handle)
            action()

        handle = asyncio.get_running_loop().call_later(delay, run)
        self._timers.add(handle)

    def _cancel_timers(self) -> None:
        for handle in self._timers:
            handle.cancel()
        self._timers.clear()

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        """Let the requests already sent finish (each is bounded), so none lands after
        the change about to be made."""
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
