"""A stand-in for ``rtc.Room`` that a test drives like a call: people join, attributes
arrive late, someone hangs up, the room is deleted. It is an ``rtc.Room`` (a subclass
with no server behind it) whose participants, publications and tracks are the SDK's own
classes, and it emits the same events, in the same order and with the same arguments,
as the real room does when the server tells it these things; so the code under test,
the framework's RoomIO included, subscribes to it exactly as in production.

Audio is real. The Rust FFI runs a locally created track (``rtc.AudioSource`` +
``rtc.LocalAudioTrack``) with no room at all: an ``rtc.AudioStream`` on that track yields,
in real time, what was captured into the source, and silence while nothing is. So:

- A caller's phone audio (``publish_microphone``) is a real source and track. The room
  presents that track as the caller's subscribed ``rtc.RemoteAudioTrack``, and RoomIO
  reads it through its own ``AudioStream.from_track``, exactly as a subscribed track.
- Every audio track the agent publishes is listened to (``listen=True``) with an
  ``AudioStream``: ``PublishedTrack.audio`` is what came out of it and when.

Anything the room is asked for that it does not model goes to the FFI with no handle
and fails loudly (an AssertionError from the SDK), rather than silently doing nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from livekit import rtc
from livekit.agents.utils import aio
from livekit.rtc._proto import handle_pb2, participant_pb2, room_pb2, track_pb2
from livekit.rtc._utils import BroadcastQueue
from livekit.rtc.participant import PublishTrackError, UnpublishTrackError

SIP = rtc.ParticipantKind.PARTICIPANT_KIND_SIP
STANDARD = rtc.ParticipantKind.PARTICIPANT_KIND_STANDARD
AGENT = rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
CLIENT_INITIATED = rtc.DisconnectReason.CLIENT_INITIATED
ROOM_DELETED = rtc.DisconnectReason.ROOM_DELETED

LISTEN_RATE = 24000  # what the room hears the agent's tracks at
LISTEN_FRAME_MS = 10  # the FFI hands out a 10 ms frame the moment the source plays it
CALLER_QUEUE_MS = 60  # how far a caller's audio source runs ahead of what it plays

_sids = itertools.count(1)


def _sid(prefix: str) -> str:
    return f"{prefix}_{next(_sids)}"


def _no_handle() -> handle_pb2.FfiOwnedHandle:
    # INVALID_HANDLE: the SDK never drops it, and any FFI request made with it fails
    return handle_pb2.FfiOwnedHandle(id=0)


# --------------------------------------------------------------------------- participants


class StandInParticipant(rtc.RemoteParticipant):
    """A remote participant as the SDK presents one (an ``rtc.RemoteParticipant``)."""

    def __init__(
        self,
        identity: str,
        kind: rtc.ParticipantKind.ValueType = STANDARD,
        attributes: dict[str, str] | None = None,
        name: str = "",
        sid: str | None = None,
        *,
        metadata: str = "",
        client_protocol: int = 0,
        auto_subscribe: bool = True,
    ) -> None:
        info = participant_pb2.ParticipantInfo(
            sid=sid or _sid("PA"),
            identity=identity,
            name=name,
            kind=kind,
            state=rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE,
            metadata=metadata,
            attributes=attributes or {},
            disconnect_reason=rtc.DisconnectReason.UNKNOWN_REASON,
            joined_at=int(time.time() * 1000),
            client_protocol=client_protocol,
        )
        super().__init__(participant_pb2.OwnedParticipant(handle=_no_handle(), info=info))
        # whether they subscribe to the agent's tracks (a SIP caller hears every one)
        self.auto_subscribe = auto_subscribe


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


# --------------------------------------------------------------------------- audio heard


@dataclass(frozen=True)
class HeardFrame:
    at: float  # time.monotonic() when the frame came out of the track
    frame: rtc.AudioFrame
    audible: bool  # any sample not zero: a source that has nothing to play sends zeros


@dataclass(frozen=True)
class AudibleRun:
    """Consecutive audible frames: ``started_at`` the first, ``ended_at`` the last."""

    started_at: float
    ended_at: float
    seconds: float


class TrackAudio:
    """What came out of one audio track, read in real time with an ``rtc.AudioStream``
    (10 ms frames at 24 kHz mono), as a participant subscribed to it would hear it."""

    def __init__(
        self,
        track: rtc.Track,
        *,
        sample_rate: int = LISTEN_RATE,
        frame_size_ms: int = LISTEN_FRAME_MS,
    ) -> None:
        self.sample_rate = sample_rate
        self.frames: list[HeardFrame] = []
        self.closed = False
        self._listeners: list[Callable[[HeardFrame | None], None]] = []
        self._changed = asyncio.Event()
        self._stream = rtc.AudioStream.from_track(
            track=track, sample_rate=sample_rate, num_channels=1, frame_size_ms=frame_size_ms
        )
        self._task = asyncio.create_task(self._read(), name="TrackAudio._read")

    async def _read(self) -> None:
        try:
            async for event in self._stream:
                samples = np.frombuffer(event.frame.data, dtype=np.int16)
                heard = HeardFrame(time.monotonic(), event.frame, bool(samples.any()))
                self.frames.append(heard)
                self._notify(heard)
        finally:
            self.closed = True
            self._notify(None)

    def _notify(self, heard: HeardFrame | None) -> None:
        self._changed.set()
        for listener in list(self._listeners):
            listener(heard)

    def listen(self, listener: Callable[[HeardFrame | None], None]) -> None:
        """Call ``listener`` with every frame, those already heard first; with None once
        the track is gone."""
        for heard in self.frames:
            listener(heard)
        if self.closed:
            listener(None)
        else:
            self._listeners.append(listener)

    def runs(self, *, bridge: float = 0.0) -> list[AudibleRun]:
        """The audible stretches; silences up to ``bridge`` seconds do not split one."""
        runs: list[AudibleRun] = []
        for heard in self.frames:
            if not heard.audible:
                continue
            if runs and heard.at - runs[-1].ended_at <= bridge + heard.frame.duration * 1.5:
                first, seconds = runs[-1].started_at, runs[-1].seconds + heard.frame.duration
                runs[-1] = AudibleRun(first, heard.at, seconds)
            else:
                runs.append(AudibleRun(heard.at, heard.at, heard.frame.duration))
        return runs

    @property
    def audible_seconds(self) -> float:
        return sum(h.frame.duration for h in self.frames if h.audible)

    def pcm(self, since: float = float("-inf"), until: float = float("inf")) -> bytes:
        """The 16-bit PCM heard between two instants (arrival times)."""
        return b"".join(bytes(h.frame.data) for h in self.frames if since <= h.at <= until)

    async def wait_until(self, condition: Callable[[], bool], *, within: float = 20.0) -> None:
        async with asyncio.timeout(within):
            while not condition():
                self._changed.clear()
                await self._changed.wait()

    async def aclose(self) -> None:
        await self._stream.aclose()
        await aio.cancel_and_wait(self._task)
        self.closed = True


# --------------------------------------------------------------------------- agent's tracks


@dataclass(eq=False)
class PublishedTrack:
    """A track the agent published, and what became of it."""

    publication: rtc.LocalTrackPublication
    track: rtc.LocalTrack  # kept after unpublishing, when the publication lets go of it
    options: rtc.TrackPublishOptions
    published_at: float
    subscribed_at: float | None = None
    unpublished_at: float | None = None
    audio: TrackAudio | None = None  # what came out of it, when the room listens

    @property
    def sid(self) -> str:
        return self.publication.sid

    @property
    def name(self) -> str:
        return self.publication.name

    @property
    def source(self) -> rtc.TrackSource.ValueType:
        return self.publication.source


@dataclass(eq=False)
class SentTextStream:
    """A text stream the agent opened (``stream_text``) or sent (``send_text``)."""

    topic: str
    attributes: dict[str, str]
    sender_identity: str
    destination_identities: list[str]
    info: rtc.TextStreamInfo
    chunks: list[str] = field(default_factory=list)
    closed: bool = False
    close_attributes: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass(frozen=True)
class PermissionTable:
    """One ``set_track_subscription_permissions`` call: who may subscribe to which of the
    agent's tracks from ``at`` on. ``allowed`` maps an identity to the track sids it may
    have, or to None for all of them; an identity not in it may have none (when not
    ``allow_all``)."""

    at: float
    allow_all: bool
    allowed: dict[str, frozenset[str] | None]


@dataclass(frozen=True)
class SentBytes:
    topic: str
    name: str
    data: bytes
    destination_identities: list[str]
    attributes: dict[str, str]


class _TextStreamWriter:
    """What ``stream_text`` returns (the ``rtc.TextStreamWriter`` surface): it writes
    into the room's record instead of the FFI."""

    def __init__(self, sent: SentTextStream) -> None:
        self._sent = sent

    @property
    def info(self) -> rtc.TextStreamInfo:
        return self._sent.info

    async def write(self, text: str) -> None:
        if self._sent.closed:
            raise RuntimeError("Cannot write after stream is closed")
        self._sent.chunks.append(text)

    async def aclose(self, *, reason: str = "", attributes: dict[str, str] | None = None) -> None:
        if self._sent.closed:
            raise RuntimeError("Stream already closed")
        self._sent.closed = True
        self._sent.close_attributes = dict(attributes or {})


