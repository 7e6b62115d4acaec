"""The collector pacer: young garbage is collected, survivors are frozen (no collection
walks them again), and the optional full collection reaches frozen garbage too."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from service.runtime_tuning import CollectorPacer


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycle() -> weakref.ref[Node]:
    first, second = Node(), Node()
    first.other, second.other = second, first
    return weakref.ref(first)


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    yield
    gc.unfreeze()
    gc.collect()


def test_a_step_collects_young_garbage_and_freezes_what_survives() -> None:
    pacer = CollectorPacer()
    garbage = cycle()
    kept = Node()
    kept.other = kept
    frozen_before = gc.get_freeze_count()
    pacer.step()
    assert garbage() is None
    assert gc.get_freeze_count() > frozen_before
    assert gc.get_count()[0] < 700  # the young generation starts afresh
    assert kept.other is kept


def test_garbage_that_dies_frozen_waits_for_the_full_collection() -> None:
    pacer = CollectorPacer()
    first = Node()
    first.other = Node()
    first.other.other = first
    probe = weakref.ref(first)
    pacer.step()  # the cycle is alive, so it is frozen
    del first
    pacer.step()
    assert probe() is not None  # frozen: no young step reaches it
    full = CollectorPacer(full_collection_interval_s=0.0)  # a full collection is due
    full.step()
    assert probe() is None
    assert full.stats.full_collections == 1
