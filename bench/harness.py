"""Calls for the bench: our agent or the baseline, answered and driven like a phone call.

The shape is the whole-call test's (tests/simulation/test_whole_call.py): a real
AgentSession with real Silero VAD, the real Deepgram and OpenAI plugins and the real
LiveKit API client, talking to stand-in providers; the caller is a ``CallerLine`` playing
recorded speech at 8 kHz in real time, the agent's audio goes to a ``PlayoutClock`` that
plays it in real time. Only the providers' answers are scripted (bench/stand_ins.py).

A turn's timeline, every instant on ``time.monotonic()`` (see ``Turn``)::

    caller's last sound  ->  turn committed  ->  first agent audio frame at the output
    (speech_end)             (commit)            (first_audio)
    |---- turn-taking wait ----|------- response (provider time + overhead) -------|
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from livekit.agents import Agent, AgentSession, JobContext, llm
from livekit.agents.testing import fake_job_context
from livekit.agents.vad import VAD
from livekit.agents.voice.events import ConversationItemAddedEvent
from livekit.plugins import silero

import prompts
from bench import baseline
from bench.stand_ins import LineAddress, LineConfig, LineRecord, StandInProcess
from config import Settings
from tests.support.audio import PlayoutClock
from tests.support.caller_audio import FRAME_SECONDS, TRANSCRIPTS, CallerLine, speech
from tests.support.scripted_llm import call, say
from tests.support.stand_in_room import StandInParticipant, StandInRoom, phone_caller

if TYPE_CHECKING:
    from greetings import GreetingAudio

# Our agent's modules (agent.py and what it imports) are imported only by ``Ours``, so a
# process measuring the baseline's memory never loads them.

CALLER_SAYS = "yes"  # the recording the caller says each turn
AGENT_SAYS = "Okay."  # the scripted LLM answer
SPEECH_DBFS = -45.0  # what counts as sound: the Deepgram stand-in's threshold
TRANSFER_TO = "billing"
WAIT_LIMIT_S = 20.0


def trailing_silence(name: str) -> float:
    """Seconds of the recording after its last audible 20 ms frame.

    ``CallerLine`` reports when the last frame of a recording was handed to the agent;
    the caller stopped making sound this long before, so this is subtracted to get the
    end of speech.
    """
    frames = speech(name)
    loud = [i for i, f in enumerate(frames) if _dbfs(bytes(f.data)) > SPEECH_DBFS]
    return (len(frames) - 1 - loud[-1]) * FRAME_SECONDS if loud else 0.0


def _dbfs(pcm: bytes) -> float:
    """Level of 16-bit PCM in dBFS (RMS), as the Deepgram stand-in judges speech."""
    rms = float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(np.float64) ** 2)))
    return 20 * math.log10(max(rms, 1e-3) / 32768)


@dataclass(frozen=True)
class Turn:
    """One caller turn and the agent's answer; instants are ``time.monotonic()``.

    speech_end   the line handed the agent the 20 ms frame holding the caller's last sound
    commit       the framework committed the user's turn: the user message's
                 ``stopped_speaking_at + end_of_turn_delay`` (the figures EOUMetrics
                 reports), converted from wall-clock time
    first_audio  the first frame of the agent's answer reached the audio output
    provider     seconds within [commit, first_audio] during which the LLM or TTS stand-in
                 held a request before its first byte (scripted latency + its processing)
    """

    speech_end: float
    commit: float | None
    first_audio: float
    provider: float
    end_of_turn_delay: float | None  # EOUMetrics.end_of_utterance_delay
    transcription_delay: float | None  # EOUMetrics.transcription_delay

    @property
    def raw(self) -> float:
        """End of the caller's speech to the agent's first audio frame, nothing removed."""
        return self.first_audio - self.speech_end

    @property
    def wait(self) -> float | None:
        """End of speech to commit: the turn-taking policy's wait (VAD silence, endpointing
        delay, end-of-turn model, waiting for the final transcript)."""
        return None if self.commit is None else self.commit - self.speech_end

    @property
    def overhead(self) -> float | None:
        """Commit to first audio frame, minus the providers' own time in between."""
        return None if self.commit is None else self.first_audio - self.commit - self.provider


