"""Voice to voice, as the caller hears it: from the last sound of the caller's turn to the
first frame of the agent's answer, on the turn-taking speech set.

Each call is a whole call in the harness's shape (bench/harness.py: the real plugins,
real Silero VAD, the framework's turn handling, stand-in providers in their own process)
whose caller says the speech set's turns (tests/fixtures/speech/turns) one after the
other, waiting for the agent's answer and a short pause after it before the next. The
stand-in Deepgram endpoints as the plugin asks the real service to (25 ms of silence:
bench/timed_deepgram.py), so a transcript is never what holds a turn back.

Per turn, every instant on ``time.monotonic()``:

  speech_end   the line handed the agent the 20 ms frame holding the turn's last
               audible sound (the speech set labels where the caller really finished)
  answer       the first frame of an agent utterance that started at or after
               speech_end, at the session's audio output
  premature    an agent utterance started after the turn began and before speech_end:
               the agent talked while the caller still had words to say
  vad_end      the last time before the answer that the session's user state went from
               speaking to listening (Silero's end of speech)
  commit       the last user turn the framework committed before the answer (the user
               message's stopped_speaking_at + end_of_turn_delay, as EOUMetrics reports)

  voice to voice = answer - speech_end, over turns that were not premature
  its parts: VAD silence = vad_end - speech_end; end of turn = commit - vad_end
             (end-of-turn model, endpointing delay); response = answer - commit
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from livekit.agents import llm
from livekit.agents.voice.agent_activity import AgentActivity
from livekit.agents.voice.events import ConversationItemAddedEvent, UserStateChangedEvent

from bench.harness import Call, Closing, Contender, answer, line_settings
from bench.stand_ins import LineConfig, StandInProcess
from bench.timed_deepgram import timed_words
from config import Settings
from tests.support.audio import Playout, PlayoutClock
from tests.support.caller_audio import FRAME_SECONDS
from tests.support.scripted_llm import say
from tests.support.speech_set import SPEECH_SET, SpokenTurn

AGENT_SAYS = "Okay."
GAP_S = 0.8  # the caller's pause after the agent's answer before their next turn
ANSWER_LIMIT_S = 6.0  # no answer this long after the caller finished: none
REPLIES_PER_TURN = 8  # LLM replies scripted per turn (preemptive generations ask again)

# EOT predictions by session, from the framework's own hook (it has no public event)
_PREDICTIONS: dict[int, list[tuple[float, float, float]]] = {}


def install_eot_probe() -> None:
    """Note every end-of-turn prediction (when, probability, threshold) per session."""
    original = AgentActivity.on_eot_prediction
    if getattr(original, "bench_probe", False):
        return

    def noted(self: AgentActivity, ev: Any) -> None:
        seen = _PREDICTIONS.setdefault(id(self._session), [])
        seen.append((time.monotonic(), ev.probability, ev.threshold))
        original(self, ev)

    noted.bench_probe = True  # type: ignore[attr-defined]
    AgentActivity.on_eot_prediction = noted  # type: ignore[method-assign]


@dataclass(frozen=True)
class TurnHeard:
    """One caller turn and what the agent did about it."""

    contender: str
    name: str
    kind: str
    started_at: float
    speech_end: float
    replies: tuple[float, ...]  # agent utterances started within the turn, up to its answer
    answer: float | None
    vad_ends: tuple[float, ...]
    commits: tuple[float, ...]
    predictions: tuple[tuple[float, float, float], ...]

    @property
    def premature(self) -> bool:
        return any(r < self.speech_end for r in self.replies)

    @property
    def latency(self) -> float | None:
        return None if self.answer is None else self.answer - self.speech_end

    def _last(self, instants: Sequence[float]) -> float | None:
        before = [t for t in instants if self.answer is not None and t <= self.answer]
        return before[-1] if before else None

    @property
    def parts(self) -> dict[str, float] | None:
        """VAD silence, end of turn and response, when the turn had each instant."""
        vad_end, commit = self._last(self.vad_ends), self._last(self.commits)
        if self.answer is None or vad_end is None or commit is None or commit < vad_end:
            return None
        return {
            "vad_silence_s": vad_end - self.speech_end,
            "end_of_turn_s": commit - vad_end,
            "response_s": self.answer - commit,
        }

    @property
    def unlikely(self) -> bool | None:
        """Whether the last prediction before the answer judged the caller unfinished."""
        before = [p for p in self.predictions if self.answer is not None and p[0] <= self.answer]
        return None if not before else before[-1][1] < before[-1][2]


@dataclass
class _Ears:
    """What a call's session did, as it happened."""

    playout: PlayoutClock
    session_id: int
    vad_ends: list[float] = field(default_factory=list)
    commits: list[float] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    def on_user_state(self, ev: UserStateChangedEvent) -> None:
        if ev.old_state == "speaking" and ev.new_state == "listening":
            self.vad_ends.append(time.monotonic())

    def on_item(self, ev: ConversationItemAddedEvent) -> None:
        item = ev.item
        if not isinstance(item, llm.ChatMessage) or item.role != "user":
            return
        metrics = item.metrics or {}
        stopped, delay = metrics.get("stopped_speaking_at"), metrics.get("end_of_turn_delay")
        now = time.monotonic()
        if stopped is not None and delay is not None:
            self.commits.append(stopped + delay - (time.time() - now))
        else:
            self.commits.append(now)

    def on_started(self, _playout: Playout) -> None:
        self.started.set()

    def between(self, start: float, end: float) -> dict[str, Any]:
        predictions = _PREDICTIONS.get(self.session_id, [])
        return {
            "replies": tuple(p.started_at for p in self.playout.playouts if start < p.started_at),
            "vad_ends": tuple(t for t in self.vad_ends if start < t <= end),
            "commits": tuple(t for t in self.commits if start < t <= end),
            "predictions": tuple(p for p in predictions if start < p[0] <= end),
        }


