"""``[turn_taking]``: when the agent decides the caller has finished and starts to answer.

On a phone call the wait between the caller's last word and the agent's first is most of
what the caller feels as slowness, and almost all of it is this policy, not the models:
the VAD's silence before it says speech ended, the end-of-turn model's verdict, and the
endpointing delays. Answering too early cuts off a caller who only paused. The defaults
were chosen by measurement on 8 kHz phone speech with mid-sentence pauses (bench/,
docs/performance.md); the framework's own defaults are for wideband web calls.

  vad_silence         seconds of silence before Silero VAD ends the caller's speech
                      (Silero's default 0.55; at least 0.25 with the end-of-turn model,
                      which needs 0.2 s of silence to make its prediction)
  min_delay           seconds after the caller's speech ended before the turn may commit
  max_delay           how long to wait when the end-of-turn model judges the caller
                      unfinished (the framework's default 2.5 s with its model)
  end_of_turn_model   "local": the framework's turn-detector-v1-mini, on this machine,
                      in every mode; "auto": the framework's choice (LiveKit Cloud's
                      turn-detector-v1 in dev mode or hosted, otherwise the local one);
                      "off": silence alone decides (vad_silence + min_delay)
  end_of_turn_threshold  the model's probability under which the caller is judged
                      unfinished (waits max_delay); unset: the model's own per-language
                      thresholds (English 0.36). On 8 kHz phone audio the model's
                      probabilities run lower than on wideband (docs/performance.md)
  preemptive_generation  ask the LLM while the turn is still being decided (its answer
                      is dropped if the caller goes on)
  preemptive_tts      synthesize that answer early too (costs TTS for dropped answers)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from config_checks import Problems

EndOfTurnModel = Literal["local", "auto", "off"]
END_OF_TURN_MODELS: tuple[EndOfTurnModel, ...] = ("local", "auto", "off")
MODEL_MIN_SILENCE = 0.25  # the framework refuses less with its end-of-turn model
MAX_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class TurnTaking:
    """The defaults, measured on 8 kHz phone speech (bench/phone.py): Silero's own 0.55 s
    of silence (at 0.5 s the model was asked in 0.6 s pauses too and cut more callers off
    than the framework's defaults; the wait for a caller judged unfinished counts from
    their last sound, so the longer silence costs only turns judged finished), the
    framework's local model with its own thresholds (lower ones answered sooner and cut
    off up to a quarter of all turns), and its 2.5 s wait for a caller the model
    judges unfinished cut to 1 s, which still outlasts pauses up to ~0.85 s. Preemptive
    generation and TTS: with an LLM answering in 0.4 s and a TTS in 0.2 s, voice to voice
    p50 was 1.71 s without them, 1.30 s with the LLM's, 1.09 s with both (as with
    providers answering at once); the price is TTS for the answers the caller talks over."""

    vad_silence: float = 0.55
    min_delay: float = 0.3
    max_delay: float = 1.0
    end_of_turn_model: EndOfTurnModel = "local"
    end_of_turn_threshold: float | None = None
    preemptive_generation: bool = True
    preemptive_tts: bool = True


_KEYS = {
    "vad_silence",
    "min_delay",
    "max_delay",
    "end_of_turn_model",
    "end_of_turn_threshold",
    "preemptive_generation",
    "preemptive_tts",
}


def parse_turn_taking(raw: Mapping[str, Any], p: Problems) -> TurnTaking:
    """Every problem is reported, naming the key and the value."""
    where = "turn_taking."
    p.keys(raw, _KEYS, where)
    default = TurnTaking()
    model = raw.get("end_of_turn_model", default.end_of_turn_model)
    if model not in END_OF_TURN_MODELS:
        p.add(f"{where}end_of_turn_model", model, 'must be "local", "auto" or "off"')
        model = default.end_of_turn_model
    floor = MODEL_MIN_SILENCE if model != "off" else 0.05
    vad_silence = _seconds(raw, "vad_silence", default.vad_silence, p, low=0.05)
    if vad_silence < floor:
        p.add(
            f"{where}vad_silence",
            vad_silence,
            f"must be at least {MODEL_MIN_SILENCE} s with end_of_turn_model = "
            f'"{model}" (the model needs 0.2 s of silence to predict); '
            'lower it only with end_of_turn_model = "off"',
        )
    min_delay = _seconds(raw, "min_delay", default.min_delay, p, low=0.0)
    max_delay = _seconds(raw, "max_delay", default.max_delay, p, low=0.0)
    if max_delay < min_delay:
        p.add(
            f"{where}max_delay",
            max_delay,
            f"must not be less than turn_taking.min_delay ({min_delay})",
        )
    return TurnTaking(
        vad_silence=vad_silence,
        min_delay=min_delay,
        max_delay=max_delay,
        end_of_turn_model=model,
        end_of_turn_threshold=_threshold(raw, model, p),
        preemptive_generation=_flag(raw, "preemptive_generation", default.preemptive_generation, p),
        preemptive_tts=_flag(raw, "preemptive_tts", default.preemptive_tts, p),
    )


def _threshold(raw: Mapping[str, Any], model: EndOfTurnModel, p: Problems) -> float | None:
    value = raw.get("end_of_turn_threshold")
    if value is None:
        return None
    where = "turn_taking.end_of_turn_threshold"
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        p.add(where, value, "must be a probability between 0 and 1, e.g. 0.25")
        return None
    if model == "off":
        p.add(where, value, 'has no effect with end_of_turn_model = "off": remove one of them')
        return None
    return float(value)


def _seconds(raw: Mapping[str, Any], key: str, default: float, p: Problems, *, low: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        p.add(f"turn_taking.{key}", value, "must be a number of seconds, e.g. 0.3")
        return default
    if not low <= value <= MAX_SECONDS:
        p.add(f"turn_taking.{key}", value, f"must be from {low} to {MAX_SECONDS} seconds")
        return default
    return float(value)


def _flag(raw: Mapping[str, Any], key: str, default: bool, p: Problems) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        p.add(f"turn_taking.{key}", value, "must be true or false")
        return default
    return value
