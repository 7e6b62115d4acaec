import random

import pytest

from service.engine.sketches import (
    HEAVY_HITTER_CAPACITY,
    ActorSketch,
    actor_hash,
    summarize,
)


def test_small_audiences_are_counted_exactly() -> None:
    sketch = ActorSketch()
    for index in range(100):
        sketch.add(actor_hash(f"u{index % 20}"))
    summary = summarize([sketch], top=3)
    assert summary.exact
    assert summary.distinct_actors == 20
    assert summary.top_counts == (5, 5, 5)


@pytest.mark.parametrize("distinct", [500, 5_000, 50_000])
def test_distinct_actor_estimate_is_within_four_standard_errors(distinct: int) -> None:
    sketch = ActorSketch()
    for index in range(distinct):
        sketch.add(actor_hash(f"actor-{index}"))
    summary = summarize([sketch], top=10)
    assert not summary.exact
    assert abs(summary.distinct_actors - distinct) / distinct < 4 * 0.065


def test_heavy_hitters_are_found_in_a_large_audience() -> None:
    rng = random.Random(7)
    sketch = ActorSketch()
    for index in range(20_000):
        actor = f"pod-{index % 5}" if index % 4 == 0 else f"fan-{rng.randrange(50_000)}"
        sketch.add(actor_hash(actor))
    summary = summarize([sketch], top=5)
    # Each pod member gave exactly 1,000; the guaranteed counts may only undershoot.
    assert all(900 <= count <= 1_000 for count in summary.top_counts)


def test_memory_stays_bounded_whatever_the_audience() -> None:
    sketch = ActorSketch()
    for index in range(100_000):
        sketch.add(actor_hash(f"actor-{index}"))
    assert len(sketch.counts) == HEAVY_HITTER_CAPACITY
    assert sketch.registers is not None
    assert len(sketch.registers) == 256


def test_summaries_merge_buckets() -> None:
    first, second = ActorSketch(), ActorSketch()
    for index in range(10):
        first.add(actor_hash(f"u{index}"))
        second.add(actor_hash(f"u{index + 5}"))
    summary = summarize([first, second], top=1)
    assert summary.distinct_actors == 15
    assert summary.interactions == 20
    assert summary.top_counts == (2,)


def test_actor_hash_is_pinned_because_snapshots_store_it() -> None:
    assert actor_hash("u7") == 0xD37D4DD5A219E0
