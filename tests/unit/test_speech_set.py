"""The turn-taking speech set says what its audio holds.

The bench counts a reply that starts before a turn's ``speech_end`` as cutting the caller
off, so the labels must be what the recordings really hold: checked here against the
audio, measured as the stand-in Deepgram hears it (10 ms windows louder than -45 dBFS).
"""

from __future__ import annotations

import itertools
import wave

import numpy as np
import pytest

from tests.support.speech_set import SPEECH_SET, TURNS_DIR, SpokenTurn

WINDOW_S = 0.01
SPEECH_DBFS = -45.0


def audible_windows(turn: SpokenTurn) -> list[tuple[float, float]]:
    """The recording's audible stretches (start, end), in seconds."""
    samples = np.concatenate([np.frombuffer(f.data, "<i2") for f in turn.frames()])
    window = round(8000 * WINDOW_S)
    n = len(samples) // window
    rms = np.sqrt((samples[: n * window].astype(np.float64).reshape(n, window) ** 2).mean(1))
    loud = 20 * np.log10(np.maximum(rms, 1e-3) / 32768) > SPEECH_DBFS
    runs, start = [], None
    for i, on in enumerate([*loud, False]):
        if on and start is None:
            start = i
        elif not on and start is not None:
            runs.append((round(start * WINDOW_S, 3), round(i * WINDOW_S, 3)))
            start = None
    return runs


def test_every_recording_is_in_the_manifest_and_is_phone_audio() -> None:
    assert sorted(p.stem for p in TURNS_DIR.glob("*.wav")) == sorted(t.name for t in SPEECH_SET)
    for turn in SPEECH_SET:
        with wave.open(str(TURNS_DIR / f"{turn.name}.wav")) as w:
            assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
            assert w.getnframes() / 8000 == pytest.approx(turn.seconds, abs=0.001)


@pytest.mark.parametrize("turn", SPEECH_SET, ids=lambda t: t.name)
def test_the_caller_finishes_where_the_label_says(turn: SpokenTurn) -> None:
    runs = audible_windows(turn)
    assert runs[-1][1] == pytest.approx(turn.speech_end, abs=0.011)
    assert turn.speech_end == turn.segments[-1].end
    assert turn.speech_end <= turn.seconds
    # nothing audible between the labelled segments' pauses
    for before, after in itertools.pairwise(turn.segments):
        gap = [r for r in runs if r[0] >= before.end - 0.005 and r[1] <= after.start + 0.005]
        assert gap == [], f"sound inside the pause after {before.text!r}"


def test_the_set_has_short_answers_numbers_and_mid_sentence_pauses() -> None:
    kinds = {t.kind for t in SPEECH_SET}
    assert kinds == {"short", "number", "paused"}
    pauses = [p for t in SPEECH_SET for p in t.pauses]
    assert len(pauses) >= 15
    assert min(pauses) >= 0.3 and max(pauses) <= 0.95
    assert all(not t.pauses for t in SPEECH_SET if t.kind == "short")
