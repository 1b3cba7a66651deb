"""Every sentence a caller hears, in the language of the line they called: a caller on the
Spanish line (+15550100200) hears prompts/es/ from the greeting to the handoff, and never
a sentence of prompts/en/; a caller on the default line hears prompts/en/ and never a
Spanish one. The person a warm transfer reaches hears their destination's language.

Calls run through the real harness (tests/support/call.py): the real AgentSession started
with the stand-in room through RoomIO, the loopback LiveKit server, a scripted LLM. Each
expected sentence is the section of that language's file, rendered with the spoken name
the configuration gives the destination in that language (conftest's BUSINESS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from livekit import rtc
from livekit.agents import AgentSession

import prompts
from agent import PhoneAssistant, made_ahead, prepare_call
from caller import Caller, choose_stt, resolve_line
from config import OnFailure, Secrets, Settings, parse_settings
from greetings import GreetingAudio, Voice
from lifecycle import CallLifecycle
from models import voice_for
from tests.conftest import business
from tests.support.audio import SilentTTS
from tests.support.call import Call, phone_call
from tests.support.livekit_server import sip_error
from tests.support.scripted_llm import Reply, ScriptedLLM, call, say
from tests.support.stand_in_room import StandInParticipant, StandInRoom, phone_caller
from tests.support.supervisor import RecordingHold, Timeline, answers, warm_to

BUSINESS_NAME = "Acme Dental"


@dataclass(frozen=True)
class Language:
    """One side of the test: a line's language, and what a call on it says and hears."""

    code: str  # the call's language, as the harness and choose_stt give it
    dialed: str  # the line the caller dialed
    folder: str  # its prompts/<folder>/
    other: str  # the folder whose sentences must never be heard
    billing: str  # the destinations' spoken names in this language (conftest's BUSINESS)
    front_desk: str
    # what the caller and the scripted LLM say, in this language
    yes: str
    reason: str
    summary: str
    offer: str

    def caller(self, **fields: Any) -> StandInParticipant:
        return phone_caller(dialed=self.dialed, **fields)

    def section(self, name: str, section: str, **values: str) -> str:
        """A section of this language's file, filled as a call on this line fills it."""
        return prompts.render_section(name, section, self.folder, **values)

    def transfer(self, moment: str) -> str:
        return self.section("transfer", moment, destination=self.billing)

    def warm(self, moment: str, **values: str) -> str:
        filled = {"caller": "", "reason": "", "digits": "", **values}
        return self.section(
            "warm_transfer",
            moment,
            destination=self.billing,
            business_name=BUSINESS_NAME,
            **filled,
        )


ENGLISH = Language(
    code="en-US",
    dialed="+15550100000",
    folder="en",
    other="es",
    billing="the billing team",
    front_desk="the front desk",
    yes="Yes, please.",
    reason="a double charge for a cleaning",
    summary="Dana was charged twice for her March cleaning and would like a refund.",
    offer="Would you like me to try the front desk instead?",
)
SPANISH = Language(
    code="es",
    dialed="+15550100200",
    folder="es",
    other="en",
    billing="el equipo de facturación",
    front_desk="la recepción",
    yes="Sí, por favor.",
    reason="un cobro doble por una limpieza",
    summary="A Dana le cobraron dos veces la limpieza de marzo y quiere un reembolso.",
    offer="¿Quiere que le comunique con la recepción?",
)
BY_FOLDER = {"en": ENGLISH, "es": SPANISH}
# Every destination's spoken name per language (conftest's BUSINESS).
NAMES = {
    "en": ("the billing team", "the front desk", "the duty supervisor"),
    "es": ("el equipo de facturación", "la recepción", "el supervisor de turno"),
}
LANGUAGES = [pytest.param(ENGLISH, id="english-line"), pytest.param(SPANISH, id="spanish-line")]


