"""The speech and language models of a call, with the framework's FallbackAdapters.

Each of speech-to-text, the LLM and text-to-speech is one model, or, when ``[models]``
lists fallbacks, the framework's ``FallbackAdapter`` over the primary and its fallbacks
in order: a provider failing mid-call moves the call to the next one instead of leaving
the caller in silence. What none of them can answer is an unrecoverable error, and the
session closes on the first one (``max_unrecoverable_errors=0``): the call's lifecycle
then apologizes and hands the caller on (lifecycle.py, rescue.py) rather than letting
them wait through more failures in silence.

Time limits are phone-call limits: a caller waits through at most one retry of a model
that does not answer before the next model, or the rescue, takes over.
"""

from __future__ import annotations

from typing import Literal

from livekit.agents import NOT_GIVEN, APIConnectOptions, inference
from livekit.agents import llm as agents_llm
from livekit.agents import stt as agents_stt
from livekit.agents import tts as agents_tts
from livekit.agents.types import NotGivenOr
from livekit.agents.voice.agent_session import SessionConnectOptions
from livekit.agents.voice.turn import TurnDetectionMode, TurnHandlingOptions
from livekit.plugins import deepgram, openai, silero

from caller import SttChoice
from config import Line, ModelChoice, Settings
from greetings import Voice

# A model that has not started answering in this long is not going to do so in a time
# a caller will wait for; one quick retry covers a dropped connection or a 5xx blip.
LLM_CONNECT = APIConnectOptions(max_retry=1, retry_interval=0.5, timeout=5.0)
TTS_CONNECT = APIConnectOptions(max_retry=1, retry_interval=0.5, timeout=5.0)
STT_CONNECT = APIConnectOptions(max_retry=3, retry_interval=1.5, timeout=5.0)

SESSION_CONNECT = SessionConnectOptions(
    llm_conn_options=LLM_CONNECT,
    tts_conn_options=TTS_CONNECT,
    stt_conn_options=STT_CONNECT,
    max_unrecoverable_errors=0,
)


def build_llm(settings: Settings) -> agents_llm.LLM:
    models = [settings.models.llm, *(c.model for c in settings.models.llm_fallback)]
    engines = [_openai_llm(settings, model) for model in models]
    if len(engines) == 1:
        return engines[0]
    return agents_llm.FallbackAdapter(
        engines, attempt_timeout=LLM_CONNECT.timeout, max_retry_per_llm=0
    )


def voice_for(settings: Settings, line: Line | None = None) -> Voice:
    """The text-to-speech model and voice of a line (the business's, unless it sets its own)."""
    models = settings.models
    return Voice(
        model=(line.tts_model if line else None) or models.tts,
        voice=(line.voice if line else None) or models.voice,
    )


def every_voice(settings: Settings) -> set[Voice]:
    return {voice_for(settings, line) for line in (None, *settings.lines)}


def build_tts(settings: Settings, voice: Voice | None = None) -> agents_tts.TTS:
    voice = voice or voice_for(settings)
    primary = _openai_tts(settings, voice.model, voice.voice)
    fallbacks = [
        _fallback_tts(settings, choice, voice.voice) for choice in settings.models.tts_fallback
    ]
    if not fallbacks:
        return primary
    return agents_tts.FallbackAdapter([primary, *fallbacks], max_retry_per_tts=0)


def primary_tts(settings: Settings, voice: Voice) -> agents_tts.TTS:
    """``voice``'s own model and voice, without fallbacks: what may be stored as its audio."""
    return _openai_tts(settings, voice.model, voice.voice)


def build_stt(settings: Settings, choice: SttChoice, vad: silero.VAD) -> agents_stt.STT:
    primary = _deepgram_stt(settings, choice.model, choice.language)
    fallbacks = [
        _fallback_stt(settings, fallback, choice.language)
        for fallback in settings.models.stt_fallback
    ]
    if not fallbacks:
        return primary
    # a fallback that does not stream (OpenAI) is cut into utterances by the VAD
    return agents_stt.FallbackAdapter([primary, *fallbacks], vad=vad, max_retry_per_stt=0)


