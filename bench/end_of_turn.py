"""What the end-of-turn model says on phone audio: its verdict where callers finish and
where they only pause, at 8 kHz and (with espeak-ng) at 16 kHz, and what each threshold
would make of it.

    python3 uvw.py run --locked python bench/end_of_turn.py              # ~1 minute
    python3 uvw.py run --locked python bench/end_of_turn.py --no-wideband

The framework asks its end-of-turn model once per pause, when the VAD has heard 0.2 s of
silence (``MIN_SILENCE_DURATION_MS`` in livekit.agents.inference.eot), and judges the
caller unfinished, so waits ``[turn_taking] max_delay``, when the probability is under the
language's threshold (English 0.36) or ``[turn_taking] end_of_turn_threshold``. This asks
the same local model (turn-detector-v1-mini) the same question on the speech set
(tests/fixtures/speech/turns): at the end of each turn, and at each mid-turn pause, with
the audio up to 0.2 s after the last sound. A threshold is good when it calls the ends
finished and the pauses unfinished; the pauses that matter most are the ones longer than
the VAD's silence, as only those end the caller's speech and so reach the model's verdict.

The 8 kHz turns are the checked-in WAVs, as the phone line plays them. The 16 kHz ones
are the same turns rendered again by make_turns.py at 16 kHz (espeak-ng's output differs
slightly between renders), so the two columns differ by the band, not by the words.
A script that prints figures, not a test; writes bench/results/end_of_turn.json.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import shutil
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from livekit import rtc  # noqa: E402
from livekit.agents import inference  # noqa: E402
from livekit.agents.inference.eot.base import MIN_SILENCE_DURATION_MS  # noqa: E402

from tests.support.speech_set import SPEECH_SET, TURNS_DIR  # noqa: E402

ASKED_AFTER_S = MIN_SILENCE_DURATION_MS / 1000  # the session asks at this much silence
THRESHOLDS = (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.25, 0.3, 0.36)
VAD_SILENCE_S = 0.55  # [turn_taking] vad_silence's default: longer pauses end the speech


@dataclass(frozen=True)
class Verdict:
    turn: str
    where: str  # "end", or "pause" (a mid-turn pause of ``pause_s``)
    pause_s: float | None
    probability: float


def _make_turns() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_turns", TURNS_DIR / "make_turns.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _frames(samples: np.ndarray, rate: int) -> list[rtc.AudioFrame]:
    n = rate // 50  # 20 ms, as the line plays them
    padded = np.concatenate([samples, np.zeros(-len(samples) % n)]).astype(np.int16)
    return [
        rtc.AudioFrame(padded[i : i + n].tobytes(), rate, 1, n) for i in range(0, len(padded), n)
    ]


async def _probability(detector: inference.TurnDetector, samples: np.ndarray, rate: int) -> float:
    """The model's end-of-turn probability for a fresh stream that heard ``samples``."""
    stream = detector.stream()
    try:
        for frame in _frames(samples, rate):
            stream.push_audio(frame)
        # the stream hands its frames to the model's buffer in a task of its own, and a
        # prediction is made on what the buffer holds when it is asked; the stream has no
        # event for "handed over", so its channel is watched until it is empty
        while not stream._audio_ch.empty():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.01)  # and the last frame taken off it is in the buffer
        event = await asyncio.wait_for(stream.predict(), 10)
        return event.end_of_turn_probability
    finally:
        await stream.aclose()


def _cut(samples: np.ndarray, rate: int, end_s: float, silence_s: float) -> np.ndarray:
    """The audio up to ``end_s``, then ``silence_s`` of line silence: what the model has
    heard when the session asks."""
    heard = samples[: round(end_s * rate)]
    return np.concatenate([heard, np.zeros(round(silence_s * rate))])


async def phone_band(detector: inference.TurnDetector) -> list[Verdict]:
    """The checked-in 8 kHz turns, cut where their labels say."""
    out = []
    for turn in SPEECH_SET:
        samples = np.concatenate([np.frombuffer(f.data, dtype=np.int16) for f in turn.frames()])
        rate = turn.frames()[0].sample_rate
        for segment, pause in zip(turn.segments, turn.pauses, strict=False):
            cut = _cut(samples, rate, segment.end, min(ASKED_AFTER_S, pause))
            p = await _probability(detector, cut, rate)
            out.append(Verdict(turn.name, "pause", pause, p))
        cut = _cut(samples, rate, turn.speech_end, ASKED_AFTER_S)
        out.append(Verdict(turn.name, "end", None, await _probability(detector, cut, rate)))
    return out


