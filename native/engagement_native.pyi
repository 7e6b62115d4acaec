"""Typed stubs of the compiled parts (native/src/): the packed-account codec (lib.rs)
and the actor side of the audience signal (actors.rs).

`service/engine/packing.py` and `service/engine/audience.py` hold the pure-Python
references and select the implementation; the tests hold each pair to the same bytes,
the same accounts and the same verdicts."""

from collections.abc import Callable

from service.engine.account import Account, Post
from service.engine.sketches import ActorSketch

class Codec:
    def __init__(
        self,
        account: type[Account],
        post: type[Post],
        sketch: type[ActorSketch],
        shared_topics: Callable[[tuple[str, ...]], tuple[str, ...]],
        /,
        *,
        untrack: bool = True,
    ) -> None: ...
    @property
    def builds_bare(self) -> tuple[bool, bool, bool]: ...
    def pack(self, account: Account, /) -> bytes: ...
    def unpack(self, account_id: str, packed: bytes, /) -> Account: ...

class NativeActors:
    def __init__(
        self,
        bucket_s: float,
        buckets: int,
        busy_bits: int,
        farm_bits: int,
        max_actors: int,
        rotating_accounts: int,
        rotating_active_slots: int,
        month_bits: int,
        month_slots: int,
        month_span: int,
        month_turnover: int,
        /,
    ) -> None: ...
    def __len__(self) -> int: ...
    def take_counts(self) -> tuple[int, int]: ...
    def observe(self, actor: int, bit: int, occurred_at: float, /) -> int: ...
    def observe_packed(
        self, data: bytes, /
    ) -> tuple[list[tuple[str, int, int, int, int]], int]: ...
    def union(self, actor: int, /) -> int: ...
    def month_union(self, actor: int, /) -> int: ...
    def expire(self, first_live: int, /) -> int: ...
    def snapshot_records(self) -> bytes: ...
    def restore_records(self, body: bytes, /) -> None: ...
