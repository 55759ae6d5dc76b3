"""The time-skipping environment skips time only while a client waits on a workflow's result or the
test sleeps (``env.sleep``), as temporalio's time-skipping test server does; a cron workflow nobody
waits on does not run over and over."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.common import RetryPolicy
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker

QUEUE = "skipping"
runs: set[str] = set()


@workflow.defn
class EveryMinute:
    @workflow.run
    async def run(self) -> str:
        runs.add(workflow.info().run_id)
        return workflow.now().isoformat()


def test_a_cron_workflow_nobody_waits_on_does_not_skip_time() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        runs.clear()
        async with Worker(env.client, task_queue=QUEUE, workflows=[EveryMinute]):
            handle = await env.client.start_workflow(
                EveryMinute.run, id="every-minute", task_queue=QUEUE, cron_schedule="* * * * *"
            )
            await asyncio.sleep(0.5)
            # The first run waits for the next minute boundary, and nothing skips to it.
            assert len(runs) <= 1, len(runs)
            # Waiting on a result skips time until the run closes.
            await handle.result(follow_runs=False)
            after_wait = len(runs)
            assert after_wait >= 1
            await asyncio.sleep(0.5)
            assert len(runs) - after_wait <= 1, len(runs) - after_wait
            # Sleeping in the environment moves time by that much: three more fire times.
            before_sleep = len(runs)
            await env.sleep(180)
            await asyncio.sleep(0.2)
            assert 2 <= len(runs) - before_sleep <= 4, len(runs) - before_sleep
            await env.client.get_workflow_handle("every-minute").terminate("enough")

    run_in_env(scenario, time_skipping=True, timeout=30)


@activity.defn
async def flaky_once(token: str) -> str:
    attempts.append(token)
    if len(attempts) == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


attempts: list[str] = []


@workflow.defn
class NapsThenWorks:
    @workflow.run
    async def run(self) -> str:
        await asyncio.sleep(3600)
        first = workflow.now()
        await asyncio.sleep(3600)
        assert (workflow.now() - first).total_seconds() >= 3600
        return await workflow.execute_activity(
            flaky_once,
            "x",
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


def test_env_sleep_fires_the_timers_it_passes_in_order_and_real_time_still_runs() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        attempts.clear()
        async with Worker(env.client, task_queue=QUEUE, workflows=[NapsThenWorks], activities=[flaky_once]):
            handle = await env.client.start_workflow(NapsThenWorks.run, id="naps", task_queue=QUEUE)
            await asyncio.sleep(0.2)
            assert (await handle.describe()).status == "RUNNING"
            start = env.clock.now_us()
            # Both timers fire within the two hours slept: the second starts when the first fires.
            await env.sleep(7200)
            assert env.clock.now_us() - start >= 7200 * 1_000_000
            # The activity's retry waits 200 ms of real time, with nobody skipping: it still runs.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while len(attempts) < 2 and loop.time() < deadline:
                await asyncio.sleep(0.02)
            assert attempts == ["x", "x"]
            assert await handle.result() == "ok"

    run_in_env(scenario, time_skipping=True, timeout=30)


@workflow.defn
class NapsALittleLonger:
    @workflow.run
    async def run(self) -> str:
        await asyncio.sleep(3600.3)
        return "rested"


def test_a_deadline_just_past_a_sleep_comes_in_real_time() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue=QUEUE, workflows=[NapsALittleLonger]):
            handle = await env.client.start_workflow(NapsALittleLonger.run, id="longer", task_queue=QUEUE)
            await asyncio.sleep(0.2)  # the timer is started before the clock moves
            await env.sleep(3600)
            # Nobody waits on the result, so nothing skips: the last 0.3 s pass in real time.
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 5
            while (await handle.describe()).status == "RUNNING" and loop.time() < deadline:
                await asyncio.sleep(0.05)
            assert (await handle.describe()).status == "COMPLETED"

    run_in_env(scenario, time_skipping=True, timeout=30)
