"""``agent.py console --text``: typing to the agent, a newcomer's first contact.

The framework's text mode shows only what answers a typed line (it prints the result of
``session.run``). This adds what it leaves out:

* the agent's lines said outside a typed turn, the greeting first, as agent lines;
* for a transfer, which a console cannot make (no phone line), what a phone call would
  have heard and what would have been sent, instead of only the tool's refusal.

Typing needs no speech-to-text: the session is built without it (``agent.py``), so
Deepgram is neither needed nor contacted. main() marks text mode in the environment
(``TEXT_MODE``), where the job, which the console runs in this process, reads it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from livekit.agents import AgentSession
from livekit.agents.llm import ChatMessage
from livekit.agents.voice.events import ConversationItemAddedEvent, FunctionToolsExecutedEvent

from config import Destination, Settings
from prompts import Words
from tools.cold_transfer import TOOL_NAME as COLD_TOOL
from tools.destinations import masked_address
from tools.warm_transfer import TOOL_NAME as WARM_TOOL

TEXT_MODE = "ASSISTANT_CONSOLE_TEXT"

# (who, text): "Agent" for the agent's words, "Console" for what the console explains
Show = Callable[[str, str], None]


def text_mode() -> bool:
    """Whether this process runs ``console --text`` (set by main)."""
    return os.environ.get(TEXT_MODE) == "1"


def portaudio_problem() -> str | None:
    """Why the console cannot start here, or None: the framework's console opens the
    sound library (PortAudio, through sounddevice) even to type."""
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return (
            "The console needs the PortAudio library, even with --text. Install it:\n"
            "  Debian/Ubuntu: sudo apt-get install libportaudio2\n"
            "  macOS:         brew install portaudio\n"
            "then run the same command again."
        )
    return None


class ConsoleTranscript:
    """Shows, in console text mode, the agent lines and transfers the framework's chat
    leaves out (see the module docstring). ``show`` prints one entry."""

    def __init__(self, session: AgentSession, settings: Settings, words: Words, show: Show) -> None:
        self._session = session
        self._settings = settings
        self._words = words
        self._show = show
        session.on("conversation_item_added", self._item_added)
        session.on("function_tools_executed", self._tools_executed)

    def _in_typed_turn(self) -> bool:
        # The framework prints what a typed line's run produced once the run is done;
        # what is said while one runs is in it. (No public API says whether one runs.)
        run = getattr(self._session, "_global_run_state", None)
        return run is not None and not run.done()

    def _item_added(self, event: ConversationItemAddedEvent) -> None:
        item = event.item
        if not isinstance(item, ChatMessage) or item.role != "assistant":
            return
        if item.text_content and not self._in_typed_turn():
            self._show("Agent", item.text_content)

    def _tools_executed(self, event: FunctionToolsExecutedEvent) -> None:
        for call in event.function_calls:
            if call.name not in (COLD_TOOL, WARM_TOOL):
                continue
            try:
                key = json.loads(call.arguments or "{}").get("destination")
            except (ValueError, AttributeError):
                key = None
            destination = self._settings.destinations_by_key.get(key) if key else None
            if destination is not None:
                self._show("Console", self._transfer(call.name, destination))

    def _transfer(self, tool: str, destination: Destination) -> str:
        address = masked_address(destination)
        if tool == COLD_TOOL:
            said = self._words.transfer("notice", destination)
            sent = f"then a SIP REFER handing the caller to {address}"
        else:
            said = self._words.warm("hold", destination)
            trunk = self._settings.transfer.outbound_trunk_id or "(no outbound trunk set)"
            sent = (
                f"then hold music, a call to {address} through outbound trunk {trunk}, and "
                "the introduction of the caller"
            )
        return (
            f'On a phone call the agent would now say "{said}",\n{sent}.\n'
            "Nothing was sent: this is not a phone call."
        )


def show_in_console(who: str, text: str) -> None:
    """Print one entry in the framework console's chat style (the rich console its
    text mode prints to, above the input line), or on stdout without one."""
    from livekit.agents.cli import AgentsConsole
    from rich.text import Text

    console = getattr(AgentsConsole.get_instance(), "console", None)
    if console is None:
        print(f"{who}: {text}", flush=True)
        return
    color = "#6BCB77" if who == "Agent" else "#F9AE1F"
    console.print()
    console.print(Text.assemble(("  \u25cf ", color), (who, f"bold {color}")))
    for line in text.split("\n"):
        console.print(Text(f"    {line}"))
