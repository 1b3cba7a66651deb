"""What a preflight check says: found or not (✓/✗), what, and how to fix it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


def format_report(checks: Sequence[Check]) -> str:
    lines = ["Preflight: would a call reach this agent?", ""]
    for check in checks:
        lines.append(f"{'✓' if check.ok else '✗'} {check.name}: {check.detail}")
        if not check.ok and check.fix:
            lines.append(f"    fix: {check.fix}")
    failed = sum(not check.ok for check in checks)
    lines.append("")
    if failed:
        lines.append(
            f"{failed} of {len(checks)} checks failed. Fix them and run `uv run agent.py check` "
            "again (checks that need a failed one to pass run once it does)."
        )
    else:
        lines.append(f"All {len(checks)} checks passed.")
    return "\n".join(lines)
