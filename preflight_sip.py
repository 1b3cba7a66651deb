"""Preflight's SIP checks: would LiveKit route a call on one of the business's numbers to
this agent, and can warm transfer dial out. Pure functions of what LiveKit listed (the
inbound and outbound trunks, the dispatch rules); preflight.py does the listing."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from livekit.protocol import sip as proto_sip

from caller import mask_number
from config import Settings
from preflight_report import Check


def dispatch_checks(
    settings: Settings,
    trunks: Sequence[proto_sip.SIPInboundTrunkInfo],
    rules: Sequence[proto_sip.SIPDispatchRuleInfo],
) -> list[Check]:
    """Inbound trunks, the dispatch rule naming this agent, and the numbers reaching it,
    from what LiveKit listed (no I/O)."""
    agent = settings.agent_name
    checks = [_trunks_check(trunks)]
    mine = [r for r in rules if agent in _agents(r)]
    if not rules:
        checks.append(
            Check(
                "dispatch rule",
                False,
                "no SIP dispatch rule, so LiveKit turns every inbound call away",
                f"lk sip dispatch create telephony/dispatch-rule.json (its roomConfig.agents "
                f'must name "{agent}"; add --trunks <inbound trunk id> to limit it to a trunk)',
            )
        )
        return checks
    if not mine:
        others = sorted({name for r in rules for name in _agents(r)})
        found = "; ".join(f"{_rule(r)} dispatches {_names(_agents(r))}" for r in rules)
        other = f'"{others[0]}"' if others else '"<the agent name in the rule>"'
        checks.append(
            Check(
                "dispatch rule",
                False,
                f'no dispatch rule dispatches agent "{agent}": {found}',
                f"set [agent] name = {other} in {settings.source}, or make the rule's "
                f'roomConfig.agents [{{"agentName": "{agent}"}}]: lk sip dispatch delete '
                f"{rules[0].sip_dispatch_rule_id}, then lk sip dispatch create "
                "telephony/dispatch-rule.json",
            )
        )
        return checks
    checks.append(
        Check(
            "dispatch rule",
            True,
            f'{", ".join(_rule(r) for r in mine)} dispatches agent "{agent}"'
            + (f" ({len(rules) - len(mine)} other rules)" if len(rules) > len(mine) else ""),
        )
    )
    if trunks:
        checks.append(_numbers_check(agent, trunks, rules, mine))
    return checks


def _trunks_check(trunks: Sequence[proto_sip.SIPInboundTrunkInfo]) -> Check:
    if not trunks:
        return Check(
            "inbound trunks",
            False,
            "no inbound SIP trunk: no number from a SIP provider reaches this LiveKit project",
            "lk sip inbound create --numbers <your number, E.164> telephony/inbound-trunk.json "
            "(a number bought from LiveKit itself needs no trunk: then only the dispatch "
            "rule matters)",
        )
    listed = "; ".join(f"{_trunk(t)}: {', '.join(t.numbers) or 'any number'}" for t in trunks)
    return Check("inbound trunks", True, listed)


def _numbers_check(
    agent: str,
    trunks: Sequence[proto_sip.SIPInboundTrunkInfo],
    rules: Sequence[proto_sip.SIPDispatchRuleInfo],
    mine: Sequence[proto_sip.SIPDispatchRuleInfo],
) -> Check:
    """Which trunk numbers a call reaches this agent on, following LiveKit's matching:
    a rule applies to the trunks in its trunk_ids (all trunks when empty) and, when set,
    only to calls to its numbers and from its inbound_numbers; for a trunk, rules naming
    it take precedence over rules for all trunks."""
    reached: list[str] = []
    elsewhere: list[str] = []
    for trunk in trunks:
        for number in trunk.numbers or [None]:
            label = number or f"any number sent to {_trunk(trunk)}"
            fitting = [r for r in rules if _applies(r, trunk, number)]
            named = any(r.trunk_ids for r in fitting if not r.inbound_numbers)
            winners = [r for r in fitting if r.trunk_ids or not named]
            ours = [r for r in winners if agent in _agents(r)]
            if ours:
                best = min(ours, key=lambda r: len(r.inbound_numbers))
                reached.append(label + _conditions(trunk, best))
            else:
                taken = ", ".join(f"{_rule(r)} ({_names(_agents(r))})" for r in winners)
                elsewhere.append(f"{label} -> {taken or 'no rule'}")
    if reached:
        detail = f'calls to {", ".join(reached)} reach "{agent}"'
        if elsewhere:
            detail += f"; not: {'; '.join(elsewhere)}"
        return Check("phone numbers", True, detail)
    trunk_ids = {t.sip_trunk_id for t in trunks}
    unknown = sorted({t for r in mine for t in r.trunk_ids if t not in trunk_ids})
    detail = f'no inbound number reaches "{agent}": ' + "; ".join(elsewhere)
    if unknown:
        detail += f"; its rule names trunks that do not exist: {', '.join(unknown)}"
    return Check(
        "phone numbers",
        False,
        detail,
        f'make the rule for "{agent}" apply to the inbound trunk holding your number: set '
        "its trunkIds to that trunk's id, or leave trunkIds empty for every trunk (a rule "
        "naming a trunk wins over rules for all trunks), and its numbers/inboundNumbers "
        "filters must let the call through",
    )


def _applies(
    rule: proto_sip.SIPDispatchRuleInfo, trunk: proto_sip.SIPInboundTrunkInfo, number: str | None
) -> bool:
    on_trunk = not rule.trunk_ids or trunk.sip_trunk_id in rule.trunk_ids
    to_number = number is None or not rule.numbers or any(_same(number, n) for n in rule.numbers)
    return on_trunk and to_number


def _conditions(trunk: proto_sip.SIPInboundTrunkInfo, rule: proto_sip.SIPDispatchRuleInfo) -> str:
    conditions = [
        f"only from {_masked(numbers)}"
        for numbers in (trunk.allowed_numbers, rule.inbound_numbers)
        if numbers
    ]
    if _pin(rule):
        conditions.append("after the caller enters the rule's PIN")
    return f" ({', '.join(conditions)})" if conditions else ""


def outbound_check(settings: Settings, trunks: Sequence[proto_sip.SIPOutboundTrunkInfo]) -> Check:
    """The outbound trunk warm transfer dials through must exist."""
    wanted = settings.transfer.outbound_trunk_id
    warm = ", ".join(d.key for d in settings.destinations_for("warm"))
    if not warm:
        return Check("outbound trunk", True, "not needed: no destination allows warm transfer")
    found = next((t for t in trunks if t.sip_trunk_id == wanted), None)
    if found is not None:
        return Check(
            "outbound trunk",
            True,
            f"{_trunk(found)} exists; warm transfer to {warm} dials through it",
        )
    existing = ", ".join(_trunk(t) for t in trunks)
    setting = f"[transfer] outbound_trunk_id in {settings.source} (or SIP_OUTBOUND_TRUNK_ID)"
    return Check(
        "outbound trunk",
        False,
        f"outbound trunk {wanted} (warm transfer to {warm}) does not exist; "
        + (f"outbound trunks here: {existing}" if trunks else "there is no outbound trunk"),
        f"set {setting} to one of them"
        if trunks
        else "lk sip outbound create telephony/outbound-trunk.json (with your provider's "
        f"address and credentials), then set {setting} to the id it prints",
    )


# --------------------------------------------------------------------------- naming


def _agents(rule: proto_sip.SIPDispatchRuleInfo) -> list[str]:
    return [a.agent_name for a in rule.room_config.agents]


def _names(agents: Iterable[str]) -> str:
    return ", ".join(f'"{a}"' for a in agents) or "no agent"


def _rule(rule: proto_sip.SIPDispatchRuleInfo) -> str:
    rid = rule.sip_dispatch_rule_id
    return f'rule "{rule.name}" ({rid})' if rule.name else f"rule {rid}"


def _trunk(trunk: proto_sip.SIPInboundTrunkInfo | proto_sip.SIPOutboundTrunkInfo) -> str:
    return f'"{trunk.name}" ({trunk.sip_trunk_id})' if trunk.name else trunk.sip_trunk_id


def _pin(rule: proto_sip.SIPDispatchRuleInfo) -> str:
    kind = rule.rule.WhichOneof("rule")
    return getattr(rule.rule, kind).pin if kind else ""


def _same(a: str, b: str) -> bool:
    """Phone numbers equal up to formatting, as LiveKit normalises them."""
    return a == b or "".join(filter(str.isdigit, a)) == "".join(filter(str.isdigit, b))


def _masked(numbers: Iterable[str]) -> str:
    return ", ".join(mask_number(n) for n in numbers)