@cache
def sentences(folder: str) -> tuple[str, ...]:
    """Every sentence of a language's spoken files (greeting, transfer, warm_transfer,
    failure; not the notes before the first heading), cut at each placeholder: the words
    of that language no other language's call may contain."""
    texts = [prompts.prompt("greeting", folder)]
    for name in ("transfer", "warm_transfer", "failure"):
        texts += prompts.sections(name, folder).values()
    found: set[str] = set()
    for text in texts:
        for piece in re.split(r"\{[a-z_]+\}", text):
            for sentence in re.split(r"(?<=[.?!])\s+", piece):
                if len(sentence.strip(" ,.?!")) >= 6:
                    found.add(sentence.strip(" ,"))
    return tuple(sorted(found))


def in_its_language(text: str, language: Language) -> str:
    """``text``, after checking it holds no sentence of the other language's files and
    no destination name in the other language."""
    foreign = [s for s in sentences(language.other) if s in text]
    foreign += [name for name in NAMES[language.other] if name in text]
    assert not foreign, (
        f"a {language.folder} sentence holds {language.other} words {foreign}: {text!r}"
    )
    return text


def instructions_of(settings: Settings, language: Language) -> str:
    """The language's instructions.md, filled for this business."""
    return prompts.render(
        "instructions",
        language.folder,
        business_name=BUSINESS_NAME,
        language_name=prompts.language_name(language.code),
        destinations=prompts.destination_list(settings.destinations, language.code),
    )


def spoken(result: Any) -> list[str]:
    return [
        e.item.text_content for e in result.events if e.type == "message" and e.item.text_content
    ]


def said(c: Call) -> list[str]:
    """Everything the agent said on the call so far, greeting first."""
    return [
        item.text_content
        for item in c.session.history.items
        if item.type == "message" and item.role == "assistant" and item.text_content
    ]


def test_each_line_speaks_the_language_the_harness_is_given(settings: Settings) -> None:
    """The calls below give the harness the language choose_stt gives the caller."""
    for language in (ENGLISH, SPANISH):
        caller = Caller.from_participant(language.caller())  # type: ignore[arg-type]
        assert choose_stt(caller, resolve_line(caller, settings), settings).speaks == language.code


def test_the_phrases_checked_for_are_the_files_sentences() -> None:
    assert "I'm sorry" in sentences("en")
    assert "Please stay on the line." in sentences("en")
    assert "Lo siento" in sentences("es")
    assert "Por favor, no cuelgue." in sentences("es")
    with pytest.raises(AssertionError, match=r"holds en words .*I'm sorry"):
        in_its_language("Lo siento. I'm sorry.", SPANISH)
    with pytest.raises(AssertionError, match="the billing team"):
        in_its_language("Le comunico con the billing team.", SPANISH)


class MadeAhead(GreetingAudio):
    """Audio made before the call (as prewarm makes it, silent here), recording which
    texts the call asked for and which of them had not been made."""

    def __init__(self) -> None:
        super().__init__()
        self.played: list[str] = []
        self.missed: list[str] = []

    def frames(self, text: str, voice: Voice) -> tuple[rtc.AudioFrame, ...] | None:
        found = super().frames(text, voice)
        (self.played if found else self.missed).append(text)
        return found


