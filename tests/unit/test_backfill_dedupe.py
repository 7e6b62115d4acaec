"""The dedupe memory (`service/engine/dedupe.py`) against a plain set of (hour, id), with
each core: the compiled one and the reference (test_dedupe_native.py compares the two)."""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import dedupe
from service.engine.dedupe import EventIds, event_id_hash

adds = st.lists(st.tuples(st.integers(0, 5), st.integers(0, 400)), max_size=600)


@pytest.fixture(autouse=True)
def small_shards(monkeypatch: pytest.MonkeyPatch) -> None:
    # Shards of 4 split after a handful of ids: every path of the directory is taken.
    monkeypatch.setattr(dedupe, "SHARD_IDS", 4)


@pytest.fixture(autouse=True, params=["compiled", "reference"])
def core(request: pytest.FixtureRequest) -> Iterator[None]:
    compiled = request.param == "compiled"
    if compiled and not dedupe.COMPILED_AVAILABLE:
        pytest.skip("engagement_native is not built")
    selected = dedupe.compiled_in_use()
    dedupe.use_compiled(compiled)
    yield
    dedupe.use_compiled(selected)


def filled(pairs: list[tuple[int, int]], track: bool = False) -> EventIds:
    memory = EventIds(track)
    for hour, number in pairs:
        memory.add(hour, f"event-{number}")
    return memory


def sorted_hashes(data: bytes) -> list[int]:
    return [int.from_bytes(data[i : i + 8], "little") for i in range(0, len(data), 8)]


@settings(max_examples=200, deadline=None)
@given(adds)
def test_an_id_is_new_once_per_hour_and_known_after(pairs: list[tuple[int, int]]) -> None:
    memory = EventIds()
    reference: set[tuple[int, int]] = set()
    for hour, number in pairs:
        assert memory.add(hour, f"event-{number}") == ((hour, number) not in reference)
        reference.add((hour, number))
    assert len(memory) == len(reference)
    for hour in range(6):
        for number in range(0, 401, 7):
            assert ((hour, f"event-{number}") in memory) == ((hour, number) in reference)


@settings(max_examples=100, deadline=None)
@given(adds)
def test_an_exported_hour_is_its_hashes_sorted_and_restores_whole(
    pairs: list[tuple[int, int]]
) -> None:
    memory = filled(pairs)
    exported = memory.export()
    for hour, data in exported.items():
        expected = sorted({event_id_hash(f"event-{n}") for h, n in pairs if h == hour})
        assert sorted_hashes(data) == expected
    restored = EventIds()
    for hour, data in exported.items():
        restored.restore(hour, data)
    assert len(restored) == len(memory)
    assert restored.export() == exported
    for hour, number in pairs:
        assert not restored.add(hour, f"event-{number}")


@settings(max_examples=100, deadline=None)
@given(adds, adds)
def test_drained_additions_merged_elsewhere_rebuild_the_same_memory(
    first: list[tuple[int, int]], second: list[tuple[int, int]]
) -> None:
    memory = filled(first, track=True)
    replica = EventIds()
    for hour, data in memory.drain_added().items():
        replica.merge(hour, data)
    assert memory.drain_added() == {}  # drained
    for hour, number in second:
        memory.add(hour, f"event-{number}")
    new = sum(replica.merge(hour, data) for hour, data in memory.drain_added().items())
    assert new == len(set(second) - set(first))
    assert replica.export() == memory.export()
    assert len(replica) == len(memory)


def test_merge_takes_repeats_and_ids_already_known() -> None:
    memory = filled([(1, n) for n in range(50)])
    source = filled([(1, n) for n in range(45, 60)] + [(1, 45)], track=True)
    drained = source.drain_added()[1]
    assert memory.merge(1, drained + drained) == 10  # 50..59 are new; repeats are not
    assert len(memory) == 60
    assert memory.merge(1, drained) == 0
    # Few ids into a large hour go in one by one; the result is the same.
    big = filled([(1, n) for n in range(400)])
    assert big.merge(1, filled([(1, 401)], track=True).drain_added()[1]) == 1
    assert (1, "event-401") in big


def test_expired_hours_go_with_their_ids_and_stay_closed() -> None:
    memory = filled([(hour, n) for hour in range(5) for n in range(10)], track=True)
    memory.drain_added()
    assert memory.expired_hours(3) == [0, 1, 2]
    assert memory.retire_before(3) == 30
    assert memory.hours == [3, 4]
    assert len(memory) == 20
    assert memory.drain_retired() == [0, 1, 2]
    assert memory.floor_hour == 3
    assert memory.merge(1, filled([(1, 99)], track=True).drain_added()[1]) == 0


def test_forgetting_at_the_cap_spares_the_hour_being_written() -> None:
    memory = filled([(hour, n) for hour in (7, 8) for n in range(3)])
    assert memory.forget_oldest(before_hour=7) == 0
    assert memory.forget_oldest(before_hour=8) == 3
    assert memory.floor_hour == 8
    assert memory.forget_oldest(before_hour=8) == 0
    assert memory.hours == [8]


def test_changes_are_drained_only_when_tracked() -> None:
    with pytest.raises(RuntimeError):
        EventIds().drain_added()
    with pytest.raises(RuntimeError):
        EventIds().drain_retired()


def test_expected_false_duplicates_counts_pairs_per_hour_over_2_to_the_64() -> None:
    memory = filled([(0, n) for n in range(100)] + [(1, n) for n in range(10)])
    pairs = 100 * 99 / 2 + 10 * 9 / 2
    assert memory.expected_false_duplicates() == pytest.approx(pairs / 2**64)
    memory.retire_before(1)  # retired hours still count: their ids were compared
    assert memory.expected_false_duplicates() == pytest.approx(pairs / 2**64)


def test_memory_per_id_stays_near_eight_bytes_and_nbytes_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if dedupe.compiled_in_use():
        pytest.skip("Python's allocator does not see the compiled core: test_dedupe_native.py")
    monkeypatch.setattr(dedupe, "SHARD_IDS", 256)
    pairs = [(hour, n) for hour in range(4) for n in range(20_000)]
    tracemalloc.start()
    memory = filled(pairs)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(memory) == 80_000
    assert held / len(memory) < 10
    assert memory.nbytes() == pytest.approx(held, rel=0.1)
