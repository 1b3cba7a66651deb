"""What the transfer tools share: the LLM chooses among configured destinations by key.

The schema offers an enum of keys with their descriptions and the lookup refuses
anything else, so whatever the caller says, the LLM can only name a destination from
assistant.toml; the address it resolves to never leaves this process.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from livekit.agents.llm import ToolError

from config import Destination

NOT_A_PHONE_CALL = (
    "This caller is not on a phone call (console or web test), so the call cannot be "
    "transferred. Tell them transfers work only on phone calls."
)


def destination_menu(destinations: Mapping[str, Destination]) -> str:
    """The destinations as the tool description lists them for the LLM."""
    return "\n".join(f"- {d.key}: {d.name}. {d.description}" for d in destinations.values())


def destination_parameter(destinations: Mapping[str, Destination], purpose: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(destinations), "description": purpose}


def pick_destination(
    raw_arguments: Mapping[str, Any], destinations: Mapping[str, Destination], mode: str
) -> Destination:
    """The destination the LLM named, or a ToolError (nothing is sent) for any other value."""
    key = raw_arguments.get("destination")
    destination = destinations.get(key) if isinstance(key, str) else None
    if destination is None:
        raise ToolError(
            f"Unknown destination {key!r}; nothing was done. You can {mode} only to: "
            f"{', '.join(destinations)}."
        )
    return destination
