"""The engine: folds events into per-account state and answers scores. Pure; no I/O.

Time is event time. Each Kafka partition has its own stream time (the latest event time
seen on it); accounts are keyed by account_id, so each lives in one partition and its
window ends at that partition's stream time. A replay of history therefore gives the
same answers as live traffic, and a partition's state can move between instances.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

from service.engine.account import Account
from service.engine.scoring import (
    TOP_ACTORS,
    Counts,
    Credibility,
    Engagement,
    count_window,
    measure_engagement,
    score_credibility,
)
from service.engine.sketches import actor_hash, summarize
from service.engine.store import AccountStore
from service.engine.tiers import TIER_SCHEMES, TierScheme
from service.events import Event, FollowersEvent, PostEvent

DAY_S = 86_400.0
EXPIRY_SLICE_ACCOUNTS = 20_000
EXPIRY_SLICE_OPENED = 2_000  # packed accounts unpacked and packed again: ~10 us each
IDS_RELEASED_PER_SLICE = 50_000  # ~20 ms
DEDUPE_BUCKET_S = 3_600.0
ACTOR_BUCKETS_PER_WINDOW = 6


@dataclass(frozen=True, slots=True)
class EngineConfig:
    window_s: float = 30 * DAY_S
    allowed_lateness_s: float = 6 * 3_600.0
    burst_window_s: float = 30.0
    tier_scheme: str = "article"
    max_accounts: int = 1_000_000
    max_posts_per_account: int = 256
    max_event_ids: int = 5_000_000
    hot_accounts: int = 20_000

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


class PartitionClock:
    """Stream time of one partition and the event ids it has seen within the lateness."""

    __slots__ = ("seen_ids", "stream_time")

    def __init__(self) -> None:
        self.stream_time = -math.inf
        self.seen_ids: dict[int, set[str]] = {}  # hour of occurred_at -> event ids


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


SCORE_CACHE_ENTRIES = 10_000


@dataclass(slots=True)
class EngineStats:
    """Monotonic counters that the metrics layer reads."""

    evicted_accounts: int = 0
    expired_accounts: int = 0
    forgotten_event_ids: int = 0


class Engine:
    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.accounts = AccountStore(self.config.hot_accounts)
        self.partitions: dict[int, PartitionClock] = {}
        self.stats = EngineStats()
        self._scores: dict[str, _CachedScore] = {}  # bounded, oldest first
        self.changes = 0
        self._event_ids = 0  # remembered for dedupe, over all partitions
        self._added_event_ids: list[tuple[int, str]] = []  # since the last drain

    def drain_added_event_ids(self) -> dict[int, bytes]:
        """Event ids remembered since the last call, by hour: what a changelog checkpoint
        writes so that a restored partition still recognises re-sends."""
        by_hour: dict[int, list[str]] = {}
        for hour, event_id in self._added_event_ids:
            by_hour.setdefault(hour, []).append(event_id)
        self._added_event_ids = []
        return {hour: "\n".join(ids).encode() for hour, ids in by_hour.items()}

    def merge_event_ids(self, partition: int, hour: int, payload: bytes) -> None:
        """Restore of what `drain_added_event_ids` wrote."""
        seen = self.clock(partition).seen_ids.setdefault(hour, set())
        seen.update(payload.decode().split("\n"))

    def clock(self, partition: int) -> PartitionClock:
        clock = self.partitions.get(partition)
        if clock is None:
            clock = self.partitions[partition] = PartitionClock()
        return clock

    def apply(self, event: Event, partition: int = 0) -> Outcome:
        config = self.config
        occurred_at = event.occurred_at.timestamp()
        clock = self.clock(partition)
        if occurred_at < clock.stream_time - config.allowed_lateness_s:
            return Outcome.LATE
        hour = int(occurred_at // DEDUPE_BUCKET_S)
        seen = clock.seen_ids.get(hour)
        if seen is None:
            seen = clock.seen_ids[hour] = set()
        elif event.event_id in seen:
            return Outcome.DUPLICATE
        seen.add(event.event_id)
        self._added_event_ids.append((hour, event.event_id))
        self._event_ids += 1
        if self._event_ids > config.max_event_ids:
            self._forget_oldest_event_ids()
        if occurred_at > clock.stream_time:
            clock.stream_time = occurred_at

        account = self._account_for(event.account_id, partition)
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
                event.type, event.post_id, occurred_at, actor_hash(event.actor_id),
                int(occurred_at // config.actor_bucket_s), config.burst_window_s,
                config.max_posts_per_account,
            )
        return Outcome.COUNTED

    def recount_event_ids(self) -> None:
        self._event_ids = sum(len(ids) for clock in self.partitions.values()
                              for ids in clock.seen_ids.values())

    def _forget_oldest_event_ids(self) -> None:
        """A flood of distinct ids within the lateness must not exhaust memory: past the
        cap, the oldest hour of ids is forgotten (a re-send of one of those would then
        count again), and the metric says how many were."""
        owner = min((clock for clock in self.partitions.values() if clock.seen_ids),
                    key=lambda clock: min(clock.seen_ids))
        oldest_hour = min(owner.seen_ids)
        forgotten = owner.seen_ids.pop(oldest_hour)
        self._event_ids -= len(forgotten)
        self.stats.forgotten_event_ids += len(forgotten)

    def _account_for(self, account_id: str, partition: int) -> Account:
        accounts = self.accounts
        account = accounts.activate(account_id)
        if account is not None:
            account.partition = partition
            return account
        if len(accounts) >= self.config.max_accounts:
            accounts.evict_least_active()
            self.stats.evicted_accounts += 1
        account = Account(account_id, partition)
        accounts.add(account)
        return account

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
            oldest_live = clock.stream_time - config.allowed_lateness_s
            first_live_hour = int(oldest_live // DEDUPE_BUCKET_S)
            for hour in [h for h in clock.seen_ids if h < first_live_hour]:
                retired = clock.seen_ids.pop(hour)
                self._event_ids -= len(retired)
                # An hour can hold millions of ids, and freeing a set of them at once
                # holds the loop ~60 ms per million: let them go a chunk per step.
                # (Popping costs ~4x the bulk free; a list copy of a big set held the
                # loop 200 ms itself.)
                while len(retired) > IDS_RELEASED_PER_SLICE:
                    pop = retired.pop
                    for _ in range(IDS_RELEASED_PER_SLICE):
                        pop()
                    yield 0
        account_ids = iter(list(self.accounts))
        while True:
            limits = {}
            for partition, owner in self.partitions.items():
                if owner.stream_time != -math.inf:
                    horizon = owner.stream_time - config.window_s - config.allowed_lateness_s
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
        score = self._compute_score(account, as_of, window_start, first_bucket)
        scores = self._scores
        scores.pop(account_id, None)
        if len(scores) >= SCORE_CACHE_ENTRIES:
            del scores[next(iter(scores))]
        scores[account_id] = _CachedScore(account.version, first_bucket,
                                          account.window_boundary(window_start), score)
        return score

    def _compute_score(self, account: Account, as_of: float, window_start: float,
                       first_bucket: int) -> AccountScore:
        config = self.config
        posts = account.window_posts(window_start)
        followers = account.followers_at(as_of)
        counts = count_window(posts, account.awaiting_post(window_start))
        engagement = measure_engagement(posts, followers)
        actors = summarize(
            (sketch for sketch in account.actors if sketch.bucket >= first_bucket),
            TOP_ACTORS,
        )
        return AccountScore(
            account_id=account.account_id,
            partition=account.partition,
            tier=config.tiers.tier_for(followers),
            tier_scheme=config.tiers.name,
            followers=followers,
            counts=counts,
            engagement=engagement,
            credibility=score_credibility(posts, counts, engagement, actors),
            window_days=config.window_s / DAY_S,
            window_start=window_start,
            as_of=as_of,
        )
