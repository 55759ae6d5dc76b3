"""Cluster metadata and the failover-version arithmetic every cluster must agree on.

Terms (the anchors'):

* Each cluster has an ``initial_failover_version`` below the shared ``failover_version_increment``
  and unique among the clusters.
* A *failover version* ``v`` is owned by the cluster whose initial version is ``v % increment``.
  Every event carries the failover version of its namespace at the time it was written, so the
  owner of an event's version is the cluster that wrote it.
* Failing a namespace over to cluster ``C`` moves its version to the smallest number above the
  current one that ``C`` owns: ``cur // inc * inc + initial(C)``, plus ``inc`` if that is not above
  ``cur``. Versions therefore only grow, and the branch whose last version is highest wins a conflict.

These are pure functions over a frozen value, so the rules are stated (and property-tested) once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT_FAILOVER_VERSION_INCREMENT = 10
DEV_CLUSTERS = {"active": 7233, "standby": 7333, "other": 7433}
"""The development set of clusters and their frontend ports."""


class ClusterMetadataError(ValueError):
    """The cluster metadata is inconsistent; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class ClusterInformation:
    name: str
    initial_failover_version: int
    enabled: bool = True
    rpc_name: str = "cadenza-frontend"
    rpc_address: str = ""
    """``host:port`` of the cluster's frontend: where other clusters ask for missing history."""
    auth_token_file: str = ""
    """A file holding the bearer token this cluster presents when it calls that one itself
    (reading history to fill a replication gap; forwarding a request whose caller was accepted
    on a client certificate, so has no token to pass on). Re-read when it changes. Empty: none."""


@dataclass(frozen=True, slots=True)
class ClusterMetadata:
    current_cluster_name: str
    clusters: Mapping[str, ClusterInformation] = field(default_factory=dict)
    failover_version_increment: int = DEFAULT_FAILOVER_VERSION_INCREMENT
    master_cluster_name: str = ""
    enable_global_namespace: bool = False

    @classmethod
    def dev(
        cls, current: str, addresses: Mapping[str, str] | None = None, *, auth_token_file: str = ""
    ) -> ClusterMetadata:
        """Three clusters on one machine (``cadenza server start-dev --cluster NAME``): active,
        standby and other on ports 7233, 7333 and 7433 (unless ``addresses`` says otherwise),
        with initial versions 1, 2 and 3; ``auth_token_file`` is the token presented to the
        other two."""
        addresses = addresses or {}
        return cls(
            current_cluster_name=current,
            clusters={
                name: ClusterInformation(
                    name,
                    i + 1,
                    rpc_address=addresses.get(name, f"127.0.0.1:{port}"),
                    auth_token_file=auth_token_file if name != current else "",
                )
                for i, (name, port) in enumerate(DEV_CLUSTERS.items())
            },
            master_cluster_name="active",
            enable_global_namespace=True,
        )

    @classmethod
    def single(cls, name: str = "active") -> ClusterMetadata:
        """One cluster, no replication: the embedded default."""
        return cls(
            current_cluster_name=name,
            clusters={name: ClusterInformation(name, 0)},
            master_cluster_name=name,
        )

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ClusterMetadataError(
                "invalid cluster metadata:\n" + "\n".join(f"  - {p}" for p in problems)
            )

    def problems(self) -> list[str]:
        """Every inconsistency at once (the config loader reports them with their keys)."""
        out: list[str] = []
        inc = self.failover_version_increment
        if inc < 1:
            out.append(f"failoverVersionIncrement must be at least 1 (got {inc})")
        seen: dict[int, str] = {}
        for name, c in self.clusters.items():
            if c.name != name:
                out.append(f"clusterInformation.{name}: named {c.name!r}")
            v = c.initial_failover_version
            if not 0 <= v < max(inc, 1):
                out.append(
                    f"clusterInformation.{name}.initialFailoverVersion {v} must be at least 0 and "
                    f"below failoverVersionIncrement {inc}"
                )
            if v in seen:
                out.append(
                    f"clusterInformation.{name}.initialFailoverVersion {v} is also {seen[v]!r}'s; "
                    "each cluster needs its own"
                )
            seen.setdefault(v, name)
        if self.current_cluster_name not in self.clusters:
            out.append(
                f"currentClusterName {self.current_cluster_name!r} is not listed under clusterInformation "
                f"({', '.join(sorted(self.clusters)) or 'none'})"
            )
        if self.master_cluster_name and self.master_cluster_name not in self.clusters:
            out.append(
                f"masterClusterName {self.master_cluster_name!r} is not listed under clusterInformation"
            )
        if not self.master_cluster_name and len(self.clusters) > 1:
            out.append("masterClusterName is required when there is more than one cluster")
        return out

    # -- questions -------------------------------------------------------------------------------

    @property
    def current(self) -> ClusterInformation:
        return self.clusters[self.current_cluster_name]

    @property
    def is_master(self) -> bool:
        return (self.master_cluster_name or self.current_cluster_name) == self.current_cluster_name

    def enabled_clusters(self) -> list[str]:
        return sorted(n for n, c in self.clusters.items() if c.enabled)

    def initial_version(self, cluster: str) -> int:
        try:
            return self.clusters[cluster].initial_failover_version
        except KeyError:
            raise ClusterMetadataError(
                f"unknown cluster {cluster!r}; known: {', '.join(sorted(self.clusters))}"
            ) from None

    def cluster_for_version(self, version: int) -> str:
        """The cluster that owns ``version`` (wrote the events that carry it)."""
        return owner_of(version, self.failover_version_increment, self._by_initial())

    def next_failover_version(self, cluster: str, current_version: int) -> int:
        return next_failover_version(
            self.initial_version(cluster), current_version, self.failover_version_increment
        )

    def _by_initial(self) -> dict[int, str]:
        return {c.initial_failover_version: n for n, c in self.clusters.items()}


def owner_of(version: int, increment: int, by_initial: Mapping[int, str]) -> str:
    """The cluster whose initial version is ``version % increment``."""
    try:
        return by_initial[version % increment]
    except KeyError:
        raise ClusterMetadataError(
            f"failover version {version} belongs to no known cluster (initial version "
            f"{version % increment} with increment {increment})"
        ) from None


def next_failover_version(initial: int, current: int, increment: int) -> int:
    """The smallest version above ``current`` owned by the cluster with initial version ``initial``
    (``initial`` itself when ``current`` is below it, as for a namespace's first version)."""
    v = current // increment * increment + initial
    return v if v > current else v + increment
