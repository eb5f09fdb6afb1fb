"""A 3 notebooks x 3 kernels matrix: `distrokernels test` against the same nine runs done
one after the other with `distrokernels run`.

    .venv/bin/python benchmarks/matrix.py [--rounds 3]

Needs the Debian 11, 12 and 13 kernels (`bash dev/test` installs them). The notebooks are
this repository's example (notebooks/04-across-userlands.ipynb) and two small ones of
its own. Both ways run every notebook in every kernel, cold, in the same folders' copies;
`test` also compares the outputs. Rounds alternate the two ways. Prints a markdown table
and writes benchmarks/results/matrix.json. Not a test: nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

REPOSITORY = Path(__file__).resolve().parents[1]
KERNELS = ["distro-debian-11", "distro-debian-12", "distro-debian-13"]
SMALL = {
    "arithmetic.ipynb": ["print(sum(range(100)))", "import math\nprint(math.pi)"],
    "stdlib.ipynb": ["import json\nprint(json.dumps([1, 2]))", "import sqlite3\nprint(1)"],
}


def notebooks(folder: Path) -> list[Path]:
    """The example and two small notebooks, written into ``folder``."""
    shutil.copy(REPOSITORY / "notebooks" / "04-across-userlands.ipynb", folder)
    for name, sources in SMALL.items():
        nbformat.write(new_notebook(cells=[new_code_cell(s) for s in sources]), folder / name)
    return sorted(folder.glob("*.ipynb"))


def cli(*args: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "distrokernels", *args], capture_output=True, text=True
    )
    if result.returncode not in (0, 1):  # 1: a difference with --strict, not a failure here
        raise SystemExit(f"distrokernels {' '.join(args)} failed: {result.stderr}")


def one_after_the_other(paths: list[Path], output: Path) -> float:
    start = time.monotonic()
    for path in paths:
        for kernel in KERNELS:
            cli("run", str(path), "--kernel", kernel, "--output", str(output / f"{kernel}.ipynb"))
    return time.monotonic() - start


def as_a_matrix(paths: list[Path]) -> float:
    start = time.monotonic()
    cli("test", *map(str, paths), "--kernels", ",".join(KERNELS))
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {"run, one after the other": [], "test, the matrix": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder, output = Path(tmp) / "course", Path(tmp) / "out"
        folder.mkdir()
        output.mkdir()
        paths = notebooks(folder)
        for _ in range(args.rounds):
            samples["run, one after the other"].append(one_after_the_other(paths, output))
            samples["test, the matrix"].append(as_a_matrix(paths))
    medians = {way: statistics.median(values) for way, values in samples.items()}
    ratio = medians["test, the matrix"] / medians["run, one after the other"]
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cores = os.cpu_count()
    shape = f"{len(paths)} notebooks x {len(KERNELS)} kernels, `test` with --jobs {cores}"
    print(f"{when}, {cores} cores, {platform.release()}, {args.rounds} rounds, {shape}")
    print("\n| way | median (min-max) |\n|---|---|")
    for way, values in samples.items():
        print(f"| {way} | {medians[way]:.1f} s ({min(values):.1f}-{max(values):.1f}) |")
    print(f"\n`test` takes {ratio:.2f}x the time of the nine `run`s, and compares the outputs.")
    results = REPOSITORY / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "matrix.json").write_text(
        json.dumps({"when": when, "samples": samples, "ratio": ratio}, indent=2) + "\n"
    )


if __name__ == "__main__":
    main()
