"""Phone assistant worker: every inbound call is one job, one lifecycle, one AgentSession.

The call path, top to bottom:
  main()        validates config (and that Silero VAD loads), registers the entrypoint under
                the configured agent name (SIP dispatch rules dispatch by name), masks phone
                numbers in every log line, runs the LiveKit CLI.
  prewarm()     once per worker process: load config, the Silero VAD and the OpenAI
                clients, and the greetings and the apologies (synthesized by the first
                process, kept on disk for the others: greeting_store.py), so callers hear
                the agent without waiting for TTS (and an apology even when TTS is down).
  answer_call() once per call: find the SIP caller; open the call's lifecycle, which
                decides how the call ends (lifecycle.py); choose STT for their line; start
                the session with the room. The agent greets the caller, talks, transfers
                (tools/) or ends the call; if it cannot go on, the caller hears an apology
                and is handed on (rescue.py).

Run: uv run agent.py dev | start | console [--text] | check | download-files | --help
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import AsyncIterable, Callable, Mapping
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
    room_io,
)
from livekit.agents import llm as agents_llm
from livekit.agents import tts as agents_tts
from livekit.plugins import silero

import commands
import prompts
from call_tools import CallTools, keypad_for
from caller import Caller, SttChoice, await_sip_attributes, choose_stt, find_caller, resolve_line
from config import ConfigError, Settings, load_settings
from console_text import ConsoleTranscript, show_in_console, text_mode
from greeting_store import GreetingStore
from greetings import GreetingAudio, Voice
from journal import CallJournal, Clock, utc_now
from keeping import keep_record, open_store, purge_old, start_delivery
from lifecycle import CallLifecycle
from models import (
    SESSION_CONNECT,
    build_llm,
    build_stt,
    build_tts,
    every_voice,
    load_vad,
    primary_tts,
    turn_handling,
    vad_problem,
    voice_for,
)
from privacy import install_log_masking, safe_name, secret_values
from prompts import Words
from rescue import ApologyAudio, CallRescue
from server_api import CallServer
from store import Store, StoreError

logger = logging.getLogger("phone-assistant")

# Calls last minutes: on SIGTERM the worker stops taking calls and lets the running ones
# finish for up to this long. Give the orchestrator a longer grace period (docs/deploy.md, S3).
DRAIN_TIMEOUT_S = 1800

# Greeting synthesis in prewarm must finish well inside the framework's 10 s limit for
# initializing a process; if it does not, calls speak the greeting with live TTS.
GREETING_SYNTHESIS_TIMEOUT_S = 6.0

# A transcript still on its way when the session closes gets this long (framework: 2 s).
SESSION_CLOSE_TRANSCRIPT_S = 0.5

# Commands that run calls, and so need a valid configuration before they start.
_CALL_COMMANDS = {"dev", "start", "console", "connect"}


class PhoneAssistant(Agent):
    def __init__(
        self,
        settings: Settings,
        *,
        caller: Caller,
        lifecycle: CallLifecycle,
        words: Words,
        greeting: str,
        greeting_audio: AsyncIterable[rtc.AudioFrame] | None = None,
        tools: CallTools | None = None,
    ) -> None:
        """``words`` are the fixed sentences of the call's language."""
        tools = tools or CallTools.for_call(settings, caller, lifecycle, words)
        super().__init__(instructions=words.instructions(), tools=tools.all())
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
    stt: SttChoice | None,
    vad: silero.VAD,
    *,
    llm: agents_llm.LLM | None = None,
    tts: agents_tts.TTS | None = None,
) -> AgentSession:
    """``llm`` and ``tts`` are the ones prewarm built, if any (see ``prewarm``); no
    ``stt`` for a caller who types (console --text), so nothing is heard or contacted."""
    return AgentSession(
        stt=build_stt(settings, stt, vad) if stt is not None else NOT_GIVEN,
        llm=llm or build_llm(settings),
        tts=tts or build_tts(settings),
        vad=vad,
        conn_options=SESSION_CONNECT,
        turn_handling=turn_handling(settings),
        # Closing waits this long for the caller's last words to be transcribed; when
        # speech-to-text is what failed none will come, and the apology waits on it.
        session_close_transcript_timeout=SESSION_CLOSE_TRANSCRIPT_S,
    )


