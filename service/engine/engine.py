"""The engine: folds events into per-account state and answers scores. Pure; no I/O.

Time is event time. Each Kafka partition has its own stream time (the latest event time
seen on it); accounts are keyed by account_id, so each lives in one partition and its
window ends at that partition's stream time. A replay of history therefore gives the
same answers as live traffic, and a partition's state can move between instances.

An event counts if it is no older than the partition's horizon (the window and its
grace, `allowed_lateness_s`), whatever the order across accounts: one account's history
may arrive a whole window behind the stream time while others stream live (a crawler's
backfill). The dedupe memory (`dedupe.EventIds`) spans the same horizon, so a re-send
inside it counts once; older events are late. Expiry drops state beyond the horizon.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from service.engine.account import Account, Post, PostView, shared_topics
from service.engine.audience import AudienceSignal, InteractionBatch, RoutedBatch, unpack_signals
from service.engine.dedupe import EventIds
from service.engine.scoring import COMPILED_AVAILABLE as COMPILED_SCORING_AVAILABLE
from service.engine.scoring import (
    TOP_ACTORS,
    AudienceCounts,
    Counts,
    Credibility,
    Engagement,
    Followers,
    PostSums,
    score_credibility,
    score_credibility_compiled,
)
from service.engine.sketches import ActorSketch, ActorSummary, actor_hash, summarize
from service.engine.store import AccountStore
from service.engine.tiers import TIER_SCHEMES, TierScheme
from service.events import Event, FollowersEvent, PostEvent

try:
    import engagement_native
except ImportError:  # not built: the Python fold serves, slower (docs/benchmarks.md)
    engagement_native = None  # type: ignore[assignment]
try:
    from service.engine.compiled_store import CompiledAccountStore
except ImportError:  # not built, or built before the store was compiled
    COMPILED_STORE_AVAILABLE = False
else:
    COMPILED_STORE_AVAILABLE = True

DAY_S = 86_400.0
# A slice examines ~1-2 us per account (a packed one's header), so 5,000 keep a slice
# within ~10 ms (20,000 took up to 108 ms on a loaded machine: docs/benchmarks.md).
EXPIRY_SLICE_ACCOUNTS = 5_000
EXPIRY_SLICE_OPENED = 500  # packed accounts unpacked and packed again: ~10 us each
DEDUPE_BUCKET_S = 3_600.0
ACTOR_BUCKETS_PER_WINDOW = 6
# Upper bounds (seconds) of the buckets of how far behind its partition's stream time a
# counted event was: ~0 for a live stream, days for an account's backfill.
EVENT_LAG_BUCKETS_S = (1.0, 60.0, 600.0, 3_600.0, 6 * 3_600.0, DAY_S, 3 * DAY_S, 7 * DAY_S,
                       14 * DAY_S, 30 * DAY_S)
FIRST_LAG_BUCKET_S = EVENT_LAG_BUCKETS_S[0]


@dataclass(frozen=True, slots=True)
class EngineConfig:
    window_s: float = 30 * DAY_S
    # Grace beyond the window: an event this much older than the window's start still
    # counts (the follower count at the start, interactions whose post just left it).
    allowed_lateness_s: float = 6 * 3_600.0
    burst_window_s: float = 30.0
    tier_scheme: str = "article"
    max_accounts: int = 1_000_000
    max_posts_per_account: int = 256
    max_event_ids: int = 50_000_000  # ~8.5 bytes each (bench/dedupe.py)
    hot_accounts: int = 20_000
    track_dedupe_changes: bool = False  # for a changelog: see EventIds.drain_added
    # Events and audience signals folded in compiled code (`Engine.fold_records`,
    # `Engine.fold_signals`, and the actor side's signals packed there) where it is
    # built; off, the Python reference does all of it (ENGAGEMENT_NATIVE_FOLD).
    native_fold: bool = True
    # A score's numbers computed in compiled code where it is built (the same bits;
    # scoring.score_credibility_compiled); off, the Python reference computes them
    # (ENGAGEMENT_NATIVE_SCORING).
    native_scoring: bool = True

    @property
    def horizon_s(self) -> float:
        """How far behind its partition's stream time an event may be and still count."""
        return self.window_s + self.allowed_lateness_s

    @property
    def actor_bucket_s(self) -> float:
        return self.window_s / ACTOR_BUCKETS_PER_WINDOW

    @property
    def tiers(self) -> TierScheme:
        return TIER_SCHEMES[self.tier_scheme]


