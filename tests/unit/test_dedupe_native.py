"""The compiled dedupe memory (native/src/dedupe.rs) against its Python reference
(`dedupe.EventIdsReference`): the same random calls give the same answers, the same
state and the same bytes (exports, drained journals), whichever side wrote them."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import dedupe
from service.engine.dedupe import EventIds, EventIdsReference, event_id_hash
from tests.unit.malloc_in_use import malloc_in_use

pytestmark = pytest.mark.skipif(not dedupe.COMPILED_AVAILABLE,
                                reason="engagement_native is not built")

HOURS = st.integers(-1, 6)
# Hashes that share long prefixes split the same shard again and again (a deep
# directory); the extremes test the first and last slots.
CRAFTED = st.one_of(
    st.integers(0, 2**64 - 1),
    st.builds(lambda top, low: (top << 56) | low, st.integers(0, 3), st.integers(0, 40)),
    st.sampled_from([0, 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1]),
)
NUMBERS = st.lists(st.integers(0, 300), max_size=60)

OPERATIONS = st.lists(st.one_of(
    st.tuples(st.just("add"), HOURS, st.integers(0, 300)),
    st.tuples(st.just("add"), HOURS, st.integers(0, 300)),
    st.tuples(st.just("add"), HOURS, st.integers(0, 300)),
    st.tuples(st.just("add_hashed"), HOURS, CRAFTED),
    # Runs of ids, so that hours fill up and split within a short sequence.
    st.tuples(st.just("add_run"), HOURS, st.integers(0, 300), st.integers(1, 40)),
    st.tuples(st.just("contains"), HOURS, st.integers(0, 300)),
    st.tuples(st.just("retire_before"), HOURS),
    st.tuples(st.just("forget_oldest"), HOURS),
    st.tuples(st.just("floor_hour"), HOURS),
    st.tuples(st.just("drain_added")),
    st.tuples(st.just("drain_retired")),
    st.tuples(st.just("export")),
    st.tuples(st.just("restore"), HOURS, NUMBERS),
    st.tuples(st.just("merge"), HOURS, NUMBERS),
    st.tuples(st.just("merge_drained"), HOURS, NUMBERS),
), min_size=10, max_size=120)


def hashes(numbers: list[int]) -> bytes:
    return b"".join(struct.pack("<Q", event_id_hash(f"event-{n}")) for n in numbers)


def memory_with_shards(shard_ids: int, track: bool, compiled: bool) -> EventIds:
    """Small shards split after a handful of ids: every path of the directory is taken."""
    default, dedupe.SHARD_IDS = dedupe.SHARD_IDS, shard_ids
    try:
        return EventIds(track, compiled=compiled)
    finally:
        dedupe.SHARD_IDS = default


def observed(memory: EventIds) -> dict[str, Any]:
    """Everything a caller can read without changing the memory (but `nbytes`)."""
    hours = memory.hours
    return {
        "len": len(memory), "count": memory.count, "floor_hour": memory.floor_hour,
        "has_added": memory.has_added, "hours": hours, "oldest_hour": memory.oldest_hour(),
        "ids_in": [memory.ids_in(hour) for hour in range(-2, 8)],
        "expired_hours": [memory.expired_hours(hour) for hour in range(-2, 8)],
        # Exact: both sum the hours' pairs in the same order.
        "expected_false_duplicates": memory.expected_false_duplicates(),
        "export": list(memory.export().items()),  # in order: a snapshot packs them so
    }


def call(memory: EventIds, operation: tuple[Any, ...]) -> object:
    name, *arguments = operation
    if name == "add":
        return memory.add(arguments[0], f"event-{arguments[1]}")
    if name == "add_run":
        hour, first, length = arguments
        return [memory.add(hour, f"event-{n}") for n in range(first, first + length)]
    if name == "add_hashed":
        return memory.core.add_hashed(arguments[0], arguments[1])
    if name == "contains":
        return (arguments[0], f"event-{arguments[1]}") in memory
    if name == "floor_hour":
        memory.floor_hour = arguments[0]
        return None
    if name in ("drain_added", "drain_retired"):
        try:
            drained = getattr(memory, name)()
        except RuntimeError as error:
            return ("error", str(error))
        return list(drained.items()) if isinstance(drained, dict) else drained
    if name == "export":
        return list(memory.export().items())
    if name == "restore":
        # What an export holds: sorted, distinct.
        exported = sorted({event_id_hash(f"event-{n}") for n in arguments[1]})
        return memory.restore(arguments[0], b"".join(struct.pack("<Q", h) for h in exported))
    if name == "merge":
        return memory.merge(arguments[0], hashes(arguments[1]))  # any order, repeats
    if name == "merge_drained":
        # A merge in the middle of a journal: its ids are not journaled, later adds are.
        return memory.merge(arguments[0], hashes(arguments[1]) + hashes(arguments[1][:3]))
    return getattr(memory, name)(*arguments)


@settings(max_examples=400, deadline=None)
@given(st.booleans(), st.sampled_from([1, 2, 4, 32, 256]), OPERATIONS)
def test_both_cores_answer_every_call_alike(
    track: bool, shard_ids: int, operations: list[tuple[Any, ...]]
) -> None:
    compiled, reference = (memory_with_shards(shard_ids, track, compiled)
                           for compiled in (True, False))
    assert compiled.compiled
    assert not reference.compiled
    for operation in operations:
        assert call(compiled, operation) == call(reference, operation), operation
        assert observed(compiled) == observed(reference), operation


@settings(max_examples=100, deadline=None)
@given(OPERATIONS, st.booleans())
def test_what_one_core_exports_or_drains_the_other_restores(
    operations: list[tuple[Any, ...]], compiled_first: bool
) -> None:
    """Snapshots and changelogs written before the compiled core (by the reference) load
    into it, and the other way round."""
    writer = memory_with_shards(4, True, compiled_first)
    journal: list[tuple[int, bytes]] = []
    for operation in operations:
        if operation[0] != "drain_added":
            call(writer, operation)
        journal += writer.drain_added().items()
    # Each loaded into a memory of the writer's kind and one of the other kind.
    loaded = []
    for compiled in (compiled_first, not compiled_first):
        from_snapshot = EventIds(compiled=compiled)
        for hour, data in writer.export().items():
            from_snapshot.restore(hour, data)
        replica = EventIds(compiled=compiled)
        for hour, data in journal:
            replica.merge(hour, data)
        loaded.append((observed(from_snapshot), observed(replica)))
    assert loaded[0] == loaded[1]
    assert loaded[0][0]["export"] == observed(writer)["export"]


def test_the_core_is_what_the_fold_reaches() -> None:
    memory = EventIds(True, compiled=True)
    assert memory.core.add_hashed(3, event_id_hash("e-1"))
    assert not memory.add(3, "e-1")  # the same id, hashed in Rust
    assert memory.drain_added() == {3: struct.pack("<Q", event_id_hash("e-1"))}
    assert isinstance(EventIds(compiled=False).core, EventIdsReference)


def test_bad_bytes_are_refused_alike() -> None:
    for compiled in (True, False):
        with pytest.raises(ValueError, match="multiple of item size"):
            EventIds(compiled=compiled).merge(1, b"\x00" * 7)
        with pytest.raises(ValueError, match="multiple of item size"):
            EventIds(compiled=compiled).restore(1, b"\x00" * 9)


def test_compiled_memory_per_id_stays_near_eight_bytes_and_nbytes_says_so() -> None:
    ids = [f"event-{n}" for n in range(80_000)]
    before = malloc_in_use()
    memory = EventIds(compiled=True)
    for index, event_id in enumerate(ids):
        memory.add(index % 4, event_id)
    held = malloc_in_use() - before
    assert len(memory) == 80_000
    assert held / len(memory) < 10
    assert memory.nbytes() == pytest.approx(held, rel=0.1)
