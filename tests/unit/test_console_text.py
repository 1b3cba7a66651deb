"""`agent.py console --text` as a newcomer meets it: run in a terminal (a pty), with
only OPENAI_API_KEY (the loopback OpenAI server answers), no Deepgram key and no LiveKit.
The greeting shows as an agent line, a typed question gets the agent's answer, and a
transfer shows what a phone call would have heard and been sent.

The framework's console opens the sound library (PortAudio) even to type, and this
machine may have none: a stand-in ``sounddevice`` module (tests/support/no_audio) takes
its place, as text mode never plays or records a sound.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import signal
import struct
import sys
import termios
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.openai_server import LoopbackOpenAI
from tests.support.scripted_llm import call, say

ROOT = Path(__file__).resolve().parents[2]
NO_AUDIO = ROOT / "tests" / "support" / "no_audio"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")
PROMPT = "\u276f "  # the input line: this mark, what is typed, then the cursor
GREETING = "Thank you for calling Acme Dental. How can I help you today?"


class Terminal:
    """A process on a pty: what it printed (ANSI codes removed), and keys typed to it."""

    def __init__(self, process: asyncio.subprocess.Process, master: int) -> None:
        self.process = process
        self._master = master
        self._raw = b""
        self._more = asyncio.Event()
        asyncio.get_running_loop().add_reader(master, self._read)

    def _read(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # the process is gone
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(self._master)
        self._raw += data
        self._more.set()

    @property
    def text(self) -> str:
        return ANSI.sub("", self._raw.decode(errors="replace"))

    async def wait_for(self, words: str, *, after: int = 0, within: float = 60) -> int:
        """Wait until ``words`` is printed (past ``after``); where it ends."""
        await self._until(lambda: self.text.find(words, after) >= 0, words, within)
        return self.text.find(words, after) + len(words)

    async def type(self, line: str) -> None:
        """Type ``line`` and Enter as a person does: a key, then a look at the input line.

        The console reads one key at a time and sets the terminal up again before each
        (termios TCSAFLUSH), which drops keys typed ahead of it: a whole line written at
        once can lose its start on a busy machine. A key not shown within a few seconds
        was dropped and is typed again."""
        for typed in (line[: i + 1] for i in range(len(line))):
            for _ in range(3):
                os.write(self._master, typed[-1].encode())
                try:
                    await self._until(lambda t=typed: self.input_line == t, f"{PROMPT}{typed}", 5)
                    break
                except TimeoutError:
                    if self.input_line != typed[:-1]:
                        raise
            else:
                raise AssertionError(f"{typed[-1]!r} was never taken:\n{self.text}")
        os.write(self._master, b"\r")

    @property
    def input_line(self) -> str:
        """What the input line shows now (the last one drawn), without its cursor."""
        start = self.text.rfind(PROMPT)
        end = self.text.find("█", start)
        return self.text[start + len(PROMPT) : end] if 0 <= start < end else ""

    async def _until(self, shown: Callable[[], bool], what: str, within: float) -> None:
        try:
            async with asyncio.timeout(within):
                while not shown():
                    if self.process.returncode is not None:
                        raise AssertionError(f"exited {self.process.returncode}:\n{self.text}")
                    self._more.clear()
                    await self._more.wait()
        except TimeoutError:
            raise TimeoutError(f"{what!r} not shown in {within} s:\n{self.text[-3000:]}") from None


@pytest.fixture
async def openai_server() -> AsyncIterator[LoopbackOpenAI]:
    async with LoopbackOpenAI() as server:
        yield server


@pytest.fixture
async def console(tmp_path: Path, openai_server: LoopbackOpenAI) -> AsyncIterator[Terminal]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "TERM": "xterm-256color",
        "PYTHONPATH": str(NO_AUDIO),
        "OPENAI_API_KEY": "sk-test",
        "OPENAI_BASE_URL": openai_server.base_url,
        "ASSISTANT_CONFIG": str(ROOT / "assistant.toml"),
        # set and empty: a developer's .env.local must not fill them in
        "DEEPGRAM_API_KEY": "",
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(ROOT / "agent.py"),
        "console",
        "--text",
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    os.close(slave)
    terminal = Terminal(process, master)
    try:
        yield terminal
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        asyncio.get_running_loop().remove_reader(master)
        os.close(master)


def agent_line(text: str, said: str, *, before: str) -> bool:
    """Whether ``said`` is printed as an agent line ("● Agent", then the words), ahead
    of ``before``. (The input line is redrawn around what is printed above it, so the
    raw output may hold its frames between the two.)"""
    start = text.find(said)
    return text.rfind("● Agent", 0, start) >= 0 and start < text.find(before)


async def test_typing_needs_no_deepgram_and_the_greeting_is_an_agent_line(
    console: Terminal, openai_server: LoopbackOpenAI
) -> None:
    openai_server.script(say("We are open from nine to five, Monday to Friday."))

    end = await console.wait_for(GREETING)
    await console.type("When are you open?")
    await console.wait_for("We are open from nine to five, Monday to Friday.", after=end)

    assert agent_line(console.text, GREETING, before="● You")
    you = console.text.index("● You\n    When are you open?")
    reply = console.text.index("● Agent\n    We are open from nine to five", you)
    assert console.text.count("We are open from nine to five") == 1  # shown once
    assert reply > you
    # no DEEPGRAM_API_KEY, and nothing missed it: no speech-to-text was built
    assert " ERROR " not in console.text and "Traceback" not in console.text
    assert "DEBUG" not in console.text  # INFO by default
    assert openai_server.speech_requests == []  # typing: nothing is synthesized
    (request,) = openai_server.chat_requests
    assert request.last_user_text == "When are you open?"


async def test_a_transfer_shows_what_a_phone_call_would_have_heard_and_been_sent(
    console: Terminal, openai_server: LoopbackOpenAI
) -> None:
    openai_server.script(
        call("transfer_call", destination="billing"),
        say("I can only transfer you on a phone call."),
    )

    end = await console.wait_for(GREETING)
    await console.type("Put me through to billing, please.")
    end = await console.wait_for("Nothing was sent: this is not a phone call.", after=end)
    await console.wait_for("I can only transfer you on a phone call.", after=end)

    shown = console.text
    assert "On a phone call the agent would now say" in shown
    assert "billing team" in shown.split("On a phone call the agent would now say", 1)[1]
    assert "then a SIP REFER handing the caller to tel:+1******0101" in shown
    assert "+15550100101" not in shown  # the destination's number is masked as in logs
