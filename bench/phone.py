"""What the caller feels, measured the way a caller hears it; one command for every figure.

    python3 uvw.py run --locked python bench/phone.py            # full run, ~15 minutes
    python3 uvw.py run --locked python bench/phone.py --quick    # smoke run, ~4 minutes

Prints a table and writes bench/results/phone.json (``--json PATH``). A script that
prints figures, not a test. Phases, in order:

  voice      voice to voice on the turn-taking speech set (bench/voice.py): ours (as
             assistant.toml configures it) and the starter-shaped baseline
             (bench/baseline.py), their calls running at the same time, >= 100 turns each
  variants   (--variant) other [turn_taking] settings side by side with ours and the
             baseline, and the framework's own VAD (``vad=framework``: livekit.agents
             .inference.VAD, its native Silero) in place of the Silero plugin
  process    the worker's process model (bench/process_model.py): a call finding no idle
             process, memory and CPU per call, voice to voice as concurrent calls grow
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from livekit.agents import inference  # noqa: E402
from livekit.agents.utils import http_context  # noqa: E402
from livekit.agents.vad import VAD  # noqa: E402
from livekit.plugins import silero  # noqa: E402

from bench.harness import Baseline, Closing, Contender, Ours, line_settings  # noqa: E402
from bench.phone_report import render  # noqa: E402
from bench.run import _QuietExpectedWarnings, machine  # noqa: E402
from bench.stand_ins import LineConfig, StandInProcess  # noqa: E402
from bench.voice import CallResult, call_turns, install_eot_probe, one_call, summarize  # noqa: E402
from config import Settings, TurnTaking, load_settings  # noqa: E402
from models import load_vad  # noqa: E402

PROVIDER_ENV = {"DEEPGRAM_API_KEY": "dg-test", "OPENAI_API_KEY": "sk-test"}
STAGGER_S = 1.3  # calls start this far apart, so their turns do not end in lockstep
VADS = ("silero", "framework")


async def warmed_ours(
    stand_ins: StandInProcess,
    base: Settings,
    turn_taking: TurnTaking,
    name: str,
    *,
    vad_kind: str = "silero",
) -> Ours:
    """Our agent with ``turn_taking``, its greetings made as prewarm makes them, hearing
    the caller through the Silero plugin (as the worker does) or the framework's VAD."""
    settings = dataclasses.replace(base, turn_taking=turn_taking)
    line = await stand_ins.open_line(LineConfig(replies=(), transcripts=()))
    ours = await Ours.warmed(line_settings(settings, line), a_vad(vad_kind, settings))
    return _Named(ours, name, settings)  # type: ignore[return-value]


def a_vad(kind: str, settings: Settings) -> VAD:
    """Both with the same silence: the worker's Silero plugin (onnxruntime), or the
    framework's own (``livekit.agents.inference.VAD``, Silero run natively)."""
    if kind == "framework":
        return inference.VAD(min_silence_duration=settings.turn_taking.vad_silence)
    return load_vad(settings)


@dataclasses.dataclass
class _Named:
    """A contender under another name, with its own settings (a [turn_taking] variant)."""

    inner: Ours
    name: str
    settings: Settings

    def prewarmed(self, settings: Settings) -> Any:
        return self.inner.prewarmed(self._own(settings))

    def parts(self, settings: Settings, **kwargs: Any) -> Any:
        return self.inner.parts(self._own(settings), **kwargs)

    def _own(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, turn_taking=self.settings.turn_taking)


