"""A provider fails during a whole call: the caller is never left on a silent line.

Each test answers a call as ``answer_call`` does (``answered``: the framework's RoomIO on
the stand-in room, the real Deepgram and OpenAI plugins against loopback servers, the
LiveKit server API on a loopback Twirp server), then breaks one provider the way it
breaks in production:

* the LLM answers 5xx, or the text-to-speech model does, in the middle of the call;
* Deepgram is unreachable from the start (connection refused), or accepts the
  connection and never completes the handshake (recoverable errors forever).

Without a fallback for the model that failed, the caller hears the apology made before
the call (on a track of its own, no live TTS), then is transferred by one REFER to the
``[on_failure] transfer_to`` destination, or the call is ended for them (DeleteRoom) and
the job ends, once. With a fallback configured the fallback answers and the caller hears
the reply. Each test also checks what reached the servers (nothing unscripted), the log
lines an operator would see, and how long the caller waited between the fault and the
first sound of the apology (``Timing``; the figures are printed with ``-s``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from livekit.plugins import silero

import models
import outage
from config import ModelChoice, OnFailure, Settings
from prompts import Words
from tests.simulation.test_whole_call import CONFIRM, a_worker, heard_in_full
from tests.support.caller_audio import TRANSCRIPTS, HeardUtterance
from tests.support.deepgram_server import VOICE_HZ, Refuse, Stall, unreachable_url
from tests.support.livekit_server import LoopbackLiveKit
from tests.support.openai_server import Fault
from tests.support.scripted_llm import say
from tests.support.simulated_call import AnsweredCall, StandIns, answered, stand_ins
from tests.support.stand_in_room import AudibleRun, PublishedTrack, phone_caller

NUMBER = "+15551234567"  # the caller's
DESK = "front_desk"  # a cold destination, reached at sip:frontdesk@pbx.example.com
APOLOGY_TRACK = "background_audio"  # the name the framework's BackgroundAudioPlayer gives it
OPENAI_VOICE_HZ = 140.0  # the OpenAI stand-in's voice (the Deepgram one speaks at 210 Hz)

# The lifecycle's line for an unrecoverable error; the provider is the OpenAI host
# ("openai" for api.openai.com, the stand-in's address here).
WILL_NOT_RECOVER = (
    r"ERROR phone-assistant\.lifecycle: {kind} \(\S+ {model}\) failed and will not recover: "
    r"APIStatusError 500: Error code: 500"
)
# How each call may end after the rescue: transferred by REFER, or ended for the caller.
ENDINGS = [pytest.param(DESK, id="transfer"), pytest.param(None, id="end")]


@pytest.fixture(scope="module")
def vad() -> silero.VAD:
    return silero.VAD.load()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """What the worker logged (INFO and up, the project's and the framework's loggers)."""
    caplog.set_level(logging.INFO)

    def lines() -> list[str]:
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}"
            for r in caplog.records
            if r.levelno >= logging.INFO
            and r.name.startswith(("phone-assistant", "livekit.agents", "livekit.plugins"))
        ]

    return lines


def configured(
    settings: Settings,
    world: StandIns,
    *,
    transfer_to: str | None,
    deepgram_url: str | None = None,
    **fallbacks: tuple[ModelChoice, ...],
) -> Settings:
    """The business's settings pointed at the stand-ins, with ``[on_failure]`` and
    ``[models] *_fallback`` as given; ``deepgram_url`` replaces DEEPGRAM_BASE_URL."""
    settings = world.settings(settings)
    secrets = settings.secrets
    if deepgram_url is not None:
        secrets = dataclasses.replace(secrets, deepgram_base_url=deepgram_url)
    return dataclasses.replace(
        settings,
        secrets=secrets,
        models=dataclasses.replace(settings.models, **fallbacks),
        on_failure=OnFailure(transfer_to=transfer_to),
    )


def apology_tracks(c: AnsweredCall) -> list[PublishedTrack]:
    return [t for t in c.room.local_participant.published if t.name == APOLOGY_TRACK]


def apology_runs(c: AnsweredCall) -> list[AudibleRun]:
    """The audible stretches of every apology track (pauses between sentences bridged)."""
    return [r for t in apology_tracks(c) if t.audio for r in t.audio.runs(bridge=0.5)]


def voice_heard(c: AnsweredCall) -> list[HeardUtterance]:
    """The agent's utterances on its voice track that the caller actually heard."""
    return [u for u in c.playout.playouts if u.heard_seconds > 0]


