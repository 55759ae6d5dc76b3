"""Workers and the replayer (see ``cadenza.sdk.worker``)."""

from cadenza.sdk.worker import Replayer, Worker

__all__ = ["Replayer", "Worker"]
