"""Long fuzz runs of every decoder a stranger can reach (the targets of ``tests/fuzz/targets.py``).

    .venv/bin/python bench/fuzz.py [--minutes 10] [--jobs 1] [TARGET ...]

Each target runs for ``--minutes`` under atheris with its corpus kept in ``.cache/fuzz/<target>``
(ignored by git), so every run starts where the last one stopped. Findings are written to
``.cache/fuzz/findings/``; the table printed at the end (executions, corpus size, findings) is
what ``bench/RESULTS.md`` records. A finding is fixed at its cause and its input kept under
``tests/fuzz/regressions/<target>/``.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache" / "fuzz"
sys.path.insert(0, str(ROOT))


def run_target(name: str, minutes: float, jobs: int) -> tuple[int, int, list[Path]]:
    corpus = CACHE / name
    findings = CACHE / "findings"
    corpus.mkdir(parents=True, exist_ok=True)
    findings.mkdir(parents=True, exist_ok=True)
    before = set(findings.iterdir())
    cmd = [
        sys.executable,
        "-m",
        "tests.fuzz.run",
        name,
        str(corpus),
        f"-max_total_time={int(minutes * 60)}",
        f"-artifact_prefix={findings}/{name}-",
    ]
    if jobs > 1:
        cmd += [f"-fork={jobs}", "-ignore_crashes=1", "-ignore_timeouts=1", "-ignore_ooms=1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, errors="replace")
    (CACHE / f"{name}.log").write_text(proc.stderr)
    executed = sum(int(n) for n in re.findall(r"stat::number_of_executed_units: (\d+)", proc.stderr))
    if not executed:  # fork mode reports progress lines only
        runs = re.findall(r"#(\d+)\s", proc.stderr)
        executed = int(runs[-1]) if runs else 0
    return executed, len(list(corpus.iterdir())), sorted(set(findings.iterdir()) - before)


def main() -> int:
    from tests.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[], metavar="TARGET")
    parser.add_argument("--minutes", type=float, default=10.0, help="per target (default 10)")
    parser.add_argument("--jobs", type=int, default=1, help="libFuzzer -fork workers per target")
    args = parser.parse_args()
    names = args.targets or list(TARGETS)
    print("| target | minutes | executions | exec/s | corpus | findings |")
    print("|---|---:|---:|---:|---:|---|")
    failed = False
    for name in names:
        executed, corpus, found = run_target(name, args.minutes, args.jobs)
        failed |= bool(found)
        listed = ", ".join(p.name for p in found) or "none"
        rate = executed / (args.minutes * 60)
        print(f"| {name} | {args.minutes:g} | {executed} | {rate:.0f} | {corpus} | {listed} |", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
