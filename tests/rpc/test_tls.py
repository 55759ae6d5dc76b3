"""TLS and mutual TLS on the gRPC frontend, with certificates made by the `openssl` CLI."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

from cadenza.engine.rpc import RpcServer, ServerTLS
from cadenza.exceptions import RPCError
from cadenza.sdk.client import Client, TLSConfig
from cadenza.testing import WorkflowEnvironment

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate, all signed by it."""
    d = tmp_path_factory.mktemp("certs")
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=cadenza-test-ca",
        cwd=d,
    )
    (d / "server.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name, ext in (("server", ["-extfile", "server.ext"]), ("client", [])):
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            f"/CN={name}",
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.pem",
            "-days",
            "2",
            *ext,
            cwd=d,
        )
    return d


def _serve_and(certs: Path, mutual: bool, attempt: object) -> None:
    async def main() -> None:
        env = await WorkflowEnvironment.start_local()
        server = RpcServer(env.host.frontend)
        tls = ServerTLS(
            (certs / "server.pem").read_bytes(),
            (certs / "server.key").read_bytes(),
            (certs / "ca.pem").read_bytes() if mutual else None,
        )
        port = await server.start("127.0.0.1", 0, tls=tls)
        try:
            await asyncio.wait_for(attempt(f"127.0.0.1:{port}"), 30)  # type: ignore[operator]
        finally:
            await server.stop(0)
            await env.shutdown()

    asyncio.run(main())


async def _list(address: str, tls: TLSConfig | None) -> list[str]:
    client = await Client.connect(address, tls=tls, retries=1)
    try:
        return [n.name for n in await client.service.list_namespaces()]
    finally:
        await client.service.close()  # type: ignore[attr-defined]


def test_tls_client_trusting_the_ca_is_served(certs: Path) -> None:
    async def attempt(address: str) -> None:
        assert await _list(address, TLSConfig(server_root_ca_cert=(certs / "ca.pem").read_bytes())) == [
            "default"
        ]

    _serve_and(certs, False, attempt)


def test_plaintext_client_against_tls_server_is_refused(certs: Path) -> None:
    async def attempt(address: str) -> None:
        with pytest.raises(RPCError) as info:
            await _list(address, None)
        assert info.value.status == "UNAVAILABLE"

    _serve_and(certs, False, attempt)


def test_mutual_tls_refuses_a_client_without_a_certificate(certs: Path) -> None:
    ca = (certs / "ca.pem").read_bytes()

    async def attempt(address: str) -> None:
        with pytest.raises(RPCError) as info:
            await _list(address, TLSConfig(server_root_ca_cert=ca))
        assert info.value.status == "UNAVAILABLE"
        with_cert = TLSConfig(
            server_root_ca_cert=ca,
            client_cert=(certs / "client.pem").read_bytes(),
            client_private_key=(certs / "client.key").read_bytes(),
        )
        assert await _list(address, with_cert) == ["default"]

    _serve_and(certs, True, attempt)


def test_mutual_tls_refuses_a_certificate_from_another_ca(certs: Path, tmp_path: Path) -> None:
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "rogue.key",
        "-out",
        "rogue.pem",
        "-days",
        "2",
        "-subj",
        "/CN=rogue",
        cwd=tmp_path,
    )

    async def attempt(address: str) -> None:
        rogue = TLSConfig(
            server_root_ca_cert=(certs / "ca.pem").read_bytes(),
            client_cert=(tmp_path / "rogue.pem").read_bytes(),
            client_private_key=(tmp_path / "rogue.key").read_bytes(),
        )
        with pytest.raises(RPCError) as info:
            await _list(address, rogue)
        assert info.value.status == "UNAVAILABLE"

    _serve_and(certs, True, attempt)