def dominant_hz(utterance: HeardUtterance) -> float:
    """The pitch of what the caller heard: tells the OpenAI voice from Deepgram's."""
    samples = np.concatenate([np.frombuffer(bytes(h.frame.data), "<i2") for h in utterance.frames])
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64)))
    return float(np.argmax(spectrum) * utterance.frames[0].frame.sample_rate / len(samples))


@dataclasses.dataclass
class Timing:
    """When things happened, for the report (``pytest -s`` prints them)."""

    name: str
    marks: dict[str, float] = dataclasses.field(default_factory=dict)

    def mark(self, what: str, at: float | None = None) -> float:
        self.marks[what] = time.monotonic() if at is None else at
        return self.marks[what]

    def between(self, start: str, end: str) -> float:
        return self.marks[end] - self.marks[start]

    def report(self, *pairs: tuple[str, str]) -> None:
        shown = ", ".join(f"{a} -> {b}: {self.between(a, b):.2f} s" for a, b in pairs)
        print(f"\n[timing] {self.name}: {shown}")


@contextmanager
def session_closes(c: AnsweredCall, timing: Timing) -> Iterator[None]:
    """Marks when the session emitted its unrecoverable error (if any) and closed."""

    def on_error(ev: object) -> None:
        error = getattr(ev, "error", None)
        if "session closed" in timing.marks:
            return
        if getattr(error, "recoverable", True):
            timing.mark("last recoverable error")  # after the outage watch saw it
        elif "unrecoverable error" not in timing.marks:
            timing.mark("unrecoverable error")

    c.session.on("error", on_error)
    c.session.on("close", lambda _: timing.mark("session closed"))
    try:
        yield
    finally:
        c.session.off("error", on_error)


def check_the_rescue(
    c: AnsweredCall,
    world: StandIns,
    settings: Settings,
    *,
    caller: str,
    transfer_to: str | None,
    outcome: str,
) -> float:
    """The caller heard the whole apology made before the call on its own track, then
    (with a destination) one REFER went out after its last sound; the job ended once
    with ``outcome``. Returns when the first sound of the apology reached the caller."""
    moment = "transfer" if transfer_to else "end"
    words = Words(settings, settings.models.language).failure(moment)
    tracks = apology_tracks(c)
    assert len(tracks) == 1, f"one apology track expected, {len(tracks)} published"
    (track,) = tracks
    assert track.audio is not None
    runs = apology_runs(c)
    assert track.audio.audible_seconds >= world.openai.speech_seconds(words) - 0.1  # in full
    assert track.unpublished_at is not None  # and the track went away after it
    if transfer_to is not None:
        (refer,) = world.livekit.requests_for("TransferSIPParticipant")
        destination = settings.destination(transfer_to)
        assert destination is not None
        assert refer.message.transfer_to == destination.transfer_to
        assert refer.message.participant_identity == caller
        assert refer.message.room_name == c.room.name
        assert refer.received_at >= runs[-1].ended_at  # the words were out before the REFER
    else:
        assert world.livekit.requests_for("TransferSIPParticipant") == []
    assert c.shutdowns == [outcome]  # the job ended once, for that reason
    return runs[0].started_at


