"""The engine's state as plain values (lists, dicts, numbers, strings, bytes) and back.

The snapshot store encodes these values; the engine stays free of files and formats.
Accounts are exported packed (see `packing`), one by one so the caller can yield between
chunks, and restored packed: a restore does not decode them, the first event or query for
an account does. A partition's dedupe memory is exported hour by hour as sorted hashes
(`dedupe.EventIds.export`: 8 bytes per id), which a restore takes as they are.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from service.engine.dedupe import HASH_NAME
from service.engine.engine import Engine, EngineConfig, PartitionClock

Plain = Any


def export_partitions(engine: Engine) -> dict[int, Plain]:
    return {
        partition: {
            "stream_time": clock.stream_time,
            "event_id_hash": HASH_NAME,
            "event_ids": clock.event_ids.export(),
            "event_ids_floor_hour": clock.event_ids.floor_hour,
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
        clock = PartitionClock(config.track_dedupe_changes)
        clock.stream_time = float(plain["stream_time"])
        _import_event_ids(clock, plain)
        engine.partitions[int(partition)] = clock
    engine.recount_event_ids()
    engine.accounts.restore(accounts)
    # Versions stored in the accounts must stay unique: later changes count on from here.
    engine.changes = changes
    return engine


def _import_event_ids(clock: PartitionClock, plain: Plain) -> None:
    event_ids = clock.event_ids
    if "event_ids" not in plain:
        # A snapshot from before the hashed memory holds the ids themselves, by hour,
        # within the old lateness: hashed here, so an upgrade keeps its dedupe.
        for hour, ids in plain.get("seen_ids", {}).items():
            for event_id in ids:
                event_ids.add(int(hour), event_id)
        return
    if plain.get("event_id_hash") != HASH_NAME:
        raise ValueError(f"event ids hashed with {plain.get('event_id_hash')!r}, "
                         f"this build uses {HASH_NAME!r}")
    event_ids.floor_hour = int(plain["event_ids_floor_hour"])
    for hour, data in plain["event_ids"].items():
        event_ids.restore(int(hour), bytes(data))