def overlap(intervals: Iterable[tuple[float, float]], start: float, end: float) -> float:
    """Total length of the union of ``intervals`` inside [start, end]."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    total, reach = 0.0, start
    for a, b in clipped:
        a = max(a, reach)
        if b > a:
            total += b - a
            reach = b
    return total


# ---------------------------------------------------------------------------- lines


SCRIPT_LENGTH = 5000  # turns a line can serve: lines are reused, call after call


def talk_line(*, llm_ttft: float, tts_ttfb: float, stt_latency: float) -> LineConfig:
    """A line where the caller says "Yes, please." and the LLM answers "Okay.", again and
    again (with room for preemptive generations the framework discards and asks again)."""
    return LineConfig(
        replies=(say(AGENT_SAYS),) * (3 * SCRIPT_LENGTH),
        transcripts=(TRANSCRIPTS[CALLER_SAYS],) * SCRIPT_LENGTH,
        llm_ttft=llm_ttft,
        tts_ttfb=tts_ttfb,
        stt_latency=stt_latency,
    )


def transfer_line() -> LineConfig:
    """A line whose LLM answers the caller's "yes" by transferring the call to billing."""
    return LineConfig(
        replies=(call("transfer_call", destination=TRANSFER_TO),) * (3 * SCRIPT_LENGTH),
        transcripts=(TRANSCRIPTS[CALLER_SAYS],) * SCRIPT_LENGTH,
    )


class LinePool:
    """Lines by configuration, each used by one call at a time and reused by the next
    (what a line's stand-ins recorded is matched to a call's turns by time)."""

    def __init__(self, stand_ins: StandInProcess) -> None:
        self.stand_ins = stand_ins
        self._free: dict[str, list[LineAddress]] = {}  # by repr: scripts hold dicts

    async def take(self, config: LineConfig) -> LineAddress:
        free = self._free.setdefault(repr(config), [])
        return free.pop() if free else await self.stand_ins.open_line(config)

    def give_back(self, config: LineConfig, line: LineAddress) -> None:
        self._free.setdefault(repr(config), []).append(line)

    @asynccontextmanager
    async def line(self, config: LineConfig) -> AsyncIterator[LineAddress]:
        address = await self.take(config)
        try:
            yield address
        finally:
            self.give_back(config, address)


def line_settings(base: Settings, line: LineAddress) -> Settings:
    """``base`` with the providers pointed at ``line``'s stand-ins."""
    secrets = dataclasses.replace(
        base.secrets,
        openai_api_key=line.openai_api_key,
        openai_base_url=line.openai_base_url,
        deepgram_api_key=line.deepgram_api_key,
        deepgram_base_url=line.deepgram_base_url,
    )
    return dataclasses.replace(base, secrets=secrets)


# ---------------------------------------------------------------------------- agents


@dataclass
class CallParts:
    """What a job's entrypoint builds for one call, before ``session.start``."""

    session: AgentSession
    agent: Agent
    caller: StandInParticipant
    # the room the entrypoint built its call around, if it needs one before the start
    room: StandInRoom | None = None
    # what the job does on its way out (a shutdown callback), if anything
    on_end: Callable[[], Awaitable[None]] | None = None


class Contender(Protocol):
    """An agent under measurement: ours or the baseline."""

    name: str

    def prewarmed(self, settings: Settings) -> Any:
        """What the agent's prewarm builds for a call before it is assigned, if anything."""
        ...

    def parts(
        self,
        settings: Settings,
        *,
        n: int,
        room_name: str,
        cached_greeting: bool = True,
        prewarmed: Any = None,
    ) -> CallParts:
        """A new session and agent for call ``n`` in room ``room_name``, as the job's
        entrypoint would build them."""
        ...


