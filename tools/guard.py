"""One transfer at a time per call, cold or warm."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from livekit.agents.llm import ToolError


class OneTransferAtATime:
    """Two transfers of one caller would race (a REFER while a supervisor is being
    dialed): the second request is refused, and the LLM is told why."""

    def __init__(self) -> None:
        self._current: str | None = None

    @property
    def current(self) -> str | None:
        return self._current

    @contextmanager
    def hold(self, what: str) -> Iterator[None]:
        if self._current is not None:
            raise ToolError(
                f"Refused: a transfer is already in progress ({self._current}). "
                "Wait for its outcome before starting another."
            )
        self._current = what
        try:
            yield
        finally:
            self._current = None
