"""Benchmarks of the phone assistant against a LiveKit starter-shaped baseline.

    python3 uvw.py run --locked python bench/run.py            # full run, ~8 minutes
    python3 uvw.py run --locked python bench/run.py --quick    # short run, ~2 minutes

Prints a table and writes the figures (with sample summaries) to bench/results/latest.json
(``--json PATH``; bench/results/ is git-ignored). bench/results.json, which is tracked, holds
the run docs/performance.md quotes and is never rewritten by a run. It is a script that
prints figures, not a test: nothing here fails on a slow machine. bench/README.md explains
each figure.

Every call is a whole call through the real client code (the whole-call test's shape,
bench/harness.py): recorded caller speech at 8 kHz in real time, real Silero VAD, the
framework's default turn handling (its end-of-turn model), the real Deepgram, OpenAI and
LiveKit API clients, talking to loopback stand-ins that run in a separate process
(bench/stand_ins.py) so they do not share the measured event loop or its GIL. Provider
latencies are scripted: ``--stt-latency``, ``--llm-ttft``, ``--tts-ttfb`` (0 by default;
the greeting measurement uses ``--greeting-tts-ttfb``, 0.2 s by default).

Formulas (every instant on time.monotonic(), which is system-wide on Linux):

  speech_end   the caller's line handed the agent the 20 ms frame holding the last
               audible sound of the recording (the line's end-of-recording time minus the
               recording's trailing silence)
  commit       the framework committed the user's turn: the user message's
               stopped_speaking_at + end_of_turn_delay (the anchor and delay EOUMetrics
               reports as end_of_utterance_delay), converted from wall-clock time
  first_audio  the first frame of the agent's answer reached the session's audio output
  provider     time within [commit, first_audio] during which the LLM or TTS stand-in held
               a request before its first byte (scripted latency + the stand-in's own work)

  overhead     = first_audio - commit - provider           (agent-side overhead per turn)
  raw          = first_audio - speech_end                  (nothing removed)
  wait         = commit - speech_end                       (turn-taking policy: VAD silence,
                 endpointing delay, end-of-turn model, waiting for the final transcript)
  greeting     = first greeting frame at the output - the moment session.start() was called
  transfer     = REFER received by the LiveKit stand-in - end of the notice's playout
  per-call RSS = (RSS with k calls active - RSS of the idle job process) / k
  capacity     = the largest number of concurrent calls in one process whose p95 overhead
                 stayed <= 100 ms (levels stepped up until one exceeds it, or the cap)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import math
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from livekit.agents.utils import http_context  # noqa: E402
from livekit.plugins import silero  # noqa: E402

from bench.harness import (  # noqa: E402
    Baseline,
    Closing,
    Contender,
    LinePool,
    Measured,
    Ours,
    greeting_latency,
    line_settings,
    measured_turns,
    talk_line,
    transfer_latency,
    transfer_line,
)
from bench.stand_ins import LineConfig, StandInProcess  # noqa: E402
from config import Settings, load_settings  # noqa: E402
from models import load_vad  # noqa: E402

# Provider keys the stand-ins accept; the URLs come from each call's line.
PROVIDER_ENV = {"DEEPGRAM_API_KEY": "dg-test", "OPENAI_API_KEY": "sk-test"}
TURN_GAP_S = 1.0  # the caller's pause between the agent's answer and their next "yes"
TURN_PERIOD_S = 3.0  # roughly one turn; concurrent calls' starts are spread over it
OVERHEAD_P95_LIMIT = 0.100  # seconds, the capacity criterion
# Calls of a transfer batch start this far apart, so that their notices do not all end
# (and their REFERs go out) in the same instant, which no real trunk would line up.
TRANSFER_STAGGER_S = 0.3
PHASES = ("overhead", "greeting", "transfer", "capacity", "memory")  # in the order run

TARGETS = {
    "overhead_p50_s": 0.030,
    "overhead_p95_s": 0.100,
    "overhead_ratio": 1.05,
    "greeting_p95_s": 0.300,
    "rss_per_call_mb": 100.0,
    "calls_per_core": 5.0,  # 10 calls per 2 cores
    "transfer_p95_s": 0.020,
}


@dataclass(frozen=True)
class Plan:
    """How much of each measurement a run takes."""

    quick: bool
    json_path: Path
    stt_latency: float
    llm_ttft: float
    tts_ttfb: float
    greeting_tts_ttfb: float
    overhead_calls: int
    overhead_turns: int  # in total, per contender
    greeting_calls: int  # per variant
    transfer_calls: int  # per contender
    transfer_concurrency: int
    memory_ks: tuple[int, ...]
    memory_turns_first: int
    capacity_levels: tuple[int, ...]


def parse_plan(argv: Sequence[str]) -> Plan:
    """The command line, as a plan: full by default, shorter with ``--quick``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~2 minutes)")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "latest.json",
        help="where to write (default bench/results/latest.json; the tracked "
        "bench/results.json, the run docs/performance.md quotes, is left alone)",
    )
    parser.add_argument("--stt-latency", type=float, default=0.0, help="seconds (default 0)")
    parser.add_argument("--llm-ttft", type=float, default=0.0, help="seconds (default 0)")
    parser.add_argument("--tts-ttfb", type=float, default=0.0, help="seconds (default 0)")
    parser.add_argument(
        "--greeting-tts-ttfb",
        type=float,
        default=0.2,
        help="TTS time to first byte in the greeting measurement (default 0.2 s)",
    )
    parser.add_argument("--turns", type=int, help="per-turn overhead: turns per agent (100)")
    parser.add_argument(
        "--capacity-max", type=int, help="highest concurrency the capacity search tries"
    )
    args = parser.parse_args(argv)
    quick = bool(args.quick)
    # --quick only checks the target (10 calls on 2 cores); a full run searches upwards
    levels = (10,) if quick else (1, 4, 8, 12, 16, 20, 24, 32, 40)
    if args.capacity_max:
        levels = (*(n for n in levels if n < args.capacity_max), args.capacity_max)
    return Plan(
        quick=quick,
        json_path=args.json,
        stt_latency=args.stt_latency,
        llm_ttft=args.llm_ttft,
        tts_ttfb=args.tts_ttfb,
        greeting_tts_ttfb=args.greeting_tts_ttfb,
        overhead_calls=5,
        overhead_turns=args.turns or (5 if quick else 100),
        greeting_calls=6 if quick else 30,
        transfer_calls=4 if quick else 20,
        transfer_concurrency=5,
        memory_ks=(1,) if quick else (1, 4, 8),
        memory_turns_first=1,
        capacity_levels=levels,
    )


