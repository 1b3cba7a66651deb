"""A bench call inside a job process of the worker's pool (bench/pool.py).

The job process has run the agent's own ``prewarm``: its settings, Silero VAD, greetings
and OpenAI clients (pointed at the OpenAI stand-in every call of the run shares: its
replies are all "Okay.") are what the call uses. The call's Deepgram stand-in is its own
(``job["deepgram"]``), scripted with the call's turns. The caller says the turns
(bench/voice.py), then stays silent on the line for ``job["silent_s"]`` seconds, and the
job measures itself: CPU time of the whole process (every thread) while talking and
while silent, and its private (USS) and proportional (PSS) memory, sampled throughout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import time
from pathlib import Path
from typing import Any

from livekit.agents import JobContext
from livekit.agents.utils import http_context

SAMPLE_EVERY_S = 0.5


def memory_mb() -> dict[str, float]:
    """USS (private clean + dirty) and PSS of this process, from smaps_rollup (MB)."""
    fields: dict[str, float] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[-1] == "kB":
            fields[key] = int(parts[0]) / 1024
    return {
        "uss_mb": fields.get("Private_Clean", 0.0) + fields.get("Private_Dirty", 0.0),
        "pss_mb": fields.get("Pss", 0.0),
        "rss_mb": fields.get("Rss", 0.0),
    }


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _sample(peaks: dict[str, float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        for key, value in memory_mb().items():
            peaks[key] = max(peaks.get(key, 0.0), value)
        try:
            async with asyncio.timeout(SAMPLE_EVERY_S):
                await stop.wait()
        except TimeoutError:
            pass


async def talk(ctx: JobContext, job: dict[str, Any]) -> dict[str, Any]:
    from bench.harness import Ours, answer
    from bench.voice import install_eot_probe
    from bench.voice import talk as say_turns
    from tests.support.speech_set import SPEECH_SET

    install_eot_probe()
    userdata = ctx.proc.userdata
    settings = userdata["settings"]
    secrets = dataclasses.replace(settings.secrets, **job["deepgram"])
    settings = dataclasses.replace(settings, secrets=secrets)
    turns = [next(t for t in SPEECH_SET if t.name == name) for name in job["turns"]]
    ours = Ours(userdata["vad"], userdata["greetings"])
    peaks: dict[str, float] = {}
    stop = asyncio.Event()
    sampler = asyncio.create_task(_sample(peaks, stop))
    result: dict[str, Any] = {"memory_at_start": memory_mb()}
    try:
        async with http_context.open():
            parts = ours.parts(
                settings,
                n=job["n"],
                room_name=f"pool-{job['n']}",
                prewarmed=(userdata["llm"], userdata["tts"]),
            )
            async with answer(parts, room_name=f"pool-{job['n']}") as c:
                cpu0, t0 = cpu_s(), time.monotonic()
                heard = await say_turns(c, "ours", turns)
                cpu1, t1 = cpu_s(), time.monotonic()
                await asyncio.sleep(job["silent_s"])  # the caller is silent on an open line
                cpu2, t2 = cpu_s(), time.monotonic()
                result.update(
                    turns=[dataclasses.asdict(t) for t in heard],
                    talking={"cpu_s": cpu1 - cpu0, "wall_s": t1 - t0},
                    silent={"cpu_s": cpu2 - cpu1, "wall_s": t2 - t1},
                    memory_in_call=memory_mb(),
                )
    finally:
        stop.set()
        await sampler
    result["memory_peak"] = peaks
    return result
