"""A partition's state through its local snapshot and through its changelog records:
round trips, atomic replacement, refusal of damaged files."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from service import snapshot_child, snapshots
from service.engine import EngineConfig
from service.partition_state import CLOCK_KEY, IDS_PREFIX, PartitionState, Status
from service.simulation import AUTHENTIC_MICRO, POD_PUMPED, account_events
from tests.events import T0, decoded, interaction, post


def busy_state(partition: int = 0) -> PartitionState:
    state = PartitionState(partition, EngineConfig())
    state.status = Status.ACTIVE
    rng = random.Random(3)
    offset = 0
    for name, profile in (("a", AUTHENTIC_MICRO), ("b", POD_PUMPED)):
        for event in account_events(name, profile, T0.timestamp(), 3_600, rng):
            state.engine.apply(decoded(event), partition)
            offset += 1
    state.position = offset
    return state


def restored_from_snapshot(store: snapshots.SnapshotStore) -> PartitionState:
    snapshot = store.load_newest()
    assert snapshot is not None
    state = PartitionState(snapshot.header["partition"], EngineConfig())
    state.load_snapshot(snapshot.header, snapshot.account_pairs())
    state.finish_restore()
    return state


def write(store: snapshots.SnapshotStore, state: PartitionState) -> Path:
    return store.write(snapshots.encode(state.snapshot_header(), state.packed_accounts()))


def test_a_snapshot_restores_a_partition_that_answers_exactly_as_the_original(
    tmp_path: Path,
) -> None:
    state = busy_state()
    state.changelog_next = 42
    store = snapshots.partition_store(tmp_path, 0, keep=3)
    write(store, state)
    restored = restored_from_snapshot(store)
    assert (restored.position, restored.changelog_next) == (state.position, 42)
    for account_id in ("a", "b"):
        assert restored.engine.score(account_id) == state.engine.score(account_id)
    # Versions go on from the snapshot's count, so a score cached right after the
    # restore is never taken for the state after new events.
    assert restored.engine.changes == state.engine.changes
    cached = restored.engine.score("a")
    assert cached is not None
    stream_time = state.clock.stream_time - T0.timestamp()
    for either in (restored, state):
        either.engine.apply(decoded(post("a", "after-restore", stream_time)), 0)
    after = restored.engine.score("a")
    assert after is not None
    assert after.counts != cached.counts
    assert after == state.engine.score("a")


def test_changelog_records_rebuild_the_same_partition() -> None:
    state = busy_state()
    records = state.checkpoint_records()
    assert records[-1][0] == CLOCK_KEY
    assert {key for key, _ in records} >= {b"a", b"b"}
    assert any(key.startswith(IDS_PREFIX) for key, _ in records)
    # Only what changed since is written by the next checkpoint: one record per account.
    now = state.clock.stream_time - T0.timestamp()
    resent = decoded(interaction("like", "a", "p-new", "u-new", now, event_id="resent-1"))
    assert state.engine.apply(resent, 0) == "counted"
    state.position = (state.position or 0) + 1
    second = state.checkpoint_records()
    assert [key for key, _ in second if not key.startswith(b"!")] == [b"a"]

    restored = PartitionState(0, EngineConfig())
    for key, value in [*records, *second]:
        restored.apply_changelog(key, value)
    restored.finish_restore()
    assert restored.position == state.position
    for account_id in ("a", "b"):
        assert restored.engine.score(account_id) == state.engine.score(account_id)
    # Re-sent events are still recognised after the restore.
    assert restored.engine.apply(resent, 0) == "duplicate"


def test_a_failed_checkpoint_is_written_again_by_the_next() -> None:
    state = busy_state()
    records = state.checkpoint_records()
    state.requeue(records)
    assert state.uncommitted
    again = state.checkpoint_records()
    assert {k for k, _ in records} == {k for k, _ in again}


def test_only_the_last_few_snapshots_are_kept(tmp_path: Path) -> None:
    store = snapshots.partition_store(tmp_path, 0, keep=2)
    state = busy_state()
    for _ in range(5):
        write(store, state)
    assert [path.name for path in store.files()] == [
        "snapshot-000000000005.bin", "snapshot-000000000004.bin"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "empty"])
def test_a_damaged_newest_snapshot_falls_back_to_the_previous(
    tmp_path: Path, damage: str
) -> None:
    store = snapshots.partition_store(tmp_path, 0, keep=3)
    state = busy_state()
    state.position = 1
    write(store, state)
    state.position = 2
    newest = write(store, state)
    data = bytearray(newest.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip":
        data[-10] ^= 0xFF
    elif damage == "version":
        struct.pack_into(">H", data, 8, 99)
    else:
        data = bytearray()
    newest.write_bytes(bytes(data))
    snapshot = store.load_newest()
    assert snapshot is not None
    assert snapshot.header["position"] == 1


def test_a_future_format_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = bytearray(snapshots.encode({}, []))
    struct.pack_into(">H", data, 8, 4)
    with pytest.raises(snapshots.SnapshotError, match="format version 4"):
        snapshots.decode(tmp_path / "x.bin", bytes(data))


def test_a_forked_writer_produces_the_same_snapshots(tmp_path: Path) -> None:
    states = [busy_state(0), busy_state(1)]
    pid, report_fd = snapshot_child.start(states, tmp_path, 3)
    report = snapshot_child.wait(pid, report_fd)
    assert "error" not in report, report
    assert report["accounts"] == 4
    assert report["partitions"] == [0, 1]
    for state in states:
        restored = restored_from_snapshot(
            snapshots.partition_store(tmp_path, state.partition, 3))
        assert restored.engine.score("a") == state.engine.score("a")


def test_temporaries_of_dead_writers_are_removed_at_restore(tmp_path: Path) -> None:
    store = snapshots.partition_store(tmp_path, 0, keep=3)
    write(store, busy_state())
    (store.directory / "snapshot-000000000002.999999999.tmp").write_bytes(b"half")
    assert store.load_newest() is not None
    assert not list(store.directory.glob("*.tmp"))
