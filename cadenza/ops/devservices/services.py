"""How each development server is laid out, configured, launched and probed for readiness.

A `Service` knows nothing about PID files or parallelism (that is `manager.ServiceManager`'s job):
it turns a resolved distribution plus a fresh run directory into a `java` command line, and tells
whether the server really answers through the same Python client the product uses.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from cadenza.ops.devservices import gobuild
from cadenza.ops.devservices import observability as obs
from cadenza.ops.devservices import resolve as _resolve
from cadenza.ops.devservices.resolve import javac, read_resource, render, resource_dir

LOOPBACK = "127.0.0.1"


def java_binary() -> str:
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise RuntimeError(
            "`java` is not on PATH; install OpenJDK 17 (Debian package `openjdk-17-jdk-headless`)"
        )
    return found


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """A cheap first check before spending a client connection on a server still booting."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def classpath(lib: Path) -> str:
    # An explicit list rather than `lib/*`: the order is stable and no shell is involved.
    return os.pathsep.join(str(p) for p in sorted(lib.glob("*.jar")))


def probe_kafka(bootstrap: str, timeout: float = 3.0) -> bool:
    """Kafka is ready when an AdminClient (confluent-kafka, as the product uses) lists topics."""
    host, _, port = bootstrap.rpartition(":")
    if not port_open(int(port), host or LOOPBACK):
        return False
    from confluent_kafka.admin import AdminClient

    # librdkafka reports every refused connection; while a broker boots that is only noise.
    quiet = logging.getLogger("cadenza.devservices.kafka-probe")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    # confluent-kafka accepts a Logger object for "logger", though its type stubs only list scalars.
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)}
    config["logger"] = quiet
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout)
        return True
    except Exception:
        return False


def probe_cassandra(host: str, port: int, timeout: float = 3.0) -> bool:
    """Cassandra is ready when cassandra-driver reads `release_version` from system.local."""
    if not port_open(port, host):
        return False
    from cassandra.cluster import Cluster

    # The driver logs every refused or half-open connection as a warning while the node boots.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    cluster = Cluster([host], port=port, connect_timeout=timeout, control_connection_timeout=timeout)
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local", timeout=timeout).one()
        return row is not None
    except Exception:
        return False
    finally:
        cluster.shutdown()


def probe_elasticsearch(url: str, timeout: float = 3.0) -> bool:
    """Elasticsearch is ready when cluster health reaches yellow."""
    parsed = urllib.parse.urlsplit(url)
    if not port_open(parsed.port or 9200, parsed.hostname or LOOPBACK):
        return False
    health = f"{url.rstrip('/')}/_cluster/health?wait_for_status=yellow&timeout={max(1, int(timeout))}s"
    try:
        with urllib.request.urlopen(health, timeout=timeout + 2) as resp:
            return resp.status == 200 and b'"status":"red"' not in resp.read()
    except OSError:
        return False