def made_ahead(settings: Settings) -> dict[Voice, set[str]]:
    """What prewarm synthesizes, by voice: every line's greeting and the apologies of a
    call that cannot go on (those must play even when text-to-speech is what failed), in
    every language the configuration speaks (a caller may select one)."""
    made: dict[Voice, set[str]] = {}
    for line in (None, *settings.lines):
        texts = made.setdefault(voice_for(settings, line), set())
        for language in settings.languages:
            words = Words(settings, language)
            texts.add(words.greeting(line))
            texts.update(words.apologies())
    return made


async def make_ahead(
    greetings: GreetingAudio,
    settings: Settings,
    *,
    time_limit: float,
    store: GreetingStore | None = None,
) -> None:
    """Have ``made_ahead`` ready, each voice's concurrently: from ``store`` (the data
    directory's, in a worker) when it holds them, else synthesized by the voice's own TTS
    and kept there. What that TTS cannot make in time (half the time, with fallbacks), its
    fallbacks make for this process only: stored, another voice's audio would greet every
    later caller."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + time_limit
    own_time = time_limit / 2 if settings.models.tts_fallback else time_limit

    async def ready(voice: Voice, texts: set[str]) -> None:
        await greetings.synthesize(
            lambda: primary_tts(settings, voice),
            voice,
            texts,
            time_limit=own_time,
            store=store,
        )
        left = deadline - loop.time()
        if settings.models.tts_fallback and left > 0:
            await greetings.synthesize(
                lambda: build_tts(settings, voice), voice, texts, time_limit=left
            )

    await asyncio.gather(*(ready(voice, texts) for voice, texts in made_ahead(settings).items()))


def greeting_store(settings: Settings) -> GreetingStore:
    """Where a worker's processes keep the audio they made ahead (greeting_store.py)."""
    return GreetingStore(
        settings.storage.data_dir / "greetings", endpoint=settings.secrets.openai_base_url or ""
    )


def prewarm(proc: JobProcess) -> None:
    # main() already validated this configuration (and reported every problem); job
    # processes re-read it because they do not share the main process's memory.
    typing = text_mode()  # console --text: no speech either way (console_text.py)
    settings = load_settings(os.environ, need_livekit=False, need_deepgram=not typing)
    # This process's root handler forwards records to the main process: mask them here.
    install_log_masking(secret_values(settings.secrets))
    proc.userdata["settings"] = settings
    proc.userdata["vad"] = load_vad(settings)
    greetings = GreetingAudio()
    try:
        if not typing:
            asyncio.run(
                make_ahead(
                    greetings,
                    settings,
                    time_limit=GREETING_SYNTHESIS_TIMEOUT_S,
                    store=greeting_store(settings),
                )
            )
    except Exception:
        # An optimization only: a process that cannot take calls would drop callers.
        logger.exception("greeting synthesis failed; calls will speak it with live TTS")
    proc.userdata["greetings"] = greetings
    try:
        store: Store | None = open_store(settings)
        purge_old(store, settings)
    except StoreError as error:  # checked at start-up; a disk gone since must not drop calls
        logger.error("%s: calls will take no messages and keep no records", error)
        store = None
    proc.userdata["store"] = store
    # Each OpenAI plugin builds an HTTP client that loads the CA bundle (~35 ms each):
    # done here, that is not spent while the caller listens to silence.
    proc.userdata["llm"] = build_llm(settings)
    proc.userdata["tts"] = {voice: build_tts(settings, voice) for voice in every_voice(settings)}


