"""Resolving the servers' jars from Maven Central into a cache outside the source tree.

Each service has a tiny `pom.xml` (packaging `pom`) next to this module. `mvn` copies its runtime
dependencies into `<cache>/dist/<service>-<fingerprint>/lib`; a marker file written last says the
directory is complete, so later runs skip Maven entirely. The fingerprint covers the pom and any
launcher sources, so editing either resolves into a new directory instead of reusing stale jars.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

# The default dependency plugin of Maven 3.8.7 predates `includeScope` fixes; pin a known one.
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
MARKER = ".complete"

Progress = Callable[[str], None]


class ResolveError(RuntimeError):
    """Maven or javac failed; the message carries the tail of their output."""


def cache_home() -> Path:
    """Where jars, launchers and run directories live: never inside the git work tree."""
    override = os.environ.get("CADENZA_DEVSERVICES_HOME")
    if override:
        return Path(override).expanduser().resolve()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cadenza" / "devservices"


def resource_dir(service: str) -> Path:
    """The packaged directory holding a service's pom and config templates."""
    return Path(str(resources.files("cadenza.ops.devservices") / service))


def read_resource(service: str, name: str) -> str:
    return (resource_dir(service) / name).read_text(encoding="utf-8")


def render(template: str, values: dict[str, str]) -> str:
    """Fill `{{name}}` placeholders; `${...}` is left alone because log4j and Kafka use it."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    if "{{" in template:
        start = template.index("{{")
        raise ValueError(f"unfilled placeholder in template: {template[start : start + 40]!r}")
    return template


def fingerprint(service: str) -> str:
    digest = hashlib.sha256()
    folder = resource_dir(service)
    for path in sorted(folder.iterdir()):
        if path.name == "pom.xml" or path.suffix == ".java":
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def dist_dir(service: str, home: Path | None = None) -> Path:
    return (home or cache_home()) / "dist" / f"{service}-{fingerprint(service)}"


def is_resolved(service: str, home: Path | None = None) -> bool:
    return (dist_dir(service, home) / MARKER).is_file()


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    proc = subprocess.run(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-40:])
        raise ResolveError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:3])} ...\n{tail}")


def maven_copy_dependencies(pom: Path, output: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ResolveError("`mvn` is not on PATH; install Maven (Debian package `maven`)")
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={output}",
    ]
    repo = os.environ.get("CADENZA_MAVEN_REPO")
    if repo:
        cmd.append(f"-Dmaven.repo.local={repo}")
    _run(cmd, pom.parent, f"Maven resolution of {pom.parent.name}")


def javac(
    sources: Sequence[Path], out: Path, *, classpath: Sequence[Path] = (), module_path: Path | None = None
) -> None:
    tool = shutil.which("javac")
    if tool is None:
        raise ResolveError(
            "`javac` is not on PATH; install a JDK 17 (Debian package `openjdk-17-jdk-headless`)"
        )
    out.mkdir(parents=True, exist_ok=True)
    cmd = [tool, "-nowarn", "-d", str(out)]
    if module_path is not None:
        cmd += ["--module-path", str(module_path), "--add-modules", "ALL-MODULE-PATH"]
    if classpath:
        cmd += ["-cp", os.pathsep.join(str(p) for p in classpath)]
    _run(cmd + [str(s) for s in sources], out, "javac")


def resolve(
    service: str,
    *,
    home: Path | None = None,
    arrange: Callable[[Path], None] | None = None,
    progress: Progress = lambda _msg: None,
) -> Path:
    """Return the complete distribution directory of `service`, resolving it first when needed.

    `arrange` gets the staging directory after Maven filled `lib/`; it lays out anything else the
    service needs (such as compiled launcher classes) before the directory is published.
    """
    target = dist_dir(service, home)
    if (target / MARKER).is_file():
        return target
    progress(f"{service}: resolving jars with Maven into {target} (first run only)")
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # Maven works on a copy: the installed package directory may be read-only.
    pom = staging / "pom.xml"
    shutil.copyfile(resource_dir(service) / "pom.xml", pom)
    maven_copy_dependencies(pom, staging / "lib")
    if arrange is not None:
        arrange(staging)
    (staging / MARKER).write_text(fingerprint(service) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    jars = len(list((target / "lib").glob("*.jar")))
    progress(f"{service}: {jars} jars ready")
    return target