@dataclass(frozen=True)
class Service:
    """One server: its ports, heap and the steps to start it. Subclasses fill in the specifics."""

    name: str
    port: int
    extra_ports: dict[str, int] = field(default_factory=dict)
    heap: str = "512m"

    in_default_set: ClassVar[bool] = True
    """Started by a plain `up`; the others (Jaeger, Prometheus) only when named."""

    @property
    def ports(self) -> list[int]:
        return [self.port, *self.extra_ports.values()]

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def arrange(self, staging: Path) -> None:
        """Lay out the resolved jars (called once, right after Maven); most services need nothing."""

    def resolve_dist(self, home: Path, progress: Callable[[str], None]) -> Path:
        """The complete distribution (jars from Maven by default), fetched or built on first use."""
        return _resolve.resolve(self.name, home=home, arrange=self.arrange, progress=progress)

    def jvm_options(self, run_dir: Path) -> list[str]:
        # Serial GC and a fixed small heap: these are single-user test servers on two cores, where
        # the concurrent collectors only add threads and resident memory.
        tmp = run_dir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return [
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            # No /tmp/hsperfdata files, and native libraries unpack into the run directory.
            "-XX:-UsePerfData",
            f"-Djava.io.tmpdir={tmp}",
            "-Djava.net.preferIPv4Stack=true",
        ]

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        """Write the configuration into the (fresh, empty) run directory; return the command line."""
        raise NotImplementedError

    def probe(self, timeout: float = 3.0) -> bool:
        """True when the server answers a real request through the product's client."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.name} {self.address}"


def new_kafka_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes in URL-safe base64 without padding, never starting with
    ``-``. The storage tool reads an id that starts with ``-`` as an option (``argument
    --cluster-id/-t: expected one argument``), so about one start in 64 failed; Kafka's own
    ``Uuid.randomUuid`` draws again in that case, and so does this."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class Kafka(Service):
    name: str = "kafka"
    port: int = 19092
    extra_ports: dict[str, int] = field(default_factory=lambda: {"controller": 19093})

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        config = run_dir / "config"
        config.mkdir(parents=True)
        props = config / "server.properties"
        values = {
            "port": str(self.port),
            "controller_port": str(self.extra_ports["controller"]),
            "data_dir": str(run_dir / "data"),
        }
        props.write_text(render(read_resource("kafka", "server.properties"), values), encoding="utf-8")
        log4j = config / "log4j2.properties"
        log4j.write_text(read_resource("kafka", "log4j2.properties"), encoding="utf-8")
        common = [
            *self.jvm_options(run_dir),
            f"-Dlog4j2.configurationFile=file:{log4j}",
            "-cp",
            classpath(dist / "lib"),
        ]
        # KRaft refuses to start on an unformatted log directory; generating the id here saves a
        # JVM start.
        cluster_id = new_kafka_cluster_id()
        fmt = [
            java_binary(),
            "-XX:TieredStopAtLevel=1",
            *common,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            cluster_id,
            "-c",
            str(props),
        ]
        proc = subprocess.run(fmt, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
        (run_dir / "format.log").write_text(proc.stdout, encoding="utf-8")
        if proc.returncode != 0:
            raise RuntimeError(f"kafka: formatting the log directory failed:\n{proc.stdout[-2000:]}")
        return [java_binary(), *common, "kafka.Kafka", str(props)]

    def probe(self, timeout: float = 3.0) -> bool:
        return probe_kafka(self.address, timeout)


@dataclass(frozen=True)
class Cassandra(Service):
    name: str = "cassandra"
    port: int = 19042
    extra_ports: dict[str, int] = field(default_factory=lambda: {"storage": 17000})
    heap: str = "768m"

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        conf = run_dir / "conf"
        conf.mkdir(parents=True)
        yaml = conf / "cassandra.yaml"
        values = {"port": str(self.port), "storage_port": str(self.extra_ports["storage"])}
        yaml.write_text(render(read_resource("cassandra", "cassandra.yaml"), values), encoding="utf-8")
        logback = conf / "logback.xml"
        logback.write_text(read_resource("cassandra", "logback.xml"), encoding="utf-8")
        # "--add-opens X" lines hold two arguments each.
        module_access = [
            arg
            for line in read_resource("cassandra", "jvm17-server.options").splitlines()
            if not line.startswith("#")
            for arg in line.split()
        ]
        jamm = sorted((dist / "lib").glob("jamm-*.jar"))
        if not jamm:
            raise RuntimeError(f"cassandra: no jamm agent jar in {dist / 'lib'}")
        return [
            java_binary(),
            *self.jvm_options(run_dir),
            "-Xss256k",
            *module_access,
            # Cassandra measures memtable sizes with jamm; without the agent the JVM dies at start-up.
            f"-javaagent:{jamm[-1]}",
            f"-Dcassandra.config=file://{yaml}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.storagedir={run_dir / 'data'}",
            f"-Dcassandra.logdir={run_dir / 'logs'}",
            f"-Dlogback.configurationFile={logback}",
            # One node with fresh data: nothing to wait for in gossip and no ring state to load.
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.load_ring_state=false",
            "-Dcassandra.ring_delay_ms=1000",
            "-cp",
            classpath(dist / "lib"),
            "org.apache.cassandra.service.CassandraDaemon",
        ]

    def probe(self, timeout: float = 3.0) -> bool:
        return probe_cassandra(LOOPBACK, self.port, timeout)


@dataclass(frozen=True)
class Elasticsearch(Service):
    name: str = "elasticsearch"
    port: int = 19200
    extra_ports: dict[str, int] = field(default_factory=lambda: {"transport": 19300})

    @property
    def address(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def arrange(self, staging: Path) -> None:
        """Turn Maven's flat jar list into the layout Elasticsearch's module loader expects.

        The server and its libraries go to `lib/` (module path); the HTTP module, Netty and the
        compatibility plugin go to `modules/transport-netty4/`, loaded by Elasticsearch in its own
        class loader exactly as in the distribution. Both launcher classes are compiled here.
        """
        lib = staging / "lib"
        module = staging / "modules" / "transport-netty4"
        module.mkdir(parents=True)
        (staging / "plugins").mkdir()
        for jar in sorted(lib.glob("*.jar")):
            if jar.name.startswith(("netty-", "transport-netty4-", "elasticsearch-ssl-config-")):
                jar.rename(module / jar.name)
        netty4 = next(module.glob("transport-netty4-*.jar"))
        version = netty4.stem.removeprefix("transport-netty4-")
        src = resource_dir("elasticsearch")
        plugin_classes = staging / "build" / "plugin"
        javac(
            [src / "CadenzaCompatPlugin.java"],
            plugin_classes,
            classpath=[*sorted(lib.glob("*.jar")), *sorted(module.glob("*.jar"))],
        )
        subprocess.run(
            ["jar", "cf", str(module / "cadenza-compat.jar"), "-C", str(plugin_classes), "."],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # The module's entry class becomes the compatibility plugin (a subclass of Netty4Plugin);
        # without `modulename` Elasticsearch loads the directory as a plain class-path plugin.
        (module / "plugin-descriptor.properties").write_text(
            "description=Netty 4 HTTP and transport with REST compatibility version 9\n"
            f"version={version}\nname=transport-netty4\n"
            "classname=dev.cadenza.devservices.CadenzaCompatPlugin\n"
            f"java.version=17\nelasticsearch.version={version}\n",
            encoding="utf-8",
        )
        javac([src / "CadenzaEsNode.java"], staging / "launcher", module_path=lib)
        shutil.rmtree(staging / "build")

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        config = run_dir / "config"
        config.mkdir(parents=True)
        values = {
            "port": str(self.port),
            "transport_port": str(self.extra_ports["transport"]),
            "data_dir": str(run_dir / "data"),
            "logs_dir": str(run_dir / "logs"),
        }
        (config / "elasticsearch.yml").write_text(
            render(read_resource("elasticsearch", "elasticsearch.yml"), values), encoding="utf-8"
        )
        (config / "log4j2.properties").write_text(
            read_resource("elasticsearch", "log4j2.properties"), encoding="utf-8"
        )
        return [
            java_binary(),
            *self.jvm_options(run_dir),
            "-Dlog4j2.formatMsgNoLookups=true",
            "-Dlog4j2.disable.jmx=true",
            "--module-path",
            str(dist / "lib"),
            "--add-modules",
            "ALL-MODULE-PATH",
            "-cp",
            str(dist / "launcher"),
            "CadenzaEsNode",
            str(dist),
            str(config),
        ]

    def probe(self, timeout: float = 3.0) -> bool:
        return probe_elasticsearch(self.address, timeout)


# Built from the Go module proxy rather than Maven Central; started only when named.


def http_get_json(url: str, timeout: float = 3.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def probe_http_json(url: str, timeout: float = 3.0) -> bool:
    parsed = urllib.parse.urlsplit(url)
    if not port_open(parsed.port or 80, parsed.hostname or LOOPBACK):
        return False
    try:
        http_get_json(url, timeout)
        return True
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class GoService(Service):
    """A server built from a Go module (no JVM, no heap)."""

    in_default_set: ClassVar[bool] = False
    tool: ClassVar[gobuild.GoTool]

    def resolve_dist(self, home: Path, progress: Callable[[str], None]) -> Path:
        return gobuild.build(self.name, self.tool, home=home, progress=progress)

    def binary(self, dist: Path) -> str:
        return str(dist / "bin" / self.tool.binary)


@dataclass(frozen=True)
class Jaeger(GoService):
    """Jaeger all-in-one with in-memory storage: OTLP in, `GET /api/traces?service=...` out."""

    name: str = "jaeger"
    port: int = 19686
    extra_ports: dict[str, int] = field(
        default_factory=lambda: {"otlp-grpc": 14317, "otlp-http": 14318, "query-grpc": 19685}
    )
    tool: ClassVar[gobuild.GoTool] = obs.JAEGER_TOOL

    @property
    def address(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def otlp_grpc_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.extra_ports['otlp-grpc']}"

    @property
    def otlp_http_endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self.extra_ports['otlp-http']}"

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        config = run_dir / "config.yaml"
        config.write_text(
            obs.JAEGER_CONFIG.format(
                host=LOOPBACK,
                query_port=self.port,
                query_grpc_port=self.extra_ports["query-grpc"],
                otlp_grpc_port=self.extra_ports["otlp-grpc"],
                otlp_http_port=self.extra_ports["otlp-http"],
            ),
            encoding="utf-8",
        )
        return [self.binary(dist), "--config", str(config)]

    def probe(self, timeout: float = 3.0) -> bool:
        # The query API answers only once the storage and the pipeline are up.
        return probe_http_json(f"{self.address}/api/services", timeout) and port_open(
            self.extra_ports["otlp-grpc"]
        )

    def describe(self) -> str:
        return f"{self.name} {self.address} (OTLP gRPC {self.otlp_grpc_endpoint})"


@dataclass(frozen=True)
class Prometheus(GoService):
    """Prometheus 3 scraping the targets of `targets.json` every second."""

    name: str = "prometheus"
    port: int = 19090
    tool: ClassVar[gobuild.GoTool] = obs.PROMETHEUS_TOOL

    @property
    def address(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def prepare(self, dist: Path, run_dir: Path) -> list[str]:
        targets = run_dir / obs.TARGETS_FILE
        initial = [t for t in os.environ.get(obs.SCRAPE_TARGETS_ENV, "").split(",") if t.strip()]
        obs.write_targets(targets, initial)
        config = run_dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: cadenza\n    file_sd_configs:\n"
            f"      - files: [{json.dumps(str(targets))}]\n        refresh_interval: 1s\n",
            encoding="utf-8",
        )
        return [
            self.binary(dist),
            f"--config.file={config}",
            f"--storage.tsdb.path={run_dir / 'data'}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            "--storage.tsdb.retention.time=1d",
            "--log.level=info",
        ]

    def probe(self, timeout: float = 3.0) -> bool:
        return probe_http_json(f"{self.address}/api/v1/status/buildinfo", timeout)


SERVICES: dict[str, Service] = {
    s.name: s for s in (Kafka(), Cassandra(), Elasticsearch(), Jaeger(), Prometheus())
}
DEFAULT_SERVICES: tuple[str, ...] = tuple(n for n, s in SERVICES.items() if s.in_default_set)