def check_the_room_went_once(livekit: LoopbackLiveKit, *, transferred: bool) -> None:
    """After the job's end (its shutdown hook ran too): one REFER if transferred, then
    one DeleteRoom, and nothing else asked of the LiveKit server."""
    methods = [r.method for r in livekit.requests]
    assert methods == ["TransferSIPParticipant", "DeleteRoom"] if transferred else ["DeleteRoom"]


def outcome_of(transfer_to: str | None) -> str:
    if transfer_to is None:
        return "the call was ended after the apology"
    return f"the caller was transferred to {transfer_to} after the apology"


def logged(lines: list[str], pattern: str) -> bool:
    return any(re.match(pattern, line) for line in lines)


def speech_texts(world: StandIns, since: int = 0) -> list[str]:
    return [r.body["input"] for r in world.openai.speech_requests[since:]]


# --------------------------------------------------------------------------- row 1: LLM, TTS


@pytest.mark.parametrize("transfer_to", ENDINGS)
async def test_the_llm_failing_mid_call_without_a_fallback_gets_the_apology_then_the_rescue(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]], transfer_to: str | None
) -> None:
    """The LLM answers 500 to everything once the caller has been greeted. One try and
    one retry (models.LLM_CONNECT), then the session closes on the unrecoverable error,
    and the caller hears the apology at once instead of silence."""
    timing = Timing(f"LLM 5xx mid-call, no fallback, {transfer_to or 'end'}")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=transfer_to)
        world.deepgram.script(TRANSCRIPTS["billing"])
        greetings = await a_worker(settings)
        made_ahead = len(world.openai.speech_requests)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-llm-down"
        ) as c:
            with session_closes(c, timing):
                greeted = await c.playout.finished(1)
                failing = world.openai.fail_model(settings.models.llm, Fault.server_error())
                asking = await c.line.speak("billing")
                timing.mark("caller stopped talking", asking.ended_at)
                ended = await c.job_ends(within=20)
            closed = c.closed.result()
            first_chat = world.openai.chat_requests[0].received_at
            timing.mark("first failed LLM request", first_chat)
            heard_from = check_the_rescue(
                c,
                world,
                settings,
                caller=participant.identity,
                transfer_to=transfer_to,
                outcome=outcome_of(transfer_to),
            )
            timing.mark("first apology audio", heard_from)
            voice = voice_heard(c)
            stray = list(c.playout.stray)
        check_the_room_went_once(world.livekit, transferred=transfer_to is not None)

    assert ended == outcome_of(transfer_to)
    assert closed.reason.value == "error" and closed.error is not None
    assert closed.error.type == "llm_error"
    # the caller heard the greeting, then nothing from the agent's voice, then the apology
    assert heard_in_full(greeted) and voice == [greeted] and stray == []
    # the LLM was asked once and retried once, both 500; nothing else was asked of anyone
    assert failing.hits == len(world.openai.chat_requests) == models.LLM_CONNECT.max_retry + 1
    assert all(r.status == 500 for r in world.openai.chat_requests)
    assert world.openai.chat_requests[0].last_user_text == TRANSCRIPTS["billing"]
    assert len(world.openai.speech_requests) == made_ahead  # no live TTS for the apology
    assert world.unexpected == [] and world.deepgram.scripted == []
    # the caller waited about as long as a normal answer takes, not ~45 s
    timing.report(
        ("caller stopped talking", "first apology audio"),
        ("first failed LLM request", "first apology audio"),
    )
    assert timing.between("first failed LLM request", "first apology audio") < 2.5
    assert timing.between("caller stopped talking", "first apology audio") < 5.0

    said = logs()
    assert logged(said, WILL_NOT_RECOVER.format(kind="LLM", model=r"gpt-4\.1-mini"))
    assert any(
        "phone-assistant.lifecycle: the agent session closed (error:" in line
        and "while the caller was waiting" in line
        for line in said
    )
    over = f"INFO phone-assistant.lifecycle: call over ({ended}): ending every leg and deleting"
    assert f"{over} the room" in said
    if transfer_to is not None:
        assert (
            "INFO phone-assistant.rescue: sending one REFER to the [on_failure] destination "
            "front_desk (sip:frontdesk@pbx.example.com)" in said
        )