class StandInLocalParticipant(rtc.LocalParticipant):
    """The agent's own participant (an ``rtc.LocalParticipant``). What it publishes,
    sets and sends is recorded for tests to look at."""

    def __init__(self, room: StandInRoom, identity: str = "agent") -> None:
        info = participant_pb2.ParticipantInfo(
            sid=_sid("PA"),
            identity=identity,
            name="",
            kind=AGENT,
            state=rtc.ParticipantState.PARTICIPANT_STATE_ACTIVE,
            metadata="",
            disconnect_reason=rtc.DisconnectReason.UNKNOWN_REASON,
            joined_at=int(time.time() * 1000),
            client_protocol=1,
        )
        super().__init__(
            BroadcastQueue(), participant_pb2.OwnedParticipant(handle=_no_handle(), info=info)
        )
        self._room = room
        self.published: list[PublishedTrack] = []  # in publishing order, kept after unpublish
        self.unpublished: list[str] = []  # sids
        self.text_streams: list[SentTextStream] = []
        self.sent_bytes: list[SentBytes] = []
        self.transcriptions: list[rtc.Transcription] = []
        self.attribute_changes: list[dict[str, str]] = []
        self.permission_tables: list[PermissionTable] = []  # subscription permissions set
        # the SFU not answering: "publish" / "unpublish" requests hang until released
        self.stalled: set[str] = set()
        self.stalled_requests: list[str] = []
        self._release = asyncio.Event()

    def stall(self, *requests: str) -> None:
        """Make ``publish`` and/or ``unpublish`` hang, as when the SFU does not answer."""
        self.stalled.update(requests)

    def release(self) -> None:
        """Let hanging requests go (they fail, as on a lost connection)."""
        self._release.set()

    async def _maybe_stall(self, request: str, name: str) -> None:
        if request in self.stalled:
            self.stalled_requests.append(f"{request} {name}")
            await self._release.wait()
            raise PublishTrackError(f"engine: {request} of {name} timed out")

    def publishing(self, name: str) -> PublishedTrack | None:
        """The track published under ``name`` that is still published, if any."""
        for published in self.published:
            if published.name == name and published.unpublished_at is None:
                return published
        return None

    async def publish_track(
        self, track: rtc.LocalTrack, options: rtc.TrackPublishOptions | None = None
    ) -> rtc.LocalTrackPublication:
        options = options or rtc.TrackPublishOptions()
        if not self._room.isconnected():
            raise PublishTrackError("engine: connection error: closed")
        await self._maybe_stall("publish", track.name)
        if any(p.track is track for p in self._track_publications.values()):
            raise PublishTrackError("this track or a track of the same source is already published")
        audio = track.kind == rtc.TrackKind.KIND_AUDIO
        info = track_pb2.TrackPublicationInfo(
            sid=_sid("TR"),
            name=track.name,
            kind=track.kind,
            source=options.source,
            simulcasted=False,
            width=0,
            height=0,
            mime_type="audio/opus" if audio else "video/vp8",
            muted=False,
            remote=False,
            encryption_type=rtc.EncryptionType.NONE,
        )
        publication = rtc.LocalTrackPublication(
            track_pb2.OwnedTrackPublication(handle=_no_handle(), info=info)
        )
        # what the SDK does once the server has accepted it
        publication._track = track
        track._info.sid = publication.sid
        self._track_publications[publication.sid] = publication
        published = PublishedTrack(publication, track, options, published_at=time.monotonic())
        if audio and self._room.listening:
            published.audio = TrackAudio(track)
        self.published.append(published)

        loop = asyncio.get_running_loop()
        # the room event follows the reply (publish_track has returned by then)
        loop.call_soon(self._room._local_track_published, published)
        return publication

    async def unpublish_track(self, track_sid: str) -> None:
        known = self._track_publications.get(track_sid)
        await self._maybe_stall("unpublish", known.name if known else track_sid)
        publication = self._track_publications.pop(track_sid, None)
        if publication is None:
            raise UnpublishTrackError("track not found")
        self._room._local_track_unpublished(publication)

    def set_track_subscription_permissions(
        self,
        *,
        allow_all_participants: bool,
        participant_permissions: list[rtc.ParticipantTrackPermission] | None = None,
    ) -> None:
        """Recorded; the SDK sends it to the server with no answer (nothing to wait for)."""
        allowed: dict[str, frozenset[str] | None] = {}
        if not allow_all_participants:
            for permission in participant_permissions or []:
                sids = frozenset(permission.allowed_track_sids)
                allowed[permission.participant_identity] = None if permission.allow_all else sids
        self.permission_tables.append(
            PermissionTable(time.monotonic(), allow_all_participants, allowed)
        )

    async def set_attributes(self, attributes: dict[str, str]) -> None:
        self.attribute_changes.append(dict(attributes))
        self._room._update_attributes(self, attributes)

    async def set_metadata(self, metadata: str) -> None:
        old = self._info.metadata
        self._info.metadata = metadata
        if old != metadata:
            self._room.emit("participant_metadata_changed", self, old, metadata)

    async def set_name(self, name: str) -> None:
        old = self._info.name
        self._info.name = name
        if old != name:
            self._room.emit("participant_name_changed", self, old, name)

    async def publish_transcription(self, transcription: rtc.Transcription) -> None:
        self.transcriptions.append(transcription)

    async def stream_text(
        self,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        reply_to_id: str | None = None,
        total_size: int | None = None,
        sender_identity: str | None = None,
    ) -> rtc.TextStreamWriter:
        sent = self._text_stream(
            topic, attributes, destination_identities, stream_id, total_size, sender_identity
        )
        return _TextStreamWriter(sent)  # type: ignore[return-value]

    async def send_text(
        self,
        text: str,
        *,
        destination_identities: list[str] | None = None,
        topic: str = "",
        attributes: dict[str, str] | None = None,
        reply_to_id: str | None = None,
        compress: bool = True,
    ) -> rtc.TextStreamInfo:
        sent = self._text_stream(topic, attributes, destination_identities, None, len(text), None)
        sent.chunks.append(text)
        sent.closed = True
        return sent.info

    def _text_stream(
        self,
        topic: str,
        attributes: dict[str, str] | None,
        destination_identities: list[str] | None,
        stream_id: str | None,
        total_size: int | None,
        sender_identity: str | None,
    ) -> SentTextStream:
        info = rtc.TextStreamInfo(
            stream_id=stream_id or _sid("ST"),
            mime_type="text/plain",
            topic=topic,
            timestamp=int(time.time() * 1000),
            size=total_size,
            attributes=dict(attributes or {}),
            attachments=[],
        )
        sent = SentTextStream(
            topic=topic,
            attributes=dict(attributes or {}),
            sender_identity=sender_identity or self.identity,
            destination_identities=list(destination_identities or []),
            info=info,
        )
        self.text_streams.append(sent)
        return sent

    async def send_bytes(
        self,
        data: bytes,
        *,
        topic: str = "",
        name: str | None = None,
        mime_type: str | None = None,
        destination_identities: list[str] | None = None,
        attributes: dict[str, str] | None = None,
        stream_id: str | None = None,
        compress: bool = True,
    ) -> rtc.ByteStreamInfo:
        self.sent_bytes.append(
            SentBytes(
                topic=topic,
                name=name or "unknown",
                data=bytes(data),
                destination_identities=list(destination_identities or []),
                attributes=dict(attributes or {}),
            )
        )
        return rtc.ByteStreamInfo(
            stream_id=stream_id or _sid("BS"),
            mime_type=mime_type or "application/octet-stream",
            topic=topic,
            timestamp=int(time.time() * 1000),
            size=len(data),
            attributes=dict(attributes or {}),
            name=name or "unknown",
        )


