"""bench/phone.py's table: the caller-felt figures first, ours against the baseline as
ratios from the same run, the spread between runs, and which targets are met."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.run import summary
from bench.voice import TurnHeard

TARGETS = {"v2v_p50_s": 0.400, "v2v_p95_s": 1.100}


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1000:.0f} ms"


def _ratio(ours: float | None, base: float | None) -> str:
    return "n/a" if ours is None or not base else f"{ours / base:.2f}x"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def pooled(runs: Sequence[dict[str, Any]], name: str) -> dict[str, Any]:
    """One contender's turns over every run, with the figures of bench/voice.py."""
    from bench.voice import summarize

    turns = [TurnHeard(**t) for run in runs if name in run for t in run[name]["samples"]]
    return summarize(turns)


def verdicts(ours: dict[str, Any], base: dict[str, Any] | None) -> dict[str, bool | None]:
    v = ours["voice_to_voice_s"]
    return {
        "p50": v.get("p50") is not None and v["p50"] <= TARGETS["v2v_p50_s"],
        "p95": v.get("p95") is not None and v["p95"] <= TARGETS["v2v_p95_s"],
        "premature": None
        if base is None
        else (ours["premature_rate"] or 0) <= (base["premature_rate"] or 0),
    }


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = ["  ".join(c.ljust(w) for c, w in zip(rows[0], widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows[1:]]
    return out


def voice_section(results: dict[str, Any]) -> list[str]:
    runs = results["voice"]
    names = list(runs[0]) if runs else []
    ours = pooled(runs, "ours")
    base = pooled(runs, "baseline") if "baseline" in names else None
    ok = verdicts(ours, base)
    b = base or {}

    def stat(figures: dict[str, Any] | None, key: str, q: str) -> float | None:
        return (figures or {}).get(key, {}).get(q)

    def share(f: dict[str, Any] | None) -> str:
        if not f:
            return "n/a"
        return f"{f['premature']}/{f['turns']} ({_pct(f['premature_rate'])})"

    rows = [("Measurement", "Ours", "Baseline", "Ours/Baseline", "Target", "Met?")]
    for q, target in (("p50", "v2v_p50_s"), ("p95", "v2v_p95_s")):
        o, bb = stat(ours, "voice_to_voice_s", q), stat(base, "voice_to_voice_s", q)
        rows.append(
            (f"Voice to voice {q} [1]", _ms(o), _ms(bb), _ratio(o, bb),
             f"<= {TARGETS[target] * 1000:.0f} ms", _met(ok[q]))
        )  # fmt: skip
    rows.append(
        ("Premature replies: agent spoke before the caller finished [2]", share(ours),
         share(base), _ratio(ours["premature_rate"], b.get("premature_rate")),
         "<= baseline", _met(ok["premature"]))
    )  # fmt: skip
    rows.append(
        ("  turns the end-of-turn model judged unfinished", _pct(ours["judged_unfinished_rate"]),
         _pct(b.get("judged_unfinished_rate")), "", "(reported)", "")
    )  # fmt: skip
    for key, label in (
        ("vad_silence_s", "  wait: VAD silence (speech end -> VAD end) p50"),
        ("end_of_turn_s", "  wait: end of turn (VAD end -> commit) p50"),
        ("response_s", "  wait: response (commit -> first frame) p50"),
    ):
        o, bb = stat(ours, key, "p50"), stat(base, key, "p50")
        rows.append((label, _ms(o), _ms(bb), _ratio(o, bb), "(reported)", ""))
    for kind in ("short", "number", "paused"):
        ko, kb = ours["by_kind"][kind], b.get("by_kind", {}).get(kind, {})
        rows.append(
            (f"  {kind} turns: p50 / p95, premature",
             f"{_ms(ko['voice_to_voice_p50_s'])} / {_ms(ko['voice_to_voice_p95_s'])}, "
             f"{ko['premature']}/{ko['turns']}",
             f"{_ms(kb.get('voice_to_voice_p50_s'))} / {_ms(kb.get('voice_to_voice_p95_s'))}, "
             f"{kb.get('premature', 'n/a')}/{kb.get('turns', 'n/a')}", "", "", "")
        )  # fmt: skip
    for name in names:
        if name in ("ours", "baseline"):
            continue
        f = pooled(runs, name)
        rows.append(
            (f"Variant {name}: p50 / p95, premature; VAD silence p50; judged unfinished",
             f"{_ms(stat(f, 'voice_to_voice_s', 'p50'))} / "
             f"{_ms(stat(f, 'voice_to_voice_s', 'p95'))}, {share(f)}; "
             f"{_ms(stat(f, 'vad_silence_s', 'p50'))}; {_pct(f['judged_unfinished_rate'])}",
             "", "", "", "")
        )  # fmt: skip
    out = ["Caller-felt: voice to voice on the turn-taking speech set", *_table(rows)]
    if len(runs) > 1:
        out.append("")
        out.append(f"Spread over {len(runs)} runs (each run's own figures, min-max):")
        for name in names:
            p50 = [r[name]["voice_to_voice_s"].get("p50") or 0 for r in runs]
            p95 = [r[name]["voice_to_voice_s"].get("p95") or 0 for r in runs]
            pre = [r[name]["premature_rate"] or 0 for r in runs]
            out.append(
                f"  {name}: p50 {_ms(min(p50))}-{_ms(max(p50))}, p95 {_ms(min(p95))}-"
                f"{_ms(max(p95))}, premature {_pct(min(pre))}-{_pct(max(pre))}"
            )
        if base is not None:
            r50 = [r["ours"]["voice_to_voice_s"]["p50"] / r["baseline"]["voice_to_voice_s"]["p50"]
                   for r in runs]  # fmt: skip
            out.append(f"  ours/baseline p50 ratio: {min(r50):.2f}x-{max(r50):.2f}x")
    tt = results.get("turn_taking", {}).get("ours", {})
    out += [
        "",
        "[1] last audible sound of the caller's turn (speech set label) -> first frame of the "
        "agent's answer at the audio output, over turns with no premature reply;",
        "    real Silero VAD, the framework's turn handling, real plugins against stand-ins "
        f"(Deepgram endpointing at the plugin's 25 ms), {_latency(results)}.",
        f"    Ours: [turn_taking] {tt}. Baseline: the framework's defaults (Silero 0.55 s, "
        "turn-detector-v1-mini, min 0.3 s / max 2.5 s).",
        "[2] an agent utterance started after the turn began and before its last sound.",
    ]
    return out


def _latency(results: dict[str, Any]) -> str:
    p = results.get("providers") or {}
    ttft, ttfb = p.get("llm_ttft_s", 0.0), p.get("tts_ttfb_s", 0.0)
    if not ttft and not ttfb:
        return "providers answering at once"
    return f"LLM time to first token {_ms(ttft)}, TTS time to first byte {_ms(ttfb)}"


def process_section(results: dict[str, Any]) -> list[str]:
    p = results.get("process")
    if not p:
        return []
    cold = p["cold_start"]["calls"]
    first, later = cold[0], cold[1:]
    waits = summary([c["wait_s"] for c in later])
    prewarms = summary([c["prewarm_s"] for c in later])
    out = [
        "",
        "Worker's process model: one job process per call, forked from the forkserver",
        f"  Call finding no idle process (fork + prewarm): first of the worker "
        f"{_ms(first['wait_s'])} (prewarm {_ms(first['prewarm_s'])}, "
        f"{first['tts_requests']} TTS requests); later p50 {_ms(waits.get('p50'))}, max "
        f"{_ms(waits.get('max'))} (prewarm p50 {_ms(prewarms.get('p50'))}, "
        f"{sum(c['tts_requests'] for c in later)} TTS requests in {len(later)} prewarms)",
    ]
    rows = [("Concurrent calls", "v2v p50", "v2v p95", "premature", "USS/call",
             "PSS/call", "CPU/call talking", "CPU/call silent")]  # fmt: skip
    for level, f in p["concurrency"].items():
        v = f["voice_to_voice_s"]
        rows.append(
            (str(level), _ms(v.get("p50")), _ms(v.get("p95")), f"{f['premature']}/{f['turns']}",
             f"{f['uss_mb_per_call'] or 0:.0f} MB", f"{f['pss_mb_per_call'] or 0:.0f} MB",
             _pct(f["cpu_talking_per_call"]), _pct(f["cpu_silent_per_call"]))
        )  # fmt: skip
    out += ["  " + line for line in _table(rows)]
    join = p["greeting_from_join"]
    j = join["join_to_first_audible_s"]
    out.append(
        f"  Greeting: caller joins -> first audible frame of the agent's track p50 "
        f"{_ms(j.get('p50'))}, p95 {_ms(j.get('p95'))} ({j.get('n')} calls; "
        f"{join['tts_requests']} TTS requests in them, "
        f"{join.get('tts_requests_in_prewarm', 'n/a')} in the prewarm before them)"
    )
    out.append(
        "  CPU = the job process's CPU time (all threads) / wall time, in one core; "
        "USS = its private memory, PSS = with shared pages divided among sharers (peaks)."
    )
    return out


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = voice_section(results) + process_section(results)
    out += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['ram_gb']} GB RAM, Python {m['python']}, livekit-agents {m['livekit_agents']}",
        f"Run: {results['run_seconds']:.0f} s",
    ]
    return "\n".join(out)