# ---------------------------------------------------------------------------- statistics


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """n, percentiles and the samples themselves (seconds, rounded to 0.1 ms)."""
    if not samples:
        return {"n": 0}
    a = np.asarray(samples, dtype=float)
    return {
        "n": len(a),
        "min": float(a.min()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "samples": [round(float(x), 4) for x in a],
    }


def turn_summary(measured: Measured) -> dict[str, Any]:
    """Every figure of a set of turns, each with its samples (see ``Turn``)."""
    turns = measured.turns
    committed = [t for t in turns if t.commit is not None]
    return {
        "turns": len(turns),
        "turns_without_eou_metrics": len(turns) - len(committed),
        "failed_calls": measured.failed_calls,
        "errors": measured.errors,
        "overhead_s": summary([t.overhead for t in committed if t.overhead is not None]),
        "raw_s": summary([t.raw for t in turns]),
        "wait_s": summary([t.wait for t in committed if t.wait is not None]),
        # how late the framework's end-of-speech anchor (stopped_speaking_at) was: a few
        # VAD windows when the process keeps up, more when it falls behind real time
        "anchor_lag_s": summary(
            [t.wait - t.end_of_turn_delay for t in committed if t.wait and t.end_of_turn_delay]
        ),
        "provider_s": summary([t.provider for t in committed]),
        "eou_end_of_utterance_delay_s": summary(
            [t.end_of_turn_delay for t in turns if t.end_of_turn_delay is not None]
        ),
        "eou_transcription_delay_s": summary(
            [t.transcription_delay for t in turns if t.transcription_delay is not None]
        ),
    }


def stat(results: dict[str, Any], *path: str) -> float | None:
    """A number deep in the results, or None where a phase failed or had no samples."""
    node: Any = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node if isinstance(node, int | float) else None


# ---------------------------------------------------------------------------- phases


@dataclass
class Bench:
    """The measurements, one method a phase, sharing the stand-ins and their lines."""

    plan: Plan
    stand_ins: StandInProcess
    pool: LinePool
    base: Settings
    contenders: tuple[Contender, ...]
    closing: Closing

    def talk(self) -> LineConfig:
        """The line every turn-taking measurement uses, with the scripted latencies."""
        p = self.plan
        return talk_line(llm_ttft=p.llm_ttft, tts_ttfb=p.tts_ttfb, stt_latency=p.stt_latency)

    async def turns(
        self, contender: Contender, *, calls: int, turns_per_call: int, first_n: int
    ) -> Measured:
        """``calls`` concurrent calls of ``contender``; see ``harness.measured_turns``."""
        measured = await measured_turns(
            contender, self.pool, self.base, self.talk(), self.closing, calls=calls,
            turns_per_call=turns_per_call, gap=TURN_GAP_S, stagger=TURN_PERIOD_S,
            first_n=first_n,
        )  # fmt: skip
        for error in measured.errors[:3]:
            print(f"  ! {contender.name}: {error}")
        return measured

    async def overhead(self) -> dict[str, Any]:
        """Measurement 1: per-turn overhead, ours then the baseline, same concurrency."""
        p = self.plan
        per_call = math.ceil(p.overhead_turns / p.overhead_calls)
        results: dict[str, Any] = {"concurrent_calls": p.overhead_calls}
        for contender in self.contenders:
            measured = await self.turns(
                contender, calls=p.overhead_calls, turns_per_call=per_call, first_n=100
            )
            await self.closing.settle()
            results[contender.name] = turn_summary(measured)
            print(f"  {contender.name}: {len(measured.turns)} turns")
        return results

    async def greeting(self) -> dict[str, Any]:
        """Measurement 2: join -> first greeting frame, with and without the cache."""
        p = self.plan
        config = talk_line(llm_ttft=0, tts_ttfb=p.greeting_tts_ttfb, stt_latency=0)
        ours, baseline = self.contenders
        variants = {"ours_cached": (ours, True), "ours_uncached": (ours, False)}
        variants["baseline"] = (baseline, False)
        samples: dict[str, list[float]] = {name: [] for name in variants}
        builds: dict[str, list[float]] = {name: [] for name in variants}
        for n in range(p.greeting_calls):  # one call at a time, the variants interleaved
            for name, (contender, cached) in variants.items():
                greeted = await greeting_latency(
                    contender, self.pool, self.base, config, self.closing, n=n, cached=cached
                )
                samples[name].append(greeted.first_frame)
                builds[name].append(greeted.build)
        await self.closing.settle()
        return {
            "tts_ttfb_s": p.greeting_tts_ttfb,
            **{name: summary(values) for name, values in samples.items()},
            "session_build_s": {name: summary(values) for name, values in builds.items()},
        }

    async def transfer(self) -> dict[str, Any]:
        """Measurement 5: notice playout end -> REFER, in batches alternating the agents."""
        p = self.plan
        config = transfer_line()
        samples: dict[str, list[float]] = {c.name: [] for c in self.contenders}
        failures: dict[str, int] = {c.name: 0 for c in self.contenders}
        for start in range(0, p.transfer_calls, p.transfer_concurrency):
            batch = range(start, min(p.transfer_calls, start + p.transfer_concurrency))
            for contender in self.contenders:
                results = await asyncio.gather(
                    *(
                        transfer_latency(
                            contender,
                            self.pool,
                            self.base,
                            config,
                            self.closing,
                            n=n,
                            delay=TRANSFER_STAGGER_S * (n - start),
                        )
                        for n in batch
                    ),
                    return_exceptions=True,
                )
                for result in results:
                    if isinstance(result, BaseException):
                        failures[contender.name] += 1
                        print(f"  ! a {contender.name} transfer failed: {result!r}")
                    else:
                        samples[contender.name].append(result)
        await self.closing.settle()  # calls close while the next batch greets its callers
        return {
            "concurrent_calls": p.transfer_concurrency,
            **{
                name: {**summary(values), "failed": failures[name]}
                for name, values in samples.items()
            },
        }

    async def capacity(self) -> dict[str, Any]:
        """Measurement 4: concurrency stepped up, per agent, until p95 overhead > 100 ms."""
        p = self.plan
        levels: dict[str, list[dict[str, Any]]] = {c.name: [] for c in self.contenders}
        capacity: dict[str, int] = {c.name: 0 for c in self.contenders}
        running = list(self.contenders)
        for level in p.capacity_levels:
            per_call = 1 if p.quick else capacity_turns(level)
            for contender in list(running):
                measured = await self.turns(
                    contender, calls=level, turns_per_call=per_call, first_n=1000 * level
                )
                result = {"calls": level, "turns_per_call": per_call, **turn_summary(measured)}
                levels[contender.name].append(result)
                p95 = stat(result, "overhead_s", "p95")
                ok = not measured.failed_calls and p95 is not None and p95 <= OVERHEAD_P95_LIMIT
                print(
                    f"  {contender.name:<8} {level:>2} calls: overhead p95 {_ms(p95)}, "
                    f"raw p95 {_ms(stat(result, 'raw_s', 'p95'))}"
                    + (f", {measured.failed_calls} failed calls" if measured.failed_calls else "")
                )
                if ok:
                    capacity[contender.name] = level
                else:
                    running.remove(contender)
            if not running:
                break
        await self.closing.settle()
        return {
            "limit_overhead_p95_s": OVERHEAD_P95_LIMIT,
            "levels_tried": list(p.capacity_levels),
            **{
                name: {
                    "capacity_calls": capacity[name],
                    "reached_cap": capacity[name] == p.capacity_levels[-1],
                    "levels": levels[name],
                }
                for name in levels
            },
        }

    async def memory(self) -> dict[str, Any]:
        """Measurement 3: RSS of fresh job processes (bench/memory_probe.py), one per agent,
        run one after the other so they do not compete for the CPU."""
        p = self.plan
        results: dict[str, Any] = {}
        for contender in self.contenders:
            lines = [await self.pool.take(self.talk()) for _ in range(max(p.memory_ks) + 1)]
            first = lines[0]  # for prewarm's greeting synthesis
            job = {
                "agent": contender.name,
                "ks": list(p.memory_ks),
                "turns_first": p.memory_turns_first,
                "gap": TURN_GAP_S,
                "lines": [asdict(line) for line in lines[1:]],
                "env": {
                    **PROVIDER_ENV,
                    **self.stand_ins.livekit_env,
                    "OPENAI_BASE_URL": first.openai_base_url,
                    "DEEPGRAM_BASE_URL": first.deepgram_base_url,
                },
            }
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                str(ROOT / "bench" / "memory_probe.py"),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                cwd=ROOT,
            )
            out, _ = await asyncio.wait_for(
                process.communicate(json.dumps(job).encode()), timeout=300
            )
            for line in lines:
                self.pool.give_back(self.talk(), line)
            if process.returncode != 0:
                raise RuntimeError(f"memory probe for {contender.name} exited {process.returncode}")
            probe = json.loads(out.decode().strip().splitlines()[-1])
            idle = probe["idle_rss_mb"]
            probe["extra_rss_mb_per_call"] = {
                k: (rss - idle) / int(k) for k, rss in probe["rss_mb_by_calls"].items()
            }
            results[contender.name] = probe
            print(
                f"  {contender.name}: idle {idle:.0f} MB, per call "
                + ", ".join(f"k={k}: {v:.1f} MB" for k, v in probe["extra_rss_mb_per_call"].items())
            )
        return results


