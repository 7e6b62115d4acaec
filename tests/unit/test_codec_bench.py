"""bench.codec runs end to end on a few accounts (no timing asserted: the figures are in
docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_codec_bench_times_pack_unpack_and_free_for_every_codec() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.codec", "--events", "1000", "--accounts", "100",
         "--rounds", "1"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| this checkout")]
    assert [row.split("|")[1].strip() for row in rows] == [
        "this checkout, compiled", "this checkout, compiled, collector tracks",
        "this checkout, compiled, no prefetch",
        "this checkout, compiled, evictions one at a time", "this checkout, reference"]
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all(float(cell) > 0 for cell in cells[1:])
