"""Measurements with the worker's process model (bench/pool.py): one job process per call.

Concurrent calls: N job processes, warmed by the pool before the calls (``idle=N``), each
answering one call (bench/pool_calls.py) whose caller says turns of the speech set, then
stays silent; voice to voice as bench/voice.py measures it, and each process's own CPU
time (talking, silent) and private (USS) and proportional (PSS) memory.

Cold start: a call that finds no idle process waits for the pool to fork one from the
forkserver and run ``prewarm`` in it. With no idle processes kept (``idle=0``) every call
is such a call, one after the other, all with the same data directory: the first is a
worker's first call, the later ones what every call of a running worker would cost if
the pool had no idle process left. The OpenAI stand-in counts the text-to-speech
requests each prewarm made.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.pool import CONFIG_ENV, forkserver_context, worker_pool  # noqa: E402

if TYPE_CHECKING:
    from bench.stand_ins import LineAddress, StandInProcess

PROVIDER_ENV = {"DEEPGRAM_API_KEY": "dg-test", "OPENAI_API_KEY": "sk-test"}
STAGGER_S = 0.7  # concurrent calls start this far apart


def line_env(line: LineAddress, data_dir: Path) -> dict[str, str]:
    """The environment a job process's prewarm reads: a line's stand-ins, a data dir."""
    return {
        **PROVIDER_ENV,
        "OPENAI_API_KEY": line.openai_api_key,
        "OPENAI_BASE_URL": line.openai_base_url,
        "DEEPGRAM_API_KEY": line.deepgram_api_key,
        "DEEPGRAM_BASE_URL": line.deepgram_base_url,
        "ASSISTANT_DATA_DIR": str(data_dir),
    }


async def speech_requests(stand_ins: StandInProcess, line: LineAddress) -> int:
    record = await stand_ins.record(line.line_id)
    return sum(w.kind == "speech" for w in record.waits)


async def cold_starts(
    stand_ins: StandInProcess, work: Path, *, calls: int, tts_ttfb: float
) -> dict[str, Any]:
    """``calls`` calls one after another, each finding no idle process."""
    from bench.stand_ins import LineConfig

    line = await stand_ins.open_line(LineConfig(replies=(), transcripts=(), tts_ttfb=tts_ttfb))
    data_dir = work / "data"
    samples = []
    env = line_env(line, data_dir)
    async with worker_pool(work, idle=0, context=forkserver_context(), env=env) as pool:
        for n in range(calls):
            before = await speech_requests(stand_ins, line)
            asked = time.monotonic()
            out = await pool.launch(f"cold-{n}", kind="start")
            result = await pool.result(out, within=30)
            prewarm = pool.prewarms()[result["pid"]]
            samples.append(
                {
                    "wait_s": result["entry_at"] - asked,
                    "import_s": prewarm["import_s"],
                    "prewarm_s": prewarm["prewarm_s"],
                    "tts_requests": await speech_requests(stand_ins, line) - before,
                }
            )
    return {"tts_ttfb_s": tts_ttfb, "calls": samples}


async def concurrent_calls(
    stand_ins: StandInProcess,
    work: Path,
    *,
    levels: tuple[int, ...],
    turns_per_call: int,
    silent_s: float,
) -> dict[str, Any]:
    """For each N of ``levels``: N calls at once, one job process each."""
    from bench.stand_ins import LineConfig
    from bench.voice import call_turns, voice_line

    context = forkserver_context()
    out: dict[str, Any] = {}
    for level in levels:
        # the OpenAI stand-in every call of the level shares: "Okay." for every turn
        talking = voice_line(call_turns(0, turns_per_call * level), llm_ttft=0, tts_ttfb=0)
        openai = await stand_ins.open_line(LineConfig(replies=talking.replies, transcripts=()))
        env = line_env(openai, work / "data")
        async with worker_pool(work, idle=level, context=context, env=env) as pool:
            await pool.ready(level)
            launches = []
            for i in range(level):
                turns = call_turns(i, turns_per_call)
                line = await stand_ins.open_line(voice_line(turns, llm_ttft=0, tts_ttfb=0))
                job = {
                    "kind": "call",
                    "n": i,
                    "turns": [t.name for t in turns],
                    "silent_s": silent_s,
                    "deepgram": {
                        "deepgram_base_url": line.deepgram_base_url,
                        "deepgram_api_key": line.deepgram_api_key,
                    },
                }
                launches.append(pool.launch(f"calls{level}-{i}", **job))
                await asyncio.sleep(STAGGER_S)
            outs = await asyncio.gather(*launches)
            results = [await pool.result(o, within=600) for o in outs]
        out[str(level)] = results
    return out


def per_level(results: list[dict[str, Any]]) -> dict[str, Any]:
    """One concurrency level's figures: voice to voice over every call's turns, and the
    mean per call of memory (peak USS, PSS) and CPU (share of one core)."""
    from bench.run import summary
    from bench.voice import TurnHeard

    ok = [r for r in results if "error" not in r]
    turns = [TurnHeard(**t) for r in ok for t in r["turns"]]
    clean = [t.latency for t in turns if not t.premature and t.latency is not None]

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "calls": len(results),
        "errors": [r["error"] for r in results if "error" in r],
        "turns": len(turns),
        "premature": sum(t.premature for t in turns),
        "voice_to_voice_s": summary(clean),
        "uss_mb_per_call": mean([r["memory_peak"]["uss_mb"] for r in ok]),
        "pss_mb_per_call": mean([r["memory_peak"]["pss_mb"] for r in ok]),
        "rss_mb_per_call": mean([r["memory_peak"]["rss_mb"] for r in ok]),
        "cpu_talking_per_call": mean([r["talking"]["cpu_s"] / r["talking"]["wall_s"] for r in ok]),
        "cpu_silent_per_call": mean([r["silent"]["cpu_s"] / r["silent"]["wall_s"] for r in ok]),
    }


async def main() -> None:
    from bench.stand_ins import StandInProcess

    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        work = Path(tmp)
        os.environ[CONFIG_ENV] = str(work / "config.json")
        async with StandInProcess() as stand_ins:
            os.environ.update(stand_ins.livekit_env)
            result = await cold_starts(stand_ins, work, calls=4, tts_ttfb=0.2)
            levels = await concurrent_calls(
                stand_ins, work, levels=(1, 2), turns_per_call=4, silent_s=5
            )
    for level, results in levels.items():
        print(level, per_level(results))
    for s in result["calls"]:
        print(
            f"wait {s['wait_s'] * 1000:6.0f} ms  import {s['import_s'] * 1000:6.0f} ms  "
            f"prewarm {s['prewarm_s'] * 1000:6.0f} ms  "
            f"TTS requests {s['tts_requests']}"
        )


if __name__ == "__main__":
    asyncio.run(main())
