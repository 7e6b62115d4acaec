"""Accounts by id: the recently used ones as objects, the rest packed into bytes.

This is the Python store: the reference of the compiled one (`compiled_store`,
native/src/table.rs), which the engine uses wherever the compiled folds are built and on
(`ENGAGEMENT_NATIVE_FOLD`). Both keep the same accounts in the same orders, described
here; tests/unit/test_store_native.py holds them to it.

An account as objects costs ~1.9 KB, packed ~0.5 KB with its id and store entry (see
`packing`). The store keeps at most `hot_capacity` accounts as objects, the most
recently used, and packs those that fall out (`EVICTION_BATCH` at a time); a query of a
packed account unpacks it (a few microseconds for a typical account).

An event for a packed account is folded into the packed form where it lies (`activate`;
compiled, native/src/packed.rs), whatever room the hot set has, as long as its events
and signals since the last checkpoint (`changed`), this one included, times its packed
size stay within `packed_fold_max_bytes`: the next event makes it hot. A packed fold
costs ~2 us per KiB of the account, a hot one ~1.6 us whatever its size plus a pack at
each checkpoint it changed in, and ~40 objects per account out of the CPU's caches slow
every hot fold (and the collector); so an account that gets few events per checkpoint
is cheaper packed, a busy or big one hot. A checkpoint (`drain_packed`), which packs
every changed hot account anyway, leaves packed those that would have stayed packed
through as many folds. Ops see the churn in `engagement_account_unpacks_total`,
`engagement_account_packed_folds_total` and `engagement_account_packed_out_total` (a
full hot set making room); the hot set is sized from a memory budget (`hot_capacity_for`)
or set as a count.

Two orders are kept: activity (which account is evicted at `max_accounts`; only events
count as activity) and use (which account is packed; queries count too).

Activity: a dict reordered by deleting and inserting again fills with deleted slots and
compacts all its entries now and then (61 ms at 1 M accounts, a stall of the event loop),
and an OrderedDict, which does not, takes seconds to iterate once its order is shuffled
(1.8 s for 1 M; expiry and snapshots iterate all accounts). So all accounts are held in
`ACTIVITY_SHARDS` plain dicts by a stable hash of the id, each in its own activity order:
a compaction moves 1/64 of the accounts, iteration stays a dict's. The least recently
active account is the one of the shards' first ones with the oldest version (the engine's
event count at its last change): exact but for an audience signal, which changes an
account's version without being activity. A stable hash keeps each shard's order through
a snapshot and its restore.

Use: the hot set is an `OrderedDict` (`move_to_end`, `popitem`): bounded, never iterated
whole, and its first entry is found without walking over deleted ones (a plain dict
took ~5 us per eviction from the hot set for that walk).
"""

from __future__ import annotations

import struct
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from service.engine import packing
from service.engine.account import Account

Limits = Mapping[int, tuple[float, int]]  # partition -> (horizon, first live actor bucket)
ACTIVITY_SHARDS = 64
_SHARD_MASK = ACTIVITY_SHARDS - 1
_PACKED_VERSION = struct.Struct("<Q")  # the version in a packed account's header
_PACKED_VERSION_AT = 4


