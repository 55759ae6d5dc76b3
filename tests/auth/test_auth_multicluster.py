"""Authorization across clusters: two `cadenza server start-dev --cluster NAME --auth-jwks` processes
(active and standby) replicating a global namespace. A request sent to the standby is forwarded with
its caller's own token and authorized by the active cluster as that caller; the cluster's own calls
(history fetches for replication gaps) carry the token of `--cluster-auth-token-file`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rpc.devserver import DevServer

from cadenza.client import Client
from cadenza.engine.auth.tokens import issue, keygen, load_private_key
from cadenza.exceptions import RPCError
from cadenza.replication.cluster import ClusterMetadata
from cadenza.replication.credentials import ClusterCredentials
from cadenza.replication.remote import GrpcRemoteHistory
from cadenza.schemas.service import NamespaceInfo
from cadenza.sdk.exceptions import NamespaceNotFoundError, WorkflowNotFoundError
from cadenza.worker import Worker

from .test_auth_e2e import Greeting, greet


@dataclass
class Pair:
    active: DevServer
    standby: DevServer
    key_path: Path
    token_file: Path

    def token(self, *permissions: str, subject: str = "test") -> str:
        return issue(load_private_key(self.key_path), permissions, ttl_s=600, subject=subject)


def _free_ports(n: int) -> list[int]:
    from replication.test_dev_servers import free_ports

    return free_ports(n)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    root = tmp_path_factory.mktemp("clusters")
    keys = keygen(root / "keys")
    token_file = root / "cluster-token"
    token_file.write_text(
        issue(load_private_key(keys.private_key), ["system:admin"], ttl_s=3600, subject="cluster")
    )
    ports = dict(zip(("active", "standby", "other"), _free_ports(3), strict=True))
    peers = [f"--cluster-address={n}=127.0.0.1:{p}" for n, p in ports.items()]
    servers: dict[str, DevServer] = {}
    try:
        for name in ("active", "standby"):
            servers[name] = DevServer(
                [
                    "--cluster",
                    name,
                    "--replication-log",
                    str(root / "replication.bus"),
                    "--db-filename",
                    str(root / f"{name}.db"),
                    "--auth-jwks",
                    str(keys.jwks),
                    "--cluster-auth-token-file",
                    str(token_file),
                    "--headless",
                    *peers,
                ]
            ).start(port=ports[name])
        yield Pair(servers["active"], servers["standby"], keys.private_key, token_file)
    finally:
        for srv in servers.values():
            assert srv.stop() == 0, srv.stderr()[-3000:]


async def _registered(pair: Pair) -> NamespaceInfo:
    admin = pair.token("system:admin")
    active = await Client.connect(pair.active.address, api_key=admin)
    await active.service.register_namespace(
        NamespaceInfo(
            name="video",
            id="",
            is_global=True,
            clusters=["active", "standby"],
            active_cluster="active",
        )
    )
    standby = await Client.connect(pair.standby.address, api_key=admin)
    deadline = time.monotonic() + 30
    while True:
        try:
            return await standby.service.describe_namespace("video")
        except NamespaceNotFoundError:
            assert time.monotonic() < deadline, "the namespace did not reach the standby"
            await asyncio.sleep(0.2)


def test_a_request_to_the_standby_is_forwarded_with_its_callers_token(pair: Pair) -> None:
    async def scenario() -> None:
        info = await _registered(pair)
        assert info.active_cluster == "active"
        worker_client = await Client.connect(
            pair.active.address, namespace="video", api_key=pair.token("video:worker")
        )
        writer = await Client.connect(
            pair.standby.address, namespace="video", api_key=pair.token("video:write")
        )
        async with Worker(worker_client, task_queue="q", workflows=[Greeting], activities=[greet]):
            result = await writer.execute_workflow(Greeting.run, "ada", id="fwd-1", task_queue="q")
        assert result == "hello ada"

        # Refused by the standby itself: the request is never forwarded, nothing is started.
        stranger = await Client.connect(
            pair.standby.address, namespace="video", api_key=pair.token("reports:write", subject="stranger")
        )
        with pytest.raises(RPCError) as e:
            await stranger.start_workflow(Greeting.run, "eve", id="fwd-2", task_queue="q")
        assert e.value.status == "PERMISSION_DENIED" and "video:write" in e.value.message
        with pytest.raises(WorkflowNotFoundError):
            await writer.get_workflow_handle("fwd-2").describe()

        # The cluster's own call for missing history: with its token it reads, without it is refused.
        def remote(credentials: ClusterCredentials | None) -> GrpcRemoteHistory:
            return GrpcRemoteHistory({"active": pair.active.address}, credentials=credentials)

        meta = ClusterMetadata.dev("standby", auth_token_file=str(pair.token_file))
        run_id = (await writer.get_workflow_handle("fwd-1").describe()).run_id
        with_token = remote(ClusterCredentials(meta.clusters))
        without = remote(None)
        try:
            batches = await with_token.raw_history("active", info.id, "fwd-1", run_id, 1, 3)
            assert batches and batches[0].first_event_id == 1
            with pytest.raises(RPCError) as e:
                await without.raw_history("active", info.id, "fwd-1", run_id, 1, 3)
            assert e.value.status == "UNAUTHENTICATED"
        finally:
            await with_token.close()
            await without.close()

    asyncio.run(scenario())
    for srv in (pair.active, pair.standby):
        log = srv.stderr()
        assert pair.token_file.read_text() not in log
