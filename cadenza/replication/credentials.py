"""The credentials one cluster presents when it calls another cluster's frontend.

Two kinds of call cross clusters over gRPC, and with authorization on each needs a bearer token:

* **Forwarding** (``cadenza.replication.forwarding``): a request sent to a standby goes on to the
  active cluster with **the caller's own token**, so the active cluster authorizes the caller as
  if it had called directly and no cluster lends a caller rights it does not hold. A caller that
  this frontend accepted on its client certificate alone has no token to pass on; its request
  goes on with the cluster's own token, since this frontend has already authorized it. A request
  accepted by an open frontend (no authorization configured) goes on with no credential: a
  deployment that secures one cluster secures them all.
* **The cluster's own calls** (reading another cluster's history to fill a replication gap,
  ``GetRawHistory``, which needs ``system:admin``) carry the cluster's own token.

The cluster's own token for each remote cluster is read from the file named by
``clusterMetadata.clusterInformation.<cluster>.authTokenFile`` (``start-dev
--cluster-auth-token-file``), and read again whenever the file changes, so a token is rotated by
rewriting the file, without a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cadenza.engine.forwarding import CALLER_TOKEN
from cadenza.replication.cluster import ClusterInformation

log = logging.getLogger("cadenza.replication")

MAX_TOKEN_BYTES = 64 * 1024
"""A token file larger than this is refused (a wrong path, not a token)."""


@dataclass(slots=True)
class _Cached:
    stamp: tuple[int, int]
    token: str


class ClusterCredentials:
    """Per remote cluster, the token this cluster presents to it (see the module's text)."""

    def __init__(self, clusters: Mapping[str, ClusterInformation]) -> None:
        self._files = {name: info.auth_token_file for name, info in clusters.items() if info.auth_token_file}
        self._cache: dict[str, _Cached] = {}

    def own_token(self, cluster: str) -> str:
        """The cluster's own token for calls to ``cluster`` ('' when none is configured or its file
        cannot be read; the remote then refuses the call, naming the missing credential)."""
        path = self._files.get(cluster)
        if not path:
            return ""
        try:
            st = os.stat(path)
            stamp = (st.st_mtime_ns, st.st_size)
            cached = self._cache.get(cluster)
            if cached is not None and cached.stamp == stamp:
                return cached.token
            if st.st_size > MAX_TOKEN_BYTES:
                raise ValueError(f"{st.st_size} bytes, more than a token's limit of {MAX_TOKEN_BYTES}")
            with open(path, encoding="utf-8") as f:
                token = _token_text(f.read())
        except (OSError, ValueError) as e:
            log.warning("cannot read the auth token file %s for cluster %r: %s", path, cluster, e)
            self._cache.pop(cluster, None)
            return ""
        self._cache[cluster] = _Cached(stamp, token)
        return token

    def forwarded_token(self, cluster: str) -> str:
        """The token a request forwarded to ``cluster`` carries: the caller's own, else (accepted
        here on a client certificate) the cluster's own, else (an open frontend) none."""
        caller = CALLER_TOKEN.get()
        if caller:
            return caller
        return self.own_token(cluster) if caller == "" else ""

    def for_forwarding(self, cluster: str) -> Callable[[], str]:
        return lambda: self.forwarded_token(cluster)

    def for_own_calls(self, cluster: str) -> Callable[[], str]:
        return lambda: self.own_token(cluster)


def _token_text(text: str) -> str:
    """The token in a file: surrounding whitespace dropped, and a ``Bearer `` prefix tolerated."""
    token = text.strip()
    scheme, sep, rest = token.partition(" ")
    if sep and scheme.lower() == "bearer":
        token = rest.strip()
    if any(c.isspace() for c in token):
        raise ValueError("the file must hold one token (no spaces or line breaks inside it)")
    return token
