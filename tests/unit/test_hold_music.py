"""Hold music: the framework's BackgroundAudioPlayer on a track of its own, which never
delays the dial and never outlives the hold, even when the SFU does not answer."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path

from livekit import rtc
from livekit.agents.voice.background_audio import BuiltinAudioClip

import playback
from config import Secrets, Settings, parse_settings
from tests.conftest import business
from tests.support.stand_in_room import StandInRoom
from tools.warm_transfer.hold import HoldMusic, hold_music_for


async def until_published(room: StandInRoom) -> None:
    """Until the room reports the agent's track published."""
    done = asyncio.Event()
    room.on("local_track_published", lambda *_: done.set())
    if not room.local_participant.published:
        await asyncio.wait_for(done.wait(), 2)


async def test_hold_music_publishes_a_track_and_removes_it() -> None:
    room = StandInRoom("call-room-1")
    local = room.local_participant
    hold = HoldMusic(room, BuiltinAudioClip.HOLD_MUSIC)

    hold.begin()
    await until_published(room)
    (published,) = local.published
    assert published.name == "background_audio"
    assert isinstance(published.track, rtc.LocalAudioTrack)

    await hold.end()
    assert local.unpublished == [published.sid]
    assert local.track_publications == {}
    await hold.end()  # ending twice is harmless
    await room.aclose()


async def test_a_publish_that_hangs_delays_nothing_and_is_abandoned_at_the_end() -> None:
    room = StandInRoom("call-room-1")
    room.local_participant.stall("publish")
    hold = HoldMusic(room, BuiltinAudioClip.HOLD_MUSIC)

    started = time.monotonic()
    hold.begin()  # returns at once: the dial goes out while the track is being published
    assert time.monotonic() - started < 0.05
    await asyncio.sleep(0.05)
    assert room.local_participant.stalled_requests == ["publish background_audio"]

    async with asyncio.timeout(1):  # the caller's hang-up is not kept waiting
        await hold.end()
    assert room.local_participant.published == []
    room.local_participant.release()
    await room.aclose()


async def test_an_unpublish_that_hangs_is_given_up_on_within_its_time_limit(
    monkeypatch,
) -> None:
    monkeypatch.setattr(playback, "UNPUBLISH_TIMEOUT_S", 0.2)
    room = StandInRoom("call-room-1")
    hold = HoldMusic(room, BuiltinAudioClip.HOLD_MUSIC)
    hold.begin()
    await until_published(room)
    room.local_participant.stall("unpublish")

    started = time.monotonic()
    await hold.end()
    assert time.monotonic() - started < 1.0
    assert room.local_participant.stalled_requests == ["unpublish background_audio"]
    room.local_participant.release()
    await room.aclose()


def test_hold_music_is_the_builtin_clip_unless_a_file_is_configured(
    settings: Settings, tmp_path: Path
) -> None:
    room = StandInRoom("call-room-1")
    builtin = hold_music_for(room, settings)
    assert isinstance(builtin, HoldMusic)
    assert builtin.source is BuiltinAudioClip.HOLD_MUSIC

    (tmp_path / "music").mkdir()
    with wave.open(str(tmp_path / "music" / "hold.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\x10" * 1600)
    custom_settings = parse_settings(
        business(transfer={"outbound_trunk_id": "ST_outbound", "hold_music": "music/hold.wav"}),
        source=str(tmp_path / "assistant.toml"),
        secrets=Secrets(),
    )
    custom = hold_music_for(room, custom_settings)
    assert isinstance(custom, HoldMusic)
    assert custom.source == str(tmp_path / "music" / "hold.wav")
