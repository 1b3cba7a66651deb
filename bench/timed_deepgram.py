"""The Deepgram stand-in endpointing as the plugin configures the real service.

The plugin asks Deepgram for ``endpointing=25``: a final transcript after 25 ms of
silence, so a caller who pauses mid-sentence gets one final per stretch of speech, each
with the words said in it, and the final of the last stretch arrives ~25 ms after they
stop. The tests' stand-in waits at least 500 ms instead (``min_endpoint_ms``), which
keeps their scripts to one transcript per utterance but would make every turn wait for
it here, where the bench measures how soon the agent can answer. So this one honours the
requested endpointing (``min_endpoint_ms=0``) and is scripted with *timed* transcripts:
per caller turn, each word with the moment it ends, in seconds from the turn's first
sound (the speech set's labels). A final carries the words that ended by the end of its
stretch of speech; the first stretch after the previous turn's words are all out starts
the next turn.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from tests.support.deepgram_server import DeepgramConnection, LoopbackDeepgram, UnexpectedSpeech

TimedWords = tuple[tuple[str, float], ...]  # (word, end) from the turn's first sound

# a word counts as heard once the stretch it is in has ended this close to it: the
# labels and the stand-in measure sound in 10 ms windows on differently resampled audio
EDGE_S = 0.05
# speech this long after a turn's last word belongs to the next turn
NEXT_TURN_S = 0.5


def timed_words(segments: list[tuple[str, float, float]]) -> TimedWords:
    """Each segment's (text, start, end) cut into words, spread over the segment by
    length, as the stand-in spreads word timings."""
    origin = segments[0][1]
    words: list[tuple[str, float]] = []
    for text, start, end in segments:
        split = text.split()
        total = sum(len(w) + 1 for w in split)
        at = start
        for w in split:
            at += (end - start) * (len(w) + 1) / total
            words.append((w, round(at - origin, 3)))
    return tuple(words)


@dataclass
class _Turn:
    origin: float  # seconds into the connection's audio: the turn's first sound
    words: deque[tuple[str, float]]
    last_end: float = field(init=False)

    def __post_init__(self) -> None:
        self.last_end = self.words[-1][1] if self.words else 0.0


class TimedDeepgram(LoopbackDeepgram):
    """``LoopbackDeepgram`` with the client's endpointing and per-word timed scripts."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(min_endpoint_ms=0, **kwargs)  # type: ignore[arg-type]
        self._timed: deque[TimedWords] = deque()
        self._turns: dict[int, _Turn] = {}
        self.words_dropped = 0  # words a turn never released (its audio was not heard)

    def script_timed(self, *turns: TimedWords) -> None:
        self._timed.extend(turns)

    def _take_transcript(self, conn: DeepgramConnection, start: float, end: float) -> str:
        turn = self._turns.get(id(conn))
        if turn is None or start - turn.origin > turn.last_end + NEXT_TURN_S or not turn.words:
            if turn is not None:
                self.words_dropped += len(turn.words)
            if not self._timed:
                self.unexpected.append(UnexpectedSpeech(start, end, conn))
                return ""
            turn = self._turns[id(conn)] = _Turn(start, deque(self._timed.popleft()))
        heard_until = end - turn.origin + EDGE_S
        said = []
        while turn.words and turn.words[0][1] <= heard_until:
            said.append(turn.words.popleft()[0])
        return " ".join(said)