@pytest.mark.parametrize("transfer_to", ENDINGS)
async def test_text_to_speech_failing_mid_call_without_a_fallback_gets_the_apology_made_before(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]], transfer_to: str | None
) -> None:
    """The LLM answers, but the speech endpoint answers 500 for the TTS model: the reply
    cannot be spoken. The apology was made before the call, so it needs no TTS now."""
    timing = Timing(f"TTS 5xx mid-call, no fallback, {transfer_to or 'end'}")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=transfer_to)
        world.deepgram.script(TRANSCRIPTS["billing"])
        world.openai.script(say(CONFIRM))
        greetings = await a_worker(settings)
        made_ahead = len(world.openai.speech_requests)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-tts-down"
        ) as c:
            with session_closes(c, timing):
                greeted = await c.playout.finished(1)
                failing = world.openai.fail_model(settings.models.tts, Fault.server_error())
                asking = await c.line.speak("billing")
                timing.mark("caller stopped talking", asking.ended_at)
                ended = await c.job_ends(within=20)
            closed = c.closed.result()
            during_the_call = world.openai.speech_requests[made_ahead:]
            timing.mark("first failed TTS request", during_the_call[0].received_at)
            heard_from = check_the_rescue(
                c,
                world,
                settings,
                caller=participant.identity,
                transfer_to=transfer_to,
                outcome=outcome_of(transfer_to),
            )
            timing.mark("first apology audio", heard_from)
            voice = voice_heard(c)
            stray = list(c.playout.stray)
        check_the_room_went_once(world.livekit, transferred=transfer_to is not None)

    assert ended == outcome_of(transfer_to)
    assert closed.reason.value == "error" and closed.error is not None
    assert closed.error.type == "tts_error"
    assert heard_in_full(greeted) and voice == [greeted] and stray == []
    # the reply's first sentence was asked for, and retried once; all failed, and no live
    # TTS was asked for the apology
    assert len(world.openai.chat_requests) == 1 and world.openai.remaining == 0
    assert all(r.status == 500 and r.fault is not None for r in during_the_call)
    assert failing.hits == len(during_the_call) == models.TTS_CONNECT.max_retry + 1
    first_sentence = CONFIRM.split(". ")[0] + "."
    assert {r.body["input"] for r in during_the_call} == {first_sentence}
    assert world.unexpected == [] and world.deepgram.scripted == []
    timing.report(
        ("caller stopped talking", "first apology audio"),
        ("first failed TTS request", "first apology audio"),
    )
    assert timing.between("first failed TTS request", "first apology audio") < 2.5
    assert timing.between("caller stopped talking", "first apology audio") < 5.0

    said = logs()
    assert logged(said, WILL_NOT_RECOVER.format(kind="TTS", model="gpt-4o-mini-tts"))
    assert any("the agent session closed (error:" in line for line in said)