async def side_by_side(
    stand_ins: StandInProcess,
    base: Settings,
    contenders: Sequence[Contender],
    *,
    turns: int,
    calls: int,
    llm_ttft: float = 0.0,
    tts_ttfb: float = 0.0,
) -> dict[str, Any]:
    """Every contender's ``calls`` calls at once, ``turns`` turns per contender in all."""
    closing = Closing()
    per_call = -(-turns // calls)
    tasks = []
    n = 0
    for i in range(calls):
        for contender in contenders:
            tasks.append(
                one_call(
                    contender,
                    stand_ins,
                    base,
                    closing,
                    n=n,
                    turns=call_turns(i, per_call),
                    delay=STAGGER_S * n,
                    llm_ttft=llm_ttft,
                    tts_ttfb=tts_ttfb,
                )
            )
            n += 1
    results: list[CallResult] = await asyncio.gather(*tasks)
    await closing.settle()
    out: dict[str, Any] = {}
    for contender in contenders:
        mine = [r for r in results if r.contender == contender.name]
        heard = [t for r in mine for t in r.turns]
        out[contender.name] = {
            **summarize(heard),
            "calls": len(mine),
            "errors": [r.error for r in mine if r.error],
            "words_dropped": sum(r.words_dropped for r in mine),
            "unexpected": sum(r.unexpected for r in mine),
            "samples": [dataclasses.asdict(t) for t in heard],
        }
    return out


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run (~4 minutes)")
    parser.add_argument("--turns", type=int, help="voice to voice: turns per agent (104)")
    parser.add_argument("--calls", type=int, default=1, help="calls per agent at once (1)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="voice to voice runs, for the spread (1)"
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="a [turn_taking] variant measured beside ours: name:key=value,key=value "
        "(and vad=framework for the framework's VAD)",
    )
    parser.add_argument(
        "--llm-ttft",
        type=float,
        default=0.0,
        help="voice to voice: the LLM stand-in's time to first token, seconds (0)",
    )
    parser.add_argument(
        "--tts-ttfb",
        type=float,
        default=0.0,
        help="voice to voice: the TTS stand-in's time to first byte, seconds (0)",
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--no-process", action="store_true", help="skip the process model")
    parser.add_argument(
        "--json",
        type=Path,
        default=ROOT / "bench" / "results" / "phone.json",
        help="where to write (default bench/results/phone.json, git-ignored)",
    )
    return parser.parse_args(argv)


def variant(spec: str) -> tuple[str, dict[str, Any]]:
    """``name:key=value,...`` as --variant takes it (values as TOML/JSON scalars)."""
    name, _, rest = spec.partition(":")
    values: dict[str, Any] = {}
    for pair in filter(None, rest.split(",")):
        key, _, raw = pair.partition("=")
        words = ("local", "auto", "off", *VADS)
        values[key] = raw if raw in words else json.loads(raw)
    return name, values


async def process_phase(stand_ins: StandInProcess, quick: bool) -> dict[str, Any]:
    """The worker's process model (bench/process_model.py) and the greeting from the
    caller's join (bench/greeting_join.py), in a scratch directory of their own."""
    import tempfile

    from bench.greeting_join import greeting_from_join, prewarmed
    from bench.pool import CONFIG_ENV
    from bench.process_model import (
        cold_starts,
        concurrent_calls,
        line_env,
        per_level,
        speech_requests,
    )

    with tempfile.TemporaryDirectory(prefix="bench-phone-") as tmp:
        work = Path(tmp)
        os.environ[CONFIG_ENV] = str(work / "config.json")  # before the forkserver starts
        cold = await cold_starts(stand_ins, work, calls=3 if quick else 6, tts_ttfb=0.2)
        levels = (1, 2) if quick else (1, 2, 4, 6)
        calls = await concurrent_calls(
            stand_ins, work, levels=levels, turns_per_call=4 if quick else 8, silent_s=8
        )
        line = await stand_ins.open_line(LineConfig(replies=(), transcripts=(), tts_ttfb=0.2))
        env = {**line_env(line, work / "join-data"), **stand_ins.livekit_env}
        proc = await asyncio.to_thread(prewarmed, env)
        asked = await speech_requests(stand_ins, line)  # prewarm's: a fresh data directory
        join = await greeting_from_join(proc, calls=3 if quick else 12)
        join["tts_requests"] = await speech_requests(stand_ins, line) - asked
        join["tts_requests_in_prewarm"] = asked
    return {
        "cold_start": cold,
        "concurrency": {level: per_level(results) for level, results in calls.items()},
        "greeting_from_join": join,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    install_eot_probe()
    started = time.monotonic()
    results: dict[str, Any] = {"voice": []}
    async with StandInProcess() as stand_ins, http_context.open():
        os.environ.update(stand_ins.livekit_env)
        base = load_settings({**PROVIDER_ENV, **stand_ins.livekit_env})
        contenders: list[Contender] = [await warmed_ours(stand_ins, base, base.turn_taking, "ours")]
        vads = {"ours": "silero"}
        for spec in args.variant:
            name, values = variant(spec)
            vads[name] = values.pop("vad", "silero")
            if vads[name] not in VADS:
                raise SystemExit(f"--variant {spec}: vad must be one of {', '.join(VADS)}")
            tt = dataclasses.replace(base.turn_taking, **values)
            contenders.append(await warmed_ours(stand_ins, base, tt, name, vad_kind=vads[name]))
        if not args.no_baseline:
            contenders.append(Baseline(silero.VAD.load()))
        results["turn_taking"] = {
            c.name: {**dataclasses.asdict(c.settings.turn_taking), "vad": vads[c.name]}
            for c in contenders
            if isinstance(c, _Named)
        }
        results["providers"] = {"llm_ttft_s": args.llm_ttft, "tts_ttfb_s": args.tts_ttfb}
        turns = args.turns or (26 if args.quick else 104)
        for i in range(args.repeat):
            print(f"voice to voice, run {i + 1} of {args.repeat} ...", flush=True)
            results["voice"].append(
                await side_by_side(
                    stand_ins,
                    base,
                    contenders,
                    turns=turns,
                    calls=args.calls,
                    llm_ttft=args.llm_ttft,
                    tts_ttfb=args.tts_ttfb,
                )
            )
        if not args.no_process:
            print("process model ...", flush=True)
            results["process"] = await process_phase(stand_ins, args.quick)
    results["run_seconds"] = time.monotonic() - started
    return results


def main(argv: Sequence[str]) -> None:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(_QuietExpectedWarnings())
    # the bench process runs calls as a job process does: the framework's preload, frozen
    import livekit.agents.ipc._preload
    import livekit.agents.ipc._preload_freeze  # noqa: F401

    results = asyncio.run(run(args))
    results["machine"] = machine()
    results["args"] = {k: str(v) for k, v in vars(args).items()}
    table = render(results)
    results["table"] = table
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(table)


if __name__ == "__main__":
    main(sys.argv[1:])