# Resident bytes of one account of `bench.workload` (a follower count, 2 posts, 6
# interactions by 4 actors) with its id and its entry in the store, in each form,
# measured by `python -m bench.memory --forms` with the compiled store (its 64-byte slot
# and index entry: 501 bytes packed at 200,000 accounts, where its arrays are a quarter
# empty; 483 at 1 M; this Python store's dicts: 428). Bigger accounts take more in both
# forms; the budget is an estimate from these averages, not a hard limit.
HOT_ACCOUNT_BYTES = 1_950
PACKED_ACCOUNT_BYTES = 500
# Accounts leave a full hot set this many at a time, packed together: each is the least
# recently used, its ~40 objects out of the CPU's caches, and the compiled codec asks
# for a batch's objects together (`packing.pack_many`), so that their memory reads
# overlap. A large hot set then holds up to EVICTION_BATCH - 1 fewer accounts than its
# capacity; a small one (below BATCHED_HOT_SETS) gives up one at a time.
EVICTION_BATCH = 16
BATCHED_HOT_SETS = 64 * EVICTION_BATCH
# The bytes that folds into one packed account may rewrite between two checkpoints
# (its folds times its size) before the next event makes it hot: folding into the packed
# form reads and writes all of it, ~2 us per KiB (2.7 us at 1.2 KiB, 8.9 at 4 KiB, 27 at
# 12.5), while a hot account's fold costs ~1.6 us whatever its size, plus a pack at the
# next checkpoint; an unpack and that pack cost about what 4 KiB of packed folds do.
# With it the store's rule costs 0.98-1.08x the better of always hot and always packed for
# accounts of 1.2-4.1 KiB at 1-100 events per checkpoint (1.24x for a 12.7 KiB account
# with one event per checkpoint), and 2 or 8 KiB were slower on both ingest workloads
# (`python -m bench.packed_fold`; docs/benchmarks.md, "Session 10").
PACKED_FOLD_MAX_BYTES = 4_096
# A hot set so small that most events unpack would make every event slow; below this
# the budget is too small for the account cap, which the operator should fix instead.
MIN_HOT_ACCOUNTS = 1_000


def hot_capacity_for(budget_bytes: int, max_accounts: int) -> int:
    """How many accounts may be hot so that `max_accounts` accounts, the rest packed, fit
    in `budget_bytes`: the cap's accounts all packed, then what is left of the budget
    spent on holding the most recently used ones as objects instead. Sized for the cap,
    not for today's count, so that the hot set never has to shrink as accounts arrive."""
    spare = budget_bytes - max_accounts * PACKED_ACCOUNT_BYTES
    hot = spare // (HOT_ACCOUNT_BYTES - PACKED_ACCOUNT_BYTES)
    return max(MIN_HOT_ACCOUNTS, min(max_accounts, hot))


def _shard_of(account_id: str) -> int:
    return zlib.crc32(account_id.encode()) & _SHARD_MASK


def _tracked_dict() -> dict[str, Account | bytes]:
    """An empty dict that the cyclic garbage collector tracks from the start. CPython
    leaves a dict of only strings and bytes untracked and starts tracking it when the
    first object that can hold references goes in; it then joins the young generation,
    whose next collection walks all its entries. A shard restored packed (all bytes) would
    do that at its first unpack, after the restore froze everything (gc.freeze): 18 ms of
    CPU for three shards of 15,600 accounts at once in bench/stalls.py. Tracked from the
    start, a shard is frozen with the restore. (Only a full collection untracks it again.)"""
    shard: dict[str, Account | bytes] = {}
    shard[""] = []  # type: ignore[assignment]  # any object the collector tracks
    del shard[""]
    return shard


def _version(held: Account | bytes) -> int:
    if isinstance(held, Account):
        return held.version
    return int(_PACKED_VERSION.unpack_from(held, _PACKED_VERSION_AT)[0])


class _Expirable(Protocol):
    def held(self, account_id: str) -> Account | bytes | None: ...
    def remove(self, account_id: str) -> bool: ...
    def replace_packed(self, account_id: str, packed: bytes) -> None: ...