@dataclass
class Ours:
    """Our agent, built the way ``agent.answer_call`` builds it."""

    vad: VAD  # the worker's Silero plugin, or another VAD the bench compares with it
    greetings: GreetingAudio
    name: str = "ours"

    @classmethod
    async def warmed(cls, settings: Settings, vad: VAD) -> Ours:
        """As ``agent.prewarm`` leaves a job process: greetings synthesized before any call."""
        from agent import make_ahead
        from greetings import GreetingAudio

        greetings = GreetingAudio()
        await make_ahead(greetings, settings, time_limit=6)
        if not len(greetings):
            raise RuntimeError("greeting synthesis failed against the stand-ins")
        return cls(vad, greetings)

    def prewarmed(self, settings: Settings) -> Any:
        """The OpenAI LLM and TTS (by voice), which ``agent.prewarm`` builds before a call
        arrives."""
        from agent import build_llm, build_tts
        from models import every_voice

        return build_llm(settings), {v: build_tts(settings, v) for v in every_voice(settings)}

    def parts(
        self,
        settings: Settings,
        *,
        n: int,
        room_name: str,
        cached_greeting: bool = True,
        prewarmed: Any = None,
    ) -> CallParts:
        from agent import prepare_call
        from caller import Caller
        from greetings import GreetingAudio
        from lifecycle import CallLifecycle
        from server_api import CallServer

        participant = phone_caller(identity=f"sip_caller_{n}", number="+15551234567")
        room = StandInRoom(room_name, participant)
        # the call's lifecycle as answer_call opens it (its rescue aside: the bench ends its
        # calls by closing their sessions, which would otherwise read as a failure)
        server = CallServer.from_settings(settings, room_name)
        lifecycle = CallLifecycle(room, participant.identity, server=server, end_job=_ended)
        llm, tts = prewarmed or self.prewarmed(settings)
        session, agent = prepare_call(
            settings,
            Caller.from_participant(participant),
            lifecycle,
            vad=self.vad,
            greetings=self.greetings if cached_greeting else GreetingAudio(),
            llm=llm,
            tts=tts,
        )
        return CallParts(session, agent, participant, room=room, on_end=lifecycle.on_job_shutdown)


def _ended(reason: str) -> None:
    """The bench ends its calls itself (it closes their sessions)."""


@dataclass
class Baseline:
    """The starter-shaped agent of bench/baseline.py, with the same models and words."""

    vad: silero.VAD
    name: str = "baseline"

    def prewarmed(self, settings: Settings) -> Any:
        return None  # the starter builds its providers in the entrypoint, per call

    def parts(
        self,
        settings: Settings,
        *,
        n: int,
        room_name: str,
        cached_greeting: bool = True,
        prewarmed: Any = None,
    ) -> CallParts:
        participant = phone_caller(identity=f"sip_caller_{n}", number="+15551234567")
        destination = settings.destination(TRANSFER_TO)
        assert destination is not None, f"assistant.toml has no {TRANSFER_TO!r} destination"
        models, secrets = settings.models, settings.secrets
        assert secrets.openai_base_url and secrets.deepgram_base_url
        session = baseline.build_session(
            vad=self.vad,
            stt_model=models.stt_phone,
            language=models.language,
            llm_model=models.llm,
            tts_model=models.tts,
            voice=models.voice,
            openai_api_key=secrets.openai_api_key,
            openai_base_url=secrets.openai_base_url,
            deepgram_api_key=secrets.deepgram_api_key,
            deepgram_base_url=secrets.deepgram_base_url,
        )
        words = prompts.Words(settings, settings.models.language)
        agent = baseline.Assistant(
            greeting=words.greeting(),
            notice=words.transfer("notice", destination),
            transfer_to=destination.transfer_to,
        )
        return CallParts(session, agent, participant)


