"""The account store in compiled code (native/src/table.rs): `AccountStore`'s accounts,
orders and changed set in one table that the compiled folds reach directly, one probe
per event. `AccountStore` (store.py) is its reference: the same answers, the same orders
(tests/unit/test_store_native.py). Importing this module fails where the extension is
not built; the engine then keeps the Python store.

What stays here in Python are the rare, long steps on the table's primitives: expiry
(`store.expire_accounts`, shared with the reference), iteration by shard and the stats."""

from __future__ import annotations

from collections.abc import Iterator

import engagement_native

from service.engine import packing
from service.engine.store import (
    ACTIVITY_SHARDS,
    HOT_ACCOUNT_BYTES,
    PACKED_ACCOUNT_BYTES,
    PACKED_FOLD_MAX_BYTES,
    Limits,
    StoreStats,
    expire_accounts,
)

if not hasattr(engagement_native, "AccountTable"):  # an older build
    raise ImportError("engagement_native has no AccountTable")


class CompiledAccountStore(engagement_native.AccountTable):
    def __new__(cls, hot_capacity: int) -> CompiledAccountStore:
        return super().__new__(cls, hot_capacity, packing.pack, packing.pack_many,
                               packing.unpack, PACKED_FOLD_MAX_BYTES)

    @property
    def stats(self) -> StoreStats:
        return StoreStats(self.unpacks, self.packed_folds, self.packed_out)

    def __iter__(self) -> Iterator[str]:
        for shard in range(ACTIVITY_SHARDS):
            yield from self.shard_ids(shard)

    def sweep_order(self) -> Iterator[str]:
        """`AccountStore.sweep_order`: one shard's ids copied at a time."""
        return iter(self)

    def estimated_bytes(self) -> int:
        hot = self.hot
        return hot * HOT_ACCOUNT_BYTES + (len(self) - hot) * PACKED_ACCOUNT_BYTES

    def packed(self) -> Iterator[tuple[str, bytes]]:
        """`AccountStore.packed`: one shard packed at a time."""
        for shard in range(ACTIVITY_SHARDS):
            yield from self.shard_packed(shard)

    def expire(self, account_ids: Iterator[str], limits: Limits, most_examined: int,
               most_opened: int) -> tuple[int, int]:
        return expire_accounts(self, account_ids, limits, most_examined, most_opened)
