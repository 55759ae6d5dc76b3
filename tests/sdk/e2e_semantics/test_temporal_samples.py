"""What temporalio's published samples and their tests use, run on the real engine with only the
imports changed: the single ``arg=``, ``Client.config()``, the test environment's options and
helpers, ``raw_description``, ``map_histories``, handler lookups and ``is_continue_as_new_suggested``."""

from __future__ import annotations

import asyncio
import io
import logging
from datetime import timedelta

import pytest
from e2e.conftest import run_in_env

from cadenza import activity, workflow
from cadenza.common import SearchAttributeKey
from cadenza.converter import DataConverter
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Replayer, Worker

from .waits import activity_started, eventually


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@activity.defn
async def hang() -> None:
    await asyncio.sleep(3600)


@workflow.defn
class Echo:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(shout, arg=text, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class Lookups:
    def __init__(self) -> None:
        self.notes: list[str] = []
        self.done = False

    @workflow.signal
    def note(self, text: str) -> None:
        self.notes.append(text)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def seen(self) -> list[str]:
        return self.notes

    @workflow.run
    async def run(self) -> dict[str, object]:
        def dynamic(name: str, args: object) -> None:
            self.notes.append(f"dynamic {name}")

        workflow.set_dynamic_signal_handler(dynamic)
        await workflow.wait_condition(lambda: self.done)
        info = workflow.info()
        return {
            "note_bound": workflow.get_signal_handler("note") == self.note,
            "missing": workflow.get_query_handler("nothing") is None,
            "dynamic": workflow.get_dynamic_signal_handler() is dynamic,
            "length": info.get_current_history_length(),
            "suggested": info.is_continue_as_new_suggested(),
            "notes": self.notes,
        }


@workflow.defn
class Waits:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(hang, start_to_close_timeout=timedelta(seconds=3600))


def test_a_single_arg_keyword_and_a_copied_client() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        config = env.client.config()
        config["data_converter"] = DataConverter()
        copy = type(env.client)(**config)
        assert copy.namespace == env.client.namespace and copy.data_converter is config["data_converter"]
        async with Worker(copy, task_queue="samples", workflows=[Echo, Lookups], activities=[shout]):
            assert (
                await copy.execute_workflow(workflow=Echo.run, arg="hi", id="s-echo", task_queue="samples")
                == "HI"
            )
            handle = await copy.start_workflow(Lookups.run, id="s-lookups", task_queue="samples")
            await handle.signal(Lookups.note, arg="one")
            await handle.signal("unknown-signal")
            assert "one" in await handle.query(Lookups.seen)
            await handle.signal(Lookups.finish)
            result = await handle.result()
        assert result["note_bound"] and result["missing"] and result["dynamic"], result
        assert result["notes"] == ["one", "dynamic unknown-signal"], result
        assert isinstance(result["length"], int) and result["length"] > 3 and result["suggested"] is False
        with pytest.raises(TypeError, match="pass arguments one way"):
            await copy.start_workflow(Echo.run, "a", arg="b", id="s-both", task_queue="samples")
        # Every listed run's history, as temporalio's samples replay them (once visibility has it).
        listed = copy.list_workflows("WorkflowId = 's-echo'")
        await eventually(lambda: _listed(copy, "WorkflowId = 's-echo'"))
        histories = [h async for h in listed.map_histories()]
        assert [h.workflow_id for h in histories] == ["s-echo"]
        await Replayer(workflows=[Echo]).replay_workflows(histories)

    run_in_env(scenario)


def test_raw_description_shows_pending_activities_as_temporalio_tests_read_them() -> None:
    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="samples-raw", workflows=[Waits], activities=[hang]):
            handle = await env.client.start_workflow(Waits.run, id="s-raw", task_queue="samples-raw")
            await eventually(lambda: activity_started(handle, "hang"))
            raw = (await handle.describe()).raw_description
            assert [p.activity_type.name for p in raw.pending_activities] == ["hang"]
            assert raw.workflow_execution_info.execution.workflow_id == "s-raw"
            await handle.terminate("done")

    run_in_env(scenario)


def test_the_environment_takes_temporalio_options_and_helpers() -> None:
    key = SearchAttributeKey.for_keyword("SampleKeyword")

    async def scenario() -> None:
        env = await WorkflowEnvironment.start_time_skipping(
            dev_server_download_version="default", test_server_download_version="default", port=0
        )
        async with env:
            before = await env.get_current_time()
            await env.sleep(timedelta(hours=2))
            assert (await env.get_current_time() - before) >= timedelta(hours=2)
            with env.auto_time_skipping_disabled():
                pass
        local = await WorkflowEnvironment.start_local(search_attributes=[key], ui=False)
        async with local:
            names = await local.client.service.get_search_attributes()
            assert names.get("SampleKeyword") == "Keyword"
            wrapped = WorkflowEnvironment.from_client(local.client)
            assert wrapped.client is local.client and not wrapped.supports_time_skipping
            await wrapped.shutdown()  # the server is not its own: nothing stops
        with pytest.raises(TypeError, match="no_such_option"):
            await WorkflowEnvironment.start_local(no_such_option=1)

    asyncio.run(scenario())


@workflow.defn
class Breaks:
    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("broken on purpose")


def test_a_failed_workflow_task_is_marked_for_log_filters() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)

    class Raise(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            if getattr(record, "__temporal_error_identifier", None) == "WorkflowTaskFailure":
                record.levelno, record.levelname = logging.ERROR, "ERROR"
            return True

    handler.setLevel(logging.ERROR)
    root = logging.getLogger()
    root.addHandler(handler)
    worker_log = logging.getLogger("cadenza.worker")
    marker = Raise()
    worker_log.addFilter(marker)  # runs before the handlers' level check

    async def scenario(env: WorkflowEnvironment) -> None:
        async with Worker(env.client, task_queue="samples-log", workflows=[Breaks]):
            handle = await env.client.start_workflow(Breaks.run, id="s-log", task_queue="samples-log")
            await eventually(lambda: _has(stream, "broken on purpose"))
            await handle.terminate("done")

    try:
        run_in_env(scenario)
    finally:
        root.removeHandler(handler)
        worker_log.removeFilter(marker)


async def _listed(client: object, query: str) -> bool:
    return (await client.count_workflows(query)).count > 0  # type: ignore[attr-defined]


async def _has(stream: io.StringIO, text: str) -> bool:
    return text in stream.getvalue()