async def test_with_an_llm_fallback_the_fallback_model_answers(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]]
) -> None:
    """``llm_fallback = ["openai:gpt-4.1"]``: the primary's 500 moves the turn to the
    fallback at once, and the caller hears its reply; no apology, no rescue."""
    timing = Timing("LLM 5xx mid-call, llm_fallback openai:gpt-4.1")
    fallback = ModelChoice("openai", "gpt-4.1")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=DESK, llm_fallback=(fallback,))
        world.deepgram.script(TRANSCRIPTS["billing"])
        world.openai.script(say(CONFIRM))
        greetings = await a_worker(settings)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-llm-fallback"
        ) as c:
            greeted = await c.playout.finished(1)
            world.openai.fail_model(settings.models.llm, Fault.server_error())
            asking = await c.line.speak("billing")
            timing.mark("caller stopped talking", asking.ended_at)
            answer = await c.playout.finished(2)
            assert answer.heard_from is not None
            timing.mark("first reply audio", answer.heard_from)
            # the adapter's probe of the primary runs in the background: wait for it
            await world.openai.wait_for_requests(2, model=settings.models.llm, timeout=10)
            await world.openai.settled()
            chats = [(r.model, r.status) for r in world.openai.chat_requests]
            c.room.hang_up(participant.identity)
            ended = await c.job_ends()
            apologies = apology_tracks(c)
        check_the_room_went_once(world.livekit, transferred=False)

    assert heard_in_full(greeted) and heard_in_full(answer)
    assert " ".join(speech_texts(world)[-2:]) == CONFIRM  # spoken by the primary TTS
    assert ended == "session closed: participant_disconnected"  # the caller hung up
    assert apologies == []
    # the primary failed once (no retry: the next model is the retry) and the fallback
    # answered; the adapter's one recovery probe of the primary failed too
    assert chats[0] == (settings.models.llm, 500)
    assert [m for m, s in chats if s == 200] == [fallback.model]
    assert [s for m, s in chats if m == settings.models.llm] == [500, 500]
    assert world.unexpected == [] and world.openai.remaining == 0
    timing.report(("caller stopped talking", "first reply audio"))
    assert timing.between("caller stopped talking", "first reply audio") < 4.5
    assert not any("will not recover" in line for line in logs())


@pytest.mark.parametrize(
    "fallback",
    [
        pytest.param(ModelChoice("openai", "tts-1"), id="openai-tts-1"),
        pytest.param(ModelChoice("deepgram", "aura-2-thalia-en"), id="deepgram-aura"),
    ],
)
async def test_with_a_tts_fallback_the_caller_hears_the_reply_from_it(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]], fallback: ModelChoice
) -> None:
    """``tts_fallback``: the primary TTS model answers 500, the fallback speaks the reply
    (Deepgram through its own speak endpoint, beside DEEPGRAM_BASE_URL's listen)."""
    timing = Timing(f"TTS 5xx mid-call, tts_fallback {fallback}")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=DESK, tts_fallback=(fallback,))
        world.deepgram.script(TRANSCRIPTS["billing"])
        world.openai.script(say(CONFIRM))
        greetings = await a_worker(settings)
        made_ahead = len(world.openai.speech_requests)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-tts-fallback"
        ) as c:
            greeted = await c.playout.finished(1)
            world.openai.fail_model(settings.models.tts, Fault.server_error())
            asking = await c.line.speak("billing")
            timing.mark("caller stopped talking", asking.ended_at)
            answer = await c.playout.finished(2)
            assert answer.heard_from is not None
            timing.mark("first reply audio", answer.heard_from)
            await world.openai.settled()
            c.room.hang_up(participant.identity)
            ended = await c.job_ends()
            apologies = apology_tracks(c)
        check_the_room_went_once(world.livekit, transferred=False)

    assert heard_in_full(greeted) and heard_in_full(answer)
    assert ended == "session closed: participant_disconnected"
    assert apologies == []
    during_the_call = world.openai.speech_requests[made_ahead:]
    primary = [r for r in during_the_call if r.model == settings.models.tts]
    assert primary and all(r.status == 500 for r in primary)  # it never spoke
    if fallback.provider == "openai":
        spoken = [r.body["input"] for r in during_the_call if r.model == fallback.model]
        assert all(r.status == 200 for r in during_the_call if r.model == fallback.model)
        assert abs(dominant_hz(answer) - OPENAI_VOICE_HZ) < 10
    else:
        spoken = [r.text for r in world.deepgram.speak_requests]
        assert {r.model for r in world.deepgram.speak_requests} == {fallback.model}
        assert abs(dominant_hz(answer) - VOICE_HZ) < 10  # the caller heard Deepgram's voice
    assert " ".join(spoken) == CONFIRM
    assert world.unexpected == [] and world.openai.remaining == 0
    timing.report(("caller stopped talking", "first reply audio"))
    assert timing.between("caller stopped talking", "first reply audio") < 4.5
    assert not any("will not recover" in line for line in logs())


