"""Workers and the replayer (see ``cadenza.sdk.worker``)."""

from cadenza.sdk.worker import Replayer, Worker
from cadenza.sdk.worker_pool import WorkerPool

__all__ = ["Replayer", "Worker", "WorkerPool"]
