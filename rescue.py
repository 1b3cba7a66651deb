"""When the agent cannot go on: an apology, then a person or a deliberate end.

A provider down with no fallback left, or the session closing under the agent, must not
leave the caller on a silent line. The session is gone by then, so the apology plays on a
track of its own, from audio made before the call (like the greeting: no text-to-speech
is needed at that moment; live TTS is tried briefly only if that audio is missing). Then
the caller is transferred by SIP REFER to the destination named by ``[on_failure]
transfer_to``, with one request; without one, or when that transfer fails, they hear that
the call is ending, and it is ended for them (lifecycle.py deletes the room).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from livekit import rtc
from livekit.agents import tts
from livekit.protocol import sip

from config import Destination, Settings
from greetings import GreetingAudio, Voice
from playback import TrackPlayer, at_mixer_rate
from prompts import Words
from server_api import CallServer
from tools.destinations import masked_address
from tools.outcomes import Failure, classify, from_sip_status
from waits import until

logger = logging.getLogger("phone-assistant.rescue")

# Live TTS for a missing apology gets this long: the caller is already waiting.
LIVE_SPEECH_TIMEOUT_S = 3.0
# Playback may take this much longer than the audio itself before it is cut off.
PLAYOUT_MARGIN_S = 3.0


class ApologyAudio:
    """The apology's audio: made in prewarm with the greetings, or synthesized now."""

    def __init__(
        self, made: GreetingAudio, voice: Voice, make_tts: Callable[[], tts.TTS] | None
    ) -> None:
        self._made = made
        self._voice = voice
        self._make_tts = make_tts

    async def frames(self, text: str) -> Sequence[rtc.AudioFrame] | None:
        if made := self._made.frames(text, self._voice):
            return made
        if self._make_tts is None:
            return None
        logger.warning("no apology audio made ahead of time; trying live text-to-speech")
        engine = self._make_tts()
        try:
            async with asyncio.timeout(LIVE_SPEECH_TIMEOUT_S), engine.synthesize(text) as stream:
                return [event.frame async for event in stream]
        except Exception as error:  # TTS may well be what failed
            logger.error("live text-to-speech failed too (%s): no apology", type(error).__name__)
            return None
        finally:
            await engine.aclose()


class CallRescue:
    """One per call; run by the lifecycle when the agent cannot go on."""

    def __init__(
        self,
        settings: Settings,
        words: Words,
        *,
        room: rtc.Room,
        caller: str,
        server: CallServer | None,
        audio: ApologyAudio,
    ) -> None:
        self._settings = settings
        self._words = words  # in the call's language
        self._room = room
        self._caller = caller
        self._server = server
        self._audio = audio

    async def run(self, why: str, caller_left: asyncio.Event) -> str:
        """Returns how the call ended, for the log and the job's end."""
        destination = self._settings.failure_destination if self._server else None
        moment = "transfer" if destination is not None else "end"
        await self._apologize(self._words.failure(moment), caller_left)
        if caller_left.is_set():
            return "the caller hung up during the apology"
        if destination is None:
            return "the call was ended after the apology"
        failure = await self._transfer(destination)
        if failure is None:
            return f"the caller was transferred to {destination.key} after the apology"
        logger.error(
            "could not transfer the caller to the [on_failure] destination %s (%s): %s. "
            "Ending the call",
            destination.key,
            masked_address(destination),
            failure.detail,
        )
        await self._apologize(self._words.failure("end"), caller_left)
        return f"the transfer to {destination.key} failed; the call was ended"

    async def _apologize(self, text: str, caller_left: asyncio.Event) -> None:
        frames = await self._audio.frames(text)
        if not frames or caller_left.is_set():
            return
        player = TrackPlayer(self._room, "apology")
        if not await player.start():
            return
        try:
            seconds = sum(f.duration for f in frames)
            # the player reports a clip played once its mixer has taken the last frame, with
            # up to ~0.7 s still queued for the track: a second of silence after the words
            # lets them all out before the REFER or the end (measured in test_rescue.py)
            handle = player.play(at_mixer_rate(frames, trailing_silence=1.0))
            limit = seconds + PLAYOUT_MARGIN_S
            if not await until(handle.wait_for_playout(), caller_left, timeout=limit):
                handle.stop()
                logger.info("the apology did not play to the end")
        finally:
            await player.stop()

    async def _transfer(self, destination: Destination) -> Failure | None:
        assert self._server is not None
        request = self._server.refer_request(self._caller, destination)
        logger.info(
            "sending one REFER to the [on_failure] destination %s (%s)",
            destination.key,
            masked_address(destination),
        )
        try:
            response = await self._server.transfer(request)
        except Exception as error:
            return classify(error)
        if response.status == sip.STS_TRANSFER_FAILED:
            reason = sip.SIPTransferReason.Name(response.reason)
            return from_sip_status(response.sip_status.code, response.sip_status.status, reason)
        return None