def _openai_llm(settings: Settings, model: str) -> openai.LLM:
    return openai.LLM(
        model=model,
        api_key=settings.secrets.openai_api_key,
        base_url=settings.secrets.openai_base_url or NOT_GIVEN,
    )


def _openai_tts(settings: Settings, model: str, voice: str) -> openai.TTS:
    # Raw PCM: no decoder to start and nothing to decode before the first audio frame.
    return openai.TTS(
        model=model,
        voice=voice,
        response_format="pcm",
        api_key=settings.secrets.openai_api_key,
        base_url=settings.secrets.openai_base_url or NOT_GIVEN,
    )


def _fallback_tts(settings: Settings, choice: ModelChoice, voice: str) -> agents_tts.TTS:
    if choice.provider == "openai":
        return _openai_tts(settings, choice.model, voice)
    return deepgram.TTS(
        model=choice.model,
        api_key=settings.secrets.deepgram_api_key,
        **_deepgram_url(settings, "speak"),
    )


def _deepgram_stt(settings: Settings, model: str, language: str) -> deepgram.STT:
    return deepgram.STT(
        model=model,
        language=language,
        api_key=settings.secrets.deepgram_api_key,
        **_deepgram_url(settings, "listen"),
    )


def _fallback_stt(settings: Settings, choice: ModelChoice, language: str) -> agents_stt.STT:
    if choice.provider == "deepgram":
        return _deepgram_stt(settings, choice.model, language)
    return openai.STT(
        model=choice.model,
        language=language.split("-")[0],
        use_realtime=False,
        api_key=settings.secrets.openai_api_key,
        base_url=settings.secrets.openai_base_url or NOT_GIVEN,
    )


def _deepgram_url(settings: Settings, endpoint: str) -> dict[str, str]:
    """The plugin's own default (Deepgram's cloud) unless DEEPGRAM_BASE_URL points at a
    self-hosted Deepgram; that URL names the listen endpoint, speech is beside it."""
    base = settings.secrets.deepgram_base_url
    if not base:
        return {}
    root = base.rstrip("/").removesuffix("/listen").removesuffix("/speak")
    return {"base_url": f"{root}/{endpoint}"}


def load_vad(settings: Settings) -> silero.VAD:
    """Silero VAD, ending the caller's speech after ``[turn_taking] vad_silence``."""
    return silero.VAD.load(min_silence_duration=settings.turn_taking.vad_silence)


def turn_handling(settings: Settings) -> TurnHandlingOptions:
    """The session's turn handling, as ``[turn_taking]`` says (config_turns.py)."""
    turns = settings.turn_taking
    detection: TurnDetectionMode | None
    if turns.end_of_turn_model == "off":
        detection = "vad"  # silence alone: the VAD's end of speech + min_delay
    else:
        # the framework's choice ("auto"), or its local model in every mode
        version: NotGivenOr[Literal["v1-mini"]] = (
            "v1-mini" if turns.end_of_turn_model == "local" else NOT_GIVEN
        )
        threshold = turns.end_of_turn_threshold
        detection = inference.TurnDetector(
            version=version, unlikely_threshold=NOT_GIVEN if threshold is None else threshold
        )
    return TurnHandlingOptions(
        turn_detection=detection,
        endpointing={"min_delay": turns.min_delay, "max_delay": turns.max_delay},
        preemptive_generation={
            "enabled": turns.preemptive_generation,
            "preemptive_tts": turns.preemptive_tts,
        },
    )


def vad_problem() -> str | None:
    """Every call needs Silero VAD: if it cannot load here, it cannot load in a job
    process either, and every call would fail after the caller was connected."""
    try:
        silero.VAD.load()
    except Exception as error:
        return (
            f"Silero VAD could not be loaded ({type(error).__name__}: {error}). Every call "
            "needs it: reinstall the dependencies (uv sync --locked) and check that "
            "onnxruntime works on this machine."
        )
    return None
