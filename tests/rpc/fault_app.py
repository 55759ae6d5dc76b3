"""Workflows and a worker process for the fault tests, importable by the tests and runnable:

    python -m rpc.fault_app ADDRESS worker     activities and workflows of both scenarios
    python -m rpc.fault_app ADDRESS hang       only ``fragile_step``, which hangs on its first attempt

Every activity execution prints ``STARTED <workflow id> <step> <attempt>`` so the test knows when a
task is in this process's hands.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.common import RetryPolicy
from cadenza.worker import Worker

QUEUE = "faults"
HANG = False


@activity.defn
async def fragile_step(name: str) -> str:
    info = activity.info()
    print(f"STARTED {info.workflow_id} fragile {info.attempt}", flush=True)
    if HANG and info.attempt == 1:
        await asyncio.sleep(3600)  # the process is killed before this returns
    return f"{name} done on attempt {info.attempt}"


@workflow.defn
class FragileWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            fragile_step,
            name,
            start_to_close_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=10)),
        )


@activity.defn
async def step(workflow_id: str, i: int) -> str:
    await asyncio.sleep(0.02)
    return f"{workflow_id}:{i}"


@workflow.defn
class ThreeSteps:
    @workflow.run
    async def run(self, workflow_id: str) -> list[str]:
        return [
            await workflow.execute_activity(step, workflow_id, i, start_to_close_timeout=timedelta(seconds=2))
            for i in range(3)
        ]


@workflow.defn
class Waiter:
    """Waits for ``release``; ``status`` answers where it is. For the CLI's signal, query, update
    and cancel."""

    def __init__(self) -> None:
        self.released_by = ""

    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.wait_condition(lambda: bool(self.released_by))
        return f"{name} released by {self.released_by}"

    @workflow.signal
    def release(self, by: str) -> None:
        self.released_by = by

    @workflow.query
    def status(self) -> str:
        return f"released by {self.released_by}" if self.released_by else "waiting"

    @workflow.update
    def greet(self, who: str) -> str:
        return f"hello {who}, still {self.status()}"

    @greet.validator
    def check_greet(self, who: str) -> None:
        if not who:
            raise ValueError("who is required")


async def main(address: str, mode: str) -> None:
    global HANG
    HANG = mode == "hang"
    # Many retries: the fault tests restart the server under this worker.
    client = await Client.connect(address, retries=50)
    if HANG:
        worker = Worker(client, task_queue=QUEUE, activities=[fragile_step])
    else:
        worker = Worker(
            client,
            task_queue=QUEUE,
            workflows=[FragileWorkflow, ThreeSteps, Waiter],
            activities=[fragile_step, step],
        )
    async with worker:
        print("READY", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
