"""Snapshot pause, write time, size and restore time at 100 k and 1 M accounts.

    python -m bench.snapshot [--accounts 100000 1000000]

Measures the steps the consumer runs. By default a forked child writes the snapshot and
ingestion waits only for the fork; without fork the state is copied in-process
(ingestion waits; HTTP answers between chunks) and encoded and written in a thread.
On start-up: reading, decoding and rebuilding the engine. The baseline is a plain
`msgpack.packb` + `unpackb` of the same copied state, timed in the same process.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import msgpack

from bench.workload import fresh_engine, populate
from service import snapshot_child, snapshots
from service.engine.persistence import export_accounts, export_partitions, import_state


def run(accounts: int) -> dict[str, float]:
    engine = fresh_engine()
    populate(engine, accounts)
    engine.expire()
    started = time.perf_counter()
    partitions = export_partitions(engine)
    with snapshots.collector_paused():  # as the consumer does
        state = list(export_accounts(engine))
    pause = time.perf_counter() - started
    started = time.perf_counter()
    data = snapshots.encode({0: 1, 1: 1, 2: 1}, partitions, state, engine.changes)
    encode = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        store = snapshots.SnapshotStore(Path(folder), keep=2)
        started = time.perf_counter()
        store.write(data)
        write = time.perf_counter() - started
        started = time.perf_counter()
        loaded = store.load_newest()
        assert loaded is not None
        read = time.perf_counter() - started
        started = time.perf_counter()
        with snapshots.collector_paused():
            restored = import_state(engine.config, loaded.partitions, loaded.account_pairs(),
                                    loaded.changes)
        rebuild = time.perf_counter() - started
    assert len(restored.accounts) == accounts
    gc.freeze()  # as the consumer does after a restore: the restored state lives long
    # Restore leaves accounts packed; the first event or query for each opens it.
    sample = [f"acct-{index}" for index in range(0, accounts, max(1, accounts // 10_000))]
    started = time.perf_counter()
    for account_id in sample:
        restored.accounts.get(account_id)
    first_access = (time.perf_counter() - started) / len(sample)
    gc.unfreeze()
    del restored, loaded
    with tempfile.TemporaryDirectory() as folder:  # the service's default: a forked writer
        store = snapshots.SnapshotStore(Path(folder), keep=2)
        started = time.perf_counter()
        pid, report_fd = snapshot_child.start(engine, {0: 1}, store)
        fork_pause = time.perf_counter() - started
        report = snapshot_child.wait(pid, report_fd)
        forked_total = time.perf_counter() - started
        assert "error" not in report, report
    started = time.perf_counter()
    with snapshots.collector_paused():
        msgpack.unpackb(msgpack.packb(state), strict_map_key=False)
    baseline = time.perf_counter() - started
    return {"accounts": accounts, "fork_pause_s": fork_pause, "forked_total_s": forked_total,
            "pause_s": pause, "encode_s": encode, "write_s": write,
            "size_bytes": len(data), "restore_s": read + rebuild, "read_s": read,
            "rebuild_s": rebuild, "msgpack_roundtrip_s": baseline,
            "first_access_s": first_access}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, nargs="+", default=[100_000, 1_000_000])
    arguments = parser.parse_args()
    print("| accounts | ingest pause: fork (default) | forked write, total "
          "| ingest pause: in-process copy | encode | write+fsync | size "
          "| restore (read + rebuild) | then first access per account "
          "| baseline: msgpack round trip |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for accounts in arguments.accounts:
        r = run(accounts)
        print(f"| {accounts:,} | {r['fork_pause_s'] * 1000:.0f} ms | "
              f"{r['forked_total_s']:.2f} s | {r['pause_s']:.2f} s | {r['encode_s']:.2f} s | "
              f"{r['write_s']:.2f} s | {r['size_bytes'] / 2**20:.1f} MiB | "
              f"{r['restore_s']:.2f} s ({r['read_s']:.2f} + {r['rebuild_s']:.2f}) | "
              f"{r['first_access_s'] * 1e6:.0f} µs | "
              f"{r['msgpack_roundtrip_s']:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