# ---------------------------------------------------------------------------- a call


@dataclass
class UserTurn:
    """A user message as the framework added it, with the clock offset to read it."""

    metrics: dict[str, Any]  # the user message's llm.MetricsReport
    clock_offset: float  # time.time() - time.monotonic() when it was added


@dataclass
class Call:
    """A call in progress: the session and both ends of the phone line."""

    session: AgentSession
    line: CallerLine
    playout: PlayoutClock
    room: StandInRoom
    job: JobContext
    start_called_at: float = 0.0
    user_turns: list[UserTurn] = field(default_factory=list)
    shutdowns: list[str] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if isinstance(item, llm.ChatMessage) and item.role == "user":
            metrics = dict(item.metrics or {})
            self.user_turns.append(UserTurn(metrics, time.time() - time.monotonic()))
            self._changed.set()

    async def user_turn(self, index: int) -> UserTurn:
        """The ``index``-th user message (0-based), once the framework has added it."""
        async with asyncio.timeout(WAIT_LIMIT_S):
            while len(self.user_turns) <= index:
                self._changed.clear()
                await self._changed.wait()
        return self.user_turns[index]


@asynccontextmanager
async def answer(parts: CallParts, *, room_name: str) -> AsyncIterator[Call]:
    """``tests.support.simulated_call.answered``, noting when ``session.start`` was called.

    Leaving it hangs up and closes the session, which takes the framework about 2 s (it
    waits for a last transcript), so the bench lets calls close in the background
    (``Closing``) instead of waiting for each.
    """
    room = parts.room or StandInRoom(room_name, parts.caller)
    line, playout, session = CallerLine(), PlayoutClock(), parts.session
    session.input.audio = line
    session.output.audio = playout
    async with AsyncExitStack() as stack:
        job = stack.enter_context(fake_job_context(room=room.as_room()))
        current = Call(session, line, playout, room, job)
        job._on_shutdown = current.shutdowns.append  # the worker would end the job here
        session.on("conversation_item_added", current.on_item)
        await stack.enter_async_context(line)
        await stack.enter_async_context(session)
        if parts.on_end is not None:  # the job's end comes before the session's close
            stack.push_async_callback(parts.on_end)
        current.start_called_at = time.monotonic()
        await session.start(parts.agent)
        yield current


class Closing:
    """Calls hanging up in the background. A measurement starts its next call at once;
    ``settle()`` waits for every close before a phase ends, so phases never overlap."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def add(self, task: asyncio.Task[Any]) -> None:
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def settle(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


@dataclass(frozen=True)
class _Heard:
    """One turn as the call saw it; joined with the providers' records later."""

    speech_end: float
    first_audio: float
    user: UserTurn