# --------------------------------------------------------------------------- row 2: Deepgram


@pytest.mark.parametrize("transfer_to", ENDINGS)
async def test_deepgram_unreachable_from_the_start_the_greeting_then_the_apology(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]], transfer_to: str | None
) -> None:
    """Every connect to Deepgram is refused. The plugin gives up after three retries
    (models.STT_CONNECT: ~3.1 s), while the greeting is still playing: the greeting
    plays to its end, then the caller hears the apology and is handed on.

    Speech is synthesized at 0.08 s a character, about as fast as a person speaks, so the
    greeting (made ahead of time) lasts ~4.9 s and the failure comes in its middle."""
    timing = Timing(f"Deepgram unreachable, {transfer_to or 'end'}")
    async with stand_ins(speech_seconds_per_char=0.08) as world:
        with unreachable_url() as down:
            settings = configured(settings, world, transfer_to=transfer_to, deepgram_url=down)
            greetings = await a_worker(settings)
            made_ahead = len(world.openai.speech_requests)
            timing.mark("call answered")
            participant = phone_caller(number=NUMBER)
            async with answered(
                settings, participant, vad=vad, greetings=greetings, room_name="call-stt-down"
            ) as c:
                with session_closes(c, timing):
                    ended = await c.job_ends(within=30)
                closed = c.closed.result()
                greeted = c.playout.playouts[0]
                assert greeted.finished_at is not None and greeted.heard_until is not None
                timing.mark("greeting heard to its end", greeted.heard_until)
                heard_from = check_the_rescue(
                    c,
                    world,
                    settings,
                    caller=participant.identity,
                    transfer_to=transfer_to,
                    outcome=outcome_of(transfer_to),
                )
                timing.mark("first apology audio", heard_from)
                voice = voice_heard(c)
            check_the_room_went_once(world.livekit, transferred=transfer_to is not None)

    # the failure came while the greeting played, and the greeting still played in full
    assert timing.marks["unrecoverable error"] < greeted.finished_at
    assert heard_in_full(greeted) and voice == [greeted]
    assert greeted.heard_until < heard_from  # one after the other, never over each other
    assert ended == outcome_of(transfer_to)
    # the lifecycle closed the session, letting the greeting finish, before the framework
    # would have closed it on the error, cutting the greeting off
    assert closed.reason.value == "user_initiated" and closed.error is None
    assert world.deepgram.attempts == []  # nothing reached a Deepgram
    assert len(world.openai.speech_requests) == made_ahead and world.openai.chat_requests == []
    timing.report(
        ("call answered", "unrecoverable error"),
        ("greeting heard to its end", "first apology audio"),
        ("call answered", "first apology audio"),
    )
    # the framework waits up to 2 s (session_close_transcript_timeout) for a last
    # transcript when a session is closed other than on an error: the STT is dead, so
    # that is 2 s of silence between the greeting and the apology
    assert timing.between("greeting heard to its end", "first apology audio") < 3.5
    assert timing.between("call answered", "first apology audio") < 10.0

    said = logs()
    refused = [line for line in said if "failed to recognize speech" in line]
    assert len(refused) == models.STT_CONNECT.max_retry  # the retries, as warnings
    assert (
        "ERROR phone-assistant.lifecycle: STT (Deepgram nova-2-phonecall) failed and will not "
        "recover: APIConnectionError: failed to connect to deepgram (ClientConnectorError)" in said
    )
    assert any(
        "the agent session closed" in line and "failed to connect to deepgram" in line
        for line in said
    )


