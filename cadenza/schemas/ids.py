"""Identifiers that travel in messages: run ids, request ids, branch ids.

They need to be unique, not secret, so they come from a Mersenne Twister seeded once from the OS
instead of an ``os.urandom`` system call each (about 18 µs on a virtual machine, several per
workflow). The result is a well-formed version 4 UUID string.
"""

from __future__ import annotations

import os
import random
import threading
import uuid

_local = threading.local()


def _rng() -> random.Random:
    rng: random.Random | None = getattr(_local, "rng", None)
    pid = os.getpid()
    if rng is None or getattr(_local, "pid", None) != pid:
        # Re-seeded per thread and after fork, so no two processes share a sequence.
        rng = _local.rng = random.Random(os.urandom(16))
        _local.pid = pid
    return rng


def new_id() -> str:
    return str(uuid.UUID(int=_rng().getrandbits(128), version=4))