class TalkingCall:
    """A call in which, after the greeting, the caller says "yes" and the agent answers,
    over and over, ``gap`` seconds of line silence between them, until ``stop`` is set."""

    def __init__(
        self, contender: Contender, pool: LinePool, base: Settings, config: LineConfig, *, n: int
    ) -> None:
        self.contender, self.pool, self.base, self.config, self.n = (
            contender,
            pool,
            base,
            config,
            n,
        )
        self.heard: list[_Heard] = []
        self.error: BaseException | None = None
        self.record: asyncio.Future[LineRecord] = asyncio.get_running_loop().create_future()

    async def run(
        self, *, gap: float, delay: float, stop: asyncio.Event, changed: asyncio.Event
    ) -> None:
        """Answer after ``delay``, talk until ``stop``; ``changed`` is set at every turn.
        Failures are kept in ``error`` (and ``record``) for the measurement to count."""
        try:
            await asyncio.sleep(delay)
            async with self.pool.line(self.config) as address:
                room_name = f"{self.contender.name}-call-{self.n}"
                settings = line_settings(self.base, address)
                parts = self.contender.parts(settings, n=self.n, room_name=room_name)
                async with answer(parts, room_name=room_name) as c:
                    if await _unless(stop, c.playout.finished(1)):  # the greeting
                        while not stop.is_set():
                            turn = await _unless(stop, self._turn(c, len(self.heard), gap))
                            if turn is None:
                                break
                            self.heard.append(turn)
                            changed.set()
                    self.record.set_result(await self.pool.stand_ins.record(address.line_id))
                # the session closes here; the measurement does not wait for it
        except Exception as e:
            self.error = e
            if not self.record.done():
                self.record.set_exception(e)
            changed.set()

    @staticmethod
    async def _turn(c: Call, i: int, gap: float) -> _Heard:
        """The caller's ``i``-th "yes" (0-based) and the agent's answer, played in full."""
        await asyncio.sleep(gap)
        spoken = await c.line.speak(CALLER_SAYS)
        answered = await c.playout.started(i + 2)
        await c.playout.finished(i + 2)
        user = await c.user_turn(i)
        return _Heard(spoken.ended_at - trailing_silence(CALLER_SAYS), answered.started_at, user)


