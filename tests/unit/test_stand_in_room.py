"""The stand-in room behaves as ``rtc.Room`` does where tests rely on it: the SDK's own
participant, publication and track classes, the events the SDK emits (names, argument
shapes, order) when people join, publish, hang up or the room is deleted, what the agent
publishes and sends, and real audio both ways through the FFI. The last tests start an
AgentSession with the room, so the framework's RoomIO itself checks the shapes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from livekit import rtc
from livekit.agents import Agent, AgentSession, room_io
from livekit.agents.voice.events import CloseEvent, CloseReason

from tests.support.caller_audio import SAMPLE_RATE, CallerLine, speech
from tests.support.stand_in_room import (
    SIP,
    StandInParticipant,
    StandInRoom,
    phone_caller,
)

EVENTS = [
    "participant_connected",
    "participant_active",
    "participant_disconnected",
    "participant_attributes_changed",
    "track_published",
    "track_subscribed",
    "track_unsubscribed",
    "track_unpublished",
    "local_track_published",
    "local_track_subscribed",
    "local_track_unpublished",
    "connection_state_changed",
    "disconnected",
    "sip_dtmf_received",
]


def record(room: StandInRoom) -> list[tuple[str, tuple[Any, ...]]]:
    """Every event the room emits, with its arguments, in order."""
    seen: list[tuple[str, tuple[Any, ...]]] = []

    def recorder(name: str) -> Callable[..., None]:
        return lambda *args: seen.append((name, args))

    for name in EVENTS:
        room.on(name, recorder(name))  # type: ignore[arg-type]
    return seen


def names(seen: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    return [name for name, _ in seen]


def tone(seconds: float, rate: int, frame_ms: int = 20) -> list[rtc.AudioFrame]:
    n = rate * frame_ms // 1000
    t = np.arange(round(seconds * rate)) / rate
    pcm = (8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    return [
        rtc.AudioFrame(pcm[i : i + n].tobytes(), rate, 1, n) for i in range(0, len(pcm) - n + 1, n)
    ]


# --------------------------------------------------------------------------- people


def test_participants_are_the_sdks_own_classes() -> None:
    caller = phone_caller("sip_caller", number="+15551234567")
    room = StandInRoom("call-1", caller)
    assert isinstance(room, rtc.Room) and room.as_room() is room
    assert isinstance(caller, rtc.RemoteParticipant) and caller.kind == SIP
    assert isinstance(room.local_participant, rtc.LocalParticipant)
    assert room.local_participant.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
    assert room.remote_participants == {"sip_caller": caller}
    assert room.name == "call-1" and room.isconnected()
    assert room.connection_state == rtc.ConnectionState.CONN_CONNECTED
    assert caller.attributes["sip.phoneNumber"] == "+15551234567"
    assert caller.disconnect_reason is None  # not disconnected
    assert caller.state == rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE


def test_a_join_and_late_attributes_arrive_as_the_sdk_reports_them() -> None:
    room = StandInRoom("call-1")
    seen = record(room)
    late = room.join(StandInParticipant("sip_late", kind=SIP))
    room.set_attributes("sip_late", **{"sip.phoneNumber": "+15551234567", "sip.callID": "x"})
    room.set_attributes("sip_late", **{"sip.phoneNumber": "+15551234567"})  # unchanged
    room.set_attributes("sip_late", **{"sip.callStatus": "active"})

    assert seen == [
        ("participant_connected", (late,)),
        ("participant_active", (late,)),
        # only what changed, then the participant (whose attributes hold everything)
        (
            "participant_attributes_changed",
            ({"sip.phoneNumber": "+15551234567", "sip.callID": "x"}, late),
        ),
        ("participant_attributes_changed", ({"sip.callStatus": "active"}, late)),
    ]
    assert late.attributes == {
        "sip.phoneNumber": "+15551234567",
        "sip.callID": "x",
        "sip.callStatus": "active",
    }


def test_the_caller_pressing_a_key_is_a_sip_dtmf_event() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    seen = record(room)
    room.press(caller.identity, "5")
    room.press(caller.identity, "#")
    assert [args[0] for _, args in seen] == [
        rtc.SipDTMF(code=5, digit="5", participant=caller),
        rtc.SipDTMF(code=11, digit="#", participant=caller),
    ]


@pytest.mark.parametrize(
    "reason",
    [rtc.DisconnectReason.CLIENT_INITIATED, rtc.DisconnectReason.PARTICIPANT_REMOVED],
)
async def test_a_hang_up_unsubscribes_and_unpublishes_the_tracks_then_the_participant_leaves(
    reason: rtc.DisconnectReason.ValueType,
) -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    try:
        mic = room.publish_microphone(caller.identity)
        seen = record(room)
        room.hang_up(caller.identity, reason)
        assert seen == [
            ("track_unsubscribed", (mic.track, mic.publication, caller)),
            ("track_unpublished", (mic.publication, caller)),
            ("participant_disconnected", (caller,)),
        ]
        assert caller.disconnect_reason == reason
        assert caller.state == rtc.ParticipantState.PARTICIPANT_STATE_DISCONNECTED
        assert room.remote_participants == {} and caller.track_publications == {}
        assert mic.publication.track is None and not mic.publication.subscribed
        await asyncio.sleep(0.05)
        assert mic.closed  # the phone stopped sending
    finally:
        await room.aclose()


def test_hanging_up_is_client_initiated_unless_told_otherwise() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    room.hang_up(caller.identity)
    assert caller.disconnect_reason == rtc.DisconnectReason.CLIENT_INITIATED


# --------------------------------------------------------------------------- the agent's tracks


async def test_a_published_track_is_subscribed_by_the_caller_and_recorded() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    local = room.local_participant
    seen = record(room)
    source = rtc.AudioSource(24000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
    options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)

    publication = await local.publish_track(track, options)
    assert seen == []  # the room event follows publish_track's reply
    await asyncio.wait_for(publication.wait_for_subscription(), 1)

    assert isinstance(publication, rtc.LocalTrackPublication)
    assert track.sid == publication.sid and publication.track is track
    assert publication.name == "roomio_audio"
    assert publication.source == rtc.TrackSource.SOURCE_MICROPHONE
    assert local.track_publications == {publication.sid: publication}
    assert seen == [
        ("local_track_published", (publication, track)),
        ("local_track_subscribed", (track,)),
    ]
    (published,) = local.published
    assert published.publication is publication and published.subscribed_at is not None

    seen.clear()
    tracks_in_event: list[rtc.Track | None] = []
    room.on("local_track_unpublished", lambda p: tracks_in_event.append(p.track))
    await local.unpublish_track(publication.sid)
    assert seen == [("local_track_unpublished", (publication,))]
    assert tracks_in_event == [track]  # still set while the event runs, as in the SDK
    assert publication.track is None and local.track_publications == {}
    assert local.unpublished == [publication.sid] and published.unpublished_at is not None
    assert published.track is track  # the record keeps it

    with pytest.raises(Exception, match="track not found"):
        await local.unpublish_track(publication.sid)
    await source.aclose()


async def test_nobody_hears_a_track_until_someone_joins() -> None:
    room = StandInRoom("call-1")
    source = rtc.AudioSource(24000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
    publication = await room.local_participant.publish_track(track)
    subscribed = asyncio.ensure_future(publication.wait_for_subscription())
    await asyncio.sleep(0.05)
    assert not subscribed.done()

    room.join(phone_caller())
    await asyncio.wait_for(subscribed, 1)
    await source.aclose()


async def test_what_the_agent_sends_besides_audio_is_recorded() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    local = room.local_participant
    seen = record(room)

    await local.set_attributes({"lk.agent.state": "listening"})
    await local.set_attributes({"lk.agent.state": "listening"})  # unchanged: no event
    writer = await local.stream_text(
        topic="lk.transcription", attributes={"lk.transcription_final": "false"}
    )
    await writer.write("Hello")
    await writer.write(", there")
    await writer.aclose(attributes={"lk.transcription_final": "true"})
    await local.send_bytes(b"\x01\x02", topic="lk.agent.session", name="AS_1")

    assert seen == [("participant_attributes_changed", ({"lk.agent.state": "listening"}, local))]
    assert local.attributes == {"lk.agent.state": "listening"}
    (stream,) = local.text_streams
    assert (stream.topic, stream.sender_identity, stream.text) == (
        "lk.transcription",
        "agent",
        "Hello, there",
    )
    assert stream.closed and stream.close_attributes == {"lk.transcription_final": "true"}
    assert writer.info.topic == "lk.transcription"
    with pytest.raises(RuntimeError):
        await writer.write("more")
    (sent,) = local.sent_bytes
    assert (sent.topic, sent.name, sent.data) == ("lk.agent.session", "AS_1", b"\x01\x02")


async def test_what_the_stand_in_does_not_model_fails_loudly() -> None:
    room = StandInRoom("call-1", phone_caller())
    with pytest.raises(AssertionError):  # the SDK refuses an FFI request with no handle
        await room.local_participant.perform_rpc(
            destination_identity="sip_caller", method="m", payload=""
        )


# --------------------------------------------------------------------------- the room ends


async def test_deleting_the_room_sends_everyone_away_then_disconnects_the_agent() -> None:
    caller, other = phone_caller(), StandInParticipant("web")
    room = StandInRoom("call-1", caller, other)
    mic = room.publish_microphone(caller.identity)
    source = rtc.AudioSource(24000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
    publication = await room.local_participant.publish_track(track)
    await publication.wait_for_subscription()
    seen = record(room)

    room.delete()

    assert names(seen) == [
        "track_unsubscribed",
        "track_unpublished",
        "participant_disconnected",  # the caller
        "participant_disconnected",  # the other one
        "connection_state_changed",
        "disconnected",
        "local_track_unpublished",
    ]
    assert caller.disconnect_reason == other.disconnect_reason == rtc.DisconnectReason.ROOM_DELETED
    assert seen[4][1] == (rtc.ConnectionState.CONN_DISCONNECTED,)
    assert seen[5][1] == (rtc.DisconnectReason.ROOM_DELETED,)
    assert seen[6][1] == (publication,)
    assert not room.isconnected() and room.remote_participants == {}
    assert room.local_participant.disconnect_reason == rtc.DisconnectReason.ROOM_DELETED
    with pytest.raises(Exception, match="closed"):
        await room.local_participant.publish_track(track)
    await room.aclose()
    await source.aclose()
    assert mic.closed


def test_the_agent_may_hear_of_the_deletion_before_anyone_leaves() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    seen = record(room)
    room.delete(participants_first=False)
    assert names(seen) == ["connection_state_changed", "disconnected"]
    assert room.remote_participants == {"sip_caller": caller}  # never told they left


async def test_the_agent_leaving_unpublishes_then_disconnects() -> None:
    room = StandInRoom("call-1", phone_caller())
    source = rtc.AudioSource(24000, 1)
    track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
    await room.local_participant.publish_track(track)
    await asyncio.sleep(0)
    seen = record(room)
    await room.disconnect()
    assert names(seen) == ["local_track_unpublished", "connection_state_changed", "disconnected"]
    assert seen[-1][1] == (rtc.DisconnectReason.CLIENT_INITIATED,)
    await source.aclose()


# --------------------------------------------------------------------------- real audio


async def test_the_callers_line_comes_out_of_their_track_through_the_ffi() -> None:
    """What RoomIO does with a subscribed track: ``AudioStream.from_track`` on it. The
    stand-in's track is a real one, so the caller's speech comes out, in real time."""
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    seen = record(room)
    async with CallerLine() as line:
        mic = room.publish_microphone(caller.identity, line)
        assert names(seen) == ["track_published", "track_subscribed"]
        track, publication, participant = seen[1][1]
        assert isinstance(track, rtc.RemoteAudioTrack) and participant is caller
        assert isinstance(publication, rtc.RemoteTrackPublication)
        assert publication.source == rtc.TrackSource.SOURCE_MICROPHONE
        assert caller.track_publications == {publication.sid: publication}
        assert publication.track is track and track.sid == publication.sid

        stream = rtc.AudioStream.from_track(
            track=track, sample_rate=SAMPLE_RATE, num_channels=1, frame_size_ms=20
        )
        heard: list[tuple[float, bytes]] = []

        async def agent_listening() -> None:
            async for event in stream:
                heard.append((time.monotonic(), bytes(event.frame.data)))

        listener = asyncio.create_task(agent_listening())
        await asyncio.sleep(0.2)
        said = await line.speak("yes")
        await asyncio.sleep(0.2)
        await stream.aclose()
        await listener

    pcm = b"".join(data for _, data in heard)
    spoken = b"".join(bytes(f.data) for f in speech("yes"))
    assert spoken in pcm  # sample for sample, between the silence before and after
    start = pcm.index(spoken) // 2 / SAMPLE_RATE  # seconds of audio before it
    first_arrived_at, first_frame = heard[0]
    stream_began_at = first_arrived_at - len(first_frame) // 2 / SAMPLE_RATE
    # the line's timing is when the agent's side got it (to a frame or two)
    assert said.started_at == pytest.approx(stream_began_at + start, abs=0.06)
    assert said.ended_at - said.started_at == pytest.approx(said.seconds - 0.02, abs=0.03)
    assert mic.sid == publication.sid
    await room.aclose()


async def test_what_the_agent_plays_is_heard_from_its_published_track() -> None:
    room = StandInRoom("call-1", phone_caller(), listen=True)
    source = rtc.AudioSource(24000, 1, queue_size_ms=200)
    track = rtc.LocalAudioTrack.create_audio_track("roomio_audio", source)
    await room.local_participant.publish_track(track)
    (published,) = room.local_participant.published
    assert published.audio is not None
    await asyncio.sleep(0.1)

    for frame in tone(0.5, 24000):
        await source.capture_frame(frame)
    await source.wait_for_playout()
    played_out_at = time.monotonic()
    await published.audio.wait_until(lambda: published.audio.audible_seconds >= 0.48, within=5)

    # one stretch of sound, whose frames may arrive bunched when the loop is busy
    (run,) = published.audio.runs(bridge=0.1)
    assert run.seconds == pytest.approx(0.5, abs=0.02)
    assert run.ended_at == pytest.approx(played_out_at, abs=0.05)
    assert published.audio.audible_seconds == pytest.approx(0.5, abs=0.02)
    await room.local_participant.unpublish_track(published.sid)
    await asyncio.sleep(0.05)
    assert published.audio.closed
    await room.aclose()
    await source.aclose()


# --------------------------------------------------------------------------- RoomIO itself


class Silent(Agent):
    def __init__(self) -> None:
        super().__init__(instructions="Say nothing.")


async def start_with_room(room: StandInRoom, caller: StandInParticipant) -> AgentSession:
    session = AgentSession()
    await session.start(
        agent=Silent(),
        room=room,
        room_options=room_io.RoomOptions(participant_identity=caller.identity),
    )
    return session


@pytest.mark.parametrize(
    ("reason", "closes"),
    [
        (rtc.DisconnectReason.CLIENT_INITIATED, True),
        (rtc.DisconnectReason.ROOM_DELETED, True),
        (rtc.DisconnectReason.USER_REJECTED, True),
        (rtc.DisconnectReason.PARTICIPANT_REMOVED, False),
        (rtc.DisconnectReason.SERVER_SHUTDOWN, False),
    ],
)
async def test_roomio_links_the_caller_and_closes_the_session_for_the_reasons_it_knows(
    reason: rtc.DisconnectReason.ValueType, closes: bool
) -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller, listen=True)
    async with CallerLine() as line:
        room.publish_microphone(caller.identity, line)
        session = await start_with_room(room, caller)
        closed: asyncio.Future[CloseEvent] = asyncio.Future()
        session.on("close", lambda ev: closed.done() or closed.set_result(ev))
        try:
            await asyncio.wait_for(session.room_io.wait_for_ready(), 2)
            linked = session.room_io.linked_participant
            assert linked is caller
            assert session.input.audio is not None and session.input.audio.label == "RoomIO"
            (published,) = room.local_participant.published
            assert published.name == "roomio_audio" and published.subscribed_at is not None

            room.hang_up(caller.identity, reason)
            if closes:
                ev = await asyncio.wait_for(closed, 5)
                assert ev.reason == CloseReason.PARTICIPANT_DISCONNECTED
            else:
                await asyncio.sleep(0.3)
                assert not closed.done()
                assert session.room_io.linked_participant is None  # it waits for them
        finally:
            await session.aclose()
            await room.aclose()


async def test_roomio_closes_the_session_when_the_room_is_deleted() -> None:
    caller = phone_caller()
    room = StandInRoom("call-1", caller)
    session = await start_with_room(room, caller)
    closed: asyncio.Future[CloseEvent] = asyncio.Future()
    session.on("close", lambda ev: closed.done() or closed.set_result(ev))
    try:
        await asyncio.wait_for(session.room_io.wait_for_ready(), 2)
        room.delete()
        ev = await asyncio.wait_for(closed, 5)
        assert ev.reason == CloseReason.PARTICIPANT_DISCONNECTED
        assert not room.isconnected()
    finally:
        await session.aclose()
        await room.aclose()
