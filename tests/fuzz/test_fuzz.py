"""A short coverage-guided fuzz run of every target (``CADENZA_FUZZ_SECONDS``, default 60, each).

Each target runs in its own process under atheris (``python -m tests.fuzz.run``); a crash, a hang
(``-timeout``) or an unbounded allocation (``-rss_limit_mb``) fails the test with the saved input
and the traceback. Fix the cause, then keep the input under ``regressions/<target>/``.
Longer runs: ``python bench/fuzz.py``.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parents[2]
SECONDS = int(os.environ.get("CADENZA_FUZZ_SECONDS", "60"))
# Where the dev extra installs atheris (it ships wheels for Linux x86_64 only).
SUPPORTED = sys.platform == "linux" and platform.machine() == "x86_64"


def _atheris_or_skip() -> None:
    if importlib.util.find_spec("atheris") is not None:
        return
    if SUPPORTED:
        pytest.fail("atheris is missing: install the dev extra (pip install -e '.[dev]')")
    pytest.skip(f"atheris has no wheels for {sys.platform} {platform.machine()}")


@pytest.mark.timeout(SECONDS + 300)
@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzzing_finds_nothing(name: str, tmp_path: Path) -> None:
    _atheris_or_skip()
    artifacts = tmp_path / "findings"
    artifacts.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.fuzz.run",
            name,
            str(tmp_path / "corpus"),
            f"-max_total_time={SECONDS}",
            f"-artifact_prefix={artifacts}/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SECONDS + 240,
    )
    found = sorted(artifacts.iterdir())
    if proc.returncode != 0 or found:
        tail = "\n".join(proc.stderr.splitlines()[-60:])
        pytest.fail(
            f"fuzzing {name} found a problem (exit {proc.returncode}); input: "
            f"{', '.join(map(str, found)) or 'none saved'}\n{tail}"
        )
    assert "stat::number_of_executed_units" in proc.stderr, proc.stderr[-2000:]
