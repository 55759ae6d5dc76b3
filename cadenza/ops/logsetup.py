"""Server logging: one line per record, as text for people or JSON for log collectors.

Quiet by default (warnings and errors only): a dev server that chats on every workflow drowns the
output of the programs run next to it. In JSON every line about a run also carries its namespace,
workflow id, run id, shard id and the cluster (``cadenza.engine.logcontext``), bound where work
enters the server rather than passed to each log call.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from cadenza.engine import logcontext

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Fields passed with ``extra=`` become top-level keys, so they stay searchable.
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure(log_format: str = "text", level: str = "warning") -> None:
    handler = logging.StreamHandler(sys.stderr)
    logcontext.enable(log_format == "json")
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        handler.addFilter(logcontext.ContextFilter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The Cassandra driver logs each failed connection attempt with a traceback; the server reports
    # an unreachable cluster itself, once, naming the hosts. Its own errors still show at --log-level
    # debug.
    if root.level > logging.DEBUG:
        logging.getLogger("cassandra").setLevel(logging.CRITICAL)
