"""Authorization end to end: a real `cadenza server start-dev --auth-jwks` subprocess, the SDK and
the CLI over gRPC."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from rpc.devserver import DevServer, cadenza_argv, env

from cadenza import activity, workflow
from cadenza.client import Client
from cadenza.engine.auth.tokens import issue, keygen, load_private_key
from cadenza.exceptions import RPCError
from cadenza.sdk.exceptions import WorkflowNotFoundError
from cadenza.worker import Worker

from .keys import rsa_key


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class Greeting:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))


@dataclass
class Secured:
    server: DevServer
    key_path: Path

    def token(self, *permissions: str, ttl_s: float = 600, now_s: float | None = None) -> str:
        return issue(load_private_key(self.key_path), permissions, ttl_s=ttl_s, subject="test", now_s=now_s)


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    keys = keygen(tmp_path_factory.mktemp("keys"))
    srv = DevServer(["--auth-jwks", str(keys.jwks)]).start()
    try:
        yield Secured(srv, keys.private_key)
    finally:
        assert srv.stop() == 0, srv.stderr()[-3000:]


def rpc_error(excinfo: pytest.ExceptionInfo[RPCError]) -> tuple[str, str]:
    return excinfo.value.status, excinfo.value.message


def test_a_write_token_runs_a_workflow_and_a_read_token_only_reads(secured: Secured) -> None:
    address = secured.server.address
    write, read = secured.token("default:write"), secured.token("default:read")

    async def scenario() -> None:
        writer = await Client.connect(address, api_key=write)
        reader = await Client.connect(address, api_key=read)
        async with Worker(writer, task_queue="auth", workflows=[Greeting], activities=[greet]):
            result = await writer.execute_workflow(Greeting.run, "ada", id="auth-wf", task_queue="auth")
        assert result == "hello ada"

        described = await reader.get_workflow_handle("auth-wf").describe()
        length = described.history_length
        with pytest.raises(RPCError) as e:
            await reader.start_workflow(Greeting.run, "eve", id="auth-refused", task_queue="auth")
        status, message = rpc_error(e)
        assert status == "PERMISSION_DENIED"
        assert "namespace 'default'" in message and "default:write" in message
        assert "caller 'test' has read" in message
        assert e.value.details == {"api": "StartWorkflowExecution", "namespace": "default", "role": "write"}
        with pytest.raises(RPCError, match="default:write"):
            await reader.get_workflow_handle("auth-wf").terminate("not allowed")
        # The refused calls changed nothing: no run was started, the closed one is as it was.
        with pytest.raises(WorkflowNotFoundError):
            await writer.get_workflow_handle("auth-refused").describe()
        after = await writer.get_workflow_handle("auth-wf").describe()
        assert after.history_length == length and after.status == described.status
        # Cluster-wide calls need a system role.
        with pytest.raises(RPCError) as e:
            await writer.service.list_namespaces()
        assert rpc_error(e)[0] == "PERMISSION_DENIED" and "system:read" in rpc_error(e)[1]

    asyncio.run(scenario())
    log = secured.server.stderr()
    assert "refused StartWorkflowExecution for 'test'" in log
    assert write not in log and read not in log


def test_missing_bad_and_expired_tokens_are_unauthenticated(secured: Secured) -> None:
    address = secured.server.address
    expired = secured.token("default:write", ttl_s=60, now_s=time.time() - 3600)
    foreign = issue(rsa_key(), ["system:admin"], ttl_s=600)

    async def refused(api_key: str | None) -> str:
        with pytest.raises(RPCError) as e:
            await Client.connect(address, api_key=api_key, retries=0)
        assert e.value.status == "UNAUTHENTICATED"
        return e.value.message

    async def scenario() -> None:
        assert "no credentials" in await refused(None)
        assert "expired at" in await refused(expired)
        assert "is not among the server's keys" in await refused(foreign)
        assert "not a JWT" in await refused("garbage")

    asyncio.run(scenario())
    assert expired not in secured.server.stderr()


def test_api_key_may_be_a_callable_and_may_change(secured: Secured) -> None:
    admin, read = secured.token("system:admin"), secured.token("default:read")
    asked = 0

    async def current_key() -> str:
        nonlocal asked
        asked += 1
        return admin

    async def scenario() -> None:
        client = await Client.connect(secured.server.address, api_key=current_key)
        names = [n.name for n in await client.service.list_namespaces()]
        assert "default" in names and asked == 2  # connect's cluster info, then the list
        client.api_key = read
        assert client.api_key == read
        with pytest.raises(RPCError, match="system:read"):
            await client.service.list_namespaces()
        client.api_key = lambda: admin  # a plain function works too
        assert "default" in [n.name for n in await client.service.list_namespaces()]

    asyncio.run(scenario())


def cli(*args: str, token_env: str | None = None) -> subprocess.CompletedProcess[str]:
    environment = env()
    environment.pop("CADENZA_AUTH_TOKEN", None)
    if token_env is not None:
        environment["CADENZA_AUTH_TOKEN"] = token_env
    return subprocess.run(
        [*cadenza_argv(), *args], capture_output=True, text=True, env=environment, timeout=60
    )


def test_the_cli_sends_its_auth_token(secured: Secured) -> None:
    address = secured.server.address
    read = secured.token("default:read")
    ok = cli("--address", address, "--auth-token", read, "namespace", "describe", "default", "-o", "json")
    assert ok.returncode == 0, ok.stderr
    assert '"default"' in ok.stdout
    from_env = cli("--address", address, "namespace", "describe", "default", token_env=read)
    assert from_env.returncode == 0, from_env.stderr
    none = cli("--address", address, "namespace", "describe", "default")
    assert none.returncode == 1 and "UNAUTHENTICATED" in none.stderr
    denied = cli("--address", address, "--auth-token", read, "namespace", "list")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr and "system:read" in denied.stderr


def test_the_open_dev_server_needs_no_token() -> None:
    srv = DevServer().start()
    try:

        async def scenario() -> None:
            client = await Client.connect(srv.address)
            await client.start_workflow(Greeting.run, "x", id="open-wf", task_queue="nobody")
            assert "default" in [n.name for n in await client.service.list_namespaces()]

        asyncio.run(scenario())
    finally:
        assert srv.stop() == 0
