"""What to offer a caller next when a transfer does not reach anyone.

Each destination may list fallback steps in assistant.toml (``fallback = ["front_desk",
"message"]``): other destinations, or taking a message. When a transfer ends busy,
unanswered, declined, failed, or is refused because the destination is closed, the next
step of the ladder that can work now is offered: a destination that is open and has not
already failed on this call, or a message. A step that fails continues the ladder it came
from (billing busy -> front desk; front desk unanswered -> message), so the caller moves
down one ladder instead of bouncing between destinations. The LLM is told the step in its
tool output and offers it; it can still choose only among configured keys.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from config import Destination

MESSAGE = "message"
MESSAGE_TOOL = "take_message"


class FallbackLadder:
    """One per call, shared by every transfer tool (and the keypad)."""

    def __init__(
        self,
        destinations: Mapping[str, Destination],
        *,
        clock: Callable[[], datetime],
        messages: bool,
        tools: Mapping[str, str],
    ) -> None:
        """``messages``: whether the call can take a message; ``tools``: the transfer
        tool to name for each transfer mode ("cold" -> "transfer_call")."""
        self._destinations = destinations
        self._clock = clock
        self._messages = messages
        self._tools = tools
        self._failed: set[str] = set()
        self._active: tuple[str, int] | None = None  # the ladder followed: origin, step

    def next_step(self, failed: Destination) -> tuple[Destination, str] | None:
        """The step to offer after ``failed`` did not take the call, with the destination
        whose ladder it is (where the caller first wanted to go): a destination key or
        MESSAGE; None when that ladder has nothing (left) that can work now."""
        self._failed.add(failed.key)
        origin, start = failed, 0
        if self._active is not None:
            key, index = self._active
            ladder = self._destinations[key].fallback
            if index < len(ladder) and ladder[index] == failed.key:
                origin, start = self._destinations[key], index + 1
        now = self._clock()
        for index in range(start, len(origin.fallback)):
            step = origin.fallback[index]
            if step == MESSAGE:
                usable = self._messages
            else:
                target = self._destinations.get(step)
                usable = (
                    target is not None
                    and step not in self._failed
                    and target.is_open(now)
                    and any(mode in self._tools for mode in target.modes)
                )
            if usable:
                self._active = (origin.key, index)
                return origin, step
        self._active = None
        return None

    def offer(self, failed: Destination, default: str) -> str:
        """What the LLM is told to offer after ``failed``: the ladder's next step when
        it has one, else ``default`` (the tool's own list of alternatives)."""
        found = self.next_step(failed)
        if found is None:
            return default
        origin, step = found
        if step == MESSAGE:
            return (
                f"Next, as configured, offer to take a message for {origin.key} "
                f"({MESSAGE_TOOL}), so they can call the caller back."
            )
        target = self._destinations[step]
        tools = " or ".join(
            self._tools[mode] for mode in sorted(target.modes) if mode in self._tools
        )
        return f"Next, as configured, offer a transfer to {step} ({tools})."