def frames_after_end(turn: SpokenTurn) -> int:
    """Whole 20 ms frames of the recording after the one holding its last sound."""
    frames = round(turn.seconds / FRAME_SECONDS)
    last = math.ceil(turn.speech_end / FRAME_SECONDS - 1e-9) - 1
    return frames - 1 - last


async def _quiet(playout: PlayoutClock, gap: float) -> None:
    """Until the agent has been silent for ``gap`` seconds (the caller's pause)."""
    while True:
        if playout.playouts:
            await playout.finished(len(playout.playouts))
        seen = len(playout.playouts)
        await asyncio.sleep(gap)
        if len(playout.playouts) == seen and (
            not seen or playout.playouts[-1].finished_at is not None
        ):
            return


async def _answer_after(ears: _Ears, after: float, within: float) -> Playout | None:
    """The first agent utterance to start at or after ``after``, or None."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        for p in ears.playout.playouts:
            if p.started_at >= after:
                return p
        ears.started.clear()
        try:
            async with asyncio.timeout_at(deadline):
                await ears.started.wait()
        except TimeoutError:
            return None


async def talk(c: Call, contender: str, turns: Sequence[SpokenTurn]) -> list[TurnHeard]:
    """The caller says ``turns`` in order, each after the agent's last answer and a pause."""
    ears = _Ears(c.playout, id(c.session))
    c.session.on("user_state_changed", ears.on_user_state)
    c.session.on("conversation_item_added", ears.on_item)
    c.playout.on_started = ears.on_started
    heard = []
    await c.playout.finished(1)  # the greeting
    for turn in turns:
        await _quiet(c.playout, GAP_S)
        spoken = await c.line.speak(turn.frames())
        speech_end = spoken.ended_at - frames_after_end(turn) * FRAME_SECONDS
        found = await _answer_after(ears, speech_end, ANSWER_LIMIT_S)
        if found is not None:
            await c.playout.finished(c.playout.playouts.index(found) + 1)
        answered = found.started_at if found else None
        window = ears.between(spoken.started_at, answered or time.monotonic())
        if answered is not None:
            window["replies"] = tuple(r for r in window["replies"] if r <= answered)
        heard.append(
            TurnHeard(
                contender,
                turn.name,
                turn.kind,
                spoken.started_at,
                speech_end,
                answer=answered,
                **window,
            )
        )
    return heard


