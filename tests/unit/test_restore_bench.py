"""bench.restore runs end to end on a small partition, against another build too (no
timing asserted: the figures are in docs/benchmarks.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_restore_bench_restores_every_account_each_build_wrote(tmp_path: Path) -> None:
    # This checkout as its own baseline: the child runs by path with PYTHONPATH set.
    run = subprocess.run(
        [sys.executable, "-m", "bench.restore", "--accounts", "3000", "--batch", "500",
         "--rescore", "100", "--rounds", "1", "--pairs", "1", "--baseline", str(REPO)],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    figures = json.loads(run.stdout)
    build = figures[str(REPO)]
    # Every account once; a gate record only for the emitted ones (at most 100 per
    # checkpoint), none for the ones left waiting.
    assert build["kinds"]["account"] == 3000
    assert 0 < build["kinds"]["gate"] <= 100 * 7
    assert build["hot_after"] == 0  # restored as packed bytes
    assert build["accounts_per_s_median"] > 0
