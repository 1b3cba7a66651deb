"""Who hears whom during a consult-first warm transfer, control by control: the agent's
track subscription permissions (kept by track name as tracks come and go), the dialed
leg's subscribe gate (a copy of its permission with one field changed, sent through the
real livekit-api client to the loopback server), and the subscriptions withdrawn and
granted. The model the call tests judge by (tests/support/hearing_model.py) is pinned
here too."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from livekit import rtc
from livekit.protocol import models

from server_api import CallServer
from tests.support.destination import SIP_PERMISSION
from tests.support.hearing_model import who_hears_whom
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.stand_in_room import SIP, StandInParticipant, StandInRoom, phone_caller
from tools.warm_transfer import hearing
from tools.warm_transfer.hearing import BRIEF_TRACK, HOLD_TRACK, VOICE_TRACK, Hearing

CALLER, LEG = "sip_caller", "supervisor-billing-1"
NAMES = {CALLER: "the caller", LEG: "the destination"}


@dataclass
class Room:
    room: StandInRoom
    server: LoopbackLiveKit
    hearing: Hearing

    async def publish(self, name: str) -> str:
        """The agent publishes an audio track named ``name``; returns its sid."""
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track(name, source)
        published = asyncio.Event()
        self.room.on("local_track_published", lambda *_: published.set())
        publication = await self.room.local_participant.publish_track(track)
        await published.wait()  # the room's event, which the controls follow
        return publication.sid

    def leg_joins(self) -> None:
        """The dialed leg joins (before its phone rings), known to the server."""
        self.server.participants.setdefault(self.room.name, []).append(
            models.ParticipantInfo(identity=LEG, kind=models.ParticipantInfo.Kind.SIP,
                                   permission=SIP_PERMISSION)
        )  # fmt: skip
        self.room.join(StandInParticipant(LEG, kind=SIP, attributes={"sip.callStatus": "dialing"}))

    def allowed(self) -> dict[str, frozenset[str] | None]:
        table = self.room.local_participant.permission_tables[-1]
        assert not table.allow_all
        return table.allowed

    def heard(self, answered_at: float | None = None) -> set[str]:
        return who_hears_whom(
            self.room,
            self.server,
            names=NAMES,
            subscribes_from={CALLER: 0.0, LEG: answered_at},
        )


@asynccontextmanager
async def a_room() -> AsyncIterator[Room]:
    room = StandInRoom("call-room-1", phone_caller(CALLER))
    room.publish_microphone(CALLER)
    async with LoopbackLiveKit() as server:
        client = CallServer(server.url, server.api_key, server.api_secret, room.name)
        try:
            yield Room(room, server, Hearing(room, client, CALLER))
        finally:
            await client.aclose()
            await room.aclose()


async def test_on_hold_only_the_caller_may_hear_the_agent_and_only_its_voice_and_music() -> None:
    async with a_room() as r:
        voice = await r.publish(VOICE_TRACK)
        r.hearing.hold()
        assert r.allowed() == {CALLER: frozenset({voice})}
        music = await r.publish(HOLD_TRACK)  # published later: the table follows by name
        briefing = await r.publish(BRIEF_TRACK)
        r.hearing.expect(LEG)
        assert r.allowed() == {CALLER: frozenset({voice, music}), LEG: frozenset()}
        assert briefing not in (r.allowed()[CALLER] or ())
        assert r.heard() == {
            "the caller hears the agent's voice",
            "the caller hears the hold music",
        }
        r.hearing.release()


async def test_the_leg_is_gated_as_it_joins_with_the_rest_of_its_permission_kept() -> None:
    async with a_room() as r:
        r.hearing.hold()
        r.hearing.expect(LEG)
        r.leg_joins()
        update = await r.server.wait_for_request("UpdateParticipant")
        (read,) = r.server.requests_for("GetParticipant")
        assert read.message.identity == LEG and read.received_at <= update.received_at
        assert update.message.identity == LEG
        expected = models.ParticipantPermission()
        expected.CopyFrom(SIP_PERMISSION)
        expected.can_subscribe = False  # only that changed: it still publishes, and its keys
        assert update.message.permission == expected
        r.hearing.release()


async def test_the_caller_is_kept_from_the_legs_line_again_and_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hearing, "REISSUE_AFTER_S", 0.05)
    async with a_room() as r:
        r.hearing.hold()
        r.hearing.expect(LEG)
        r.leg_joins()
        line = r.room.publish_microphone(LEG)
        at_once = await r.server.wait_for_request("UpdateSubscriptions")
        again = await r.server.wait_for_request("UpdateSubscriptions")  # a withdrawal that
        # reached the server before the SIP service subscribed would have been dropped
        r.room.set_attributes(LEG, **{"sip.callStatus": "active"})  # its phone answered
        answered = await r.server.wait_for_request("UpdateSubscriptions")
        for request in (at_once, again, answered):
            message = request.message
            assert (message.identity, list(message.track_sids), message.subscribe) == (
                CALLER,
                [line.sid],
                False,
            )
        r.hearing.release()


async def test_the_consult_withdraws_the_caller_then_opens_the_legs_ears() -> None:
    async with a_room() as r:
        voice = await r.publish(VOICE_TRACK)
        await r.publish(HOLD_TRACK)
        briefing = await r.publish(BRIEF_TRACK)
        r.hearing.hold()
        r.hearing.expect(LEG)
        r.leg_joins()
        r.room.publish_microphone(LEG)
        await r.server.wait_for_request("UpdateParticipant")
        answered_at = time.monotonic()
        r.room.set_attributes(LEG, **{"sip.callStatus": "active"})
        assert r.heard(answered_at) == {
            "the caller hears the agent's voice",
            "the caller hears the hold music",
        }  # answered: it would hear everything, but its gate is closed

        await r.hearing.open_to_briefing()
        withdrawn = [
            q for q in r.server.requests_for("UpdateSubscriptions") if q.message.identity == LEG
        ]
        opened = r.server.requests_for("UpdateParticipant")[-1]
        assert [list(q.message.track_sids) for q in withdrawn] == [[r.room.microphones[0].sid]]
        assert not withdrawn[0].message.subscribe
        assert opened.message.permission.can_subscribe
        assert withdrawn[0].received_at <= opened.received_at  # in that order
        assert r.allowed()[LEG] == frozenset({briefing})
        assert r.heard(answered_at) == {
            "the caller hears the agent's voice",
            "the caller hears the hold music",
            "the destination hears the briefing",
        }

        await r.hearing.connect()
        assert r.allowed() == {CALLER: frozenset({voice}), LEG: frozenset({voice})}
        assert {
            "the caller hears the destination",
            "the destination hears the caller",
        } <= r.heard(answered_at)
        r.hearing.release()
        assert r.room.local_participant.permission_tables[-1].allow_all


async def test_a_leg_whose_permission_cannot_be_read_is_never_sent_a_bare_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with a_room() as r:
        r.hearing.hold()
        r.hearing.expect(LEG)
        r.room.join(StandInParticipant(LEG, kind=SIP))  # the server does not know it
        await r.hearing.open_to_briefing()  # after the gate's attempt, its own
        r.hearing.release()
        assert len(r.server.requests_for("GetParticipant")) == 2
        assert r.server.requests_for("UpdateParticipant") == []
        assert "could not read supervisor-billing-1's permission" in caplog.text
        assert "could not be let hear the briefing" in caplog.text


# --------------------------------------------------------------------------- the model


async def test_the_model_hears_everything_in_an_unrestricted_room() -> None:
    async with a_room() as r:
        await r.publish(VOICE_TRACK)
        r.leg_joins()
        r.room.publish_microphone(LEG)
        assert r.heard(answered_at=0.0) == {
            "the caller hears the agent's voice",
            "the destination hears the agent's voice",
            "the caller hears the destination",
            "the destination hears the caller",
        }


async def test_the_model_drops_a_withdrawal_sent_before_the_leg_subscribed() -> None:
    async with a_room() as r:
        r.leg_joins()
        client = CallServer(r.server.url, r.server.api_key, r.server.api_secret, r.room.name)
        caller_line = r.room.microphones[0].sid
        await client.subscribe(LEG, [caller_line], subscribe=False)  # before its answer
        answered_at = time.monotonic()
        await client.aclose()
        assert "the destination hears the caller" in r.heard(answered_at)