def call_turns(n: int, count: int) -> list[SpokenTurn]:
    """``count`` turns of the speech set for call ``n``: in order, from a place of its own."""
    start = (n * 7) % len(SPEECH_SET)
    return [SPEECH_SET[(start + i) % len(SPEECH_SET)] for i in range(count)]


def voice_line(turns: Sequence[SpokenTurn], *, llm_ttft: float, tts_ttfb: float) -> LineConfig:
    """A line whose Deepgram hears ``turns`` (timed, client endpointing) and whose LLM
    answers every turn with "Okay."."""
    return LineConfig(
        replies=(say(AGENT_SAYS),) * (REPLIES_PER_TURN * (len(turns) + 2)),
        transcripts=(),
        timed=tuple(timed_words([(s.text, s.start, s.end) for s in t.segments]) for t in turns),
        client_endpointing=True,
        llm_ttft=llm_ttft,
        tts_ttfb=tts_ttfb,
    )


@dataclass
class CallResult:
    contender: str
    turns: list[TurnHeard] = field(default_factory=list)
    error: str | None = None
    words_dropped: int = 0
    unexpected: int = 0


async def one_call(
    contender: Contender,
    stand_ins: StandInProcess,
    base: Settings,
    closing: Closing,
    *,
    n: int,
    turns: Sequence[SpokenTurn],
    delay: float,
    llm_ttft: float = 0.0,
    tts_ttfb: float = 0.0,
) -> CallResult:
    """A call taking ``turns``, answered after ``delay`` seconds."""
    result = CallResult(contender.name)
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run() -> None:
        try:
            await asyncio.sleep(delay)
            address = await stand_ins.open_line(
                voice_line(turns, llm_ttft=llm_ttft, tts_ttfb=tts_ttfb)
            )
            room_name = f"{contender.name}-voice-{n}"
            parts = contender.parts(line_settings(base, address), n=n, room_name=room_name)
            async with answer(parts, room_name=room_name) as c:
                result.turns = await talk(c, contender.name, turns)
                record = await stand_ins.record(address.line_id)
                result.words_dropped, result.unexpected = (
                    record.words_dropped,
                    len(record.unexpected),
                )
                done.set_result(None)
        except Exception as e:
            result.error = f"{type(e).__name__}: {e}"
            if not done.done():
                done.set_result(None)

    closing.add(asyncio.create_task(run()))  # the session closes in the background
    await done
    return result


def summarize(turns: Sequence[TurnHeard]) -> dict[str, Any]:
    """The figures of one contender's turns (seconds; see the module's doc)."""
    from bench.run import summary

    clean = [t for t in turns if not t.premature and t.latency is not None]
    premature = [t for t in turns if t.premature]
    parts = [p for t in clean if (p := t.parts) is not None]
    judged = [t.unlikely for t in clean if t.unlikely is not None]
    by_kind: dict[str, Any] = {}
    for kind in ("short", "number", "paused"):
        of_kind = [t for t in turns if t.kind == kind]
        lat = [t.latency for t in of_kind if not t.premature and t.latency is not None]
        by_kind[kind] = {
            "turns": len(of_kind),
            "premature": sum(t.premature for t in of_kind),
            "voice_to_voice_p50_s": summary(lat).get("p50"),
            "voice_to_voice_p95_s": summary(lat).get("p95"),
        }
    return {
        "turns": len(turns),
        "premature": len(premature),
        "premature_rate": len(premature) / len(turns) if turns else None,
        "unanswered": sum(t.answer is None for t in turns),
        "voice_to_voice_s": summary([t.latency for t in clean if t.latency is not None]),
        "after_premature_s": summary([t.latency for t in premature if t.latency is not None]),
        "vad_silence_s": summary([p["vad_silence_s"] for p in parts]),
        "end_of_turn_s": summary([p["end_of_turn_s"] for p in parts]),
        "response_s": summary([p["response_s"] for p in parts]),
        "judged_unfinished_rate": sum(judged) / len(judged) if judged else None,
        "by_kind": by_kind,
    }
