"""Accounts by id: the recently used ones as objects, the rest packed into bytes.

An account as objects costs ~1.6 KB, packed ~0.3 KB with its id and dict entry (see
`packing`). Events and score queries touch a small working set, so the store keeps the
`hot_capacity` most recently used accounts as objects and packs the one that falls out;
an access to a packed account unpacks it again (tens of microseconds for a typical
account). Ops see the churn in `engagement_account_unpacks_total` and size the hot set
to the working set.

Two orders are kept: activity (which account is evicted at `max_accounts`; only events
count as activity) and use (which account is packed; queries count too). Both are
`OrderedDict`s moved with `move_to_end`: a plain dict reordered by deleting and inserting
again fills with deleted slots, so it compacts all its entries now and then (61 ms at 1 M
accounts, a stall of the event loop) and finding its first entry walks over the deleted
ones (~5 us per eviction from the hot set). The linked order costs ~49 bytes per
account more (docs/benchmarks.md).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from service.engine import packing
from service.engine.account import Account

Limits = Mapping[int, tuple[float, int]]  # partition -> (horizon, first live actor bucket)


@dataclass(slots=True)
class StoreStats:
    unpacks: int = 0


class AccountStore:
    def __init__(self, hot_capacity: int) -> None:
        self.hot_capacity = hot_capacity
        # Least recently active first. A value is the account itself while hot, its
        # packed bytes when not.
        self._all: OrderedDict[str, Account | bytes] = OrderedDict()
        self._hot: OrderedDict[str, Account] = OrderedDict()  # least recently used first
        # Ids changed or removed since the last `drain_changed` (events, expiry, eviction):
        # what the next changelog checkpoint writes, one record per account. A partial
        # expiry is not a change: replaying it after a restore gives the same state.
        self.changed: set[str] = set()
        self.stats = StoreStats()

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    @property
    def hot(self) -> int:
        return len(self._hot)

    def get(self, account_id: str) -> Account | None:
        """The account, for reading: it becomes the most recently used."""
        held = self._all.get(account_id)
        if held is None:
            return None
        if isinstance(held, Account):
            return self._used(account_id, held)
        return self._promote(account_id, held)

    def activate(self, account_id: str) -> Account | None:
        """The account, for an event: it becomes the most recently active and used."""
        held = self._all.get(account_id)
        if held is None:
            return None
        self.changed.add(account_id)
        self._all.move_to_end(account_id)  # now the most recently active
        if isinstance(held, Account):
            return self._used(account_id, held)
        return self._promote(account_id, held)

    def add(self, account: Account) -> None:
        self.changed.add(account.account_id)
        self._all[account.account_id] = account
        self._hot[account.account_id] = account
        self._keep_hot_bounded()

    def evict_least_active(self) -> None:
        account_id, _ = self._all.popitem(last=False)
        self._hot.pop(account_id, None)
        self.changed.add(account_id)

    def expire(self, account_ids: Iterator[str], limits: Limits, most_examined: int,
               most_opened: int) -> tuple[int, int]:
        """Drops what is older than each partition's horizon, for ids taken from
        `account_ids` until `most_examined` were looked at or `most_opened` packed ones
        had to be unpacked (the costly case). Returns how many accounts went and how many
        were examined. A packed account is opened only if its header says that expiry
        changes part of it."""
        gone = examined = opened = 0
        changed = self.changed
        for account_id in account_ids:
            examined += 1
            held = self._all.get(account_id)
            if held is None:
                pass
            elif isinstance(held, Account):
                limit = limits.get(held.partition)
                if limit is not None and not held.expire(*limit):
                    del self._all[account_id]
                    del self._hot[account_id]
                    changed.add(account_id)
                    gone += 1
            else:
                verdict = packing.expiry(held, limits)
                if verdict is packing.Expiry.EVERYTHING:
                    del self._all[account_id]
                    changed.add(account_id)
                    gone += 1
                elif verdict is packing.Expiry.PART:
                    opened += 1
                    account = packing.unpack(account_id, held)
                    if account.expire(*limits[account.partition]):
                        self._all[account_id] = packing.pack(account)
                    else:
                        del self._all[account_id]
                        changed.add(account_id)
                        gone += 1
            if examined >= most_examined or opened >= most_opened:
                break
        return gone, examined

    def packed(self) -> Iterator[tuple[str, bytes]]:
        """Every account packed, least recently active first (what a snapshot holds)."""
        for account_id, held in self._all.items():
            yield account_id, packing.pack(held) if isinstance(held, Account) else held

    def restore(self, packed: Iterable[tuple[str, bytes]]) -> None:
        self._all.update(packed)

    def packed_one(self, account_id: str) -> bytes | None:
        """One account packed (None if it is gone), without changing any order."""
        held = self._all.get(account_id)
        if held is None or isinstance(held, bytes):
            return held
        return packing.pack(held)

    def put_packed(self, account_id: str, packed: bytes | None) -> None:
        """Restore of one changelog record: the newest state of an account, or its
        removal (a tombstone)."""
        self._hot.pop(account_id, None)
        self._all.pop(account_id, None)
        if packed is not None:
            self._all[account_id] = packed

    def drain_changed(self) -> set[str]:
        changed, self.changed = self.changed, set()
        return changed

    def _used(self, account_id: str, account: Account) -> Account:
        self._hot.move_to_end(account_id)  # now the most recently used
        return account

    def _promote(self, account_id: str, packed: bytes) -> Account:
        account = packing.unpack(account_id, packed)
        self.stats.unpacks += 1
        self._all[account_id] = account
        self._hot[account_id] = account
        self._keep_hot_bounded()
        return account

    def _keep_hot_bounded(self) -> None:
        hot = self._hot
        while len(hot) > self.hot_capacity:
            account_id, account = hot.popitem(last=False)
            self._all[account_id] = packing.pack(account)