# --------------------------------------------------------------------------- the call


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_greeting_and_the_instructions_are_the_lines_language(
    settings: Settings, language: Language
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.llm.add(say(language.offer))
        await c.session.run(user_input=language.yes)

        greeting = said(c)[0]
        assert greeting == prompts.render("greeting", language.folder, business_name=BUSINESS_NAME)
        in_its_language(greeting, language)
        # the LLM's system prompt is the language's instructions.md, whole
        assert c.llm.requests[0].instructions == instructions_of(settings, language)


async def test_a_spanish_calls_instructions_are_the_spanish_file(settings: Settings) -> None:
    async with phone_call(settings, SPANISH.caller(), language="es") as c:
        c.llm.add(say("Claro."))
        await c.session.run(user_input="Hola.")
        instructions = c.llm.requests[0].instructions
    assert instructions.startswith("Eres el asistente telefónico de Acme Dental.")
    assert "Habla siempre en español, de usted." in instructions
    # a warm transfer's reason is said to the person answering, in their language
    assert "salvo que la herramienta indique que en ese destino se habla otro idioma" in (
        " ".join(instructions.split())
    )
    assert "You are the phone assistant" not in instructions
    # the destinations are listed for the LLM by key, each by its Spanish name
    assert "- billing: el equipo de facturación." in instructions
    in_its_language(instructions, SPANISH)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_prepare_call_gives_a_caller_on_the_line_its_language(
    settings: Settings, language: Language
) -> None:
    """The worker's own path (prepare_call, as answer_call runs it), not the harness:
    the line the caller dialed decides the instructions, the greeting and the rescue."""
    participant = language.caller()
    caller = Caller.from_participant(participant)  # type: ignore[arg-type]
    room = StandInRoom("call-1", participant)
    lifecycle = CallLifecycle(room, caller.identity, server=None, end_job=lambda _: None)
    made = MadeAhead()
    await made.synthesize(
        SilentTTS, voice_for(settings), made_ahead(settings)[voice_for(settings)], time_limit=5
    )
    _session, agent = prepare_call(settings, caller, lifecycle, vad=None, greetings=made)  # type: ignore[arg-type]

    assert agent.instructions == instructions_of(settings, language)
    async with AgentSession(llm=ScriptedLLM()) as session:
        started = await session.start(agent, capture_run=True)
        started.expect.next_event().is_agent_handoff(new_agent_type=PhoneAssistant)
        greeting = started.expect.next_event().is_message(role="assistant").event().item
    assert greeting.text_content == prompts.render(
        "greeting", language.folder, business_name=BUSINESS_NAME
    )
    # the rescue of this call apologizes in its language; greeting and apology both play
    # from audio made in prewarm
    assert lifecycle.rescue is not None
    await lifecycle.rescue.run("the LLM failed", asyncio.Event())
    goodbye = language.section("failure", "end", business_name=BUSINESS_NAME, destination="")
    assert made.played == [greeting.text_content, goodbye]
    assert made.missed == []


# --------------------------------------------------------------------------- cold transfer


def transfer_to(destination: str) -> Reply:
    return call("transfer_call", destination=destination)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_cold_transfer_notice_is_the_lines_language(
    settings: Settings, language: Language
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.llm.add(transfer_to("billing"))
        result = await c.session.run(user_input=language.yes)

        (notice,) = spoken(result)
        assert notice == language.transfer("notice")
        assert language.billing in in_its_language(notice, language)
        (refer,) = c.server.requests_for("TransferSIPParticipant")
        assert refer.message.transfer_to == "tel:+15550100101"


COLD_FAILURES = [
    pytest.param(sip_error(403, "Forbidden"), "refused", id="refused"),
    pytest.param(sip_error(486, "Busy Here"), "busy", id="busy"),
    pytest.param(sip_error(480, "Temporarily Unavailable"), "no_answer", id="no_answer"),
    pytest.param(sip_error(603, "Decline"), "declined", id="declined"),
    pytest.param(sip_error(404, "Not Found"), "unreachable", id="unreachable"),
    pytest.param(sip_error(500, "Server Internal Error"), "failed", id="failed"),
]


@pytest.mark.parametrize(("reply", "outcome"), COLD_FAILURES)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_failed_cold_transfer_is_told_in_the_lines_language(
    settings: Settings, language: Language, reply: Any, outcome: str
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.server.respond("TransferSIPParticipant", reply)
        c.llm.add(transfer_to("billing"), say(language.offer))
        result = await c.session.run(user_input=language.yes)

        notice, told, offer = spoken(result)
        assert notice == language.transfer("notice")
        assert told == language.transfer(outcome)
        assert offer == language.offer
        for text in (notice, told):
            in_its_language(text, language)
        if "{destination}" in prompts.sections("transfer", language.folder)[outcome]:
            assert language.billing in told
        assert c.shutdowns == []


# --------------------------------------------------------------------------- warm transfer


def warm_to_billing(language: Language, **extra: Any) -> Reply:
    return warm_to("billing", reason=language.reason, **extra)


@dataclass(frozen=True)
class Introduced:
    """Who the caller is to the person answering: a name, or the number's last digits."""

    caller: StandInParticipant
    arguments: dict[str, str]

    def named(self, language: Language) -> str:
        if self.arguments:
            return self.arguments["caller_name"]
        if self.caller.attributes.get("sip.phoneNumber"):
            return language.warm("caller_number", digits="4 5 6 7")
        return language.warm("caller_hidden")


INTRODUCTIONS = [
    pytest.param({"caller_name": "Dana"}, "+15551234567", id="with-a-name"),
    pytest.param({}, "+15551234567", id="with-the-last-digits"),
    pytest.param({}, None, id="with-a-hidden-number"),
]


@pytest.mark.parametrize(("arguments", "number"), INTRODUCTIONS)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_warm_transfer_is_said_in_the_lines_language(
    settings: Settings,
    holds: list[RecordingHold],
    timeline: Timeline,
    language: Language,
    arguments: dict[str, str],
    number: str | None,
) -> None:
    """Hold notice, introduction, summary and handoff: a destination without a language
    of its own is answered in the line's."""
    introduced = Introduced(language.caller(number=number), arguments)
    async with phone_call(settings, introduced.caller, language=language.code) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to_billing(language, **arguments), say(language.summary))
        result = await c.session.run(user_input=language.yes)

        hold, introduction, summary_and_handoff = spoken(result)
        about = {"caller": introduced.named(language), "reason": language.reason}
        assert hold == language.warm("hold")
        assert language.billing in hold
        assert introduction == language.warm("introduction", **about)
        assert summary_and_handoff == f"{language.summary} {language.warm('handoff', **about)}"
        for text in (hold, introduction, summary_and_handoff):
            in_its_language(text, language)
        if number is not None:
            assert number not in introduction
        # the summary was asked for with the language's summary section
        summary_request = c.llm.requests[-1]
        assert summary_request.tools == []
        assert summary_request.instructions == language.warm("summary", **about)
        assert c.llm.unexpected_turns == 0


@pytest.mark.parametrize("language", LANGUAGES)
async def test_without_a_summary_the_handoff_uses_the_languages_plain_sentence(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline, language: Language
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        c.llm.add(warm_to_billing(language))  # the model answers nothing for the summary
        result = await c.session.run(user_input=language.yes)

    about = {"caller": language.warm("caller_number", digits="4 5 6 7"), "reason": language.reason}
    last = spoken(result)[-1]
    assert last == f"{language.warm('summary_fallback')} {language.warm('handoff', **about)}"
    in_its_language(last, language)


WARM_FAILURES = [
    pytest.param(sip_error(486, "Busy Here"), "busy", id="busy"),
    pytest.param(sip_error(480, "Temporarily Unavailable"), "no_answer", id="no_answer"),
    pytest.param(sip_error(603, "Decline"), "declined", id="declined"),
    pytest.param(sip_error(404, "Not Found"), "unreachable", id="unreachable"),
    pytest.param(sip_error(500, "Server Internal Error"), "failed", id="failed"),
]


@pytest.mark.parametrize(("reply", "outcome"), WARM_FAILURES)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_failed_warm_transfer_is_told_in_the_lines_language(
    settings: Settings,
    holds: list[RecordingHold],
    language: Language,
    reply: Any,
    outcome: str,
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.server.respond("CreateSIPParticipant", reply)
        c.llm.add(warm_to_billing(language), say(language.offer))
        result = await c.session.run(user_input=language.yes)

        assert spoken(result) == [
            language.warm("hold"),
            language.transfer(outcome),
            language.offer,
        ]
        for text in spoken(result)[:2]:
            in_its_language(text, language)


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_supervisor_who_leaves_is_told_in_the_lines_language(
    settings: Settings, holds: list[RecordingHold], timeline: Timeline, language: Language
) -> None:
    async with phone_call(settings, language.caller(), language=language.code) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline, then=c.room.hang_up))
        c.llm.add(warm_to_billing(language), say(language.offer))
        result = await c.session.run(user_input=language.yes)

        hold, left, offer = spoken(result)
        assert hold == language.warm("hold")
        assert left == language.warm("supervisor_left")
        assert language.billing in in_its_language(left, language)
        assert offer == language.offer


# ------------------------------------------------------- a destination in another language


def answered_in(language: Language) -> Settings:
    """conftest's BUSINESS, with the billing team answering in ``language``."""
    data = business()
    data["destinations"][0]["language"] = language.code
    return parse_settings(data, source="test.toml", secrets=Secrets())


MIXED = [
    pytest.param(SPANISH, ENGLISH, id="spanish-line-english-destination"),
    pytest.param(ENGLISH, SPANISH, id="english-line-spanish-destination"),
]


@pytest.mark.parametrize(("line", "answering"), MIXED)
async def test_the_person_answering_hears_the_destinations_language(
    holds: list[RecordingHold], timeline: Timeline, line: Language, answering: Language
) -> None:
    """The caller is put on hold in the line's language; the person who answers is
    introduced to them, asked about, and left with them in their own."""
    settings = answered_in(answering)
    assert settings.languages == ("en-US", "es")
    async with phone_call(settings, line.caller(), language=line.code) as c:
        c.server.respond("CreateSIPParticipant", answers(c, timeline))
        # the LLM writes the reason in the language of the person it calls
        c.llm.add(warm_to_billing(answering, caller_name="Dana"), say(answering.summary))
        result = await c.session.run(user_input=line.yes)

        hold, introduction, summary_and_handoff = spoken(result)
        about = {"caller": "Dana", "reason": answering.reason}
        assert hold == line.warm("hold")
        assert line.billing in in_its_language(hold, line)
        assert introduction == answering.warm("introduction", **about)
        in_its_language(introduction, answering)
        handoff = answering.warm("handoff", **about)
        assert summary_and_handoff == f"{answering.summary} {handoff}"
        in_its_language(summary_and_handoff, answering)
        # the summary is asked for in their language, naming the destination in it
        summary_request = c.llm.requests[-1]
        assert summary_request.instructions == answering.warm("summary", **about)
        assert answering.billing in summary_request.instructions


@pytest.mark.parametrize(("line", "answering"), MIXED)
async def test_when_the_other_language_is_not_reached_the_caller_hears_their_own(
    holds: list[RecordingHold], timeline: Timeline, line: Language, answering: Language
) -> None:
    settings = answered_in(answering)
    async with phone_call(settings, line.caller(), language=line.code) as c:
        c.server.respond("CreateSIPParticipant", sip_error(486, "Busy Here"))
        c.llm.add(warm_to_billing(answering), say(line.offer))
        busy = await c.session.run(user_input=line.yes)
        assert spoken(busy) == [line.warm("hold"), line.transfer("busy"), line.offer]

        c.server.respond("CreateSIPParticipant", answers(c, timeline, then=c.room.hang_up))
        c.llm.add(warm_to_billing(answering), say(line.offer))
        left = await c.session.run(user_input=line.yes)
        assert spoken(left) == [line.warm("hold"), line.warm("supervisor_left"), line.offer]

        for text in spoken(busy)[:2] + spoken(left)[:2]:
            assert line.billing in in_its_language(text, line)


# --------------------------------------------------------------------------- rescue


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_apology_and_goodbye_of_a_rescue_are_the_lines_language(
    settings: Settings, language: Language
) -> None:
    """The agent cannot go on: the caller hears the apology, the transfer to the
    [on_failure] destination fails, and they hear the goodbye; both from audio prewarm
    made in every language, the line's picked."""
    settings = dataclasses.replace(settings, on_failure=OnFailure(transfer_to="front_desk"))
    voice = voice_for(settings)
    made = MadeAhead()
    await made.synthesize(SilentTTS, voice, made_ahead(settings)[voice], time_limit=5)
    async with phone_call(settings, language.caller(), language=language.code, greetings=made) as c:
        c.server.respond("TransferSIPParticipant", sip_error(486, "Busy Here"))
        c.session.shutdown(drain=False)  # the session closes under the agent

        assert await c.job_ends() == "the transfer to front_desk failed; the call was ended"

    apology, goodbye = made.played
    assert made.missed == []
    values = {"destination": language.front_desk, "business_name": BUSINESS_NAME}
    assert apology == language.section("failure", "transfer", **values)
    assert language.front_desk in in_its_language(apology, language)
    assert goodbye == language.section("failure", "end", **values)
    assert BUSINESS_NAME in in_its_language(goodbye, language)


# ---------------------------------------------------------------- assistant.language


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.WARNING, logger="phone-assistant"):
        yield caplog


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("fr", "not a language this configuration speaks"),
        ("de-CH", "not a language this configuration speaks"),
        ("xx", "not a language code the speech-to-text supports"),
        ("Spanish", "not a language code the speech-to-text supports"),
        ("es-es", "not a language code the speech-to-text supports"),
    ],
)
@pytest.mark.parametrize("language", LANGUAGES)
async def test_an_ignored_language_attribute_leaves_the_call_in_the_lines_language(
    settings: Settings,
    warnings_logged: pytest.LogCaptureFixture,
    language: Language,
    code: str,
    why: str,
) -> None:
    participant = language.caller(**{"assistant.language": code})
    caller = Caller.from_participant(participant)  # type: ignore[arg-type]
    lifecycle = CallLifecycle(
        StandInRoom("call-1", participant), caller.identity, server=None, end_job=lambda _: None
    )
    _session, agent = prepare_call(settings, caller, lifecycle, vad=None, greetings=GreetingAudio())  # type: ignore[arg-type]

    assert agent.instructions == instructions_of(settings, language)
    assert f"ignoring assistant.language='{code}': {why}" in warnings_logged.text