def capacity_turns(calls: int) -> int:
    """Measured turns per call at a capacity level: more where there are few calls."""
    return 2 if calls < 12 else 1


# ---------------------------------------------------------------------------- report


def machine() -> dict[str, Any]:
    """What the figures were measured on: they mean little without it."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "ram_gb": round(mem_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        "livekit_agents": version("livekit-agents"),
        "platform": platform.platform(),
    }


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1000:.1f} ms"


def _ratio(ours: float | None, base: float | None) -> str:
    if ours is None or base is None or base <= 0:
        return "n/a"
    return f"{ours / base:.3f}x ({(ours - base) * 1000:+.1f} ms)"


def _met(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def verdicts(r: dict[str, Any], m: dict[str, Any]) -> dict[str, bool | None]:
    """Each target, met or not, from the figures in ``r``."""

    def within(value: float | None, limit: float) -> bool | None:
        return None if value is None else value <= limit

    def both(*checks: bool | None) -> bool | None:
        return None if any(c is None for c in checks) else all(checks)

    o = r.get("overhead", {})
    o50, b50 = stat(o, "ours", "overhead_s", "p50"), stat(o, "baseline", "overhead_s", "p50")
    o95, b95 = stat(o, "ours", "overhead_s", "p95"), stat(o, "baseline", "overhead_s", "p95")
    g = r.get("greeting", {})
    cached50, base50, ttfb = (
        stat(g, "ours_cached", "p50"),
        stat(g, "baseline", "p50"),
        stat(g, "tts_ttfb_s"),
    )
    faster = (
        None if cached50 is None or base50 is None or ttfb is None else base50 - cached50 >= ttfb
    )
    per_call = r.get("memory", {}).get("ours", {}).get("extra_rss_mb_per_call", {})
    capacity = stat(r, "capacity", "ours", "capacity_calls")
    cores = m["usable_cores"] or 1
    return {
        "overhead_p50": both(
            within(o50, TARGETS["overhead_p50_s"]),
            None if o50 is None or not b50 else o50 / b50 <= TARGETS["overhead_ratio"],
        ),
        "overhead_p95": both(
            within(o95, TARGETS["overhead_p95_s"]),
            None if o95 is None or not b95 else o95 / b95 <= TARGETS["overhead_ratio"],
        ),
        "greeting": both(within(stat(g, "ours_cached", "p95"), TARGETS["greeting_p95_s"]), faster),
        "memory": within(max(per_call.values()) if per_call else None, TARGETS["rss_per_call_mb"]),
        "capacity": None if capacity is None else capacity >= TARGETS["calls_per_core"] * cores,
        "transfer": within(stat(r, "transfer", "ours", "p95"), TARGETS["transfer_p95_s"]),
    }


def render(results: dict[str, Any]) -> str:
    """The plain-text table, its per-level capacity search and the footnotes."""
    r, m, plan = results, results["machine"], results["plan"]
    ok = results["verdicts"]
    o, g, t = r.get("overhead", {}), r.get("greeting", {}), r.get("transfer", {})
    cap, mem = r.get("capacity", {}), r.get("memory", {})
    rows: list[tuple[str, str, str, str, str, str]] = []

    def row(label: str, ours: float | None, base: float | None, target: str, met: str) -> None:
        rows.append((label, _ms(ours), _ms(base), _ratio(ours, base), target, met))

    def pair(key: str, *path: str) -> tuple[float | None, float | None]:
        return stat(o, "ours", key, *path), stat(o, "baseline", key, *path)

    ratio_cap = TARGETS["overhead_ratio"]
    row("Per-turn overhead p50 [1]", *pair("overhead_s", "p50"),
        f"<= 30 ms, <= {ratio_cap:.2f}x", _met(ok["overhead_p50"]))  # fmt: skip
    row("Per-turn overhead p95 [1]", *pair("overhead_s", "p95"),
        f"<= 100 ms, <= {ratio_cap:.2f}x", _met(ok["overhead_p95"]))  # fmt: skip
    row("  raw: end of speech -> first audio p50", *pair("raw_s", "p50"), "(reported)", "")
    row("  raw: end of speech -> first audio p95", *pair("raw_s", "p95"), "(reported)", "")
    row("  turn-taking wait p50 (speech end -> commit)", *pair("wait_s", "p50"), "(policy)", "")
    row("  EOUMetrics end_of_utterance_delay p50",
        *pair("eou_end_of_utterance_delay_s", "p50"), "(policy)", "")  # fmt: skip
    row("  EOUMetrics transcription_delay p50",
        *pair("eou_transcription_delay_s", "p50"), "(policy)", "")  # fmt: skip
    row("  provider time in response p50 [2]", *pair("provider_s", "p50"), "(subtracted)", "")
    ttfb = stat(g, "tts_ttfb_s") or plan["greeting_tts_ttfb"]
    row("Greeting: join -> first frame p95, cached [3]", stat(g, "ours_cached", "p95"),
        stat(g, "baseline", "p95"), f"<= 300 ms; base-ours p50 >= {ttfb * 1000:.0f} ms",
        _met(ok["greeting"]))  # fmt: skip
    row("  greeting p50, cached", stat(g, "ours_cached", "p50"), stat(g, "baseline", "p50"), "", "")
    row("  greeting p50 / p95, ours uncached", stat(g, "ours_uncached", "p50"),
        stat(g, "ours_uncached", "p95"), "(ours vs ours)", "")  # fmt: skip
    row("  building agent + session before start() p50", stat(g, "session_build_s",
        "ours_cached", "p50"), stat(g, "session_build_s", "baseline", "p50"), "(not in [3])",
        "")  # fmt: skip
    for k in plan["memory_ks"]:
        ours_k = stat(mem, "ours", "extra_rss_mb_per_call", str(k))
        base_k = stat(mem, "baseline", "extra_rss_mb_per_call", str(k))
        rows.append((
            f"Extra RSS per active call, k={k} [4]", _mb(ours_k), _mb(base_k),
            _plain_ratio(ours_k, base_k), "<= 100 MB" if k == plan["memory_ks"][0] else "",
            _met(ok["memory"]) if k == plan["memory_ks"][0] else "",
        ))  # fmt: skip
    idle_o, idle_b = stat(mem, "ours", "idle_rss_mb"), stat(mem, "baseline", "idle_rss_mb")
    rows.append(("  idle job process RSS (after prewarm)", _mb(idle_o), _mb(idle_b),
                 _plain_ratio(idle_o, idle_b), "(reported)", ""))  # fmt: skip
    co, cb = cap.get("ours", {}), cap.get("baseline", {})
    cores = m["usable_cores"] or 1
    rows.append((
        "Capacity: calls in one process, p95 <= 100 ms [5]",
        f"{co.get('capacity_calls', 'n/a')}{'+' if co.get('reached_cap') else ''}",
        f"{cb.get('capacity_calls', 'n/a')}{'+' if cb.get('reached_cap') else ''}",
        _plain_ratio(co.get("capacity_calls"), cb.get("capacity_calls")),
        f">= {TARGETS['calls_per_core'] * cores:.0f} ({cores} cores)",
        _met(ok["capacity"]),
    ))  # fmt: skip
    row("Transfer: notice playout end -> REFER p95 [6]", stat(t, "ours", "p95"),
        stat(t, "baseline", "p95"), "<= 20 ms", _met(ok["transfer"]))  # fmt: skip
    row("  transfer p50", stat(t, "ours", "p50"), stat(t, "baseline", "p50"), "", "")

    header = ("Measurement", "Ours", "Baseline", "Ours/Baseline", "Target", "Met?")
    widths = [max(len(x[i]) for x in (header, *rows)) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(x, widths, strict=True)) for x in rows]
    out.append(line)

    out.append("")
    out.append("Capacity search [5], p95 per level (overhead / end-of-speech anchor lag):")
    by_level: dict[int, dict[str, str]] = {}
    for name in ("ours", "baseline"):
        for lv in cap.get(name, {}).get("levels", []):
            cell = (
                f"{_ms(stat(lv, 'overhead_s', 'p95'))} / {_ms(stat(lv, 'anchor_lag_s', 'p95'))}"
                + (f", {lv['failed_calls']} calls failed" if lv["failed_calls"] else "")
            )
            by_level.setdefault(lv["calls"], {})[name] = f"{cell} ({lv['turns']} turns)"
    out.append(f"  {'calls':>5}  {'ours':<38}  baseline")
    for calls, cells in sorted(by_level.items()):
        out.append(f"  {calls:>5}  {cells.get('ours', '-'):<38}  {cells.get('baseline', '-')}")

    oo, ob = o.get("ours", {}), o.get("baseline", {})
    session = r["session"]
    out += [
        "",
        "[1] overhead = first agent audio frame - turn commit - provider time [2] in between. "
        "Turn commit = the user message's stopped_speaking_at +",
        "    end_of_turn_delay (the figures EOUMetrics reports). The wait before the commit "
        "(VAD silence, endpointing delay, end-of-turn model, final",
        "    transcript) is turn-taking policy, shown apart and included in 'raw' = first "
        "audio - end of the caller's speech.",
        f"    {oo.get('turns', 0)} / {ob.get('turns', 0)} turns (ours / baseline), "
        f"{o.get('concurrent_calls')} "
        f"concurrent calls per agent (each call's first turn not counted); the caller",
        f"    says 'yes' (recording), the agent answers 'Okay.', {TURN_GAP_S} s pause between "
        f"turns. Scripted latencies: STT {plan['stt_latency']} s, LLM TTFT "
        f"{plan['llm_ttft']} s, TTS TTFB {plan['tts_ttfb']} s.",
        *(
            [
                f"    Turns without EOU metrics (left out of overhead, kept in raw): "
                f"{oo.get('turns_without_eou_metrics')} / {ob.get('turns_without_eou_metrics')}."
            ]
            if oo.get("turns_without_eou_metrics") or ob.get("turns_without_eou_metrics")
            else []
        ),
        f"    Turn handling (ours as [turn_taking] sets it; the baseline keeps the framework's "
        f"defaults): {session['turn_detection']}, "
        f"endpointing min {session['endpointing'].get('min_delay')} s / max "
        f"{session['endpointing'].get('max_delay')} s, preemptive generation "
        f"{'on' if session['preemptive_generation'].get('enabled') else 'off'}.",
        "[2] provider time = time in [commit, first audio] during which the LLM or TTS "
        "stand-in held a request before its first byte: the scripted",
        "    latency plus the stand-in's own processing (server-side timestamps).",
        f"[3] session.start() called -> first greeting frame at the output; TTS TTFB "
        f"{ttfb} s; {g.get('ours_cached', {}).get('n', 0)} calls per variant, one at a "
        "time. Ours cached replays audio made in prewarm;",
        "    baseline says it with live TTS. Building the agent and its session (before "
        "start()) is shown apart: the baseline builds its OpenAI clients there (~70 ms of",
        "    TLS setup), ours in prewarm, before the call.",
        "[4] (RSS with k active calls - RSS of the idle job process) / k, in fresh "
        "processes (bench/memory_probe.py). Idle = after the framework's process",
        "    warm-up and prewarm(); it includes the end-of-turn model's weights, which a "
        "forkserver worker shares between its job processes.",
        "[5] concurrent calls in the bench process, stepped up until p95 overhead [1] exceeds "
        "100 ms (or the last level was reached: '+'); turns count once",
        "    every call has taken its first turn. Anchor lag = the framework's "
        "stopped_speaking_at - the real end of speech: ~60 ms (VAD windows) while the",
        "    process keeps up with real time, more when it falls behind. The stand-in "
        "providers run on the same cores.",
        f"[6] {t.get('ours', {}).get('n', 0)} / {t.get('baseline', {}).get('n', 0)} transfers "
        f"(ours / baseline), {t.get('concurrent_calls')} calls at a time, started "
        f"{TRANSFER_STAGGER_S} s apart; the REFER is time-stamped by the LiveKit stand-in on "
        "arrival.",
        "Stand-in providers: a separate process (spawn), timestamps on the shared monotonic "
        "clock. Calls are real-time: 8 kHz recorded speech, real Silero VAD.",
        "Longest event-loop stall in the bench process per phase (longest gen-2 garbage "
        "collection): "
        + ", ".join(
            f"{name} {_ms(stat(r, name, 'event_loop', 'max_stall_s'))} "
            f"({_ms(stat(r, name, 'event_loop', 'gc_gen2_max_pause_s'))})"
            for name in ("overhead", "greeting", "transfer", "capacity")
        )
        + ".",
        *(
            f"Phase {name} FAILED: {r[name]['error']}"
            for name in PHASES
            if isinstance(r.get(name), dict) and "error" in r[name]
        ),
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores ({m['usable_cores']} usable), "
        f"{m['ram_gb']} GB RAM, Python {m['python']}, livekit-agents {m['livekit_agents']}, "
        f"{m['platform']}",
        f"Run: {'--quick' if plan['quick'] else 'full'}, {results['run_seconds']:.0f} s; "
        f"results in {plan['json_path']}",
    ]
    return "\n".join(out)


def _mb(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} MB"


def _plain_ratio(ours: float | None, base: float | None) -> str:
    return "n/a" if ours is None or not base else f"{ours / base:.2f}x"


# ---------------------------------------------------------------------------- main


class LoopWatch:
    """How long the bench process's event loop was held up, and by garbage collection.

    Every call shares this loop, so a stall delays every call's audio at once; these
    figures explain outliers in the samples (a measurement that hit a stall).
    """

    TICK_S = 0.01

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.gc_pauses: list[tuple[int, float]] = []  # (generation, seconds)
        self._gc_started = 0.0
        self._task: asyncio.Task[None] | None = None

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((info["generation"], time.perf_counter() - self._gc_started))

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.TICK_S
            await asyncio.sleep(self.TICK_S)
            self.lags.append(max(loop.time() - due, 0.0))

    def __enter__(self) -> LoopWatch:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()

    def summary(self) -> dict[str, Any]:
        gen2 = [s for g, s in self.gc_pauses if g == 2]
        return {
            "max_stall_s": max(self.lags, default=0.0),
            "p99_stall_s": float(np.percentile(self.lags, 99)) if self.lags else 0.0,
            "stalls_over_50ms": sum(lag > 0.05 for lag in self.lags),
            "gc_gen2_collections": len(gen2),
            "gc_gen2_max_pause_s": max(gen2, default=0.0),
        }


class _QuietExpectedWarnings(logging.Filter):
    """Warnings every bench call causes by design, which would bury the table: the audio
    output cannot pause (so falsely interrupted speech is not resumed), and the bench hangs
    up on calls in mid-turn (so the closing session skips the caller's last words)."""

    EXPECTED = ("does not support pause", "speech scheduling is paused")

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(text in record.getMessage() for text in self.EXPECTED)


async def run(plan: Plan) -> dict[str, Any]:
    """Every phase in order, against one stand-in process; a failed phase is recorded and
    the others still run."""
    started = time.monotonic()
    async with StandInProcess() as stand_ins, http_context.open():
        os.environ.update(stand_ins.livekit_env)  # the job's API client reads these
        base = load_settings({**PROVIDER_ENV, **stand_ins.livekit_env})
        vad = silero.VAD.load()  # the baseline's: Silero's defaults
        pool = LinePool(stand_ins)
        async with pool.line(talk_line(llm_ttft=0, tts_ttfb=0, stt_latency=0)) as line:
            ours = await Ours.warmed(line_settings(base, line), load_vad(base))
            parts = ours.parts(line_settings(base, line), n=0, room_name="probe")
            probe = parts.session
            session = {
                "turn_detection": getattr(probe.turn_detection, "model", probe.turn_detection),
                "endpointing": dict(probe.options.endpointing),
                "preemptive_generation": dict(probe.options.preemptive_generation),
            }
            if parts.on_end is not None:  # the probe call never starts; its job ends here
                await parts.on_end()
        bench = Bench(plan, stand_ins, pool, base, (ours, Baseline(vad)), Closing())

        results: dict[str, Any] = {"session": session}
        # No separate warm-up: one-time costs (lazy imports, first connections) land in
        # each call's greeting and first turn, which the turn measurements leave out.
        for name in PHASES:
            phase: Callable[[], Awaitable[dict[str, Any]]] = getattr(bench, name)
            phase_started = time.monotonic()
            print(f"{name} ...")
            try:
                with LoopWatch() as watch:
                    results[name] = await phase()
            except Exception as e:  # the other phases' figures are still worth printing
                print(f"  ! {name} failed: {type(e).__name__}: {e}")
                results[name] = {"error": f"{type(e).__name__}: {e}"}
                await bench.closing.settle()
                continue
            results[name]["phase_seconds"] = round(time.monotonic() - phase_started, 1)
            if name != "memory":  # that one measures other processes
                results[name]["event_loop"] = watch.summary()
    results["run_seconds"] = time.monotonic() - started
    return results


def main(argv: Sequence[str]) -> None:
    """Run, then write the JSON and print the table."""
    plan = parse_plan(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietExpectedWarnings())
    # The bench process is the job process of every in-process call below, so it starts
    # as a worker's job process does: the framework's preload, then its gc.freeze() (a
    # forkserver freezes what it preloaded, so job processes' garbage collections skip it).
    import livekit.agents.ipc._preload
    import livekit.agents.ipc._preload_freeze  # noqa: F401

    results = asyncio.run(run(plan))
    results["machine"] = machine()
    results["plan"] = {**asdict(plan), "json_path": str(plan.json_path)}
    results["targets"] = TARGETS
    results["verdicts"] = verdicts(results, results["machine"])
    table = render(results)
    results["table"] = table
    plan.json_path.parent.mkdir(parents=True, exist_ok=True)
    plan.json_path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
