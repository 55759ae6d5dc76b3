"""Building the Go development servers (Jaeger, Prometheus) from the Go module proxy.

Each one is a Go program published as a module. With the machine's Go, a small module of our own
under the cache (`go.mod` only) records the program as a tool (`go get -tool PKG@VERSION`, which
pins every dependency through the module's `go.sum`), then `go build -o` writes the binary into
`<cache>/dist/<service>-<fingerprint>/bin/`. A marker written last says the directory is complete,
so later runs reuse the binary without starting Go at all. The fingerprint covers the package, the
version and the build tags, so changing any of them builds into a new directory.

The first build of each takes minutes on two cores (Go's own build and module caches are reused
across builds, so a rebuild after a cache wipe of ours is faster).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cadenza.ops.devservices.resolve import MARKER, ResolveError, cache_home

Progress = Callable[[str], None]

BUILD_LOG = "build.log"


@dataclass(frozen=True)
class GoTool:
    """A Go program to build: ``package`` at module ``version``, written to ``bin/<binary>``."""

    binary: str
    package: str
    version: str
    tags: tuple[str, ...] = ()

    def fingerprint(self) -> str:
        text = "\n".join([self.package, self.version, ",".join(self.tags), "v1"])
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def go_binary() -> str:
    """The machine's Go: $CADENZA_GO, then `go` on PATH, then /usr/local/go/bin/go."""
    override = os.environ.get("CADENZA_GO")
    if override:
        return override
    found = shutil.which("go")
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    if default.is_file():
        return str(default)
    raise ResolveError("no Go toolchain: install Go, or set CADENZA_GO to the `go` binary")


def dist_dir(service: str, tool: GoTool, home: Path | None = None) -> Path:
    return (home or cache_home()) / "dist" / f"{service}-{tool.fingerprint()}"


def binary_path(service: str, tool: GoTool, home: Path | None = None) -> Path:
    return dist_dir(service, tool, home) / "bin" / tool.binary


def is_built(service: str, tool: GoTool, home: Path | None = None) -> bool:
    return (dist_dir(service, tool, home) / MARKER).is_file()


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Never download another toolchain: the machine's Go builds or the build fails and says so.
    env["GOTOOLCHAIN"] = "local"
    return env


def _run(cmd: Sequence[str], cwd: Path, log: Path, what: str) -> None:
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.run(
            list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, env=_go_env(), check=False
        )
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").splitlines()[-40:])
        raise ResolveError(f"{what} failed (exit {proc.returncode}); log {log}:\n{tail}")


def build(
    service: str, tool: GoTool, *, home: Path | None = None, progress: Progress = lambda _msg: None
) -> Path:
    """Return the complete distribution directory of ``service``, building the binary first if needed."""
    target = dist_dir(service, tool, home)
    if (target / MARKER).is_file():
        return target
    go = go_binary()
    progress(f"{service}: building {tool.package}@{tool.version} with Go into {target} (first run only)")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    log = staging / BUILD_LOG
    (staging / "go.mod").write_text(f"module cadenza.local/devservices/{service}\n", encoding="utf-8")
    _run([go, "get", "-tool", f"{tool.package}@{tool.version}"], staging, log, f"{service}: go get")
    # Plain flags, so Go's build cache (shared with any other build of the same packages) applies.
    cmd = [go, "build", "-ldflags=-s -w", "-o", str(staging / "bin" / tool.binary)]
    if tool.tags:
        cmd.append(f"-tags={','.join(tool.tags)}")
    _run([*cmd, tool.package], staging, log, f"{service}: go build")
    (staging / MARKER).write_text(tool.fingerprint() + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    progress(f"{service}: {target / 'bin' / tool.binary} built")
    return target
