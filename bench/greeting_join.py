"""The greeting as the caller hears it: from the moment they join to the first audible
frame of the agent's voice.

The job is the worker's own: ``agent.answer_call``, run in a job context whose room is
the stand-in room (tests/support/stand_in_room.py), with what ``agent.prewarm`` left in
the job process (settings, VAD, greetings from the data directory's store, OpenAI
clients, the message store). The job waits for its caller; the caller joins as LiveKit
SIP presents one (a SIP participant with its ``sip.*`` attributes) and publishes their
phone line. From there everything is the call's real path: finding the caller, their
attributes, building the session, RoomIO linking the caller's track and publishing the
agent's, the greeting. The clock stops at the first audible frame that comes out of the
agent's published track, read by the room as a subscriber would hear it.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from unittest import mock

from livekit.agents import JobExecutorType, JobProcess
from livekit.agents.testing import fake_job_context

import agent  # its plugins register on the main thread; prewarm runs in another
from tests.support.caller_audio import CallerLine
from tests.support.stand_in_room import StandInRoom, phone_caller

WAIT_LIMIT_S = 10.0


def prewarmed(env: dict[str, str]) -> JobProcess:
    """A job process's state after ``agent.prewarm`` (run in a thread: it runs its own
    event loop, as it does in a worker)."""
    proc = JobProcess(executor_type=JobExecutorType.PROCESS, user_arguments=None, http_proxy=None)
    with mock.patch.dict(os.environ, env):
        agent.prewarm(proc)
    return proc


async def one_greeting(proc: JobProcess, n: int) -> float:
    """Seconds from the caller joining to the first audible frame of the greeting."""
    room = StandInRoom(f"join-{n}", listen=True)
    line = CallerLine()
    published = asyncio.Event()
    room.on("local_track_published", lambda *_: published.set())
    try:
        with fake_job_context(room=room, job_id=f"bench-join-{n}") as ctx:
            ctx.proc.userdata.update(proc.userdata)
            job = asyncio.create_task(agent.answer_call(ctx))
            await asyncio.sleep(0.2)  # the job is up, waiting for its caller
            joined = time.monotonic()
            caller = room.join(phone_caller(identity=f"sip_join_{n}"))
            room.publish_microphone(caller.identity, line)
            async with asyncio.timeout(WAIT_LIMIT_S):
                await published.wait()
            track = room.local_participant.publishing("roomio_audio")
            assert track is not None and track.audio is not None
            audio = track.audio
            await audio.wait_until(lambda: any(h.audible for h in audio.frames))
            first = next(h.at for h in audio.frames if h.audible)
            room.hang_up(caller.identity)
            await job
            for callback in ctx._shutdown_callbacks:
                await callback("the bench hung up")
    finally:
        await line.aclose()
        await room.aclose()
    return first - joined


async def greeting_from_join(proc: JobProcess, *, calls: int) -> dict[str, Any]:
    """``calls`` calls, one after another, in the job process state ``proc``."""
    from bench.run import summary

    samples = [await one_greeting(proc, n) for n in range(calls)]
    return {"join_to_first_audible_s": summary(samples)}
