"""The worker's own process model, for the bench: one job process per call.

A worker does not run its calls in one process. Its ``ProcPool`` forks a job process per
call from a forkserver that imported the plugins and the framework's warm-up
(``livekit.agents.ipc._preload``) once, runs ``prewarm`` in it before any call, and keeps
idle ones warmed. ``WorkerPool`` is that pool, the framework's own class with the
worker's own arguments (forkserver, the same preload list, the same timeouts); only the
job is a bench job (``job_main``): a fake job (the framework's mock room) whose
entrypoint runs one call in the shape of bench/harness.py against a stand-in line and
writes what it measured to a file the bench reads back.

Job processes are forked from a forkserver that started with the bench's environment,
so anything they need afterwards (the stand-ins' addresses, where to write) comes from a
JSON file named by ``BENCH_POOL_CONFIG``, which the bench rewrites between phases, and
from the job's metadata.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from livekit.agents import JobContext, JobExecutorType, JobProcess, Plugin, ipc
from livekit.agents.job import JobAcceptArguments, RunningJobInfo
from livekit.protocol import agent as agent_proto
from livekit.protocol import models

CONFIG_ENV = "BENCH_POOL_CONFIG"
# the worker's own arguments (AgentServer's defaults, agent.py's server)
INITIALIZE_TIMEOUT_S = 10.0
CLOSE_TIMEOUT_S = 10.0


def _config() -> dict[str, Any]:
    config: dict[str, Any] = json.loads(Path(os.environ[CONFIG_ENV]).read_text())
    return config


def _write(path: str | Path, data: dict[str, Any]) -> None:
    """Atomically: the bench polls for the file and must never read half of it."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _read_when_written(path: Path, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing written to {path} within {within} s")
        time.sleep(0.05)
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def job_prewarm(proc: JobProcess) -> None:
    """The job process's setup: the agent's own ``prewarm`` (or the starter's), timed.

    In a worker, agent.py is the main module, which each job process imports before its
    setup unless the forkserver preloaded it (``AgentServer(preload_modules=...)``); here
    that import is timed on its own (``import_s``)."""
    config = _config()
    os.environ.update(config["env"])
    started = time.monotonic()
    if config.get("agent", "ours") == "ours":
        import agent

        imported = time.monotonic()
        agent.prewarm(proc)
    else:
        from bench import baseline

        imported = time.monotonic()
        baseline.prewarm(proc)
    finished = time.monotonic()
    _write(
        Path(config["out_dir"]) / f"prewarm-{os.getpid()}.json",
        {
            "pid": os.getpid(),
            "import_s": imported - started,
            "prewarm_s": finished - imported,
            "ready_at": finished,
        },
    )


async def job_main(ctx: JobContext) -> None:
    """The job's entrypoint: what the job's metadata asks for, written to its ``out``."""
    job = json.loads(ctx.job.metadata)
    result: dict[str, Any] = {"pid": os.getpid(), "entry_at": time.monotonic()}
    try:
        if job["kind"] == "call":
            from bench.pool_calls import talk

            result.update(await talk(ctx, job))
    except Exception as e:  # reported to the bench, which counts it
        result["error"] = f"{type(e).__name__}: {e}"
    _write(job["out"], result)
    ctx.shutdown("the bench's job is done")


