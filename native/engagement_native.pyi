"""Typed stubs of the compiled parts (native/src/): the packed-account codec (lib.rs),
the actor side of the audience signal (actors.rs) and both ends of its signal topic
(signals.rs), the dedupe memory (dedupe.rs),
the interaction decoder (wire.rs) and the batch fold of events (fold.rs), which folds an
event for a packed account into its bytes (packed.rs, no Python-visible API).

`service/engine/packing.py`, `service/engine/audience.py` and `service/engine/dedupe.py`
hold the pure-Python references and select the implementation; the tests hold each pair
to the same bytes, the same accounts, the same verdicts and the same answers."""

from collections.abc import Callable

from service.engine.account import Account, Post
from service.engine.audience import AudienceSignal, InteractionBatch
from service.engine.engine import Engine, KafkaRecord, PartitionClock
from service.engine.sketches import ActorSketch
from service.engine.store import AccountStore
from service.events import CommentEvent, LikeEvent, ShareEvent

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
        prefetch: bool = True,
    ) -> None: ...
    @property
    def builds_bare(self) -> tuple[bool, bool, bool]: ...
    def pack(self, account: Account, /) -> bytes: ...
    def pack_many(self, accounts: list[Account], /) -> list[bytes]: ...
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
    def observe_routed(self, data: bytes, partitions: int, out: SignalBatches, /) -> int: ...
    def replay_packed(self, data: bytes, /) -> int: ...
    def union(self, actor: int, /) -> int: ...
    def month_union(self, actor: int, /) -> int: ...
    def expire(self, first_live: int, /) -> int: ...
    def snapshot_records(self) -> bytes: ...
    def restore_records(self, body: bytes, /) -> None: ...

class Fold:
    def __init__(
        self,
        account: type[Account],
        post: type[Post],
        sketch: type[ActorSketch],
        batch: type[InteractionBatch],
        horizon_s: float,
        actor_bucket_s: float,
        burst_window_s: float,
        max_posts: int,
        max_event_ids: int,
        shared_topics: Callable[[tuple[str, ...]], tuple[str, ...]],
        /,
    ) -> None: ...
    def fold(
        self,
        engine: Engine,
        clock: PartitionClock,
        accounts: AccountStore,
        records: list[KafkaRecord],
        start: int,
        partition: int,
        routes: dict[int, InteractionBatch],
        partitions: int,
        now: float,
        max_event_bytes: int,
        max_future_skew_s: float,
        budget_s: float,
        outcomes: list[int],
        otherwise: Callable[[KafkaRecord], object],
        /,
    ) -> int: ...

class InteractionDecoder:
    def __init__(
        self, like: type[LikeEvent], comment: type[CommentEvent], share: type[ShareEvent], /
    ) -> None: ...
    def decode(
        self,
        key: bytes | None,
        value: bytes,
        now: float,
        max_event_bytes: int,
        max_future_skew_s: float,
        /,
    ) -> LikeEvent | CommentEvent | ShareEvent | None: ...

# (type, event_id, account_id, occurred_at_s, post_id, actor_id, sponsored, topics,
# followers), None for the fields the type does not have.
WireFields = tuple[str, str, str, float, str | None, str | None, bool | None,
                   tuple[str, ...] | None, int | None]

def decode_wire_fields(
    key: bytes | None,
    value: bytes,
    now: float,
    max_event_bytes: int,
    max_future_skew_s: float,
    /,
) -> WireFields | None: ...

class EventIdsCore:
    def __init__(self, track_changes: bool, shard_ids: int, /) -> None: ...
    def __len__(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def floor_hour(self) -> int: ...
    @floor_hour.setter
    def floor_hour(self, hour: int) -> None: ...
    @property
    def has_added(self) -> bool: ...
    @property
    def hours(self) -> list[int]: ...
    def add(self, hour: int, event_id: str, /) -> bool: ...
    def add_hashed(self, hour: int, hashed: int, /) -> bool: ...
    def contains(self, hour: int, event_id: str, /) -> bool: ...
    def ids_in(self, hour: int, /) -> int: ...
    def oldest_hour(self) -> int | None: ...
    def expired_hours(self, first_live_hour: int, /) -> list[int]: ...
    def retire_before(self, first_live_hour: int, /) -> int: ...
    def forget_oldest(self, before_hour: int, /) -> int: ...
    def expected_false_duplicates(self) -> float: ...
    def nbytes(self) -> int: ...
    def export(self) -> dict[int, bytes]: ...
    def restore(self, hour: int, data: bytes, /) -> None: ...
    def drain_added(self) -> dict[int, bytes]: ...
    def drain_retired(self) -> list[int]: ...
    def merge(self, hour: int, data: bytes, /) -> int: ...

class SignalBatches:
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def take(self) -> list[tuple[int, bytes]]: ...

class SignalFold:
    def __init__(
        self, account: type[Account], signal: type[AudienceSignal], actor_bucket_s: float, /
    ) -> None: ...
    def fold(self, engine: Engine, accounts: AccountStore, message: bytes, /) -> int | None: ...

def partition_for(account_id: str, partitions: int) -> int: ...