def expire_accounts(store: _Expirable, account_ids: Iterator[str], limits: Limits,
                    most_examined: int, most_opened: int) -> tuple[int, int]:
    """Drops what is older than each partition's horizon, for ids taken from
    `account_ids` until `most_examined` were looked at or `most_opened` packed ones had to
    be unpacked (the costly case). Returns how many accounts went and how many were
    examined. A packed account is opened only if its header says that expiry changes
    part of it. The expiry of both stores (this one and the compiled one)."""
    gone = examined = opened = 0
    for account_id in account_ids:
        examined += 1
        held = store.held(account_id)
        if held is None:
            pass
        elif isinstance(held, Account):
            limit = limits.get(held.partition)
            if limit is not None and not held.expire(*limit):
                store.remove(account_id)
                gone += 1
        else:
            verdict = packing.expiry(held, limits)
            if verdict is packing.Expiry.EVERYTHING:
                store.remove(account_id)
                gone += 1
            elif verdict is packing.Expiry.PART:
                opened += 1
                account = packing.unpack(account_id, held)
                if account.expire(*limits[account.partition]):
                    store.replace_packed(account_id, packing.pack(account))
                else:
                    store.remove(account_id)
                    gone += 1
        if examined >= most_examined or opened >= most_opened:
            break
    return gone, examined


@dataclass(slots=True)
class StoreStats:
    unpacks: int = 0  # packed accounts brought into the hot set
    packed_folds: int = 0  # events and signals folded into an account that stayed packed
    packed_out: int = 0  # hot accounts packed to make room in a full hot set