@dataclass
class WorkerPool:
    """The framework's ProcPool as a worker runs it (forkserver, preloaded plugins)."""

    pool: ipc.proc_pool.ProcPool
    out_dir: Path
    config_path: Path

    def configure(self, **config: Any) -> None:
        """What job processes read at prewarm and on each job (see the module's doc)."""
        _write(self.config_path, {"out_dir": str(self.out_dir), **config})

    async def launch(self, job_id: str, **job: Any) -> Path:
        """Hand the pool a job; returns the file its result will be written to."""
        out = self.out_dir / f"job-{job_id}.json"
        info = RunningJobInfo(
            accept_arguments=JobAcceptArguments(name="", identity=f"agent-{job_id}", metadata=""),
            job=agent_proto.Job(
                id=job_id,
                room=models.Room(sid=f"RM_{job_id}", name=f"bench-{job_id}"),
                type=agent_proto.JobType.JT_ROOM,
                metadata=json.dumps({**job, "out": str(out)}),
            ),
            url="",
            token="",
            worker_id="bench",
            fake_job=True,
        )
        await self.pool.launch_job(info)
        return out

    @staticmethod
    async def result(out: Path, *, within: float) -> dict[str, Any]:
        """A job's result, once written (the job is another process: a thread polls)."""
        return await asyncio.to_thread(_read_when_written, out, within)

    async def ready(self, idle: int, *, within: float = 60.0) -> None:
        """Until ``idle`` job processes have run prewarm and wait for a call."""
        warmed = asyncio.Event()
        self.pool.on("process_ready", lambda _proc: warmed.set())
        async with asyncio.timeout(within):
            while self.pool._warmed_proc_queue.qsize() < idle:
                warmed.clear()
                await warmed.wait()

    def prewarms(self) -> dict[int, dict[str, Any]]:
        """Every job process's prewarm so far, by pid."""
        found = {}
        for path in self.out_dir.glob("prewarm-*.json"):
            data = json.loads(path.read_text())
            found[data["pid"]] = data
        return found

    def job_pids(self) -> list[int]:
        return [p.pid for p in self.pool.processes if p.pid is not None]


def forkserver_context() -> mp.context.BaseContext:
    """The worker's multiprocessing context: a forkserver preloading what it preloads
    (worker.py: the registered plugins' packages, agent.py's ``preload_modules``, the
    framework's warm-up, the freeze). The worker's main module is agent.py, so its
    "__main__" is "agent" here; the bench's own main module is preloaded too, so that job
    processes do not import it again (it must import little at its top)."""
    import agent  # registers the plugins, as the worker's main module does

    context = mp.get_context("forkserver")
    packages = [p.package for p in Plugin.registered_plugins]
    ours = ["agent" if m == "__main__" else m for m in agent.server._preload_modules]
    framework = ["livekit.agents.ipc._preload", "livekit.agents.ipc._preload_freeze"]
    context.set_forkserver_preload([*dict.fromkeys([*packages, *ours, "__main__"]), *framework])
    return context


@asynccontextmanager
async def worker_pool(
    out_dir: Path, *, idle: int, context: mp.context.BaseContext, **config: Any
) -> AsyncIterator[WorkerPool]:
    """A ProcPool keeping ``idle`` job processes warmed, which read ``config`` (see
    ``WorkerPool.configure``) as they warm up. ``out_dir`` is where job processes write;
    ``BENCH_POOL_CONFIG`` must already name ``out_dir/config.json`` in the environment
    the forkserver started with."""
    config_path = out_dir / "config.json"
    if os.environ.get(CONFIG_ENV) != str(config_path):
        raise RuntimeError(f"{CONFIG_ENV} must be {config_path} before the forkserver starts")
    pool = ipc.proc_pool.ProcPool(
        initialize_process_fnc=job_prewarm,
        job_entrypoint_fnc=job_main,
        session_end_fnc=None,
        simulation_end_fnc=None,
        num_idle_processes=idle,
        initialize_timeout=INITIALIZE_TIMEOUT_S,
        close_timeout=CLOSE_TIMEOUT_S,
        session_end_timeout=300.0,
        inference_executor=None,
        job_executor_type=JobExecutorType.PROCESS,
        mp_ctx=context,
        memory_warn_mb=1000,
        memory_limit_mb=0,
        http_proxy=None,
        loop=asyncio.get_running_loop(),
    )
    handle = WorkerPool(pool, out_dir, config_path)
    handle.configure(**config)  # before any job process warms up
    await pool.start()
    try:
        yield handle
    finally:
        await pool.aclose()
        for proc in list(pool.processes):
            await proc.aclose()
