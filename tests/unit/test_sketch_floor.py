"""The Space-Saving victim is the one the textbook scan picks, in every case."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine.sketches import HEAVY_HITTER_CAPACITY, ActorSketch


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