async def test_spanish_selected_on_a_line_with_an_english_only_model(
    settings: Settings, warnings_logged: pytest.LogCaptureFixture
) -> None:
    """A dispatch rule selects Spanish on an English line whose model hears English
    only: the caller gets the general model in Spanish, the log says which model was
    passed over and why, and every word of the call is Spanish."""
    data = business()
    data["lines"]["sales"]["stt_model"] = "nova-2-meeting"
    settings = parse_settings(data, source="test.toml", secrets=settings.secrets)
    english = phone_caller(dialed="+15550100300")
    spanish = phone_caller(dialed="+15550100300", **{"assistant.language": "es"})

    for participant, expected in (
        (english, ("nova-2-meeting", "en-US", "line sales sets the model")),
        (
            spanish,
            (
                "nova-3",
                "es",
                "phone call, line sales, language es "
                "(line sales sets nova-2-meeting, which is English-only)",
            ),
        ),
    ):
        caller = Caller.from_participant(participant)  # type: ignore[arg-type]
        choice = choose_stt(caller, resolve_line(caller, settings), settings)
        assert (choice.model, choice.language, choice.reason) == expected
    assert warnings_logged.text == ""  # a configured language: nothing ignored

    caller = Caller.from_participant(spanish)  # type: ignore[arg-type]
    lifecycle = CallLifecycle(
        StandInRoom("call-1", spanish), caller.identity, server=None, end_job=lambda _: None
    )
    made = MadeAhead()
    _session, agent = prepare_call(settings, caller, lifecycle, vad=None, greetings=made)  # type: ignore[arg-type]
    assert agent.instructions == instructions_of(settings, SPANISH)
    assert made.missed == [prompts.render("greeting", "es", business_name=BUSINESS_NAME)]
