"""The engine's state as plain values (lists, dicts, numbers, strings, bytes) and back.

The snapshot store encodes these values; the engine stays free of files and formats.
Accounts are exported packed (see `packing`), one by one so the caller can yield between
chunks, and restored packed: a restore does not decode them, the first event or query for
an account does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from service.engine.engine import Engine, EngineConfig, PartitionClock

Plain = Any


def export_partitions(engine: Engine) -> dict[int, Plain]:
    return {
        partition: {
            "stream_time": clock.stream_time,
            "seen_ids": {hour: sorted(ids) for hour, ids in clock.seen_ids.items()},
        }
        for partition, clock in engine.partitions.items()
    }


def export_accounts(engine: Engine) -> Iterator[tuple[str, bytes]]:
    """(account id, packed account) pairs, least recently active first."""
    return engine.accounts.packed()


def import_state(config: EngineConfig, partitions: dict[int, Plain],
                 accounts: Iterable[tuple[str, bytes]], changes: int) -> Engine:
    engine = Engine(config)
    for partition, plain in partitions.items():
        clock = PartitionClock()
        clock.stream_time = float(plain["stream_time"])
        clock.seen_ids = {int(hour): set(ids) for hour, ids in plain["seen_ids"].items()}
        engine.partitions[int(partition)] = clock
    engine.recount_event_ids()
    engine.accounts.restore(accounts)
    # Versions stored in the accounts must stay unique: later changes count on from here.
    engine.changes = changes
    return engine
