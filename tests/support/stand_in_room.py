"""A stand-in for ``rtc.Room`` that a test drives like a call: people join, attributes
arrive late, someone hangs up. It emits the same events, with the same arguments, as
the real room, so the code under test subscribes to it exactly as in production."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, cast

from livekit import rtc

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
_sids = itertools.count(1)


@dataclass
class StandInParticipant:
    identity: str
    kind: rtc.ParticipantKind.ValueType = STANDARD
    attributes: dict[str, str] = field(default_factory=dict)
    name: str = ""
    sid: str = field(default_factory=lambda: f"PA_{next(_sids)}")
    state: rtc.ParticipantState.ValueType = rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE
    disconnect_reason: rtc.DisconnectReason.ValueType = rtc.DisconnectReason.UNKNOWN_REASON
    track_publications: dict[str, Any] = field(default_factory=dict)


@dataclass
class StandInPublication:
    sid: str
    name: str
    track: Any


@dataclass
class StandInLocalParticipant(StandInParticipant):
    """The agent's own participant. It publishes tracks as the real one does (the hold
    music's player publishes one), and records them for tests to look at."""

    published: list[StandInPublication] = field(default_factory=list)
    unpublished: list[str] = field(default_factory=list)

    async def publish_track(self, track: Any, options: Any = None) -> StandInPublication:
        publication = StandInPublication(sid=f"TR_{next(_sids)}", name=track.name, track=track)
        self.track_publications[publication.sid] = publication
        self.published.append(publication)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        self.track_publications.pop(track_sid, None)
        self.unpublished.append(track_sid)


def phone_caller(
    identity: str = "sip_caller",
    *,
    number: str | None = "+15551234567",
    dialed: str | None = "+15550100000",
    **extra: str,
) -> StandInParticipant:
    """A SIP caller as LiveKit SIP presents one: ``sip.*`` attributes on a SIP participant.
    ``number=None`` is a caller who withheld their number."""
    attributes = {"sip.callID": f"SCL_{identity}", "sip.callStatus": "active", **extra}
    if number is not None:
        attributes["sip.phoneNumber"] = number
    if dialed is not None:
        attributes["sip.trunkPhoneNumber"] = dialed
    return StandInParticipant(identity=identity, kind=SIP, attributes=attributes)


class StandInRoom(rtc.EventEmitter[str]):
    def __init__(self, name: str = "call-test", *participants: StandInParticipant) -> None:
        super().__init__()
        self.name = name
        self.metadata = ""
        self.connection_state = rtc.ConnectionState.CONN_CONNECTED
        self.local_participant = StandInLocalParticipant(
            identity="agent", kind=rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        )
        self.remote_participants: dict[str, StandInParticipant] = {}
        for p in participants:
            self.remote_participants[p.identity] = p

    def as_room(self) -> rtc.Room:
        """For APIs typed with rtc.Room; the stand-in has every member they use."""
        return cast(rtc.Room, self)

    def isconnected(self) -> bool:
        return self.connection_state == rtc.ConnectionState.CONN_CONNECTED

    def join(self, participant: StandInParticipant) -> StandInParticipant:
        self.remote_participants[participant.identity] = participant
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)
        return participant

    def set_attributes(self, identity: str, **attributes: str) -> None:
        participant = self.remote_participants[identity]
        participant.attributes.update(attributes)
        self.emit("participant_attributes_changed", dict(attributes), participant)

    def hang_up(self, identity: str) -> None:
        """The participant leaves as a phone caller does when they put the phone down."""
        participant = self.remote_participants.pop(identity)
        participant.disconnect_reason = rtc.DisconnectReason.CLIENT_INITIATED
        self.emit("participant_disconnected", participant)
