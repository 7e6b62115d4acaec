"""Snapshot files: round trip, atomic replacement, and refusal of damaged files."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import pytest

from service import snapshots
from service.engine import Engine
from service.engine.persistence import export_accounts, export_partitions, import_state
from service.simulation import AUTHENTIC_MICRO, POD_PUMPED, account_events
from tests.events import T0, decoded, post


def busy_engine() -> Engine:
    engine = Engine()
    rng = random.Random(3)
    for name, profile in (("a", AUTHENTIC_MICRO), ("b", POD_PUMPED)):
        for event in account_events(name, profile, T0.timestamp(), 3_600, rng):
            engine.apply(decoded(event), partition=0 if name == "a" else 1)
    return engine


def write(store: snapshots.SnapshotStore, engine: Engine, offsets: dict[int, int]) -> Path:
    data = snapshots.encode(offsets, export_partitions(engine), list(export_accounts(engine)),
                            engine.changes)
    return store.write(data)


def test_restored_engine_answers_exactly_as_the_original(tmp_path: Path) -> None:
    engine = busy_engine()
    store = snapshots.SnapshotStore(tmp_path, keep=3)
    write(store, engine, {0: 120, 1: 77})
    snapshot = store.load_newest()
    assert snapshot is not None
    assert snapshot.offsets == {0: 120, 1: 77}
    restored = import_state(engine.config, snapshot.partitions, snapshot.account_pairs(),
                            snapshot.changes)
    for account_id in ("a", "b"):
        assert restored.score(account_id) == engine.score(account_id)
    # Versions go on from the snapshot's count, so a score cached right after the
    # restore is never taken for the state after new events.
    assert restored.changes == engine.changes
    cached = restored.score("a")
    assert cached is not None
    new_post = decoded(post("a", "after-restore", engine.clock(0).stream_time - T0.timestamp()))
    for either in (restored, engine):
        either.apply(new_post, partition=0)
    after = restored.score("a")
    assert after is not None
    assert after.counts != cached.counts
    assert after == engine.score("a")


def test_only_the_last_few_snapshots_are_kept(tmp_path: Path) -> None:
    store = snapshots.SnapshotStore(tmp_path, keep=2)
    engine = busy_engine()
    for offset in range(5):
        write(store, engine, {0: offset})
    assert [path.name for path in store.files()] == [
        "snapshot-000000000005.bin", "snapshot-000000000004.bin"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "empty"])
def test_a_damaged_newest_snapshot_falls_back_to_the_previous(
    tmp_path: Path, damage: str
) -> None:
    store = snapshots.SnapshotStore(tmp_path, keep=3)
    engine = busy_engine()
    write(store, engine, {0: 1})
    newest = write(store, engine, {0: 2})
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
    assert snapshot.offsets == {0: 1}


def test_a_future_format_version_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    data = bytearray(snapshots.encode({}, {}, [], 0))
    struct.pack_into(">H", data, 8, 3)
    with pytest.raises(snapshots.SnapshotError, match="format version 3"):
        snapshots.decode(tmp_path / "x.bin", bytes(data))


def test_a_forked_writer_produces_the_same_snapshot(tmp_path: Path) -> None:
    from service import snapshot_child

    engine = busy_engine()
    store = snapshots.SnapshotStore(tmp_path, keep=3)
    pid, report_fd = snapshot_child.start(engine, {0: 5, 1: 9}, store)
    report = snapshot_child.wait(pid, report_fd)
    assert "error" not in report, report
    assert report["accounts"] == 2
    snapshot = store.load_newest()
    assert snapshot is not None
    assert snapshot.offsets == {0: 5, 1: 9}
    restored = import_state(engine.config, snapshot.partitions, snapshot.account_pairs(),
                            snapshot.changes)
    assert restored.score("a") == engine.score("a")


def test_temporaries_of_dead_writers_are_removed_at_restore(tmp_path: Path) -> None:
    store = snapshots.SnapshotStore(tmp_path, keep=3)
    write(store, busy_engine(), {0: 1})
    (tmp_path / "snapshot-000000000002.999999999.tmp").write_bytes(b"half")
    assert store.load_newest() is not None
    assert not list(tmp_path.glob("*.tmp"))
