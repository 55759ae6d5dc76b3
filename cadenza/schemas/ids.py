"""Identifiers that travel in messages: run ids, request ids, branch ids.

They need to be unique, not secret, so they come from a Mersenne Twister seeded once from the OS
instead of an ``os.urandom`` system call each (about 18 µs on a virtual machine, several per
workflow). The result is a well-formed version 4 UUID string, formatted directly from the random
bits (a ``uuid.UUID`` object per id cost more than drawing the bits).
"""

from __future__ import annotations

import os
import random
import threading

_local = threading.local()

# Version 4 (bits 76-79 = 0100) and the RFC 4122 variant (bits 62-63 = 10), as ``uuid.UUID`` sets them.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def _forget_after_fork() -> None:
    # A forked child must not repeat its parent's sequence: it seeds its own on first use.
    global _local
    _local = threading.local()


os.register_at_fork(after_in_child=_forget_after_fork)


def new_id() -> str:
    try:
        rng: random.Random = _local.rng
    except AttributeError:
        # Seeded per thread, so no two threads share a sequence.
        rng = _local.rng = random.Random(os.urandom(16))
    h = "%032x" % (rng.getrandbits(128) & _CLEAR | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
