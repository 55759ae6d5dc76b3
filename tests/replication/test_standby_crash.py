"""kill -9 of a standby in the middle of the stream: three ``cadenza server start-dev --cluster``
processes with file databases share one embedded replication log; while the active cluster takes
a steady stream of signals, the standby is killed with SIGKILL, the stream goes on, and the standby
is restarted on the same files and port. It resumes from its committed offsets: every history ends
up exactly the active's, with no event twice and none missing, and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from collections import Counter
from pathlib import Path

from rpc.devserver import DevServer, cadenza_argv, env

from cadenza.client import Client
from cadenza.engine.bus import EmbeddedBus
from cadenza.exceptions import NamespaceNotFoundError, WorkflowNotFoundError
from cadenza.schemas.service import NamespaceInfo

from .test_bad_input import dead_letters

WORKFLOWS = [f"crash-{i}" for i in range(5)]


async def _until(check, timeout: float, what: str):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await check()
        if result:
            return result
        assert loop.time() < deadline, f"not reached within {timeout} s: {what}"
        await asyncio.sleep(0.1)


async def _history_json(client: Client, workflow_id: str) -> str | None:
    """What ``cadenza wf show -w ID -o json`` prints, or None while the run is not there."""
    try:
        return (await client.get_workflow_handle(workflow_id).fetch_history()).to_json()
    except (WorkflowNotFoundError, NamespaceNotFoundError):
        return None


def _signals_in(history_json: str) -> list[str]:
    events = json.loads(history_json)["events"]
    ids = [e["event_id"] for e in events]
    assert ids == list(range(1, len(ids) + 1)), f"event ids not dense: {ids}"
    out = []
    for e in events:
        if e["event_type"] == "WorkflowExecutionSignaled":
            (payload,) = e["attributes"]["input"]
            out.append(json.loads(base64.b64decode(payload["data"]["$bytes"])))
    return out


def _show(address: str, workflow_id: str) -> str:
    proc = subprocess.run(
        [
            *cadenza_argv(),
            "--address",
            address,
            "--ns",
            "video",
            "wf",
            "show",
            "-w",
            workflow_id,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        env=env(),
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_standby_killed_mid_stream_catches_up_without_duplicates_or_gaps(tmp_path: Path) -> None:
    log = tmp_path / "replication.bus"

    def server(name: str) -> DevServer:
        return DevServer(
            ["--cluster", name, "--replication-log", str(log), "--db-filename", str(tmp_path / f"{name}.db")]
        )

    servers = {name: server(name).start() for name in ("active", "standby", "other")}
    standby = servers["standby"]
    port = standby.port

    async def main() -> None:
        active = await Client.connect(servers["active"].address, namespace="video")
        on_standby = await Client.connect(standby.address, namespace="video", retries=20)
        try:
            await active.service.register_namespace(
                NamespaceInfo(
                    name="video",
                    id="",
                    is_global=True,
                    clusters=["active", "standby", "other"],
                    active_cluster="active",
                )
            )
            for wid in WORKFLOWS:
                await active.start_workflow("Waiter", id=wid, task_queue="q")

            sent: list[str] = []
            stop = asyncio.Event()

            async def load() -> None:
                i = 0
                while not stop.is_set():
                    wid = WORKFLOWS[i % len(WORKFLOWS)]
                    await active.get_workflow_handle(wid).signal("note", f"sig-{i}")
                    sent.append(f"sig-{i}")
                    i += 1
                    await asyncio.sleep(0.005)  # a steady stream, not a flood

            loader = asyncio.create_task(load())

            async def standby_applied(n: int) -> bool:
                history = await _history_json(on_standby, WORKFLOWS[-1])
                return history is not None and len(_signals_in(history)) >= n

            await _until(lambda: standby_applied(10), 30, "the standby applying the stream")
            assert not loader.done()
            standby.kill9()
            killed_at = len(sent)
            await _until(lambda: _more(sent, killed_at + 100), 30, "signals while the standby is down")
            done, pending = await _progress(log)
            assert 0 < done < pending, "the standby is restarted with committed progress and a backlog"
            standby.start(port=port)
            restarted_at = len(sent)
            await _until(lambda: _more(sent, restarted_at + 100), 30, "signals after the restart")
            stop.set()
            await loader

            async def caught_up() -> bool:
                for wid in WORKFLOWS:
                    want = await _history_json(active, wid)
                    if want is None or await _history_json(on_standby, wid) != want:
                        return False
                return True

            await _until(caught_up, 40, "the standby's histories equal to the active's")
            seen: Counter[str] = Counter()
            for wid in WORKFLOWS:
                history = await _history_json(on_standby, wid)
                assert history is not None
                seen.update(_signals_in(history))
            assert sorted(seen) == sorted(sent), "a signal is missing on the standby"
            assert set(seen.values()) == {1}, [s for s, n in seen.items() if n > 1]
        finally:
            await active.service.close()  # type: ignore[attr-defined]
            await on_standby.service.close()  # type: ignore[attr-defined]

        bus = EmbeddedBus(log)
        try:
            assert await dead_letters(bus, "standby-dlq") == []
        finally:
            await bus.close()

    try:
        asyncio.run(main())
        # The operator's view of one of them, through the CLI, is the same on both.
        assert _show(standby.address, WORKFLOWS[0]) == _show(servers["active"].address, WORKFLOWS[0])
    finally:
        codes = {name: srv.stop() for name, srv in servers.items()}
        assert codes == {"active": 0, "standby": 0, "other": 0}, standby.stderr()[-3000:]


async def _progress(log: Path) -> tuple[int, int]:
    """The standby's committed offsets on the active cluster's topic, and what the topic holds."""
    bus = EmbeddedBus(log)
    try:
        committed = await bus.committed("cadenza-replication-standby", "active")
        marks = await bus.watermarks("active")
    finally:
        await bus.close()
    return sum(c.offset for c in committed.values()), sum(high for _, high in marks.values())


async def _more(sent: list[str], n: int) -> bool:
    return len(sent) >= n
