"""Run one fuzz target under atheris (libFuzzer):

    python -m tests.fuzz.run TARGET [CORPUS_DIR ...] [-max_total_time=60 -artifact_prefix=DIR/ ...]

Flags are libFuzzer's. Unless given, ``-timeout=10`` (an input running longer is a hang),
``-rss_limit_mb=2048`` (an input growing the process past it is an unbounded allocation),
``-max_len`` from the target and ``-print_final_stats=1`` (``stat::number_of_executed_units``) are
added. The target's seeds are written into the first corpus directory (a fresh temporary one when
none is given) before fuzzing starts. Exit status 0: no finding; otherwise libFuzzer has written
the input (``crash-*``, ``timeout-*``, ``oom-*``) under ``-artifact_prefix``.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

DEFAULT_FLAGS = {"-timeout": "10", "-rss_limit_mb": "2048", "-print_final_stats": "1"}


def main(argv: list[str]) -> int:
    import atheris

    # Only modules imported inside this block are instrumented for coverage: the project, the
    # targets, and PyYAML (pure Python, the config loader's parser). fastavro reads in C.
    with atheris.instrument_imports(include=["cadenza", "tests.fuzz", "yaml"]):
        from tests.fuzz.targets import TARGETS

    if len(argv) < 2 or argv[1] not in TARGETS:
        print(f"usage: python -m tests.fuzz.run TARGET [libFuzzer flags]; targets: {', '.join(TARGETS)}")
        return 2
    target = TARGETS[argv[1]]
    flags = [a for a in argv[2:] if a.startswith("-")]
    corpora = [a for a in argv[2:] if not a.startswith("-")]
    given = {f.split("=", 1)[0] for f in flags}
    defaults = {**DEFAULT_FLAGS, "-max_len": str(target.max_len)}
    flags += [f"{k}={v}" for k, v in defaults.items() if k not in given]
    if not corpora:
        corpora = [tempfile.mkdtemp(prefix=f"cadenza-fuzz-{target.name}-")]
    corpus = Path(corpora[0])
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in target.seeds():
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()}").write_bytes(seed)
    if target.dictionary and "-dict" not in given:
        entries = "".join('"' + "".join(f"\\x{b:02x}" for b in token) + '"\n' for token in target.dictionary)
        dictionary = Path(tempfile.mkdtemp(prefix="cadenza-fuzz-dict-")) / f"{target.name}.dict"
        dictionary.write_text(entries)
        flags.append(f"-dict={dictionary}")
    atheris.Setup([argv[0], *flags, *corpora], target.one_input)
    atheris.Fuzz()
    return 0  # pragma: no cover - Fuzz() exits the process


if __name__ == "__main__":
    sys.exit(main(sys.argv))