async def test_deepgram_unreachable_with_an_stt_fallback_the_caller_is_heard_by_openai(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]]
) -> None:
    """``stt_fallback = ["openai:gpt-4o-mini-transcribe"]``: the adapter moves to the
    OpenAI transcription endpoint (utterances cut by the VAD), and the agent answers."""
    timing = Timing("Deepgram unreachable, stt_fallback openai:gpt-4o-mini-transcribe")
    fallback = ModelChoice("openai", "gpt-4o-mini-transcribe")
    async with stand_ins() as world:
        with unreachable_url() as down:
            settings = configured(
                settings, world, transfer_to=DESK, deepgram_url=down, stt_fallback=(fallback,)
            )
            world.openai.script_transcripts(TRANSCRIPTS["billing"])
            world.openai.script(say(CONFIRM))
            greetings = await a_worker(settings)
            participant = phone_caller(number=NUMBER)
            async with answered(
                settings, participant, vad=vad, greetings=greetings, room_name="call-stt-fb"
            ) as c:
                greeted = await c.playout.finished(1)
                asking = await c.line.speak("billing")
                timing.mark("caller stopped talking", asking.ended_at)
                answer = await c.playout.finished(2)
                assert answer.heard_from is not None
                timing.mark("first reply audio", answer.heard_from)
                (heard,) = world.openai.transcription_requests
                asked = world.openai.chat_requests[0]
                c.room.hang_up(participant.identity)
                ended = await c.job_ends()
                apologies = apology_tracks(c)
            check_the_room_went_once(world.livekit, transferred=False)

    assert heard_in_full(greeted) and heard_in_full(answer)
    assert heard.model == fallback.model and heard.language == "en"
    assert heard.audio_seconds is not None and heard.audio_seconds > 1.0  # the utterance
    assert asked.last_user_text == TRANSCRIPTS["billing"]
    assert ended == "session closed: participant_disconnected"
    assert apologies == []
    assert world.unexpected == [] and world.openai.remaining == 0
    assert world.openai.remaining_transcripts == 0
    timing.report(("caller stopped talking", "first reply audio"))
    assert timing.between("caller stopped talking", "first reply audio") < 4.5
    assert not any("will not recover" in line for line in logs())


