"""Run temporalio's published samples' tests against Cadenza, with only the imports changed.

    python bench/temporal_samples.py --samples PATH/TO/samples-python [--python PY] [DIR ...]

Copies a checkout of temporalio's ``samples-python`` into a temporary directory, replaces the
word ``temporalio`` with ``cadenza`` in every ``.py`` file (nothing else), and runs the tests of
each sample directory in its own pytest process (the samples' own ``conftest.py``, which starts
``WorkflowEnvironment.start_local()``). Prints one line per directory and a total. The samples
pin pytest 7 and pytest-asyncio 0.18: ``--python`` names an interpreter that has those and
Cadenza installed. Directories default to the samples that use only the core SDK (not the AI,
Nexus, cloud or third-party plugin samples).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CORE = [
    "activity_sticky_queues",
    "context_propagation",
    "custom_converter",
    "eager_wf_start",
    "hello",
    "message_passing",
    "polling",
    "pydantic_converter",
    "resource_pool",
    "sleep_for_days",
    "updatable_timer",
]
_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?)")


def rewrite(root: Path) -> int:
    changed = 0
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        new = re.sub(r"\btemporalio\b", "cadenza", text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed += 1
    return changed


def run(python: str, root: Path, directory: str, timeout: float) -> dict[str, int]:
    cmd = [
        python,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-o",
        "log_cli=false",
        f"tests/{directory}",
    ]
    try:
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=timeout)
        out = proc.stdout.splitlines()[-1] if proc.stdout else ""
    except subprocess.TimeoutExpired:
        return {"timed out": 1}
    counts: dict[str, int] = {}
    for n, kind in _SUMMARY.findall(out):
        counts[kind.rstrip("s") if kind.startswith("error") else kind] = int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--samples", type=Path, required=True, help="a checkout of temporalio/samples-python")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter with pytest 7, pytest-asyncio 0.18"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per directory")
    parser.add_argument("dirs", nargs="*", default=CORE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cadenza-samples-") as tmp:
        root = Path(tmp) / "samples"
        shutil.copytree(args.samples, root, ignore=shutil.ignore_patterns(".git", ".venv"))
        print(f"rewrote the imports of {rewrite(root)} files")
        total: dict[str, int] = {}
        for directory in args.dirs:
            counts = run(args.python, root, directory, args.timeout)
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
            shown = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no tests"
            print(f"{directory:<24} {shown}")
        print("total                    " + ", ".join(f"{v} {k}" for k, v in sorted(total.items())))


if __name__ == "__main__":
    main()
