"""A file-backed server with a worker, run as a separate process by the durability test.

    python durability_app.py DB LOG start N      starts N workflows, prints "ACK <id>" per start
    python durability_app.py DB LOG resume IDS    waits for the listed workflows, prints "DONE <id>"

Each workflow runs three activities in sequence; every execution of an activity appends
"<workflow id> <step>" to LOG, so the test can count executions.
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta

from cadenza import activity, workflow
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

LOG = ""


@activity.defn
async def step(workflow_id: str, i: int) -> str:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{workflow_id} {i}\n".encode())
    finally:
        os.close(fd)
    await asyncio.sleep(0.05)
    return f"{workflow_id}:{i}"


@workflow.defn
class ThreeSteps:
    @workflow.run
    async def run(self, workflow_id: str) -> list[str]:
        out = []
        for i in range(3):
            out.append(
                await workflow.execute_activity(
                    step, workflow_id, i, start_to_close_timeout=timedelta(seconds=2)
                )
            )
        return out


async def main() -> None:
    global LOG
    db, LOG, mode, arg = sys.argv[1:5]
    env = await WorkflowEnvironment.start_local(db_path=db)
    async with Worker(env.client, task_queue="durable", workflows=[ThreeSteps], activities=[step]):
        if mode == "start":

            async def start(i: int) -> None:
                wid = f"durable-{i}"
                await env.client.start_workflow(
                    ThreeSteps.run, wid, id=wid, task_queue="durable", task_timeout=timedelta(seconds=2)
                )
                print(f"ACK {wid}", flush=True)

            await asyncio.gather(*(start(i) for i in range(int(arg))))
            await asyncio.sleep(3600)  # until killed
        else:
            ids = [line.strip() for line in open(arg) if line.strip()]

            async def wait(wid: str) -> None:
                result = await env.client.get_workflow_handle(wid).result()
                assert result == [f"{wid}:{i}" for i in range(3)], result
                print(f"DONE {wid}", flush=True)

            await asyncio.gather(*(wait(w) for w in ids))
    await env.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