# INFO logs in every mode (the framework's dev and console default to DEBUG, which
# buries a console conversation); `--log-level debug` for more. This module (the main
# one) is imported once in the forkserver rather than by every job process as it starts
# (~0.1-0.3 s of a call that finds no idle process waiting for one).
server = AgentServer(
    setup_fnc=prewarm,
    drain_timeout=DRAIN_TIMEOUT_S,
    log_level="INFO",
    preload_modules=["__main__"],
)


async def answer_call(ctx: JobContext) -> None:
    settings: Settings = ctx.proc.userdata["settings"]
    greetings: GreetingAudio = ctx.proc.userdata["greetings"]

    participant = await find_caller(ctx)
    caller = Caller.from_participant(participant)
    # the room name and the identity carry the caller's number
    ctx.log_context_fields = {
        "room": safe_name(ctx.room.name),
        "caller": safe_name(caller.identity),
    }

    # From here on the lifecycle decides how the call ends, whatever happens below.
    server = None if ctx.is_fake_job() else CallServer.from_settings(settings, ctx.room.name)
    lifecycle = open_call(ctx.room, caller, server=server, end_job=ctx.shutdown, call_id=ctx.job.id)
    store: Store | None = ctx.proc.userdata.get("store")
    session: AgentSession | None = None

    async def end_of_call(why: str) -> None:
        """Tear the call down, then keep its record (keeping.py)."""
        await lifecycle.on_job_shutdown()
        await keep_record(store, settings, lifecycle, session, why)

    ctx.add_shutdown_callback(end_of_call)

    await await_sip_attributes(ctx.room, participant, wait=settings.attributes_timeout)
    caller = Caller.from_participant(participant)  # with the sip.* attributes that came late
    session, agent = prepare_call(
        settings,
        caller,
        lifecycle,
        vad=ctx.proc.userdata["vad"],
        greetings=greetings,
        llm=ctx.proc.userdata["llm"],
        tts=ctx.proc.userdata["tts"],
        store=store,
        typing=ctx.is_fake_job() and text_mode(),
    )
    await start_session(session, agent, ctx.room, caller, lifecycle)


async def start_session(
    session: AgentSession,
    agent: PhoneAssistant,
    room: rtc.Room,
    caller: Caller,
    lifecycle: CallLifecycle,
) -> None:
    """Start the session with the room: the framework's RoomIO links it to the caller
    (their audio in, the agent's voice out) and closes it when they hang up. A session
    that cannot start leaves the caller to the lifecycle's rescue, not to silence."""
    try:
        await session.start(
            agent=agent,
            room=room,
            room_options=room_io.RoomOptions(participant_identity=caller.identity),
        )
    except Exception:
        logger.exception("the agent session could not start")
        lifecycle.cannot_go_on("the agent session could not start")


def open_call(
    room: rtc.Room,
    caller: Caller,
    *,
    server: CallServer | None,
    end_job: Callable[[str], None],
    call_id: str,
    clock: Clock = utc_now,
) -> CallLifecycle:
    """The call's lifecycle: from here on it decides how the call ends, and its journal
    notes what happens for the call's record. Its rescue comes with the session
    (``prepare_call``), once the call's language and voice are known."""
    journal = CallJournal(call_id=call_id, caller_number=caller.caller_id, clock=clock)
    return CallLifecycle(room, caller.identity, server=server, end_job=end_job, journal=journal)


