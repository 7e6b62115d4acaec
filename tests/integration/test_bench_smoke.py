"""Each benchmark runs end to end on small sizes; no timing is asserted here (the full
runs and their figures are in docs/benchmarks.md)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration


def bench(*arguments: str) -> str:
    run = subprocess.run([sys.executable, "-m", *arguments], cwd=REPO, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return run.stdout


def test_ingest_bench_compares_pipeline_with_bare_consumer_and_quix() -> None:
    output = bench("bench.ingest", "--events", "3000")
    assert "pipeline / bare aiokafka:" in output
    assert "pipeline / quix:" in output


def test_query_bench_compares_scores_with_a_bare_endpoint() -> None:
    output = bench("bench.queries", "--seconds", "1", "--accounts", "20",
                   "--ingest-rate", "200")
    assert "score / bare throughput:" in output


def test_memory_bench_reports_bytes_per_account() -> None:
    assert "bytes per account" in bench("bench.memory", "--accounts", "2000")


def test_snapshot_bench_reports_pause_size_and_restore() -> None:
    output = bench("bench.snapshot", "--accounts", "2000")
    assert "| 2,000 |" in output


def test_expiry_bench_reports_slices_per_case() -> None:
    output = bench("bench.expiry", "--accounts", "2000")
    for case in ("nothing due", "part of each", "everything"):
        assert f"| 2,000 | {case} |" in output


def test_backfill_bench_compares_crawler_order_with_time_order() -> None:
    output = bench("bench.backfill", "--events", "3000", "--rounds", "1")
    assert "crawler / time order:" in output
    assert "{'counted': 3000}" in output


def test_dedupe_bench_reports_ram_and_disk_per_id() -> None:
    output = bench("bench.dedupe", "--ids", "20000")
    assert "| 20,000 | compiled | crawler |" in output
    assert "| 20,000 | reference | crawler |" in output
    assert "| 20,000 | crawler |" in output  # the ratios
