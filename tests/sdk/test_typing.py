"""The type checker sees activity results through execute_activity, and rejects misuse."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

SNIPPET = textwrap.dedent(
    """
    from datetime import timedelta
    from cadenza.sdk import activity, workflow

    @activity.defn
    async def fetch(x: int) -> str:
        return ""

    @activity.defn
    def count(x: int) -> int:
        return 1

    async def body() -> None:
        t = timedelta(seconds=1)
        reveal_type(await workflow.execute_activity(fetch, 1, start_to_close_timeout=t))
        reveal_type(await workflow.execute_activity(count, 1, start_to_close_timeout=t))
        reveal_type(workflow.start_activity(fetch, 1, start_to_close_timeout=t))
        wrong: int = await workflow.execute_activity(fetch, 1, start_to_close_timeout=t)  # error: line 18
        await workflow.execute_activity(fetch, 1, start_to_close_timeoutt=t)  # error: line 19
    """
)


def test_activity_results_are_typed_and_misuse_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "snippet.py"
    source.write_text(SNIPPET)
    stdout, _, _ = mypy_api.run(
        [str(source), "--no-incremental", "--cache-dir", str(tmp_path / "cache"), "--no-error-summary"]
    )
    lines = stdout.splitlines()
    revealed = [line.split("Revealed type is ")[1] for line in lines if "Revealed type" in line]
    assert revealed == [
        '"str"',
        '"int"',
        '"cadenza.sdk._runtime.activities.ActivityHandle[str]"',
    ]
    errors = {line.split(":")[1] for line in lines if ": error:" in line}
    assert errors == {"18", "19"}, stdout