def prepare_call(
    settings: Settings,
    caller: Caller,
    lifecycle: CallLifecycle,
    *,
    vad: silero.VAD,
    greetings: GreetingAudio,
    llm: agents_llm.LLM | None = None,
    tts: Mapping[Voice, agents_tts.TTS] | None = None,
    store: Store | None = None,
    typing: bool = False,
) -> tuple[AgentSession, PhoneAssistant]:
    """The session and agent for one caller: their line decides the language, the STT
    model, the voice and the greeting; the lifecycle follows the session and gets the
    rescue it runs in the call's language and voice. ``llm`` and ``tts`` (by voice) are
    what prewarm built; ``store`` keeps the call's messages. ``typing``: the caller types
    (console --text), so there is no speech-to-text, and the console shows what its chat
    leaves out (console_text.py). Apart from answer_call so the whole-call test and the
    bench build calls exactly as the worker does."""
    line = resolve_line(caller, settings)
    stt = choose_stt(caller, line, settings)
    voice = voice_for(settings, line)
    words = Words(settings, stt.speaks)
    logger.info(
        "answering %s in %s; STT %s",
        caller.describe(),
        stt.speaks,
        "none: the caller types" if typing else f"{stt.model}/{stt.language}: {stt.reason}",
    )
    greeting = words.greeting(line)
    lifecycle.journal.line_id = line.id if line else "default"
    lifecycle.journal.caller_number = caller.caller_id
    tools = CallTools.for_call(settings, caller, lifecycle, words, store)
    agent = PhoneAssistant(
        settings,
        caller=caller,
        lifecycle=lifecycle,
        words=words,
        greeting=greeting,
        greeting_audio=greetings.replay(greeting, voice),
        tools=tools,
    )
    speech = (tts or {}).get(voice) or build_tts(settings, voice)
    session = build_session(settings, None if typing else stt, vad, llm=llm, tts=speech)
    if typing:
        ConsoleTranscript(session, settings, words, show_in_console)
    keypad_for(settings, caller, lifecycle, session, words, tools)
    lifecycle.rescue = rescue_for(settings, lifecycle, caller, words, voice, greetings)
    lifecycle.watch(session)
    return session, agent


def rescue_for(
    settings: Settings,
    lifecycle: CallLifecycle,
    caller: Caller,
    words: Words,
    voice: Voice,
    greetings: GreetingAudio,
) -> CallRescue:
    """What the lifecycle runs if the agent cannot go on: the apology in the call's
    language and voice, from the audio prewarm made (live TTS only if it is missing)."""
    audio = ApologyAudio(greetings, voice, lambda: build_tts(settings, voice))
    return CallRescue(
        settings,
        words,
        room=lifecycle.room,
        caller=caller.identity,
        server=lifecycle.server,
        audio=audio,
    )


def _startup_settings(command: str, *, typing: bool = False) -> Settings:
    """Validate everything a call will need before the worker registers, so a
    misconfigured worker never takes a call; exits with the list of problems. The
    console needs no LiveKit server, and typing (``typing``) no speech-to-text."""
    try:
        settings = load_settings(
            os.environ, need_livekit=command != "console", need_deepgram=not typing
        )
        prompts.check(settings)
    except (ConfigError, prompts.PromptError) as e:
        print(f"\n{e}\n", file=sys.stderr)
        sys.exit(2)
    if (problem := vad_problem()) is not None:
        print(f"\n{problem}\n", file=sys.stderr)
        sys.exit(2)
    try:  # messages and call records go there: a worker that cannot keep them stops here
        open_store(settings).close()
    except StoreError as e:
        print(f"\nstorage.data_dir: {e}\n", file=sys.stderr)
        sys.exit(2)
    commands.refuse_examples(settings, command)  # last: the console runs with them
    return settings


def main(argv: list[str]) -> None:
    load_dotenv(Path(__file__).with_name(".env.local"))
    command = commands.command_of(argv)
    settings = None
    if command in _CALL_COMMANDS and not commands.wants_help(argv):
        typing = command == "console" and "--text" in argv
        settings = _startup_settings(command, typing=typing)
        if command == "console":
            commands.prepare_console(typing)
        server.rtc_session(answer_call, agent_name=settings.agent_name)
    # Room names and identities carry callers' numbers: mask every log handler once the
    # CLI has made them (dev, start, console), before the first job request is logged.
    secrets = secret_values(settings.secrets) if settings else ()
    server.once("worker_started", lambda: install_log_masking(secrets))
    if settings is not None:
        # messages and call records reach the business from this process (keeping.py)
        server.once("worker_started", lambda: start_delivery(settings))
    # The framework's commands with ours (check, download-files): commands.py says why
    # this project runs them through agent.py rather than `lk agent`.
    commands.run(server, argv)


if __name__ == "__main__":
    main(sys.argv)
