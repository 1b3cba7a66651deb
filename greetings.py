"""Greeting audio made before the phone rings.

Every call opens with the same words for its line, so there is no reason to make the
caller wait for text-to-speech: each worker process has the greetings of all lines ready
while it warms up (``prewarm``, before it is given a call), and the agent replays that
audio the moment the caller joins. The apologies of a call whose agent cannot go on
(rescue.py) are made the same way, so they play even when text-to-speech is what failed.

Each job runs in a fresh process, so the audio is also kept on disk (greeting_store.py):
the first process of a worker synthesizes it, every later one reads it back, and a call
whose greeting did not change costs no text-to-speech request at all.

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
from typing import TYPE_CHECKING

from livekit import rtc
from livekit.agents import tts

if TYPE_CHECKING:
    from greeting_store import GreetingStore

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
        store: GreetingStore | None = None,
    ) -> None:
        """Have every text ready within ``time_limit`` seconds: from ``store`` when it
        holds it, else synthesized (concurrently) and kept there.

        ``make_tts`` builds the same TTS the calls use (so the audio matches what live TTS
        would say); it is closed afterwards because its HTTP client belongs to this loop.
        Only give a ``store`` with a TTS that speaks with exactly ``voice``: what is stored
        is replayed by every later process.
        """
        missing = sorted({t for t in texts if (t, voice) not in self._frames})
        if store is not None:
            missing = self._load(store, voice, missing)
        if not missing:
            return
        if store is None:
            await self._make(make_tts, voice, missing, time_limit=time_limit)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_limit
        # one process makes what is missing; the others wait, then find it stored
        async with store.exclusive(within=time_limit):
            missing = self._load(store, voice, missing)
            left = deadline - loop.time()
            if missing and left > 0:
                await self._make(make_tts, voice, missing, time_limit=left, store=store)

    def _load(self, store: GreetingStore, voice: Voice, texts: list[str]) -> list[str]:
        """Take what ``store`` holds; returns the texts it does not."""
        missing = []
        for text in texts:
            if frames := store.load(text, voice):
                self._frames[(text, voice)] = frames
            else:
                missing.append(text)
        return missing

    async def _make(
        self,
        make_tts: Callable[[], tts.TTS],
        voice: Voice,
        missing: list[str],
        *,
        time_limit: float,
        store: GreetingStore | None = None,
    ) -> None:
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
                if store is not None:
                    store.save(tasks[task], voice, frames)
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
