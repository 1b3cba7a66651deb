"""Memory of one job process, idle and with k active calls; run by bench/run.py.

A fresh interpreter, so nothing the bench itself holds (its other calls, its stand-in
clients, its samples) is counted. It becomes what a worker's job process is before its
call arrives: the framework's own process warm-up (``livekit.agents.ipc._preload``, which
a job process imports, and under a forkserver inherits, frozen) and the agent's ``prewarm()``
(settings, Silero VAD and, for our agent, the synthesized greetings). That RSS is *idle*.
Then it answers calls, each on its own stand-in line, the caller saying "yes" and the
agent answering over and over; once every call has taken a few turns, RSS is sampled.

Input: one JSON object on stdin (see ``run.py``'s ``memory_phase``); output: one JSON
object on the last line of stdout. RSS comes from /proc/self/status (VmRSS).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLES = 5
SAMPLE_EVERY_S = 0.2


def status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (kB there), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def settle() -> float:
    """RSS after a garbage collection and a moment for background threads to go quiet."""
    gc.collect()
    time.sleep(1.0)
    return status_mb("VmRSS")


async def sample_rss() -> float:
    """The highest of several RSS readings while calls are running."""
    readings = []
    for _ in range(SAMPLES):
        readings.append(status_mb("VmRSS"))
        await asyncio.sleep(SAMPLE_EVERY_S)
    return max(readings)


async def active_calls(
    contender: Any, settings: Any, lines: list[Any], ks: list[int], turns_first: int, gap: float
) -> dict[str, float]:
    """RSS with k calls running, for each k in ``ks`` (calls are added, never stopped)."""
    from bench.harness import CALLER_SAYS, answer, line_settings

    turns = [0] * max(ks)
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []

    async def run_call(i: int) -> None:
        room_name = f"{contender.name}-memory-{i}"
        parts = contender.parts(line_settings(settings, lines[i]), n=i, room_name=room_name)
        async with answer(parts, room_name=room_name) as current:
            await current.playout.finished(1)  # the greeting
            while not stop.is_set():
                await asyncio.sleep(gap)
                await current.line.speak(CALLER_SAYS)
                await current.playout.finished(turns[i] + 2)
                turns[i] += 1

    by_k: dict[str, float] = {}
    try:
        for k in ks:
            started = len(tasks)
            tasks += [asyncio.create_task(run_call(i)) for i in range(started, k)]
            async with asyncio.timeout(120):
                while min(turns[:k]) < turns_first:
                    if failed := [t for t in tasks if t.done()]:
                        failed[0].result()  # raises what ended the call
                        raise RuntimeError("a call ended early")
                    await asyncio.sleep(0.1)
            by_k[str(k)] = await sample_rss()
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return by_k


def main() -> None:
    """Warm up like a job process, measure idle RSS, then RSS with k calls; print JSON."""
    job = json.loads(sys.stdin.read())
    # The bench prints the figures; a probe's log lines would only interleave with them.
    logging.basicConfig(level=logging.ERROR)
    os.environ.update(job["env"])  # provider keys, the first line's URLs, the LiveKit stand-in
    started = time.monotonic()

    # a job process's image: the framework's preload, frozen as a forkserver freezes it
    import livekit.agents.ipc._preload
    import livekit.agents.ipc._preload_freeze  # noqa: F401
    from livekit.agents import JobProcess, utils

    from bench.harness import Baseline, Ours
    from bench.stand_ins import LineAddress

    proc = cast(JobProcess, SimpleNamespace(userdata={}))
    if job["agent"] == "ours":
        import agent

        agent.prewarm(proc)
        settings = proc.userdata["settings"]
        contender: Any = Ours(proc.userdata["vad"], proc.userdata["greetings"])
    else:
        from bench import baseline
        from config import load_settings

        baseline.prewarm(proc)
        settings = load_settings(os.environ, need_livekit=False)
        contender = Baseline(proc.userdata["vad"])
    warmed_s = time.monotonic() - started
    idle = settle()

    lines = [LineAddress(**line) for line in job["lines"]]

    async def run() -> dict[str, float]:
        async with utils.http_context.open():
            return await active_calls(
                contender, settings, lines, job["ks"], job["turns_first"], job["gap"]
            )

    by_k = asyncio.run(run())
    print(
        json.dumps(
            {
                "agent": job["agent"],
                "idle_rss_mb": idle,
                "rss_mb_by_calls": by_k,
                "peak_rss_mb": status_mb("VmHWM"),
                "warm_up_s": warmed_s,
            }
        )
    )


if __name__ == "__main__":
    main()
