"""Snapshot pause, write time, size and restore time of one partition at 100 k and 1 M
accounts, each without and with as many actors on its actor side (one interaction each,
a fixed-size record per actor whatever it holds), and the same partition rebuilt from its
changelog records.

    python -m bench.snapshot [--accounts 100000 1000000] [--no-actors]

Measures the steps the consumer runs. By default a forked child writes the snapshot and
ingestion waits only for the fork; without fork the state is copied in-process
(ingestion waits) and encoded and written in a thread. On restore: reading, decoding and
rebuilding the partition from its snapshot, or applying its changelog records (the
decoding side of a changelog restore; bench.cluster reads them from Kafka). The baseline
is a plain `msgpack.packb` + `unpackb` of the same copied state, in the same process.
"""

from __future__ import annotations

import argparse
import gc
import random
import tempfile
import time
from pathlib import Path

import msgpack

from bench.workload import fresh_engine, populate
from service import snapshot_child, snapshots
from service.engine.audience import InteractionBatch
from service.partition_state import PartitionState, Status

T0 = 1_764_000_000.0


def filled_partition(accounts: int, actors: int) -> PartitionState:
    state = PartitionState(0, fresh_engine().config)
    populate(state.engine, accounts, partitions=1)
    state.engine.expire()
    state.status = Status.ACTIVE
    state.position = accounts * 9
    rng = random.Random(7)
    for start in range(0, actors, 10_000):
        batch = InteractionBatch()
        for number in range(start, min(actors, start + 10_000)):
            batch.add(rng.getrandbits(64), f"acct-{number % max(accounts, 1)}",
                      T0 + number % 86_400)
        state.actors.observe_packed(batch.to_bytes())
    assert len(state.actors) == actors
    state.actors_position = actors
    return state


def restored(loaded: snapshots.Snapshot) -> PartitionState:
    state = PartitionState(0, fresh_engine().config)
    state.load_snapshot(loaded.header, loaded.account_pairs(), loaded.actors)
    return state


def run(accounts: int, actors: int) -> dict[str, float]:
    partition = filled_partition(accounts, actors)
    started = time.perf_counter()
    with snapshots.collector_paused():  # as the consumer does
        state = list(partition.packed_accounts())
    pause = time.perf_counter() - started
    started = time.perf_counter()
    activity = partition.actors.snapshot()
    data = snapshots.encode(partition.snapshot_header(), state, activity)
    encode = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        store = snapshots.partition_store(Path(folder), 0, keep=2)
        started = time.perf_counter()
        store.write(data)
        write = time.perf_counter() - started
        started = time.perf_counter()
        loaded = store.load_newest()
        assert loaded is not None
        read = time.perf_counter() - started
        started = time.perf_counter()
        with snapshots.collector_paused():
            rebuilt = restored(loaded)
        rebuild = time.perf_counter() - started
    assert len(rebuilt.engine.accounts) == accounts
    assert len(rebuilt.actors) == actors
    gc.freeze()  # as the consumer does after a restore: the restored state lives long
    # Restore leaves accounts packed; the first event or query for each opens it.
    sample = [f"acct-{index}" for index in range(0, accounts, max(1, accounts // 10_000))]
    started = time.perf_counter()
    for account_id in sample:
        rebuilt.engine.accounts.get(account_id)
    first_access = (time.perf_counter() - started) / len(sample)
    gc.unfreeze()
    del rebuilt, loaded
    records = partition.checkpoint_records()  # every account: all changed since the start
    started = time.perf_counter()
    from_changelog = PartitionState(0, fresh_engine().config)
    with snapshots.collector_paused():
        for key, value in records:
            from_changelog.apply_changelog(key, value)
        from_changelog.finish_restore()
    changelog_apply = time.perf_counter() - started
    assert len(from_changelog.engine.accounts) == accounts
    del from_changelog, records
    with tempfile.TemporaryDirectory() as folder:  # the service's default: a forked writer
        started = time.perf_counter()
        pid, report_fd = snapshot_child.start([partition], Path(folder), 2)
        fork_pause = time.perf_counter() - started
        report = snapshot_child.wait(pid, report_fd)
        forked_total = time.perf_counter() - started
        assert "error" not in report, report
    started = time.perf_counter()
    with snapshots.collector_paused():
        msgpack.unpackb(msgpack.packb(state), strict_map_key=False)
    baseline = time.perf_counter() - started
    return {"accounts": accounts, "actors": actors, "actors_bytes": len(activity),
            "fork_pause_s": fork_pause, "forked_total_s": forked_total,
            "pause_s": pause, "encode_s": encode, "write_s": write,
            "size_bytes": len(data), "restore_s": read + rebuild, "read_s": read,
            "rebuild_s": rebuild, "msgpack_roundtrip_s": baseline,
            "first_access_s": first_access, "changelog_apply_s": changelog_apply}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--no-actors", action="store_true",
                        help="only rows without actors (by default each size runs without "
                             "and with as many actors)")
    arguments = parser.parse_args()
    print("| accounts | actors (raw bytes each) | ingest pause: fork (default) "
          "| forked write, total "
          "| ingest pause: in-process copy | encode | write+fsync | size "
          "| restore (read + rebuild) | then first access per account "
          "| changelog records applied | baseline: msgpack round trip |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for accounts in arguments.accounts:
        for actors in (0,) if arguments.no_actors else (0, accounts):
            row(run(accounts, actors))


def row(r: dict[str, float]) -> None:
    accounts, actors = int(r["accounts"]), int(r["actors"])
    each = f" ({r['actors_bytes'] / actors:.1f})" if actors else ""
    print(f"| {accounts:,} | {actors:,}{each} | {r['fork_pause_s'] * 1000:.0f} ms | "
              f"{r['forked_total_s']:.2f} s | {r['pause_s']:.2f} s | {r['encode_s']:.2f} s | "
              f"{r['write_s']:.2f} s | {r['size_bytes'] / 2**20:.2f} MiB | "
              f"{r['restore_s']:.2f} s ({r['read_s']:.2f} + {r['rebuild_s']:.2f}) | "
              f"{r['first_access_s'] * 1e6:.0f} µs | "
              f"{r['changelog_apply_s']:.2f} s ({accounts / r['changelog_apply_s']:,.0f} "
              f"accounts/s) | {r['msgpack_roundtrip_s']:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
