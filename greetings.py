"""Greeting audio made before the phone rings.

Every call opens with the same words for its line, so there is no reason to make the
caller wait for text-to-speech: each worker process synthesizes the greetings of all
lines while it warms up (``prewarm``, before it is given a call), and the agent replays
that audio the moment the caller joins. Each job runs in a fresh process, so this costs
one TTS request per line's greeting per call (for a single line, what live TTS costs),
made off the caller's clock. The apologies of a call whose agent cannot go on
(rescue.py) are made the same way, so they play even when text-to-speech is what failed:
one or two more short requests per call.

The audio is stored under everything that shapes it (the text, the TTS model and the
voice), so a changed greeting or voice can never replay stale audio: the lookup misses
and the agent speaks the greeting with live TTS. A failed or slow synthesis is logged
and falls back the same way; a call never waits on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

from livekit import rtc
from livekit.agents import tts

logger = logging.getLogger("phone-assistant.greetings")


@dataclass(frozen=True, slots=True)
class Voice:
    """What besides the text decides how the greeting sounds."""

    model: str
    voice: str


class GreetingAudio:
    """Synthesized greetings, keyed by (text, voice)."""

    def __init__(self) -> None:
        self._frames: dict[tuple[str, Voice], tuple[rtc.AudioFrame, ...]] = {}

    def __len__(self) -> int:
        return len(self._frames)

    async def synthesize(
        self,
        make_tts: Callable[[], tts.TTS],
        voice: Voice,
        texts: Iterable[str],
        *,
        time_limit: float,
    ) -> None:
        """Synthesize every text not yet stored, concurrently, within ``time_limit`` seconds.

        ``make_tts`` builds the same TTS the calls use (so the audio matches what live TTS
        would say); it is closed afterwards because its HTTP client belongs to this loop.
        """
        missing = sorted({t for t in texts if (t, voice) not in self._frames})
        if not missing:
            return
        engine = make_tts()
        tasks = {asyncio.create_task(_frames_of(engine, text)): text for text in missing}
        try:
            done, late = await asyncio.wait(tasks, timeout=time_limit)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        finally:
            await engine.aclose()
        for task in done:
            if error := task.exception():
                logger.warning(
                    "could not synthesize a greeting (%s); calls will use live TTS",
                    _describe(error),
                )
            elif frames := task.result():
                self._frames[(tasks[task], voice)] = frames
        if late:
            logger.warning(
                "%d greeting(s) not synthesized within %.1f s; calls will use live TTS",
                len(late),
                time_limit,
            )

    def frames(self, text: str, voice: Voice) -> tuple[rtc.AudioFrame, ...] | None:
        return self._frames.get((text, voice))

    def replay(self, text: str, voice: Voice) -> AsyncIterator[rtc.AudioFrame] | None:
        """The stored audio as ``session.say(text, audio=...)`` takes it, or None (use TTS)."""
        frames = self.frames(text, voice)
        return _replay(frames) if frames else None


async def _frames_of(engine: tts.TTS, text: str) -> tuple[rtc.AudioFrame, ...]:
    async with engine.synthesize(text) as stream:
        return tuple([ev.frame async for ev in stream])


async def _replay(frames: Sequence[rtc.AudioFrame]) -> AsyncIterator[rtc.AudioFrame]:
    for frame in frames:
        yield frame


def _describe(error: BaseException) -> str:
    # Provider errors carry the status and message; never the request (it holds the key).
    return f"{type(error).__name__}: {error}"[:300]
