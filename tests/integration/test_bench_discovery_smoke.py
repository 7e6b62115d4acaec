"""bench/discovery.py runs end to end on small sizes; no timing is asserted here (the
full run and its figures are in docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from tests.integration.test_bench_smoke import bench

pytestmark = pytest.mark.integration


def test_discovery_bench_reports_queries_http_against_bare_and_ingest_share() -> None:
    output = bench("bench.discovery", "--accounts", "3000", "--repeats", "5",
                   "--http-seconds", "1", "--ingest-accounts", "5",
                   "--rebuild-accounts", "2000")
    assert "| top 20 by credibility |" in output
    assert "discovery / bare throughput:" in output
    served = next(line for line in output.splitlines()
                  if line.startswith("| GET /accounts over"))
    assert served.endswith("| 0 |"), served  # every discovery URL answered 200
    assert output.count("| index update (`update`, and `prune` of the versions kept "
                        "for cursors) |") == 2
    assert "| forked child: scoring everything (wall time, other core) |" in output
    assert "longest load step:" in output