class AccountStore:
    def __init__(self, hot_capacity: int) -> None:
        self.hot_capacity = hot_capacity
        self.packed_fold_max_bytes = PACKED_FOLD_MAX_BYTES  # read by the compiled fold
        # Each shard least recently active first. A value is the account itself while
        # hot, its packed bytes when not.
        self._shards: list[dict[str, Account | bytes]] = [
            _tracked_dict() for _ in range(ACTIVITY_SHARDS)]
        self._count = 0
        self._hot: OrderedDict[str, Account] = OrderedDict()  # least recently used first
        # Ids changed or removed since the last `drain_changed` (events, signals, expiry,
        # eviction), each with how many events and signals it took: what the next
        # changelog checkpoint writes, one record per account, and whether an account
        # stays packed (`_for_change`, `drain_packed`). A partial expiry is not a change:
        # replaying it after a restore gives the same state.
        self._changed: dict[str, int] = {}
        self.stats = StoreStats()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[str]:
        for shard in self._shards:
            yield from shard

    def sweep_order(self) -> Iterator[str]:
        """Every account id, for a sweep in slices: one shard's ids copied at a time (a
        copy of all 1 M at once held the event loop for ~100 ms), so that events may
        change the shards between slices; an account added to a shard already copied
        waits for the next sweep."""
        for shard in self._shards:
            yield from list(shard)

    @property
    def hot(self) -> int:
        return len(self._hot)

    def estimated_bytes(self) -> int:
        """What the accounts take, by the per-form averages (for a gauge)."""
        hot = len(self._hot)
        return hot * HOT_ACCOUNT_BYTES + (self._count - hot) * PACKED_ACCOUNT_BYTES

    def get(self, account_id: str) -> Account | None:
        """The account, for reading: it becomes the most recently used."""
        shard = self._shards[_shard_of(account_id)]
        held = shard.get(account_id)
        if held is None:
            return None
        if isinstance(held, Account):
            return self._used(account_id, held)
        return self._promote(shard, account_id, held)

    def activate(self, account_id: str) -> tuple[Account, bool] | None:
        """The account, for an event, and whether it stays packed: it becomes the most
        recently active. A hot account becomes the most recently used; a packed one stays
        packed while its events and signals since the last checkpoint, this one included,
        times its size stay within `packed_fold_max_bytes`, and joins the hot set
        otherwise. The caller then folds the event into the copy returned and hands it
        back with `put_back` (the compiled fold, native/src/packed.rs, changes the bytes
        without building the copy)."""
        shard = self._shards[_shard_of(account_id)]
        held = shard.pop(account_id, None)
        if held is None:
            return None
        folds = self._count_fold(account_id)
        shard[account_id] = held  # re-inserted: now the most recently active of its shard
        return self._for_change(shard, account_id, held, folds)

    def for_change(self, account_id: str) -> tuple[Account, bool] | None:
        """The account, for a change that is not activity (an audience signal), and
        whether it stays packed: as `activate`, but its place in the activity order
        stays."""
        shard = self._shards[_shard_of(account_id)]
        held = shard.get(account_id)
        if held is None:
            return None
        return self._for_change(shard, account_id, held, self._count_fold(account_id))

    def _count_fold(self, account_id: str) -> int:
        """One more event or signal for the account since the last checkpoint: how many."""
        folds = self._changed[account_id] = self._changed.get(account_id, 0) + 1
        return folds

    def _for_change(self, shard: dict[str, Account | bytes], account_id: str,
                    held: Account | bytes, folds: int) -> tuple[Account, bool]:
        """`folds`: the account's events and signals since the last checkpoint, this one
        included."""
        if isinstance(held, Account):
            return self._used(account_id, held), False
        if folds * len(held) > self.packed_fold_max_bytes:
            return self._promote(shard, account_id, held), False
        account = packing.unpack(account_id, held)  # corrupt bytes raise here, uncounted
        self.stats.packed_folds += 1
        return account, True

    def put_back(self, account: Account) -> None:
        """An account that `activate` left packed, packed again in its place."""
        account_id = account.account_id
        self._shards[_shard_of(account_id)][account_id] = packing.pack(account)

    def add(self, account: Account) -> None:
        """A new account, for its first event."""
        account_id = account.account_id
        self._count_fold(account_id)
        shard = self._shards[_shard_of(account_id)]
        if account_id not in shard:
            self._count += 1
        shard[account_id] = account
        self._hot[account_id] = account
        self._keep_hot_bounded()

    def evict_least_active(self) -> None:
        oldest: tuple[int, int, str] | None = None
        for index, shard in enumerate(self._shards):
            for account_id, held in shard.items():  # the first one only
                candidate = (_version(held), index, account_id)
                if oldest is None or candidate < oldest:
                    oldest = candidate
                break
        if oldest is not None:
            self.remove(oldest[2])

    def expire(self, account_ids: Iterator[str], limits: Limits, most_examined: int,
               most_opened: int) -> tuple[int, int]:
        return expire_accounts(self, account_ids, limits, most_examined, most_opened)

    def remove(self, account_id: str) -> bool:
        """Removed (evicted or expired): its tombstone is due at the next drain."""
        held = self._shards[_shard_of(account_id)].pop(account_id, None)
        if held is None:
            return False
        self._count -= 1
        self._hot.pop(account_id, None)
        self._changed.setdefault(account_id, 0)
        return True

    def replace_packed(self, account_id: str, packed: bytes) -> None:
        """A packed account's bytes replaced in its place (expiry of part of it)."""
        self._shards[_shard_of(account_id)][account_id] = packed

    def packed(self) -> Iterator[tuple[str, bytes]]:
        """Every account packed, each shard least recently active first (what a
        snapshot holds; a restore puts each back in its shard, in the same order)."""
        for shard in self._shards:
            for account_id, held in shard.items():
                yield account_id, packing.pack(held) if isinstance(held, Account) else held

    def restore(self, packed: Iterable[tuple[str, bytes]]) -> None:
        shards = self._shards
        for account_id, held in packed:
            shard = shards[_shard_of(account_id)]
            if account_id not in shard:
                self._count += 1
            shard[account_id] = held

    def drain_packed(self) -> list[tuple[str, bytes | None]]:
        """Every account changed since the last drain, packed (None if it is gone), and
        none marked changed any more: what a changelog checkpoint writes. The hot ones are
        packed `EVICTION_BATCH` at a time (`packing.pack_many`), their memory reads
        overlapped, and those that would have stayed packed through as many folds are
        left packed."""
        shards = self._shards
        drained: list[tuple[str, bytes | None]] = []
        hot_ids: list[str] = []
        hot_accounts: list[Account] = []
        changed = self.drain_changed()
        for account_id in changed:
            held = shards[_shard_of(account_id)].get(account_id)
            if held is None or isinstance(held, bytes):
                drained.append((account_id, held))
            else:
                hot_ids.append(account_id)
                hot_accounts.append(held)
        hot = self._hot
        most = self.packed_fold_max_bytes
        for start in range(0, len(hot_accounts), EVICTION_BATCH):
            ids = hot_ids[start : start + EVICTION_BATCH]
            packed = packing.pack_many(hot_accounts[start : start + EVICTION_BATCH])
            drained.extend(zip(ids, packed, strict=True))
            for account_id, account_bytes in zip(ids, packed, strict=True):
                # As many folds packed would have stayed packed: left packed.
                if changed[account_id] * len(account_bytes) <= most:
                    del hot[account_id]
                    shards[_shard_of(account_id)][account_id] = account_bytes
        return drained

    def packed_one(self, account_id: str) -> bytes | None:
        """One account packed (None if it is gone), without changing any order."""
        held = self._shards[_shard_of(account_id)].get(account_id)
        if held is None or isinstance(held, bytes):
            return held
        return packing.pack(held)

    def put_packed(self, account_id: str, packed: bytes | None) -> None:
        """Restore of one changelog record: the newest state of an account, or its
        removal (a tombstone)."""
        self._hot.pop(account_id, None)
        shard = self._shards[_shard_of(account_id)]
        if shard.pop(account_id, None) is not None:
            self._count -= 1
        if packed is not None:
            shard[account_id] = packed
            self._count += 1

    def drain_changed(self) -> dict[str, int]:
        """The changed accounts with their events and signals since the last drain, in
        the order they first changed; none marked changed any more."""
        changed, self._changed = self._changed, {}
        return changed

    def discard_changes(self) -> None:
        """None marked changed any more, without saying which were (a standby, a
        restore: the compiled store's `drain_changed` builds its dict, ~0.5 us each)."""
        self._changed = {}

    def changed_folds(self) -> dict[str, int]:
        """What `drain_changed` would give, without draining (a copy)."""
        return dict(self._changed)

    def changed_ids(self) -> list[str]:
        """The ids `drain_changed` would give, in the same order."""
        return list(self._changed)

    def changed_count(self) -> int:
        return len(self._changed)

    def mark_changed(self, account_id: str) -> None:
        """Written again at the next checkpoint (one that failed wrote it)."""
        self._changed.setdefault(account_id, 0)

    def hot_ids(self) -> list[str]:
        """The hot set's ids, least recently used first."""
        return list(self._hot)

    def shard_ids(self, shard: int) -> list[str]:
        """The ids of one shard, least recently active first."""
        return list(self._shards[shard])

    def held(self, account_id: str) -> Account | bytes | None:
        """The account as held, without changing any order."""
        return self._shards[_shard_of(account_id)].get(account_id)

    def _used(self, account_id: str, account: Account) -> Account:
        self._hot.move_to_end(account_id)  # now the most recently used
        return account

    def _promote(self, shard: dict[str, Account | bytes], account_id: str, packed: bytes
                 ) -> Account:
        account = packing.unpack(account_id, packed)
        self.stats.unpacks += 1
        shard[account_id] = account  # in its place: a use is not activity
        self._hot[account_id] = account
        self._keep_hot_bounded()
        return account

    def _keep_hot_bounded(self) -> None:
        """Packs the least recently used accounts until at most `hot_capacity` are hot; a
        large hot set `EVICTION_BATCH` - 1 more, so that accounts leave it in batches."""
        hot = self._hot
        most = self.hot_capacity
        leaving = len(hot) - most
        if leaving <= 0:
            return
        if most >= BATCHED_HOT_SETS:
            leaving += EVICTION_BATCH - 1
        ids: list[str] = []
        accounts: list[Account] = []
        for _ in range(leaving):
            account_id, account = hot.popitem(last=False)
            ids.append(account_id)
            accounts.append(account)
        self.stats.packed_out += leaving
        shards = self._shards
        for account_id, packed in zip(ids, packing.pack_many(accounts), strict=True):
            shards[_shard_of(account_id)][account_id] = packed
