"""A destination's warm-transfer settings: how the person answering is met, and the two
time limits (docs/warm-transfer.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config_checks import Problems
from config_types import WARM_MODES, WarmMode

# (setting, default, lowest, highest), in seconds
_LIMITS = (
    ("consult_timeout", 30, 5, 120),  # the person's time to say whether they take the call
    ("transfer_timeout", 120, 30, 600),  # the caller's whole wait on hold
)


def warm_settings(
    raw: Mapping[str, Any], prefix: str, ringing: float, problems: Problems, *, warm: bool
) -> tuple[WarmMode, float, float]:
    """``warm_mode``, ``consult_timeout`` and ``transfer_timeout`` of one destination
    table; a bad value is a problem naming the setting, and its default is used. For a
    destination that takes warm transfers (``warm``) the caller's whole wait includes
    the ringing, so it must outlast ``ringing``."""
    mode = raw.get("warm_mode", "consult")
    if mode not in WARM_MODES:
        problems.add(
            prefix + "warm_mode",
            mode,
            'must be "consult" (screen the answer and ask the person first) or '
            '"introduce" (introduce the caller to whoever answers)',
        )
        mode = "consult"
    limits: list[float] = []
    for key, default, low, high in _LIMITS:
        value = raw.get(key, default)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not low <= value <= high:
            problems.add(prefix + key, value, f"must be a number of seconds, {low} to {high}")
            value = default
        limits.append(float(value))
    consult_timeout, transfer_timeout = limits
    if warm and transfer_timeout <= ringing:
        problems.add(
            prefix + "transfer_timeout",
            raw.get("transfer_timeout", transfer_timeout),
            f"must be longer than ringing_timeout ({ringing:g} s): the caller's whole wait "
            "includes the ringing",
        )
    return mode, consult_timeout, transfer_timeout
