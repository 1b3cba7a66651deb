"""Measurements with the worker's process model (bench/pool.py): one job process per call.

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
    async with worker_pool(work, idle=0, context=forkserver_context()) as pool:
        pool.configure(env=line_env(line, data_dir))
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


async def main() -> None:
    from bench.stand_ins import StandInProcess

    with tempfile.TemporaryDirectory(prefix="bench-pool-") as tmp:
        work = Path(tmp)
        os.environ[CONFIG_ENV] = str(work / "config.json")
        async with StandInProcess() as stand_ins:
            os.environ.update(stand_ins.livekit_env)
            result = await cold_starts(stand_ins, work, calls=4, tts_ttfb=0.2)
    for s in result["calls"]:
        print(
            f"wait {s['wait_s'] * 1000:6.0f} ms  import {s['import_s'] * 1000:6.0f} ms  "
            f"prewarm {s['prewarm_s'] * 1000:6.0f} ms  "
            f"TTS requests {s['tts_requests']}"
        )


if __name__ == "__main__":
    asyncio.run(main())
