"""bench.cold_scores runs end to end on a small state (no timing asserted: the figures
are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_cold_score_bench_times_both_codecs_and_their_parts() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bench.cold_scores", "--accounts", "2000", "--scores", "200",
         "--skip-http"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    rows = [line for line in run.stdout.splitlines() if line.startswith("| compiled")
            or line.startswith("| reference")]
    assert len(rows) == 2
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert all(float(cell) > 0 for cell in cells[1:])
