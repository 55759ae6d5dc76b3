"""The network face of the server: the gRPC frontend (``RpcServer``) over the in-process ``Frontend``."""

from cadenza.engine.rpc.handlers import ClusterInfo
from cadenza.engine.rpc.server import RpcServer, ServerTLS

__all__ = ["ClusterInfo", "RpcServer", "ServerTLS"]
