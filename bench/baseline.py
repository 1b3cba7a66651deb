"""The baseline the bench compares our agent with: a LiveKit starter-shaped agent.

It is what a developer gets by following livekit-examples/agent-starter-python and the
LiveKit docs, pointed at the same providers (same models, same stand-ins) as our agent:
a plain ``Agent(instructions=...)``, a plain ``AgentSession`` with the framework's default
turn handling, a greeting spoken with live TTS when the agent enters, and a cold transfer
written the way the docs show one (say the notice, wait for it to play, then REFER).

Nothing here is slowed down on purpose: where the starter leaves a choice open it takes
the same one as our agent (raw PCM from the TTS, the phone STT model), so the comparison
isolates what our agent adds or removes.
"""

from __future__ import annotations

from livekit import api, rtc
from livekit.agents import Agent, AgentSession, JobProcess, RunContext, get_job_context
from livekit.agents.llm import function_tool
from livekit.plugins import deepgram, openai, silero

INSTRUCTIONS = """You are a helpful voice AI assistant answering the phone.
You eagerly assist callers with their questions by providing information from your
extensive knowledge. Your responses are concise, to the point, and without any complex
formatting or punctuation including emojis, asterisks, or other symbols.
When a caller asks for a person, offer to transfer them, and transfer the call only after
they confirm."""


class Assistant(Agent):
    """The starter's agent, plus the greeting and the docs' cold transfer."""

    def __init__(self, *, greeting: str, notice: str, transfer_to: str) -> None:
        super().__init__(instructions=INSTRUCTIONS)
        self._greeting = greeting
        self._notice = notice
        self._transfer_to = transfer_to

    async def on_enter(self) -> None:
        """Greets with live TTS, as a starter-based agent would (nothing cached)."""
        self.session.say(self._greeting)

    @function_tool
    async def transfer_call(self, context: RunContext, destination: str) -> None:
        """Transfer the caller to a person. Call it only after the caller confirmed.

        Args:
            destination: who to transfer to, e.g. "billing"
        """
        # let the notice play fully before transferring (as the docs advise)
        await context.session.say(self._notice, allow_interruptions=False)
        job_ctx = get_job_context()
        caller = next(
            p
            for p in job_ctx.room.remote_participants.values()
            if p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_SIP
        )
        await job_ctx.api.sip.transfer_sip_participant(
            api.TransferSIPParticipantRequest(
                room_name=job_ctx.room.name,
                participant_identity=caller.identity,
                transfer_to=self._transfer_to,
            )
        )


def prewarm(proc: JobProcess) -> None:
    """The starter's prewarm: the VAD only."""
    proc.userdata["vad"] = silero.VAD.load()


def build_session(
    *,
    vad: silero.VAD,
    stt_model: str,
    language: str,
    llm_model: str,
    tts_model: str,
    voice: str,
    openai_api_key: str,
    openai_base_url: str,
    deepgram_api_key: str,
    deepgram_base_url: str,
) -> AgentSession:
    """The starter's session: plugins and VAD, the framework's defaults for the rest."""
    return AgentSession(
        stt=deepgram.STT(
            model=stt_model, language=language, api_key=deepgram_api_key, base_url=deepgram_base_url
        ),
        llm=openai.LLM(model=llm_model, api_key=openai_api_key, base_url=openai_base_url),
        tts=openai.TTS(
            model=tts_model,
            voice=voice,
            response_format="pcm",  # the stand-in speaks PCM only; also what ours uses
            api_key=openai_api_key,
            base_url=openai_base_url,
        ),
        vad=vad,
    )
