"""Mutual TLS: a client certificate's common name mapped to permissions (``tlsSubjectPermissions``)."""

from __future__ import annotations

import asyncio

import pytest

from cadenza.client import Client, TLSConfig
from cadenza.engine.auth import AuthorizationSettings, open_gate
from cadenza.engine.rpc import RpcServer, ServerTLS
from cadenza.exceptions import RPCError
from cadenza.testing import WorkflowEnvironment

from .certs import CertificateAuthority


def test_a_certificate_subject_grants_its_permissions() -> None:
    ca = CertificateAuthority()
    server_pem = ca.issue("server", server=True)
    settings = AuthorizationSettings(tls_subject_permissions={"ops-console": ("system:read",)})

    def tls(cn: str) -> TLSConfig:
        pem = ca.issue(cn)
        return TLSConfig(server_root_ca_cert=ca.pem, client_cert=pem.cert, client_private_key=pem.key)

    async def main() -> None:
        env = await WorkflowEnvironment.start_local()
        gate = await open_gate(settings, _never)
        assert gate is not None and gate.tls_subject
        server = RpcServer(env.host.frontend, auth=gate)
        with pytest.raises(ValueError, match="needs mutual TLS"):
            await server.start("127.0.0.1", 0, tls=ServerTLS(server_pem.cert, server_pem.key))
        port = await server.start("127.0.0.1", 0, tls=ServerTLS(server_pem.cert, server_pem.key, ca.pem))
        address = f"127.0.0.1:{port}"
        try:
            ops = await Client.connect(address, tls=tls("ops-console"), retries=0)
            assert [n.name for n in await ops.service.list_namespaces()] == ["default"]
            with pytest.raises(RPCError) as e:
                await ops.start_workflow("Anything", id="tls-refused", task_queue="q")
            assert e.value.status == "PERMISSION_DENIED" and "default:write" in e.value.message
            # A certificate the CA signed, whose subject maps to nothing: not authenticated.
            with pytest.raises(RPCError) as e:
                await Client.connect(address, tls=tls("stranger"), retries=0)
            assert e.value.status == "UNAUTHENTICATED"
        finally:
            await server.stop(0)
            await gate.close()
            await env.shutdown()

    asyncio.run(main())


async def _never(namespace_id: str) -> str:
    raise AssertionError(f"no task token is answered here ({namespace_id})")
