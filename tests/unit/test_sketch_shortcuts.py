"""Shortcuts in the sketches give what the plain computations give: the Space-Saving
victim, the merged HyperLogLog registers and their estimate, and a summary of several
sketches."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine.sketches import (
    HEAVY_HITTER_CAPACITY,
    HLL_REGISTERS,
    ActorSketch,
    ActorSummary,
    hll_add,
    hll_estimate,
    hll_merge,
    summarize,
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
    assert estimate == hll_estimate_plain(low)
    if low.count(0) == 0 or estimate > 2.5 * HLL_REGISTERS:
        assert estimate == pytest.approx(0.7213 / (1 + 1.079 / HLL_REGISTERS)
                                         * HLL_REGISTERS**2 / plain, rel=1e-12)


def hll_estimate_plain(registers: bytes) -> float:
    """The estimate with its harmonic sum over the ranks up to the largest."""
    harmonic = sum(registers.count(rank) * 2.0**-rank for rank in range(max(registers) + 1))
    zeros = registers.count(0)
    estimate = 0.7213 / (1 + 1.079 / HLL_REGISTERS) * HLL_REGISTERS**2 / harmonic
    if estimate <= 2.5 * HLL_REGISTERS and zeros:
        return HLL_REGISTERS * math.log(HLL_REGISTERS / zeros)
    return estimate


def summarize_plain(sketches: list[ActorSketch], top: int) -> ActorSummary:
    """Every sketch's guaranteed counts merged into one dict, their registers (or their
    actors) into zeros."""
    merged: dict[int, int] = {}
    rhythm = [0] * len(sketches[0].rhythm) if sketches else []
    for sketch in sketches:
        for actor, count in sketch.guaranteed_counts().items():
            merged[actor] = merged.get(actor, 0) + count
        rhythm = [mine + theirs for mine, theirs in zip(rhythm, sketch.rhythm, strict=True)]
    interactions = sum(sketch.interactions for sketch in sketches)
    exact = all(sketch.exact for sketch in sketches)
    if exact:
        distinct = float(len(merged))
    else:
        registers = bytearray(HLL_REGISTERS)
        for sketch in sketches:
            for actor in sketch.counts:
                hll_add(registers, actor)
            if sketch.registers is not None:
                registers[:] = bytes(map(max, registers, sketch.registers))
        distinct = min(float(interactions), hll_estimate_plain(bytes(registers)))
    top_counts = tuple(sorted(merged.values(), reverse=True)[:top])
    return ActorSummary(interactions, distinct, top_counts, exact,
                        tuple(rhythm) if sketches else (0,) * 8)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 2**32), st.integers(0, 4))
def test_a_summary_matches_the_plain_merge(seed: int, buckets: int) -> None:
    rng = random.Random(seed)  # sketches past their capacity, with errors, most of the time
    sketches = []
    for bucket in range(buckets):
        sketch = ActorSketch(bucket)
        audience = rng.choice([3, 20, 4 * HEAVY_HITTER_CAPACITY, 5_000])
        for _ in range(rng.randrange(600)):
            actor = rng.randrange(audience)
            sketch.add(actor * 0x9E3779B97F4A7C15 % (1 << 64))  # spread over the hash space
            sketch.rhythm[actor % len(sketch.rhythm)] += 1
        sketches.append(sketch)
    assert summarize(sketches, 10) == summarize_plain(sketches, 10)