class Outcome(StrEnum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    LATE = "late"


# What `Engine.fold_records` counts, in the order of its `outcomes` list.
FOLD_OUTCOMES = tuple((kind, outcome)
                      for kind in ("like", "comment", "share", "post", "followers")
                      for outcome in (Outcome.COUNTED, Outcome.DUPLICATE, Outcome.LATE))


class KafkaRecord(Protocol):
    """What the engine reads of a message (a Kafka consumer record): it knows no more of
    Kafka than this."""

    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def offset(self) -> int: ...


class PartitionClock:
    """Stream time of one partition and the event ids it has counted within its horizon."""

    __slots__ = ("event_ids", "stream_time")

    def __init__(self, track_dedupe_changes: bool = False) -> None:
        self.stream_time = -math.inf
        self.event_ids = EventIds(track_dedupe_changes)  # by hour of occurred_at


@dataclass(frozen=True, slots=True)
class AccountScore:
    account_id: str
    partition: int
    tier: str
    tier_scheme: str
    followers: int | None
    counts: Counts
    engagement: Engagement
    credibility: Credibility
    window_days: float
    window_start: float
    as_of: float

    def moved_to(self, window_start: float, as_of: float) -> AccountScore:
        # Spelled out: dataclasses.replace costs several microseconds on this hot path.
        return AccountScore(self.account_id, self.partition, self.tier, self.tier_scheme,
                            self.followers, self.counts, self.engagement, self.credibility,
                            self.window_days, window_start, as_of)


@dataclass(frozen=True, slots=True)
class _CachedScore:
    version: int
    first_bucket: int
    valid_until: float  # window start at which the window's contents change
    score: AccountScore


NATIVE_FOLD_AVAILABLE = engagement_native is not None and hasattr(engagement_native, "Fold")
NATIVE_SIGNALS_AVAILABLE = (engagement_native is not None
                            and hasattr(engagement_native, "SignalFold"))
SCORE_CACHE_ENTRIES = 10_000
NO_AUDIENCE = AudienceCounts()  # for the accounts without audience signals (immutable)


@dataclass(slots=True)
class EngineStats:
    """Monotonic counters that the metrics layer reads."""

    evicted_accounts: int = 0
    expired_accounts: int = 0
    forgotten_event_ids: int = 0
    audience_signals: int = 0
    audience_signals_unmatched: int = 0  # for accounts not (or no longer) tracked
    # Events dropped as late because their hour's ids were forgotten at the memory cap.
    late_after_forgetting: int = 0
    # Counted events by how far behind the stream time they were (EVENT_LAG_BUCKETS_S,
    # then one bucket for anything older), and the sum of those lags.
    event_lag_counts: list[int] = field(
        default_factory=lambda: [0] * (len(EVENT_LAG_BUCKETS_S) + 1))
    event_lag_sum_s: float = 0.0

    def event_lag_histogram(self) -> tuple[list[tuple[str, int]], float]:
        """Cumulative (upper bound, count) pairs ending with "+Inf", and the sum: what
        a Prometheus histogram exposes."""
        buckets = []
        total = 0
        for bound, count in zip((*EVENT_LAG_BUCKETS_S, math.inf), self.event_lag_counts,
                                strict=True):
            total += count
            buckets.append(("+Inf" if bound == math.inf else repr(bound), total))
        return buckets, self.event_lag_sum_s


class Engine:
    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        config = self.config
        # The compiled folds reach the compiled store's table directly; the Python fold
        # works on the Python store, their reference.
        compiled = config.native_fold and NATIVE_FOLD_AVAILABLE and COMPILED_STORE_AVAILABLE
        self._table = CompiledAccountStore(config.hot_accounts) if compiled else None
        self.accounts: AccountStore | CompiledAccountStore = (
            AccountStore(config.hot_accounts) if self._table is None else self._table)
        self.partitions: dict[int, PartitionClock] = {}
        self.stats = EngineStats()
        self._scores: dict[str, _CachedScore] = {}  # bounded, oldest first
        self.changes = 0
        self._event_ids = 0  # remembered for dedupe, over all partitions
        self._horizon_s = self.config.horizon_s
        self._fold = (
            engagement_native.Fold(Account, Post, ActorSketch,
                                   config.horizon_s, config.actor_bucket_s,
                                   config.burst_window_s, config.max_posts_per_account,
                                   config.max_event_ids, shared_topics)
            if compiled else None)
        # The batches of re-keyed interactions: the compiled fold's own kind where it
        # folds, so that the few events Python folds join the same batches.
        self.new_interaction_batch: Callable[[], RoutedBatch] = (
            engagement_native.InteractionBatch if self._fold is not None
            else InteractionBatch)
        self._signal_fold = (
            engagement_native.SignalFold(Account, AudienceSignal, config.actor_bucket_s)
            if compiled and NATIVE_SIGNALS_AVAILABLE else None)
        self._score_credibility: Callable[
            [list[PostView], Counts, Engagement, ActorSummary, Followers, AudienceCounts,
             PostSums], Credibility] = (
            score_credibility_compiled if config.native_scoring and COMPILED_SCORING_AVAILABLE
            else score_credibility)

    def clock(self, partition: int) -> PartitionClock:
        clock = self.partitions.get(partition)
        if clock is None:
            clock = self.partitions[partition] = PartitionClock(
                self.config.track_dedupe_changes)
        return clock

    def apply(self, event: Event, partition: int = 0, actor: int | None = None) -> Outcome:
        """Folds one event into its account. `actor`: the interaction's
        `actor_hash(event.actor_id)`, if the caller has computed it already (the consumer
        routes by it too; the hash is a tenth of an event's fold)."""
        config = self.config
        occurred_at = event.occurred_at_s
        clock = self.clock(partition)
        stream_time = clock.stream_time
        if occurred_at < stream_time - self._horizon_s:
            return Outcome.LATE
        hour = int(occurred_at // DEDUPE_BUCKET_S)
        event_ids = clock.event_ids
        if hour < event_ids.floor_hour:
            self.stats.late_after_forgetting += 1
            return Outcome.LATE
        if not event_ids.add(hour, event.event_id):
            return Outcome.DUPLICATE
        self._event_ids += 1
        if self._event_ids > config.max_event_ids:
            self._forget_oldest_event_ids(hour)
        if occurred_at > stream_time:
            clock.stream_time = stream_time = occurred_at
        lag = stream_time - occurred_at
        stats = self.stats
        if lag < FIRST_LAG_BUCKET_S:  # a live stream's events, without the bisect
            stats.event_lag_counts[0] += 1
        else:
            stats.event_lag_counts[bisect_left(EVENT_LAG_BUCKETS_S, lag)] += 1
        stats.event_lag_sum_s += lag

        account, stays_packed = self._account_for(event.account_id, partition)
        self.changes += 1  # engine-wide, so a re-created account never reuses a version
        account.touch(occurred_at, self.changes)
        if isinstance(event, FollowersEvent):
            account.record_followers(occurred_at, event.followers)
        elif isinstance(event, PostEvent):
            account.record_post(
                event.post_id, occurred_at, event.sponsored, tuple(event.topics),
                config.burst_window_s, config.max_posts_per_account,
            )
        else:
            account.record_interaction(
                event.type, event.post_id, occurred_at,
                actor_hash(event.actor_id) if actor is None else actor,
                int(occurred_at // config.actor_bucket_s), config.burst_window_s,
                config.max_posts_per_account,
            )
        if stays_packed:
            self.accounts.put_back(account)
        return Outcome.COUNTED

    @property
    def folds_natively(self) -> bool:
        return self._fold is not None

    def fold_records(self, records: Sequence[KafkaRecord], start: int, partition: int,
                     routes: dict[int, RoutedBatch], partitions: int, *, now: float,
                     max_event_bytes: int, max_future_skew_s: float, budget_s: float,
                     outcomes: list[int], otherwise: Callable[[KafkaRecord], object]) -> int:
        """Folds `records[start:]` of one partition in compiled code (native/src/fold.rs)
        until the end or, checked every 32 records, until `budget_s` is spent; returns
        the index of the first record not folded. For each like, comment, share, post or
        follower count it does what the consumer does with `decode_event`, `apply` and
        the route of a counted interaction into `routes` (the `RoutedBatch` of each
        of the `partitions` repartition partitions), and adds the outcome to `outcomes`
        (as `FOLD_OUTCOMES` orders them); every other record (invalid messages, forms
        the compiled decoder leaves to Python) goes to `otherwise`, in its place in the
        order. The compiled code calls `_account_for`, `_forget_oldest_event_ids` and
        the account's methods for the rare steps (a post past the cap, a follower count
        out of order or one that thins the history). Only where `folds_natively`."""
        if self._fold is None or self._table is None:
            raise RuntimeError("the native fold is off or not built")
        return self._fold.fold(self, self.clock(partition), self._table, records, start,
                               partition, routes, partitions, now, max_event_bytes,
                               max_future_skew_s, budget_s, outcomes, otherwise)

    def fold_signals(self, message: bytes) -> int:
        """`apply_audience` for each signal of a message of the signal topic
        (`pack_signals`), in order; returns how many it held. In compiled code where
        the engine folds natively (native/src/signals.rs: a hot account's `audience`
        list changed in place, anything else by `apply_audience` for that signal); a
        message it cannot read goes to the reference whole, which raises."""
        if self._signal_fold is not None and self._table is not None:
            folded = self._signal_fold.fold(self, self._table, message)
            if folded is not None:
                return folded
        signals = unpack_signals(message)
        for signal in signals:
            self.apply_audience(signal)
        return len(signals)

    def apply_audience(self, signal: AudienceSignal) -> bool:
        """Folds what the actor side learned about an account's audience (a delta for one
        time bucket). An account's events precede their re-keyed copies, so a tracked
        account is known; a signal for an untracked one (evicted, expired) is dropped
        and counted. Signals do not move stream time: they are derived, not events."""
        held = self.accounts.for_change(signal.account_id)  # marked for the changelog
        if held is None:
            self.stats.audience_signals_unmatched += 1
            return False
        account, stays_packed = held
        self.stats.audience_signals += 1
        account.record_audience(int(signal.bucket_start // self.config.actor_bucket_s),
                                signal.interactions, signal.busy, signal.farm_like)
        self.changes += 1
        account.version = self.changes
        if stays_packed:
            self.accounts.put_back(account)
        return True

    def recount_event_ids(self) -> None:
        self._event_ids = sum(len(clock.event_ids) for clock in self.partitions.values())

    @property
    def remembered_event_ids(self) -> int:
        return self._event_ids

    def event_id_bytes(self) -> int:
        """Bytes the dedupe memory holds, over all partitions (for a gauge)."""
        return sum(clock.event_ids.nbytes() for clock in self.partitions.values())

    def expected_false_duplicates(self) -> float:
        """Expected re-sends wrongly seen through 64-bit hash collisions, so far (see
        `dedupe`): an upper bound, for the metrics."""
        return sum(clock.event_ids.expected_false_duplicates()
                   for clock in self.partitions.values())

    def _forget_oldest_event_ids(self, current_hour: int) -> None:
        """A flood of distinct ids within the horizon must not exhaust memory: past the
        cap, the oldest hour of ids (over all partitions) is forgotten, and its
        partition treats later events of that hour as late instead of counting a
        re-send twice. The hour being written is never forgotten."""
        oldest = [(hour, clock.event_ids) for clock in self.partitions.values()
                  if (hour := clock.event_ids.oldest_hour()) is not None]
        if not oldest:
            return
        _, owner = min(oldest, key=lambda pair: pair[0])
        forgotten = owner.forget_oldest(before_hour=current_hour)
        self._event_ids -= forgotten
        self.stats.forgotten_event_ids += forgotten

    def _account_for(self, account_id: str, partition: int) -> tuple[Account, bool]:
        """The event's account, created if new, and whether it stays packed (then the
        caller hands it back to `AccountStore.put_back` once the event is folded)."""
        accounts = self.accounts
        activated = accounts.activate(account_id)
        if activated is not None:
            activated[0].partition = partition
            return activated
        if len(accounts) >= self.config.max_accounts:
            accounts.evict_least_active()
            self.stats.evicted_accounts += 1
        account = Account(account_id, partition)
        accounts.add(account)
        return account, False

    def expire(self) -> int:
        """Drops state that has left every window, all at once; returns how many accounts
        went. The consumer uses `expire_in_slices` instead."""
        return sum(self.expire_in_slices())

    def expire_in_slices(self, accounts_per_slice: int = EXPIRY_SLICE_ACCOUNTS,
                         opened_per_slice: int = EXPIRY_SLICE_OPENED) -> Iterator[int]:
        """The same sweep, a slice of accounts per step, yielding how many went in each:
        a whole sweep over 1 M accounts takes seconds, too long to hold the event loop.
        A slice ends early once it has unpacked `opened_per_slice` packed accounts.
        Events may arrive between steps; the sweep works from a list of ids and always
        compares against the current stream time, so it stays correct."""
        config = self.config
        for clock in self.partitions.values():
            if clock.stream_time != -math.inf:
                # An hour of ids is arrays of at most 2 KiB: letting go of a million ids
                # frees ~5,000 of them, well under a slice.
                oldest_live = clock.stream_time - self._horizon_s
                self._event_ids -= clock.event_ids.retire_before(
                    int(oldest_live // DEDUPE_BUCKET_S))
        account_ids = self.accounts.sweep_order()
        while True:
            limits = {}
            for partition, owner in self.partitions.items():
                if owner.stream_time != -math.inf:
                    horizon = owner.stream_time - self._horizon_s
                    limits[partition] = (horizon, int(horizon // config.actor_bucket_s))
            gone, examined = self.accounts.expire(account_ids, limits, accounts_per_slice,
                                                  opened_per_slice)
            if not examined:
                return
            self.stats.expired_accounts += gone
            yield gone

    def score(self, account_id: str) -> AccountScore | None:
        account = self.accounts.get(account_id)
        if account is None:
            return None
        config = self.config
        as_of = self.clock(account.partition).stream_time
        window_start = as_of - config.window_s
        first_bucket = int(window_start // config.actor_bucket_s)
        cached = self._scores.get(account_id)
        if (cached is not None and cached.version == account.version
                and cached.first_bucket == first_bucket and window_start <= cached.valid_until):
            # Nothing the score rests on has changed; only the window's bounds moved.
            return cached.score.moved_to(window_start, as_of)
        score, boundary = self._score_and_boundary(account, as_of, window_start,
                                                   first_bucket)
        scores = self._scores
        scores.pop(account_id, None)
        if len(scores) >= SCORE_CACHE_ENTRIES:
            del scores[next(iter(scores))]
        scores[account_id] = _CachedScore(account.version, first_bucket, boundary, score)
        return score

    def _compute_score(self, account: Account, as_of: float, window_start: float,
                       first_bucket: int) -> AccountScore:
        return self._score_and_boundary(account, as_of, window_start, first_bucket)[0]

    def _score_and_boundary(self, account: Account, as_of: float, window_start: float,
                            first_bucket: int) -> tuple[AccountScore, float]:
        """An uncached score, and the window's boundary (`Account.window`) for the cache:
        one pass over the account's posts gives both."""
        config = self.config
        window = account.window(window_start)
        posts = window.posts
        sums = PostSums(posts)  # one pass over the window's posts for all that reads them
        counts = sums.counts(window.awaiting_post)
        engagement = sums.engagement()
        followers = account.followers_at(as_of)
        actors = summarize(
            [sketch for sketch in account.actors if sketch.bucket >= first_bucket],
            TOP_ACTORS,
        )
        trend = Followers(account.followers_at(window_start), followers)
        audience = (NO_AUDIENCE if account.audience is None
                    else AudienceCounts(*account.audience_in(first_bucket)))
        tiers = config.tiers
        return AccountScore(
            account.account_id, account.partition, tiers.tier_for(followers), tiers.name,
            followers, counts, engagement,
            self._score_credibility(posts, counts, engagement, actors, trend, audience, sums),
            config.window_s / DAY_S, window_start, as_of,
        ), window.boundary
