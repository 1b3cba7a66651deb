"""Who can hear whom in a call's room, computed from what the room and the LiveKit server
recorded: the agent's track subscription permissions (``StandInLocalParticipant
.permission_tables``), and the UpdateParticipant / UpdateSubscriptions requests the
loopback server received. It follows the server and SIP-service semantics the warm
transfer was designed against (docs/warm-transfer.md):

  X hears track T of Y  iff  X is in the room and T is published, and all of
  - X may subscribe: the last UpdateParticipant for X that carried a permission did not
    set can_subscribe false (no such request: it may);
  - X wishes T: a SIP leg subscribes to every audio track once its phone has answered
    (``subscribes_from``: the caller from the start, a dialed leg from its answer), or
    once T appears if later; an UpdateSubscriptions for X and T counts only if it reached
    the server after that moment (the server drops a withdrawal for a subscription that
    does not exist yet), and the last one that counts decides;
  - Y lets X have T: always for a SIP leg's track (the SIP service sets no permissions);
    for the agent's, its last permission table (none set, or allow_all: everyone; else
    only the sids listed for X).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from livekit import rtc

from tests.support.livekit_server import LoopbackLiveKit
from tests.support.stand_in_room import StandInRoom

# What the agent's tracks are, by name, as the matrix says them.
AGENT_TRACKS = {
    "roomio_audio": "the agent's voice",
    "background_audio": "the hold music",
    "consult_audio": "the briefing",
}


@dataclass(frozen=True)
class Track:
    owner: str  # "agent", or a participant's identity
    sid: str
    published_at: float


def who_hears_whom(
    room: StandInRoom,
    server: LoopbackLiveKit,
    *,
    names: Mapping[str, str],
    subscribes_from: Mapping[str, float | None],
) -> set[str]:
    """Everything heard now, as "<listener> hears <source>" with the listeners and
    remote sources named by ``names`` (identity -> "the caller"), e.g. "the caller hears
    the hold music". ``subscribes_from``: when each SIP leg's own subscriptions began
    (None: its phone has not answered)."""
    heard: set[str] = set()
    tracks = _tracks(room)
    for listener, listener_name in names.items():
        for track in tracks:
            if track.owner == listener or not _hears(
                room, server, listener, track, subscribes_from
            ):
                continue
            source = (
                AGENT_TRACKS.get(_agent_track_name(room, track.sid), "another agent track")
                if track.owner == "agent"
                else names.get(track.owner, track.owner)
            )
            heard.add(f"{listener_name} hears {source}")
    return heard


def _tracks(room: StandInRoom) -> list[Track]:
    """Every audio track published now: the agent's, and the phone lines'."""
    found = [
        Track("agent", p.sid, p.published_at)
        for p in room.local_participant.published
        if p.unpublished_at is None and p.track.kind == rtc.TrackKind.KIND_AUDIO
    ]
    found += [
        Track(mic.participant.identity, mic.sid, mic.published_at)
        for mic in room.microphones
        if mic.unpublished_at is None
    ]
    return found


def _agent_track_name(room: StandInRoom, sid: str) -> str:
    for published in room.local_participant.published:
        if published.sid == sid:
            return published.name
    return ""


def _hears(
    room: StandInRoom,
    server: LoopbackLiveKit,
    listener: str,
    track: Track,
    subscribes_from: Mapping[str, float | None],
) -> bool:
    if listener not in room.remote_participants:
        return False
    return (
        _may_subscribe(server, listener)
        and _wishes(server, listener, track, subscribes_from.get(listener))
        and (track.owner != "agent" or _agent_allows(room, listener, track.sid))
    )


def _may_subscribe(server: LoopbackLiveKit, listener: str) -> bool:
    allowed = True
    for request in server.requests_for("UpdateParticipant"):
        message = request.message
        if message.identity == listener and message.HasField("permission"):
            allowed = message.permission.can_subscribe
    return allowed


def _wishes(
    server: LoopbackLiveKit, listener: str, track: Track, subscribes_from: float | None
) -> bool:
    if subscribes_from is None:
        return False  # a leg whose phone has not answered subscribes to nothing
    since = max(subscribes_from, track.published_at)
    wished = True
    for request in server.requests_for("UpdateSubscriptions"):
        message = request.message
        if (
            message.identity == listener
            and track.sid in message.track_sids
            and request.received_at >= since
        ):
            wished = message.subscribe
    return wished


def _agent_allows(room: StandInRoom, listener: str, sid: str) -> bool:
    tables = room.local_participant.permission_tables
    if not tables or tables[-1].allow_all:
        return True
    allowed = tables[-1].allowed
    if listener not in allowed:
        return False
    sids = allowed[listener]
    return sids is None or sid in sids