async def wideband(detector: inference.TurnDetector, rate: int = 16000) -> list[Verdict]:
    """The same turns rendered again at ``rate``, cut where the render put each piece."""
    make_turns = _make_turns()
    out = []
    for i, (name, _kind, pieces) in enumerate(make_turns.TURNS):
        voice = make_turns.VOICES[i % len(make_turns.VOICES)]
        samples, placed = make_turns.render(pieces, voice, rate)
        pauses = [p / 1000 for p in pieces if isinstance(p, int)]
        ends = [_last_sound(make_turns, samples[a:b], rate, a) for _text, a, b in placed]
        for end, pause in zip(ends, pauses, strict=False):
            cut = _cut(samples, rate, end, min(ASKED_AFTER_S, pause))
            out.append(Verdict(name, "pause", pause, await _probability(detector, cut, rate)))
        cut = _cut(samples, rate, ends[-1], ASKED_AFTER_S)
        out.append(Verdict(name, "end", None, await _probability(detector, cut, rate)))
    return out


def _last_sound(make_turns: ModuleType, piece: np.ndarray, rate: int, offset: int) -> float:
    loud = make_turns.audible(piece.astype(np.float64), rate)
    return (offset + (loud[-1] + 1) * (rate // 100)) / rate


def sweep(verdicts: Sequence[Verdict]) -> list[dict[str, object]]:
    """Per threshold: the ends judged finished, and the pauses (long ones apart)."""
    ends = [v.probability for v in verdicts if v.where == "end"]
    pauses = [v for v in verdicts if v.where == "pause"]
    long = [v.probability for v in pauses if (v.pause_s or 0) >= VAD_SILENCE_S]
    rows = []
    for threshold in THRESHOLDS:
        rows.append(
            {
                "threshold": threshold,
                "ends_finished": sum(p >= threshold for p in ends),
                "ends": len(ends),
                "long_pauses_finished": sum(p >= threshold for p in long),
                "long_pauses": len(long),
                "pauses_finished": sum(v.probability >= threshold for v in pauses),
                "pauses": len(pauses),
            }
        )
    return rows


def _median(verdicts: Sequence[Verdict], where: str) -> float:
    return float(np.median([v.probability for v in verdicts if v.where == where]))


def table(bands: dict[str, list[Verdict]]) -> str:
    out = [
        "The end-of-turn model (turn-detector-v1-mini) on the speech set, asked as the "
        f"session asks it ({ASKED_AFTER_S:.1f} s of silence after the last sound)",
        "",
    ]
    for band, verdicts in bands.items():
        out.append(
            f"{band}: median probability at turn ends {_median(verdicts, 'end'):.2f}, "
            f"at mid-turn pauses {_median(verdicts, 'pause'):.2f}"
        )
    out.append("")
    header = "threshold  " + "  ".join(
        f"{band}: ends finished / pauses >= {VAD_SILENCE_S} s finished (all pauses)"
        for band in bands
    )
    out.append(header)
    rows = {band: sweep(v) for band, v in bands.items()}
    for i, threshold in enumerate(THRESHOLDS):
        cells = []
        for band in bands:
            r = rows[band][i]
            cell = (
                f"{r['ends_finished']:>2}/{r['ends']} / {r['long_pauses_finished']:>2}/"
                f"{r['long_pauses']} ({r['pauses_finished']}/{r['pauses']})"
            )
            cells.append(cell.ljust(len(band) + 60))
        mark = "  <- the model's English default" if threshold == 0.36 else ""
        out.append(f"{threshold:<9}  " + "  ".join(cells).rstrip() + mark)
    out += [
        "",
        "A turn end judged unfinished waits max_delay before the agent answers; a pause "
        "longer than the VAD's silence judged finished is a reply that cuts the caller off.",
    ]
    return "\n".join(out)


async def run(args: argparse.Namespace) -> dict[str, list[Verdict]]:
    detector = inference.TurnDetector(version="v1-mini")
    bands = {"8 kHz (phone)": await phone_band(detector)}
    if args.wideband:
        bands["16 kHz (wideband)"] = await wideband(detector)
    return bands


def main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--no-wideband",
        dest="wideband",
        action="store_false",
        help="only the checked-in 8 kHz turns (16 kHz needs espeak-ng to render them)",
    )
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "end_of_turn.json"
    )
    args = parser.parse_args(argv)
    if args.wideband and shutil.which("espeak-ng") is None:
        print("espeak-ng is not installed: 8 kHz only (apt install espeak-ng for 16 kHz)")
        args.wideband = False
    bands = asyncio.run(run(args))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(
        json.dumps(
            {
                band: {"verdicts": [asdict(v) for v in verdicts], "sweep": sweep(verdicts)}
                for band, verdicts in bands.items()
            },
            indent=2,
        )
        + "\n"
    )
    print(table(bands))


if __name__ == "__main__":
    main(sys.argv[1:])
