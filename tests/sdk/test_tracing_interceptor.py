"""`cadenza.contrib.opentelemetry.TracingInterceptor` on the in-process engine, spans kept in memory.

The video pipeline's spans form one trace (start, run, each activity's schedule and run); a worker
without a cache replays the whole history on every task and still adds no span twice.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from e2e.conftest import run_in_env
from e2e.workflows import (
    ANALYSIS_QUEUE,
    HelloWorkflow,
    PipelineResult,
    VideoPipeline,
    classify,
    detect_watermark,
    say_hello,
    transcode,
    update_media_db,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.contrib.opentelemetry import TracingInterceptor
from cadenza.testing import WorkflowEnvironment
from cadenza.worker import Worker


def _tracing() -> tuple[TracingInterceptor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingInterceptor(provider.get_tracer("test")), exporter


def _names(spans: tuple[ReadableSpan, ...]) -> Counter[str]:
    return Counter(s.name for s in spans)


def test_video_pipeline_is_one_trace_with_every_activity() -> None:
    tracing, exporter = _tracing()

    async def scenario(env: WorkflowEnvironment) -> None:
        client = Client(env.client.service, namespace=env.client.namespace, interceptors=[tracing])
        async with (
            Worker(
                client, task_queue="video", workflows=[VideoPipeline], activities=[transcode, update_media_db]
            ),
            Worker(client, task_queue=ANALYSIS_QUEUE, activities=[detect_watermark, classify]),
        ):
            handle = await client.start_workflow(
                VideoPipeline.run, "v-7-wm", id="video-7", task_queue="video"
            )
            result = await handle.result()
            assert isinstance(result, PipelineResult)
            await handle.query(VideoPipeline.progress)

    run_in_env(scenario)
    spans = exporter.get_finished_spans()
    names = _names(spans)
    assert names["StartWorkflow:VideoPipeline"] == 1
    assert names["RunWorkflow:VideoPipeline"] == 1
    assert names["QueryWorkflow:progress"] == 1
    for activity_type, count in (
        ("detect_watermark", 1),
        ("classify", 1),
        ("transcode", 12),
        ("update_media_db", 1),
    ):
        assert names[f"StartActivity:{activity_type}"] == count, names
        assert names[f"RunActivity:{activity_type}"] == count, names
    traced = [s for s in spans if not s.name.startswith(("QueryWorkflow", "HandleQuery"))]
    assert len({s.context.trace_id for s in traced}) == 1
    by_id = {s.context.span_id: s for s in spans}
    run = next(s for s in spans if s.name == "RunWorkflow:VideoPipeline")
    start = next(s for s in spans if s.name == "StartWorkflow:VideoPipeline")
    assert run.parent is not None and run.parent.span_id == start.context.span_id
    for s in spans:
        if s.name.startswith("RunActivity:"):
            assert s.parent is not None
            parent = by_id[s.parent.span_id]
            assert parent.name == s.name.replace("RunActivity", "StartActivity")
            assert parent.parent is not None and parent.parent.span_id == run.context.span_id
            assert s.attributes is not None and s.attributes["cadenzaWorkflowID"] == "video-7"


def test_replay_makes_no_duplicate_spans() -> None:
    tracing, exporter = _tracing()

    async def scenario(env: WorkflowEnvironment) -> None:
        client = Client(env.client.service, namespace=env.client.namespace, interceptors=[tracing])
        # No cache: every workflow task replays the run from its first event.
        async with (
            Worker(
                client,
                task_queue="video",
                workflows=[VideoPipeline],
                activities=[transcode, update_media_db],
                max_cached_workflows=0,
            ),
            Worker(client, task_queue=ANALYSIS_QUEUE, activities=[detect_watermark, classify]),
        ):
            await client.execute_workflow(VideoPipeline.run, "v-8", id="video-8", task_queue="video")

    run_in_env(scenario)
    names = _names(exporter.get_finished_spans())
    assert names["RunWorkflow:VideoPipeline"] == 1
    assert names["StartActivity:transcode"] == 12
    assert names["RunActivity:transcode"] == 12
    assert names["StartActivity:update_media_db"] == 1


def test_hello_world_spans_and_no_interceptor_means_no_header() -> None:
    tracing, exporter = _tracing()

    async def scenario(env: WorkflowEnvironment) -> None:
        plain = env.client
        async with Worker(plain, task_queue="hello", workflows=[HelloWorkflow], activities=[say_hello]):
            await plain.execute_workflow(HelloWorkflow.run, "x", id="plain", task_queue="hello")
            events = (await plain.get_workflow_handle("plain").fetch_history()).events
            assert events[0].attributes["header"] == {}
        traced = Client(env.client.service, namespace=env.client.namespace, interceptors=[tracing])
        async with Worker(traced, task_queue="hello", workflows=[HelloWorkflow], activities=[say_hello]):
            await traced.execute_workflow(HelloWorkflow.run, "y", id="traced", task_queue="hello")
            events = (await traced.get_workflow_handle("traced").fetch_history()).events
            assert "_tracer-data" in events[0].attributes["header"]

    run_in_env(scenario)
    names = _names(exporter.get_finished_spans())
    assert names == Counter(
        {
            "StartWorkflow:HelloWorkflow": 1,
            "RunWorkflow:HelloWorkflow": 1,
            "StartActivity:say_hello": 1,
            "RunActivity:say_hello": 1,
        }
    )


@activity.defn
async def shout(value: str) -> str:
    return value.upper()


@workflow.defn
class TracedChild:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_local_activity(
            shout, value, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class TracedParent:
    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.released)
        return await workflow.execute_child_workflow(TracedChild.run, "hi", id="traced-child")

    @workflow.signal
    def ping(self) -> None:
        pass

    @workflow.update
    def release(self) -> None:
        self.released = True


def test_children_local_activities_and_handlers_join_the_trace() -> None:
    tracing, exporter = _tracing()

    async def scenario(env: WorkflowEnvironment) -> None:
        client = Client(env.client.service, namespace=env.client.namespace, interceptors=[tracing])
        async with Worker(
            client, task_queue="traced", workflows=[TracedParent, TracedChild], activities=[shout]
        ):
            handle = await client.start_workflow(TracedParent.run, id="traced-parent", task_queue="traced")
            await handle.signal(TracedParent.ping)
            await handle.execute_update(TracedParent.release)
            assert await handle.result() == "HI"

    run_in_env(scenario)
    spans = exporter.get_finished_spans()
    names = _names(spans)
    for name in (
        "HandleSignal:ping",
        "HandleUpdate:release",
        "StartChildWorkflow:TracedChild",
        "RunWorkflow:TracedChild",
        "StartActivity:shout",
        "RunActivity:shout",
    ):
        assert names[name] >= 1, f"no {name} span: {dict(names)}"
    # The child's run and its local activity are in the parent's trace, under the child's start.
    by_name = {s.name: s for s in spans}
    trace = by_name["StartWorkflow:TracedParent"].context.trace_id
    assert {by_name[n].context.trace_id for n in ("RunWorkflow:TracedChild", "RunActivity:shout")} == {trace}
    child_run = by_name["RunWorkflow:TracedChild"]
    assert child_run.parent is not None
    assert child_run.parent.span_id == by_name["StartChildWorkflow:TracedChild"].context.span_id
