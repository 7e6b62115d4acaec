"""Shortcuts in the sketches give what the plain computations give: the Space-Saving
victim, the merged HyperLogLog registers and their estimate."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine.sketches import (
    HEAVY_HITTER_CAPACITY,
    HLL_REGISTERS,
    ActorSketch,
    hll_estimate,
    hll_merge,
)


class ScanningSketch(ActorSketch):
    """The reference: a scan of every counter for the minimum on each eviction."""

    def _first_at_floor(self) -> int:
        return min(self.counts, key=self.counts.__getitem__)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 3 * HEAVY_HITTER_CAPACITY), max_size=600))
def test_evictions_match_a_full_scan(actors: list[int]) -> None:
    fast, reference = ActorSketch(), ScanningSketch()
    for actor in actors:
        fast.add(actor)
        reference.add(actor)
        assert list(fast.counts.items()) == list(reference.counts.items())
        assert fast.errors == reference.errors


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=HLL_REGISTERS, max_size=HLL_REGISTERS),
       st.binary(min_size=HLL_REGISTERS, max_size=HLL_REGISTERS))
def test_register_merge_and_estimate_match_the_plain_loops(mine: bytes, theirs: bytes) -> None:
    low = bytes(value % 58 for value in mine)  # ranks are 0..57
    other = bytes(value % 58 for value in theirs)
    merged = bytearray(low)
    hll_merge(merged, other)
    assert bytes(merged) == bytes(map(max, low, other))
    plain = sum(2.0**-rank for rank in low)
    estimate = hll_estimate(low)
    assert estimate == hll_estimate(bytes(sorted(low)))
    if low.count(0) == 0 or estimate > 2.5 * HLL_REGISTERS:
        assert estimate == pytest.approx(0.7213 / (1 + 1.079 / HLL_REGISTERS)
                                         * HLL_REGISTERS**2 / plain, rel=1e-12)