async def _unless(stop: asyncio.Event, work: Any) -> Any:
    """``work``'s result, or None (``work`` cancelled) if ``stop`` is set first."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return None


def turns_from(heard: Sequence[_Heard], record: LineRecord) -> list[Turn]:
    """Join what the call saw with what its providers recorded."""
    waits = [(w.received_at, w.first_byte_at) for w in record.waits if w.first_byte_at is not None]
    turns = []
    for h in heard:
        m = h.user.metrics
        stopped, delay = m.get("stopped_speaking_at"), m.get("end_of_turn_delay")
        commit = None
        provider = 0.0
        if stopped is not None and delay is not None:
            commit = stopped + delay - h.user.clock_offset
            provider = overlap(waits, commit, h.first_audio)
        turns.append(
            Turn(
                speech_end=h.speech_end,
                commit=commit,
                first_audio=h.first_audio,
                provider=provider,
                end_of_turn_delay=delay,
                transcription_delay=m.get("transcription_delay"),
            )
        )
    return turns


@dataclass
class Measured:
    """The turns a measurement counted, and the calls that did not finish."""

    turns: list[Turn]
    failed_calls: int
    errors: list[str]


async def measured_turns(
    contender: Contender,
    pool: LinePool,
    base: Settings,
    config: LineConfig,
    closing: Closing,
    *,
    calls: int,
    turns_per_call: int,
    gap: float,
    stagger: float,
    first_n: int,
) -> Measured:
    """``calls`` concurrent calls, started over ``stagger`` seconds so that their turns do
    not all end at once. Turns count once every call is up and has taken a first turn (so
    all ``calls`` are active throughout), until each call has ``turns_per_call`` of them."""
    stop, changed = asyncio.Event(), asyncio.Event()
    talkers = [TalkingCall(contender, pool, base, config, n=first_n + i) for i in range(calls)]
    for i, talker in enumerate(talkers):
        closing.add(
            asyncio.create_task(
                talker.run(gap=gap, delay=stagger * i / calls, stop=stop, changed=changed)
            )
        )

    async def until(condition: Any) -> None:
        while not condition():
            changed.clear()
            await changed.wait()

    window = math.inf
    try:
        async with asyncio.timeout(stagger + WAIT_LIMIT_S * (turns_per_call + 2)):
            await until(lambda: all(t.error or t.heard for t in talkers))
            window = time.monotonic()
            await until(
                lambda: all(
                    t.error or sum(h.speech_end >= window for h in t.heard) >= turns_per_call
                    for t in talkers
                )
            )
    except TimeoutError:
        pass  # counted below: calls that did not get their turns are failed calls
    finally:
        stop.set()
    turns: list[Turn] = []
    errors: list[str] = []
    for talker in talkers:
        try:
            record = await talker.record
        except Exception as e:
            errors.append(f"{type(e).__name__}: {e}")
            continue
        counted = [h for h in talker.heard if h.speech_end >= window]
        if len(counted) < turns_per_call:
            errors.append(f"call {talker.n} took {len(counted)} of {turns_per_call} turns")
        turns += turns_from(counted, record)
    return Measured(turns, len(errors), errors)


@dataclass(frozen=True)
class Greeted:
    """One greeting measurement."""

    build: float  # building the agent and its session (synchronous), before start()
    first_frame: float  # session.start() called -> first greeting frame at the output


async def greeting_latency(
    contender: Contender,
    pool: LinePool,
    base: Settings,
    config: LineConfig,
    closing: Closing,
    *,
    n: int,
    cached: bool,
) -> Greeted:
    """One call's greeting: how long building the session took, then how long from
    ``session.start`` to the first greeting frame at the output."""
    heard: asyncio.Future[Greeted] = asyncio.get_running_loop().create_future()

    async def greeted() -> None:
        try:
            async with pool.line(config) as address:
                settings = line_settings(base, address)
                prewarmed = contender.prewarmed(settings)  # before the call, as prewarm does
                building = time.monotonic()
                parts = contender.parts(
                    settings,
                    n=n,
                    room_name=f"{contender.name}-greet-{n}",
                    cached_greeting=cached,
                    prewarmed=prewarmed,
                )
                build = time.monotonic() - building
                async with answer(parts, room_name=f"{contender.name}-greet-{n}") as current:
                    first = await current.playout.started(1)
                    heard.set_result(Greeted(build, first.started_at - current.start_called_at))
        except Exception as e:
            if not heard.done():
                heard.set_exception(e)

    closing.add(asyncio.create_task(greeted()))
    return await heard


async def transfer_latency(
    contender: Contender,
    pool: LinePool,
    base: Settings,
    config: LineConfig,
    closing: Closing,
    *,
    n: int,
    delay: float = 0.0,
) -> float:
    """End of the transfer notice's playout -> REFER received by the LiveKit stand-in, for
    a call answered ``delay`` seconds from now."""
    room_name = f"{contender.name}-transfer-{n}"
    notice_end: asyncio.Future[float] = asyncio.get_running_loop().create_future()
    referred = asyncio.Event()

    async def transferred() -> None:
        try:
            await asyncio.sleep(delay)
            async with pool.line(config) as address:
                parts = contender.parts(line_settings(base, address), n=n, room_name=room_name)
                async with answer(parts, room_name=room_name) as current:
                    await current.playout.finished(1)  # the greeting
                    await current.line.speak(CALLER_SAYS)  # "Yes, please." -> transfer_call
                    notice = await current.playout.finished(2)
                    if notice.finished_at is None or notice.interrupted:
                        raise RuntimeError("the transfer notice was cut off")
                    notice_end.set_result(notice.finished_at)
                    # stay on the line until the REFER has gone out
                    async with asyncio.timeout(WAIT_LIMIT_S):
                        await referred.wait()
        except Exception as e:
            if not notice_end.done():
                notice_end.set_exception(e)

    task = asyncio.create_task(transferred())
    closing.add(task)
    try:
        finished_at = await notice_end
        async with asyncio.timeout(WAIT_LIMIT_S):
            while (refer_at := await _refer(pool, room_name)) is None:
                if task.done():
                    raise RuntimeError("the call ended without a REFER")
                await asyncio.sleep(0.05)  # asking the stand-in process, which cannot push
    finally:
        referred.set()  # the call may hang up now
    return refer_at - finished_at


async def _refer(pool: LinePool, room_name: str) -> float | None:
    """When the LiveKit stand-in received the REFER for ``room_name``, if it has."""
    refers = await pool.stand_ins.refers()
    return next((r.received_at for r in refers if r.room_name == room_name), None)
