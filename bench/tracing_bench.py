"""What OpenTelemetry tracing costs: hello world over gRPC against a dev server, tracing off and on.

    python bench/tracing_bench.py [--otlp-endpoint URL] [--workflows N] [--concurrency C] [--rounds R]

Each round starts a fresh dev server (SQLite on a temporary file, gRPC on a free port) in this
process, a client and a worker over gRPC, runs a warm-up, then N hello-world workflows (one activity
each) C at a time, and reports workflows/s. Rounds alternate off and on:

  off  the server without ``--otlp-endpoint`` and a client without interceptors (the defaults)
  on   the server tracing every call and its store calls (sampling 1.0), and the client and worker
       with ``TracingInterceptor``, all exporting over OTLP/gRPC in batches to ``--otlp-endpoint``
       (default: the dev Jaeger of `cadenza dev services up jaeger`, 127.0.0.1:14317)

It prints each round and the medians; figures go to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine import tracing
from cadenza.engine.tracing import TracingSettings
from cadenza.ops.devserver import ServerProcess, ServerSettings
from cadenza.worker import Worker

T = timedelta(seconds=30)


@activity.defn
async def hello(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Hello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(hello, name, start_to_close_timeout=T)


async def _round(on: bool, endpoint: str, workflows: int, concurrency: int, tag: str) -> float:
    provider = None
    interceptors = []
    if on:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from cadenza.contrib.opentelemetry import TracingInterceptor

        provider = TracerProvider(resource=Resource.create({"service.name": "tracing-bench"}))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
        interceptors.append(TracingInterceptor(provider.get_tracer("bench")))
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServerSettings(
            port=0,
            db_filename=os.path.join(tmp, "bench.db"),
            tracing=TracingSettings(endpoint, service_name="tracing-bench-server") if on else None,
        )
        server = ServerProcess(settings)
        port = await server.start()
        client = await Client.connect(f"127.0.0.1:{port}", interceptors=interceptors)
        try:
            async with Worker(client, task_queue="bench", workflows=[Hello], activities=[hello]):
                sem = asyncio.Semaphore(concurrency)

                async def one(i: int) -> None:
                    async with sem:
                        await client.execute_workflow(Hello.run, "x", id=f"{tag}-{i}", task_queue="bench")

                await asyncio.gather(*(one(-i - 1) for i in range(min(200, workflows))))  # warm-up
                t0 = time.perf_counter()
                await asyncio.gather(*(one(i) for i in range(workflows)))
                elapsed = time.perf_counter() - t0
        finally:
            await client.service.close()  # type: ignore[attr-defined]
            await server.stop()
            if provider is not None:
                provider.shutdown()
            tracing.shutdown()
    return workflows / elapsed


async def main(args: argparse.Namespace) -> None:
    results: dict[bool, list[float]] = {False: [], True: []}
    for r in range(args.rounds):
        for on in (False, True):
            rate = await _round(on, args.otlp_endpoint, args.workflows, args.concurrency, f"r{r}-{int(on)}")
            results[on].append(rate)
            print(f"round {r + 1}: tracing {'on ' if on else 'off'}: {rate:,.0f} workflows/s", flush=True)
    off, on = statistics.median(results[False]), statistics.median(results[True])
    print(
        f"hello world over gRPC, {args.workflows} workflows at concurrency {args.concurrency}, "
        f"median of {args.rounds}: tracing off {off:,.0f}/s, on {on:,.0f}/s ({(on - off) / off:+.1%})"
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--otlp-endpoint", default="http://127.0.0.1:14317")
    ap.add_argument("--workflows", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(main(ap.parse_args()))
