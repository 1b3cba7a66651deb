"""Phone assistant worker: every inbound call is one job and one AgentSession.

The call path, top to bottom:
  main()        validates config, registers the entrypoint under the configured agent
                name (SIP dispatch rules dispatch by name), runs the LiveKit CLI.
  prewarm()     once per worker process: load config, the Silero VAD and the OpenAI
                clients, and synthesize the greetings so callers hear the agent without
                waiting for TTS.
  answer_call() once per call: find the SIP caller, choose STT for their line, start the
                session; the agent greets the caller, talks, transfers or ends the call.

Run: uv run agent.py dev | start | console [--text] | check | download-files | --help
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import warnings
from collections.abc import AsyncIterable
from pathlib import Path

from dotenv import load_dotenv
from livekit import rtc
from livekit.agents import (
    NOT_GIVEN,
    Agent,
    AgentServer,
    AgentSession,
    JobContext,
    JobProcess,
    cli,
    room_io,
)
from livekit.agents import llm as agents_llm
from livekit.agents import tts as agents_tts
from livekit.agents.beta.tools import EndCallTool
from livekit.agents.voice.events import CloseEvent
from livekit.plugins import deepgram, openai, silero

import prompts
from caller import Caller, SttChoice, await_sip_attributes, choose_stt, find_caller, resolve_line
from config import ConfigError, Settings, load_settings
from greetings import GreetingAudio, Voice
from tools import transfer_tools

logger = logging.getLogger("phone-assistant")

# Calls last minutes: on SIGTERM the worker stops taking calls and lets the running ones
# finish for up to this long. Give the orchestrator a longer grace period (see README).
DRAIN_TIMEOUT_S = 1800

# Greeting synthesis in prewarm must finish well inside the framework's 10 s limit for
# initializing a process; if it does not, calls speak the greeting with live TTS.
GREETING_SYNTHESIS_TIMEOUT_S = 6.0

# Commands that run calls, and so need a valid configuration before they start.
_CALL_COMMANDS = {"dev", "start", "console", "connect"}


class PhoneAssistant(Agent):
    def __init__(
        self,
        settings: Settings,
        *,
        caller: Caller,
        language: str,
        greeting: str,
        greeting_audio: AsyncIterable[rtc.AudioFrame] | None = None,
    ) -> None:
        super().__init__(
            instructions=prompts.instructions(settings, language),
            tools=[
                EndCallTool(delete_room=True, ignore_on_enter=True),
                *transfer_tools(settings, caller),
            ],
        )
        self._greeting = greeting
        self._greeting_audio = greeting_audio

    async def on_enter(self) -> None:
        # A fixed text, not an LLM turn: the caller hears the business at once (from
        # audio made in prewarm when there is some), and a "hello?" from the caller as
        # the line opens does not cut the greeting off.
        self.session.say(
            self._greeting,
            audio=self._greeting_audio or NOT_GIVEN,
            allow_interruptions=False,
        )


def build_session(
    settings: Settings,
    stt: SttChoice,
    vad: silero.VAD,
    *,
    llm: agents_llm.LLM | None = None,
    tts: agents_tts.TTS | None = None,
) -> AgentSession:
    """``llm`` and ``tts`` are the ones prewarm built, if any (see ``prewarm``)."""
    secrets = settings.secrets
    # The plugin's own default URL (Deepgram's cloud) unless DEEPGRAM_BASE_URL is set.
    deepgram_url = {"base_url": secrets.deepgram_base_url} if secrets.deepgram_base_url else {}
    return AgentSession(
        stt=deepgram.STT(
            model=stt.model, language=stt.language, api_key=secrets.deepgram_api_key, **deepgram_url
        ),
        llm=llm or build_llm(settings),
        tts=tts or build_tts(settings),
        vad=vad,
    )


def build_llm(settings: Settings) -> agents_llm.LLM:
    return openai.LLM(
        model=settings.models.llm,
        api_key=settings.secrets.openai_api_key,
        base_url=settings.secrets.openai_base_url or NOT_GIVEN,
    )


def build_tts(settings: Settings) -> agents_tts.TTS:
    # Raw PCM: no decoder to start and nothing to decode before the first audio frame.
    return openai.TTS(
        model=settings.models.tts,
        voice=settings.models.voice,
        response_format="pcm",
        api_key=settings.secrets.openai_api_key,
        base_url=settings.secrets.openai_base_url or NOT_GIVEN,
    )


def tts_voice(settings: Settings) -> Voice:
    return Voice(model=settings.models.tts, voice=settings.models.voice)


def every_greeting(settings: Settings) -> set[str]:
    return {prompts.greeting(settings, line) for line in (None, *settings.lines)}


def end_job_when_session_closes(session: AgentSession, ctx: JobContext) -> None:
    """The caller hung up, was transferred, or the agent ended the call: nothing is
    left to do in this room, so the job ends rather than idling with no one to talk to."""

    @session.on("close")
    def _on_close(ev: CloseEvent) -> None:
        ctx.shutdown(reason=f"session closed: {ev.reason.value}")


def prewarm(proc: JobProcess) -> None:
    from privacy import install_log_masking, secret_values

    # main() already validated this configuration (and reported every problem); job
    # processes re-read it because they do not share the main process's memory.
    settings = load_settings(os.environ, need_livekit=False)
    # This process's root handler forwards records to the main process: mask them here.
    install_log_masking(secret_values(settings.secrets))
    proc.userdata["settings"] = settings
    proc.userdata["vad"] = silero.VAD.load()
    greetings = GreetingAudio()
    try:
        asyncio.run(
            greetings.synthesize(
                lambda: build_tts(settings),
                tts_voice(settings),
                every_greeting(settings),
                time_limit=GREETING_SYNTHESIS_TIMEOUT_S,
            )
        )
    except Exception:
        # An optimization only: a process that cannot take calls would drop callers.
        logger.exception("greeting synthesis failed; calls will speak it with live TTS")
    proc.userdata["greetings"] = greetings
    # Each OpenAI plugin builds an HTTP client that loads the CA bundle (~35 ms each):
    # done here, that is not spent while the caller listens to silence.
    proc.userdata["llm"] = build_llm(settings)
    proc.userdata["tts"] = build_tts(settings)


server = AgentServer(setup_fnc=prewarm, drain_timeout=DRAIN_TIMEOUT_S)


async def answer_call(ctx: JobContext) -> None:
    settings: Settings = ctx.proc.userdata["settings"]

    participant = await find_caller(ctx)
    await await_sip_attributes(ctx.room, participant, wait=settings.attributes_timeout)
    caller = Caller.from_participant(participant)
    from privacy import safe_name  # the room name and identity carry the caller's number

    ctx.log_context_fields = {
        "room": safe_name(ctx.room.name),
        "caller": safe_name(caller.identity),
    }

    session, agent = prepare_call(
        settings,
        caller,
        vad=ctx.proc.userdata["vad"],
        greetings=ctx.proc.userdata["greetings"],
        llm=ctx.proc.userdata["llm"],
        tts=ctx.proc.userdata["tts"],
    )
    end_job_when_session_closes(session, ctx)
    await session.start(
        agent=agent,
        room=ctx.room,
        room_options=room_io.RoomOptions(participant_identity=caller.identity),
    )


def prepare_call(
    settings: Settings,
    caller: Caller,
    *,
    vad: silero.VAD,
    greetings: GreetingAudio,
    llm: agents_llm.LLM | None = None,
    tts: agents_tts.TTS | None = None,
) -> tuple[AgentSession, PhoneAssistant]:
    """The session and agent for one caller: their line decides the STT model and the
    greeting. Apart from answer_call so the whole-call test and the bench build calls
    exactly as the worker does."""
    line = resolve_line(caller, settings)
    stt = choose_stt(caller, line, settings)
    logger.info(
        "answering %s; STT %s/%s: %s", caller.describe(), stt.model, stt.language, stt.reason
    )
    greeting = prompts.greeting(settings, line)
    agent = PhoneAssistant(
        settings,
        caller=caller,
        language=stt.language,
        greeting=greeting,
        greeting_audio=greetings.replay(greeting, tts_voice(settings)),
    )
    return build_session(settings, stt, vad, llm=llm, tts=tts), agent


def _startup_settings(command: str) -> Settings:
    """Validate everything a call will need before the worker registers, so a
    misconfigured worker never takes a call; exits with the list of problems."""
    try:
        settings = load_settings(os.environ, need_livekit=command != "console")
        prompts.check(settings)
    except (ConfigError, prompts.PromptError) as e:
        print(f"\n{e}\n", file=sys.stderr)
        sys.exit(2)
    return settings


def main(argv: list[str]) -> None:
    from privacy import install_log_masking, secret_values

    load_dotenv(Path(__file__).with_name(".env.local"))
    command = next((arg for arg in argv[1:] if not arg.startswith("-")), None)
    if command == "check":  # preflight: would a call reach this agent? (preflight.py)
        import preflight

        sys.exit(preflight.run(os.environ))
    settings = None
    if command in _CALL_COMMANDS:
        settings = _startup_settings(command)
        server.rtc_session(answer_call, agent_name=settings.agent_name)
    # Room names and identities carry callers' numbers: mask every log handler once the
    # CLI has made them (dev, start, console), before the first job request is logged.
    secrets = secret_values(settings.secrets) if settings else ()
    server.once("worker_started", lambda: install_log_masking(secrets))
    # The framework marks its built-in CLI deprecated in favour of `lk agent`, but it is
    # still the way to run `agent.py dev|start|console`, which this project documents.
    warnings.filterwarnings("ignore", "the built-in Python CLI", DeprecationWarning)
    cli.run_app(server)


if __name__ == "__main__":
    main(sys.argv)
