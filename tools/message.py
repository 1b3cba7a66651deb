"""Taking a message when nobody can take the call: who is calling, a number to call them
back on (read back and confirmed), and what it is about; stored durably, and only then is
the caller told that it was taken.

The name and the number are asked for by the framework's own workflows
(``livekit.agents.beta.workflows``: GetNameTask, GetPhoneNumberTask with confirmation),
guided by prompts/<language>/message.md: when the caller's own number is known, they are
asked whether to use it, and it is read back. A caller may key the number in instead of
saying it: the digits they press while the number is asked for are passed to that
workflow as what they keyed in (GetDtmfTask wants a fixed count of digits, which a phone
number does not have). The message is stored in the call's SQLite store (store.py) in one
transaction with its outbox entry; the worker's delivery loop sends it to the business's
webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import uuid
from collections.abc import Mapping
from typing import Any

from livekit import rtc
from livekit.agents import AgentSession, RunContext
from livekit.agents.beta.workflows import GetNameTask, GetPhoneNumberTask
from livekit.agents.llm import ToolError, Toolset, function_tool

from caller import Caller
from config import Destination
from lifecycle import CallLifecycle, Phase
from prompts import Words
from records import Message
from store import Store, StoreError
from tools.ladder import MESSAGE_TOOL
from tools.playout import say_in_full

logger = logging.getLogger("phone-assistant.message")

TOOL_NAME = MESSAGE_TOOL
_MAX_ABOUT = 500
_MAX_NAME = 80
KEYED_DIGITS_PAUSE_S = 3.0  # a pause this long after a key ends what was keyed in


class TakeMessageTool(Toolset):
    def __init__(
        self,
        destinations: Mapping[str, Destination],
        caller: Caller,
        lifecycle: CallLifecycle,
        words: Words,
        store: Store,
        *,
        deliver: bool,
    ) -> None:
        """``deliver``: whether messages are queued for the webhook (one is configured)."""
        self._destinations = dict(destinations)
        self._deliver = deliver
        self._caller = caller
        self._lifecycle = lifecycle
        self._words = words
        self._store = store
        properties: dict[str, Any] = {
            "about": {
                "type": "string",
                "description": "What the message is about, in the caller's words, briefly.",
            },
            "caller_name": {
                "type": "string",
                "description": "The caller's name, only if they already told you.",
            },
        }
        if self._destinations:
            properties["for_destination"] = {
                "type": "string",
                "enum": list(self._destinations),
                "description": "Whom the message is for, if the caller wanted someone.",
            }
        take = function_tool(
            self._take,
            raw_schema={
                "name": TOOL_NAME,
                "description": (
                    "Take a message for the business when nobody can take the call (or the "
                    "caller prefers it). Call it once the caller agreed to leave a message "
                    "and said what it is about; it then asks for their name (unless given) "
                    "and a callback number, stores the message and tells the caller."
                ),
                "parameters": {
                    "type": "object",
                    "properties": properties,
                    "required": ["about"],
                    "additionalProperties": False,
                },
            },
        )
        super().__init__(id="take_message", tools=[take])

    async def _take(self, raw_arguments: dict[str, Any], context: RunContext) -> str | None:
        if self._lifecycle.phase is not Phase.TALKING:
            raise ToolError("A message cannot be taken now: the call is changing hands or ending.")
        about = _clean(raw_arguments.get("about"), _MAX_ABOUT)
        if not about:
            raise ToolError("Nothing was stored: say what the message is about.")
        key = raw_arguments.get("for_destination")
        destination = self._destinations.get(key) if isinstance(key, str) else None
        session = context.session

        name = _clean(raw_arguments.get("caller_name"), _MAX_NAME) or await self._ask_name()
        number, confirmed = await self._ask_number(session)
        journal = self._lifecycle.journal
        message = Message(
            id=uuid.uuid4().hex,
            call_id=journal.call_id,
            created_at=journal.clock(),
            line_id=journal.line_id,
            caller_name=name,
            callback_number=number,
            callback_number_confirmed=confirmed,
            about=about,
            language=self._words.code,
            destination_key=destination.key if destination else None,
        )
        try:
            await asyncio.to_thread(self._store.save_message, message, deliver=self._deliver)
        except (StoreError, OSError) as error:
            logger.error("message %s could not be stored: %s", message.id, error)
            await say_in_full(
                session,
                self._words.message("not_saved", destination),
                caller_left=self._lifecycle.caller_left,
            )
            return (
                "The message could NOT be stored, and the caller has been told. Do not say it "
                "was taken; offer another way (a transfer, or calling back later)."
            )
        journal.message_taken(message.id)
        logger.info("message %s stored for delivery", message.id)
        # Only now, with the message on disk, is the caller told it was taken.
        await say_in_full(
            session,
            self._words.message("taken", destination, caller=name),
            caller_left=self._lifecycle.caller_left,
        )
        return (
            "The message is stored and will be delivered; the caller has been told. Ask if "
            "there is anything else; if not, say goodbye and end the call."
        )

    async def _ask_name(self) -> str:
        result = await GetNameTask(
            first_name=True,
            last_name=True,
            extra_instructions=self._words.message("speak"),
        )
        parts = (result.first_name, result.middle_name, result.last_name)
        return _clean(" ".join(part for part in parts if part), _MAX_NAME)

    async def _ask_number(self, session: AgentSession) -> tuple[str, bool]:
        own = self._caller.caller_id
        guide = (
            self._words.message("own_number", number=spoken_groups(own))
            if own
            else self._words.message("ask_number")
        )
        task = GetPhoneNumberTask(
            extra_instructions=f"{guide}\n{self._words.message('speak')}",
            require_confirmation=True,
        )
        with KeyedDigits(self._lifecycle.room, self._caller.identity, session):
            result = await task
        return result.phone_number, True


class KeyedDigits:
    """While the callback number is asked for, the caller's key presses become what the
    workflow hears: after '#' or a pause, "(keyed in on the keypad: 5551234567)"."""

    def __init__(self, room: rtc.Room, caller: str, session: AgentSession) -> None:
        self._room = room
        self._caller = caller
        self._session = session
        self._digits: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def __enter__(self) -> KeyedDigits:
        self._room.on("sip_dtmf_received", self._on_dtmf)
        return self

    def __exit__(self, *_: object) -> None:
        self._room.off("sip_dtmf_received", self._on_dtmf)
        if self._timer is not None:
            self._timer.cancel()

    def _on_dtmf(self, event: rtc.SipDTMF) -> None:
        if event.participant is None or event.participant.identity != self._caller:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if event.digit == "#":
            self._send()
        elif event.digit.isdigit():
            self._digits.append(event.digit)
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(KEYED_DIGITS_PAUSE_S, self._send)

    def _send(self) -> None:
        digits, self._digits = "".join(self._digits), []
        if not digits:
            return
        with contextlib.suppress(RuntimeError):  # nothing playing, or not interruptible
            self._session.interrupt()
        try:
            self._session.generate_reply(user_input=f"(keyed in on the keypad: {digits})")
        except RuntimeError:  # the session is closing
            logger.info("keyed-in digits arrived as the session closed")


def spoken_groups(number: str) -> str:
    """A North American number as it is read back, "+1 555 010 0123"; any other as it
    is (the model reads it back in groups of digits)."""
    digits = re.sub(r"\D", "", number)
    if number.startswith("+1") and len(digits) == 11:
        return f"+1 {digits[1:4]} {digits[4:7]} {digits[7:]}"
    return number


def _clean(value: Any, limit: int) -> str:
    return " ".join(value.split())[:limit].strip() if isinstance(value, str) else ""