async def test_a_stalled_deepgram_is_an_outage_after_a_streak_of_errors(
    settings: Settings,
    vad: silero.VAD,
    logs: Callable[[], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Deepgram takes the TCP connection and never completes the handshake: the plugin
    retries forever, each failure recoverable, so the session would never close. The
    outage watch (outage.py) counts a streak of errors as an outage.

    OUTAGE_AFTER_S is 15 s in production: the 4th connect timeout is the outage, ~20.2 s
    after the first connect, and the apology starts ~2 s later (measured: 22.2 s). Here it
    is 5 s, so the 2nd timeout (~10 s) is the outage."""
    monkeypatch.setattr(outage, "OUTAGE_AFTER_S", 5.0)
    timing = Timing("Deepgram stalls (handshake never completes), OUTAGE_AFTER_S=5")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=DESK)
        world.deepgram.fault(Stall(), times=None)
        greetings = await a_worker(settings)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-stt-stall"
        ) as c:
            with session_closes(c, timing):
                greeted = await c.playout.finished(1)
                ended = await c.job_ends(within=30)
            closed = c.closed.result()
            attempts = world.deepgram.attempts_for("listen")
            timing.mark("first stalled connect", attempts[0].at)
            heard_from = check_the_rescue(
                c,
                world,
                settings,
                caller=participant.identity,
                transfer_to=DESK,
                outcome=outcome_of(DESK),
            )
            timing.mark("first apology audio", heard_from)
            voice = voice_heard(c)
        check_the_room_went_once(world.livekit, transferred=True)
        attempts_after = len(world.deepgram.attempts_for("listen"))

    assert heard_in_full(greeted) and voice == [greeted]
    assert ended == outcome_of(DESK)
    assert closed.error is None  # the lifecycle closed it: no error ever was unrecoverable
    assert world.deepgram.connections == []  # no handshake ever completed
    assert all(isinstance(a.fault, Stall) for a in attempts)
    # one connect per timeout (5 s), then no more once the session closed
    assert attempts_after == len(attempts) <= 3
    assert world.unexpected == [] and world.openai.chat_requests == []
    timing.report(
        ("first stalled connect", "last recoverable error"),
        ("last recoverable error", "session closed"),
        ("session closed", "first apology audio"),
        ("first stalled connect", "first apology audio"),
    )
    # the outage is the 2nd connect timeout: the 1st error opens the streak, the 2nd is
    # ~5.1 s into it (timeout + the 0.1 s before the retry)
    outage_at = timing.between("first stalled connect", "last recoverable error")
    assert 2 * models.STT_CONNECT.timeout - 0.5 < outage_at < 2 * models.STT_CONNECT.timeout + 1.5
    # closing waits briefly for a last transcript (agent.SESSION_CLOSE_TRANSCRIPT_S)
    assert timing.between("last recoverable error", "session closed") < 1.5
    assert timing.between("session closed", "first apology audio") < 1.0

    said = logs()
    assert any(
        line.startswith("ERROR phone-assistant.lifecycle: speech-to-text has failed for ")
        and "without recovering (APIConnectionError)" in line
        for line in said
    )
    assert any("the agent session closed (speech-to-text has failed for" in line for line in said)


async def test_deepgram_lost_mid_call_while_the_agent_is_silent_closes_on_the_error(
    settings: Settings, vad: silero.VAD, logs: Callable[[], list[str]]
) -> None:
    """Deepgram drops the connection once the caller has been answered and refuses every
    reconnect. The agent is silent, so nothing is cut off: the framework itself closes
    the session on the first unrecoverable error (models.SESSION_CONNECT:
    max_unrecoverable_errors=0, rather than waiting for three more failures)."""
    timing = Timing("Deepgram lost mid-call, agent silent")
    async with stand_ins() as world:
        settings = configured(settings, world, transfer_to=DESK)
        world.deepgram.script(TRANSCRIPTS["billing"])
        world.openai.script(say(CONFIRM))
        greetings = await a_worker(settings)
        participant = phone_caller(number=NUMBER)
        async with answered(
            settings, participant, vad=vad, greetings=greetings, room_name="call-stt-lost"
        ) as c:
            with session_closes(c, timing):
                await c.playout.finished(1)
                await c.line.speak("billing")
                answered_them = await c.playout.finished(2)
                assert answered_them.finished_at is not None
                world.deepgram.fault(Refuse(503), times=None)
                assert world.deepgram.drop_connections() == 1
                timing.mark("Deepgram lost")
                ended = await c.job_ends(within=20)
            closed = c.closed.result()
            heard_from = check_the_rescue(
                c,
                world,
                settings,
                caller=participant.identity,
                transfer_to=DESK,
                outcome=outcome_of(DESK),
            )
            timing.mark("first apology audio", heard_from)
        check_the_room_went_once(world.livekit, transferred=True)

    assert ended == outcome_of(DESK)
    assert closed.reason.value == "error" and closed.error is not None
    assert closed.error.type == "stt_error"  # the framework's own error close
    refused = [a for a in world.deepgram.attempts_for("listen") if isinstance(a.fault, Refuse)]
    assert len(refused) == models.STT_CONNECT.max_retry  # the reconnects, then no more
    timing.report(
        ("Deepgram lost", "unrecoverable error"), ("Deepgram lost", "first apology audio")
    )
    assert timing.between("Deepgram lost", "first apology audio") < 8.0
    assert world.unexpected == [] and world.openai.remaining == 0
    said = logs()
    assert any(
        line.startswith("ERROR phone-assistant.lifecycle: STT (") and "will not recover" in line
        for line in said
    )
