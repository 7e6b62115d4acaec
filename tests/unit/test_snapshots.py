"""A partition's state through its local snapshot and through its changelog records:
round trips, atomic replacement, refusal of damaged files."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import lz4.frame
import msgpack
import pytest

from service import snapshot_child, snapshots
from service.engine import EngineConfig
from service.engine.audience import ACTIVITY_BUCKET_S, ActorActivity
from service.engine.sketches import actor_hash
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
    state.load_snapshot(snapshot.header, snapshot.account_pairs(), snapshot.actors)
    state.finish_restore()
    return state


def write(store: snapshots.SnapshotStore, state: PartitionState) -> Path:
    return store.write(snapshots.encode(state.snapshot_header(), state.packed_accounts(),
                                        state.actors.snapshot()))


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
    data = bytearray(snapshots.encode({"actors_next": 0}, [], b""))
    struct.pack_into(">H", data, 8, 5)
    with pytest.raises(snapshots.SnapshotError, match="format version 5"):
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


DAY_S = 86_400.0


def state_with_actors(partition: int = 0) -> PartitionState:
    """A partition whose actor side has judged 40 repartition records: a bot that moved
    from 30 accounts (20 to 12 days ago, outside the 6-8 day period but in the month
    view) to 5 others this week, and a fan of one account."""
    state = busy_state(partition)
    now = T0.timestamp()
    bot, fan = actor_hash("bot-1"), actor_hash("fan-1")
    for number in range(30):
        state.actors.observe(bot, f"old-{number}", now - 20 * DAY_S + number * 6 * 3600)
    for number in range(5):
        state.actors.observe(bot, f"new-{number}", now - DAY_S + number)
    state.actors.observe(fan, "a", now)
    state.actors_position = 40
    return state


def test_a_snapshot_holds_the_actor_activity_with_its_month_view(tmp_path: Path) -> None:
    state = state_with_actors()
    bot = actor_hash("bot-1")
    assert state.actors.month_accounts_of(bot) > 25 > state.actors.distinct_accounts(bot)
    store = snapshots.partition_store(tmp_path, 0, keep=3)
    write(store, state)
    snapshot = store.load_newest()
    assert snapshot is not None
    assert snapshot.actors is not None
    # An owner's activity reflects every record it judged: up to its committed position.
    assert snapshot.header["actors_next"] == 40
    restored = restored_from_snapshot(store)
    assert restored.actors_warm_next == 40
    assert len(restored.actors) == 2
    for actor in (bot, actor_hash("fan-1"), actor_hash("nobody")):
        assert restored.actors.month_accounts_of(actor) == state.actors.month_accounts_of(actor)
        assert restored.actors.distinct_accounts(actor) == state.actors.distinct_accounts(actor)
    assert restored.actors.snapshot() == state.actors.snapshot()


def test_a_forked_writer_writes_the_actor_activity_too(tmp_path: Path) -> None:
    state = state_with_actors()
    pid, report_fd = snapshot_child.start([state], tmp_path, 3)
    report = snapshot_child.wait(pid, report_fd)
    assert report["actors"] == 2, report
    restored = restored_from_snapshot(snapshots.partition_store(tmp_path, 0, 3))
    assert restored.actors.snapshot() == state.actors.snapshot()


def test_a_format_3_snapshot_loads_and_its_actors_are_replayed_from_the_beginning(
    tmp_path: Path,
) -> None:
    state = state_with_actors()
    header = state.snapshot_header()
    del header["actors_next"]  # as version 3 wrote it: no actor activity
    body = {"written_at": 0.0, "header": header,
            "accounts": [part for pair in state.packed_accounts() for part in pair]}
    payload = lz4.frame.compress(msgpack.packb(body, use_bin_type=True))
    store = snapshots.partition_store(tmp_path, 0, keep=3)
    store.write(struct.pack(">8sHQI", snapshots.MAGIC, 3, len(payload), zlib.crc32(payload))
                + payload)
    snapshot = store.load_newest()
    assert snapshot is not None
    assert snapshot.actors is None
    restored = restored_from_snapshot(store)
    assert restored.engine.score("a") == state.engine.score("a")
    assert (len(restored.actors), restored.actors_warm_next) == (0, 0)
    assert restored.actors_replay_from(0) == 0


def test_an_actor_activity_older_than_the_repartition_topics_start_is_discarded() -> None:
    state = PartitionState(0, EngineConfig())
    state.actors.observe(actor_hash("bot-1"), "a", T0.timestamp())
    state.actors_warm_next = 40
    # The topic still holds record 40 on: the activity goes on from there.
    assert state.actors_replay_from(40) == 40
    assert state.actors_replay_from(12) == 40
    assert len(state.actors) == 1
    # Records 40 to 49 were deleted: the activity would miss them, so all of it is
    # rebuilt from what the topic holds.
    assert state.actors_replay_from(50) == 50
    assert (len(state.actors), state.actors_warm_next) == (0, 0)


def test_an_actor_activity_of_another_period_is_refused_whole() -> None:
    other = ActorActivity(bucket_s=ACTIVITY_BUCKET_S / 2)
    other.observe(actor_hash("bot-1"), "a", T0.timestamp())
    state = state_with_actors()
    fresh = PartitionState(0, EngineConfig())
    with pytest.raises(ValueError, match="buckets"):
        fresh.load_snapshot(state.snapshot_header(), state.packed_accounts(), other.snapshot())
    # Nothing of it was taken: the caller loads the snapshot without its actors instead.
    assert (fresh.position, fresh.actors_warm_next, len(fresh.actors)) == (None, 0, 0)