# --------------------------------------------------------------------------- caller's audio


class PhoneAudio(Protocol):
    """What a caller's phone sends: the next frame, given the instant the agent's side
    will hear it; None once the line is closed. ``CallerLine`` is one."""

    def next_frame(self, heard_at: float) -> rtc.AudioFrame | None: ...

    async def aclose(self) -> None: ...


class StandInMicrophone:
    """A remote participant's published audio track with a real pipeline behind it: an
    ``rtc.AudioSource`` and its ``rtc.LocalAudioTrack``, presented to the room as the
    participant's ``rtc.RemoteAudioTrack``. ``feed`` plays a ``PhoneAudio`` into it,
    paced by the source itself (it plays in real time, and takes a frame whenever it has
    room for one), ``CALLER_QUEUE_MS`` ahead of what it plays."""

    def __init__(
        self,
        participant: StandInParticipant,
        *,
        name: str,
        sample_rate: int,
        source: rtc.TrackSource.ValueType,
    ) -> None:
        self.participant = participant
        self.source = rtc.AudioSource(sample_rate, 1, queue_size_ms=CALLER_QUEUE_MS)
        self.local_track = rtc.LocalAudioTrack.create_audio_track(name, self.source)
        sid = _sid("TR")
        self.track = rtc.RemoteAudioTrack(
            track_pb2.OwnedTrack(
                handle=_no_handle(),
                info=track_pb2.TrackInfo(
                    sid=sid,
                    name=name,
                    kind=rtc.TrackKind.KIND_AUDIO,
                    stream_state=rtc.StreamState.STATE_ACTIVE,
                    muted=False,
                    remote=True,
                ),
            )
        )
        # the same native track: a stream on this one reads what the source plays
        self.track._ffi_handle = self.local_track._ffi_handle
        self.publication = rtc.RemoteTrackPublication(
            track_pb2.OwnedTrackPublication(
                handle=_no_handle(),
                info=track_pb2.TrackPublicationInfo(
                    sid=sid,
                    name=name,
                    kind=rtc.TrackKind.KIND_AUDIO,
                    source=source,
                    simulcasted=False,
                    width=0,
                    height=0,
                    mime_type="audio/opus",
                    muted=False,
                    remote=True,
                    encryption_type=rtc.EncryptionType.NONE,
                ),
            )
        )
        self.phone: PhoneAudio | None = None
        self._pump: asyncio.Task[None] | None = None
        self.closed = False
        self.published_at = time.monotonic()
        self.unpublished_at: float | None = None

    @property
    def sid(self) -> str:
        return self.publication.sid

    def feed(self, phone: PhoneAudio) -> None:
        if self._pump is not None:
            raise RuntimeError("this microphone already plays a phone line")
        self.phone = phone
        self._pump = asyncio.create_task(self._play(phone), name="StandInMicrophone._play")

    async def _play(self, phone: PhoneAudio) -> None:
        while True:
            frame = phone.next_frame(time.monotonic() + self.source.queued_duration)
            if frame is None:
                return
            await self.source.capture_frame(frame)

    async def aclose(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._pump is not None:
            await aio.cancel_and_wait(self._pump)
        await self.source.aclose()


# --------------------------------------------------------------------------- the room


class StandInRoom(rtc.Room):
    """``listen=True``: every audio track the agent publishes is listened to (see
    ``PublishedTrack.audio``); it needs a running event loop and ``aclose()`` after."""

    def __init__(
        self, name: str = "call-test", *participants: StandInParticipant, listen: bool = False
    ) -> None:
        # not rtc.Room.__init__: that one prepares an FFI connection
        rtc.EventEmitter.__init__(self)
        self._ffi_handle = None
        self._info = room_pb2.RoomInfo(
            sid=_sid("RM"),
            name=name,
            metadata="",
            lossy_dc_buffered_amount_low_threshold=0,
            reliable_dc_buffered_amount_low_threshold=0,
            empty_timeout=300,
            departure_timeout=20,
            max_participants=0,
            creation_time=int(time.time() * 1000),
            num_participants=0,
            num_publishers=0,
            active_recording=False,
        )
        self._connection_state = rtc.ConnectionState.CONN_CONNECTED
        self._remote_participants: dict[str, rtc.RemoteParticipant] = {}
        self._text_stream_handlers: dict[str, Any] = {}
        self._byte_stream_handlers: dict[str, Any] = {}
        self._rpc_invocation_tasks: set[asyncio.Task[Any]] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._token: str | None = None
        self._server_url: str | None = None
        self._local_participant = StandInLocalParticipant(self)
        self.listening = listen
        self.microphones: list[StandInMicrophone] = []
        self.disconnect_reason: rtc.DisconnectReason.ValueType | None = None
        self.presses: list[tuple[str, str]] = []  # (identity, digit), in order
        for p in participants:
            self._remote_participants[p.identity] = p
        self._count_participants()

    def __repr__(self) -> str:
        state = rtc.ConnectionState.Name(self._connection_state)
        return f"StandInRoom(sid={self._info.sid}, name={self.name}, connection_state={state})"

    def as_room(self) -> rtc.Room:
        """For APIs typed with rtc.Room (it is one)."""
        return self

    @property
    def local_participant(self) -> StandInLocalParticipant:
        assert isinstance(self._local_participant, StandInLocalParticipant)
        return self._local_participant

    def isconnected(self) -> bool:
        return self._connection_state != rtc.ConnectionState.CONN_DISCONNECTED

    async def connect(self, url: str, token: str, options: Any = None) -> None:
        raise RuntimeError("the stand-in room is connected from the start")

    def _count_participants(self) -> None:
        self._info.num_participants = len(self._remote_participants) + 1
        self._info.num_publishers = sum(
            1 for p in self._remote_participants.values() if p.track_publications
        ) + bool(self.local_participant.track_publications)

    # ------------------------------------------------------------ people come and go

    def join(self, participant: StandInParticipant) -> StandInParticipant:
        self._remote_participants[participant.identity] = participant
        self._count_participants()
        self.emit("participant_connected", participant)
        self.emit("participant_active", participant)
        if participant.auto_subscribe:
            for published in self.local_participant.published:
                if published.unpublished_at is None:
                    self._subscribe(published)
        return participant

    def set_attributes(self, identity: str, **attributes: str) -> None:
        self._update_attributes(self._remote_participants[identity], attributes)

    def _update_attributes(self, participant: rtc.Participant, attributes: dict[str, str]) -> None:
        changed = {k: v for k, v in attributes.items() if participant._info.attributes.get(k) != v}
        participant._info.attributes.update(attributes)
        if changed:
            self.emit("participant_attributes_changed", changed, participant)

    def press(self, identity: str, digit: str) -> None:
        """Someone on a phone presses a key (SIP DTMF), as the room reports it to every
        participant: the SIP service sends it to the whole room (``presses`` keeps them)."""
        participant = self._remote_participants[identity]
        code = "0123456789*#".index(digit)  # the DTMF event code: * is 10, # is 11
        self.presses.append((identity, digit))
        self.emit("sip_dtmf_received", rtc.SipDTMF(code=code, digit=digit, participant=participant))

    def hang_up(
        self, identity: str, reason: rtc.DisconnectReason.ValueType = CLIENT_INITIATED
    ) -> None:
        """The participant leaves, as the SDK reports it: their disconnect reason is set,
        each of their tracks is unsubscribed and unpublished, then they are gone.
        ``reason`` is CLIENT_INITIATED by default, what a SIP caller putting the phone
        down is reported as (RoomIO closes the session only on CLIENT_INITIATED,
        ROOM_DELETED and USER_REJECTED)."""
        participant = self._remote_participants[identity]
        participant._info.disconnect_reason = reason
        participant._info.state = rtc.ParticipantState.PARTICIPANT_STATE_DISCONNECTED
        for sid in list(participant.track_publications):
            self._unpublish_remote(participant, sid)
        del self._remote_participants[identity]
        self._count_participants()
        self.emit("participant_disconnected", participant)

    # ------------------------------------------------------------ their audio

    def publish_microphone(
        self,
        identity: str,
        phone: PhoneAudio | None = None,
        *,
        name: str = "phone",
        sample_rate: int = 8000,
        source: rtc.TrackSource.ValueType = rtc.TrackSource.SOURCE_MICROPHONE,
    ) -> StandInMicrophone:
        """The participant publishes an audio track, and the agent (which subscribes to
        everything) is subscribed to it at once: ``track_published`` then
        ``track_subscribed``. ``phone`` is played into it; a track nobody plays carries
        silence, as a phone line does."""
        participant = self._remote_participants[identity]
        assert isinstance(participant, StandInParticipant)
        mic = StandInMicrophone(participant, name=name, sample_rate=sample_rate, source=source)
        self.microphones.append(mic)
        if phone is not None:
            mic.feed(phone)
        participant._track_publications[mic.sid] = mic.publication
        self._count_participants()
        self.emit("track_published", mic.publication, participant)
        mic.publication._subscribed = True
        mic.publication._track = mic.track
        mic.track._set_room(self)
        self.emit("track_subscribed", mic.track, mic.publication, participant)
        return mic

    def unpublish(self, identity: str, track_sid: str) -> None:
        """The participant stops publishing a track (mutes by unpublishing, or leaves)."""
        self._unpublish_remote(self._remote_participants[identity], track_sid)

    def _unpublish_remote(self, participant: rtc.RemoteParticipant, track_sid: str) -> None:
        publication = participant._track_publications[track_sid]
        if (track := publication.track) is not None:
            track._set_room(None)
            publication._track = None
            publication._subscribed = False
            self.emit("track_unsubscribed", track, publication, participant)
        del participant._track_publications[track_sid]
        self.emit("track_unpublished", publication, participant)
        for mic in self.microphones:
            if mic.publication is publication:
                mic.unpublished_at = time.monotonic()
                self._spawn(self._hang_up_phone(mic))  # the phone stops sending

    async def _hang_up_phone(self, mic: StandInMicrophone) -> None:
        await mic.aclose()
        if mic.phone is not None:
            await mic.phone.aclose()

    # ------------------------------------------------------------ the agent's tracks

    def _local_track_published(self, published: PublishedTrack) -> None:
        if published.unpublished_at is not None:
            return
        self._count_participants()
        self.emit("local_track_published", published.publication, published.track)
        if any(getattr(p, "auto_subscribe", True) for p in self._remote_participants.values()):
            self._subscribe(published)

    def _subscribe(self, published: PublishedTrack) -> None:
        if published.subscribed_at is not None:
            return
        published.subscribed_at = time.monotonic()
        fut = published.publication._first_subscription
        if not fut.done():
            fut.set_result(None)
        self.emit("local_track_subscribed", published.track)

    def _local_track_unpublished(self, publication: rtc.LocalTrackPublication) -> None:
        local = self.local_participant
        local._track_publications.pop(publication.sid, None)
        local.unpublished.append(publication.sid)
        for published in local.published:
            if published.publication is publication:
                published.unpublished_at = time.monotonic()
                if published.audio is not None:
                    self._spawn(published.audio.aclose())
        self._count_participants()
        self.emit("local_track_unpublished", publication)
        publication._track = None

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------ the room ends

    def delete(self, *, participants_first: bool = True) -> None:
        """DeleteRoom, as the agent's room reports it: every other participant leaves
        with ROOM_DELETED, then the server disconnects the agent (connection state
        DISCONNECTED, ``disconnected`` with ROOM_DELETED) and its tracks are unpublished.
        ``participants_first=False``: the agent's own leave arrives first, and the
        others' departures are never seen (it happens too)."""
        if participants_first:
            for identity in list(self._remote_participants):
                self.hang_up(identity, ROOM_DELETED)
        self._server_disconnected(ROOM_DELETED)

    def _server_disconnected(self, reason: rtc.DisconnectReason.ValueType) -> None:
        if not self.isconnected():
            return
        self.disconnect_reason = reason
        self.local_participant._info.disconnect_reason = reason
        self._connection_state = rtc.ConnectionState.CONN_DISCONNECTED
        self.emit("connection_state_changed", self._connection_state)
        self.emit("disconnected", reason)
        for publication in list(self.local_participant.track_publications.values()):
            self._local_track_unpublished(publication)

    async def disconnect(
        self, *, reason: rtc.DisconnectReason.ValueType = CLIENT_INITIATED
    ) -> None:
        """The agent leaves: its tracks are unpublished, then the room disconnects."""
        if not self.isconnected():
            return
        for publication in list(self.local_participant.track_publications.values()):
            self._local_track_unpublished(publication)
        self.disconnect_reason = reason
        self.local_participant._info.disconnect_reason = reason
        self._connection_state = rtc.ConnectionState.CONN_DISCONNECTED
        self.emit("connection_state_changed", self._connection_state)
        self.emit("disconnected", reason)

    # ------------------------------------------------------------ for tests

    def tracks_heard(self) -> Iterator[PublishedTrack]:
        return (p for p in self.local_participant.published if p.audio is not None)

    async def aclose(self) -> None:
        """Frees the audio pipelines (no events: the test is over)."""
        for mic in self.microphones:
            await mic.aclose()
        for published in self.local_participant.published:
            if published.audio is not None:
                await published.audio.aclose()
        await asyncio.gather(*self._tasks, return_exceptions=True)
