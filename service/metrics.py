"""Every Prometheus metric the service exposes, declared once, in one registry per app.

Names follow Prometheus conventions: base units in the name, `_total` for counters, no
unbounded labels (never an account id; partitions are bounded by the topic).
"""

from __future__ import annotations

import contextlib
import gc
import platform
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from service import __version__
from service.engine import Engine
from service.loop_monitor import LoopBlockMonitor

if TYPE_CHECKING:
    from service.partition_state import PartitionState

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LOOP_BLOCK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class PartitionsCollector(Collector):
    """Reads the owned partitions' engines at scrape time (the engine stays free of I/O).
    Counters of a partition that moved away leave with it; Prometheus' rate() copes with
    such resets."""

    def __init__(self, states: Callable[[], list[PartitionState]],
                 snapshot_finished_at: Callable[[], float | None]) -> None:
        self._states = states
        self._snapshot_finished_at = snapshot_finished_at

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily
                                  | HistogramMetricFamily]:
        states = self._states()
        engines = [state.engine for state in states]
        yield GaugeMetricFamily(
            "engagement_accounts_tracked", "Accounts held in memory.",
            value=sum(len(engine.accounts) for engine in engines))
        yield GaugeMetricFamily(
            "engagement_accounts_hot",
            "Accounts held as objects; the rest are packed until an event or query needs "
            "them (at most engagement_accounts_hot_capacity).",
            value=sum(engine.accounts.hot for engine in engines))
        yield GaugeMetricFamily(
            "engagement_accounts_hot_capacity",
            "How many accounts may be held as objects, over this instance's partitions: "
            "sized from ENGAGEMENT_MEMORY_BUDGET_BYTES unless ENGAGEMENT_HOT_ACCOUNTS "
            "sets it.",
            value=sum(engine.accounts.hot_capacity for engine in engines))
        yield GaugeMetricFamily(
            "engagement_accounts_estimated_bytes",
            "Memory the accounts take, estimated from the average bytes of a hot and "
            "of a packed account (compare with ENGAGEMENT_MEMORY_BUDGET_BYTES).",
            value=sum(engine.accounts.estimated_bytes() for engine in engines))
        yield CounterMetricFamily(
            "engagement_account_unpacks",
            "Packed accounts brought into the hot set, by a query, or by an event once its "
            "events since the last checkpoint times its packed size pass 4 KiB.",
            value=sum(engine.accounts.stats.unpacks for engine in engines))
        yield CounterMetricFamily(
            "engagement_account_packed_folds",
            "Events and audience signals folded into an account that stayed packed: "
            "accounts with few events per checkpoint, which cost less packed than hot "
            "(docs/operations.md, Memory sizing).",
            value=sum(engine.accounts.stats.packed_folds for engine in engines))
        yield CounterMetricFamily(
            "engagement_account_packed_out",
            "Hot accounts packed to make room in a full hot set: the busy, big or queried "
            "accounts do not fit it (alert EngagementHotSetTooSmall).",
            value=sum(engine.accounts.stats.packed_out for engine in engines))
        yield CounterMetricFamily(
            "engagement_accounts_evicted",
            "Accounts evicted because the account cap was reached (least recently active).",
            value=sum(engine.stats.evicted_accounts for engine in engines))
        yield CounterMetricFamily(
            "engagement_accounts_expired",
            "Accounts dropped because all their state left the window.",
            value=sum(engine.stats.expired_accounts for engine in engines))
        yield CounterMetricFamily(
            "engagement_event_ids_forgotten",
            "Event ids dropped from the dedupe memory early because its cap was reached.",
            value=sum(engine.stats.forgotten_event_ids for engine in engines))
        yield CounterMetricFamily(
            "engagement_events_late_after_forgetting",
            "Events dropped as late because the dedupe memory cap forgot their hour's ids "
            "(counting them could count a re-send twice).",
            value=sum(engine.stats.late_after_forgetting for engine in engines))
        yield GaugeMetricFamily(
            "engagement_dedupe_event_ids", "Event ids remembered for dedupe.",
            value=sum(engine.remembered_event_ids for engine in engines))
        yield GaugeMetricFamily(
            "engagement_dedupe_memory_bytes", "Bytes held by the dedupe memory.",
            value=sum(engine.event_id_bytes() for engine in engines))
        yield GaugeMetricFamily(
            "engagement_dedupe_expected_false_duplicates",
            "Expected events dropped as duplicates through a 64-bit hash collision so far "
            "(an upper bound; see docs/scoring.md).",
            value=sum(engine.expected_false_duplicates() for engine in engines))
        yield _summed_lag_histogram(engines)
        partitions = GaugeMetricFamily(
            "engagement_partitions", "Partitions held by this instance, by state.",
            labels=["state"])
        for status in ("active", "restoring"):
            partitions.add_metric([status], sum(1 for s in states if s.status == status))
        yield partitions
        progress = GaugeMetricFamily(
            "engagement_partition_seconds_since_progress",
            "Seconds since a partition last consumed events or was confirmed caught up.",
            labels=["partition"])
        for state in states:
            since = state.freshness().seconds_since_progress
            if since is not None:
                progress.add_metric([str(state.partition)], since)
        yield progress
        stream_times = [s.clock.stream_time for s in states if s.clock.stream_time > 0]
        if stream_times:
            yield GaugeMetricFamily(
                "engagement_event_time_lag_seconds",
                "Wall clock minus the newest event time seen (how far behind real time).",
                value=time.time() - max(stream_times),
            )
        finished = self._snapshot_finished_at()
        if finished is not None:
            yield GaugeMetricFamily(
                "engagement_snapshot_age_seconds",
                "Seconds since the newest local snapshot was written.",
                value=time.time() - finished,
            )


def _summed_lag_histogram(engines: list[Engine]) -> HistogramMetricFamily:
    """The engines' histograms of how far behind the stream time events were, added."""
    bounds: list[str] = []
    counts: list[float] = []
    total = 0.0
    for engine in engines:
        buckets, lag_sum = engine.stats.event_lag_histogram()
        if not bounds:
            bounds, counts = [b for b, _ in buckets], [0.0] * len(buckets)
        for index, (_, count) in enumerate(buckets):
            counts[index] += count
        total += lag_sum
    if not bounds:
        bounds, counts = [b for b, _ in Engine().stats.event_lag_histogram()[0]], []
        counts = [0.0] * len(bounds)
    return HistogramMetricFamily(
        "engagement_event_behind_stream_seconds",
        "How far behind its partition's stream time each counted event was: ~0 live, "
        "days for a backfill.",
        buckets=list(zip(bounds, counts, strict=True)), sum_value=total)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events = Counter(
            "engagement_events", "Messages consumed, by event type and outcome.",
            ["type", "outcome"], registry=r,
        )
        self.dead_letters = Counter(
            "engagement_dead_letters", "Messages sent to the dead-letter topic, by reason.",
            ["reason"], registry=r,
        )
        self.dead_letter_failures = Counter(
            "engagement_dead_letter_publish_failures",
            "Failed attempts to write the dead-letter topic (each is retried).", registry=r,
        )
        self.consumer_lag = Gauge(
            "engagement_consumer_lag_messages",
            "Broker end offset minus the consumer's position, per partition.",
            ["partition"], registry=r,
        )
        self.batch_seconds = Histogram(
            "engagement_batch_processing_seconds", "Time to process one fetched batch.",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.batch_messages = Histogram(
            "engagement_batch_messages", "Messages per fetched batch.",
            buckets=(1, 10, 100, 500, 1000, 2000, 5000), registry=r,
        )
        self.consumer_ready = Gauge(
            "engagement_consumer_ready",
            "1 when state is restored, partitions are assigned and dead letters can be written.",
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            "engagement_snapshot_duration_seconds", "Time to write one snapshot.",
            buckets=_SNAPSHOT_BUCKETS, registry=r,
        )
        self.snapshot_pause_seconds = Histogram(
            "engagement_snapshot_ingest_pause_seconds",
            "Time ingestion was paused to copy state for one snapshot.",
            buckets=_SNAPSHOT_BUCKETS, registry=r,
        )
        self.snapshot_bytes = Gauge(
            "engagement_snapshot_size_bytes", "Size of the newest snapshot file.", registry=r
        )
        self.snapshot_failures = Counter(
            "engagement_snapshot_failures", "Snapshots that could not be written.", registry=r
        )
        self.restore_seconds = Histogram(
            "engagement_restore_duration_seconds",
            "Time to restore one partition (local snapshot, then the changelog).",
            buckets=_SNAPSHOT_BUCKETS, registry=r,
        )
        self.restores = Counter(
            "engagement_restores",
            "Partitions restored here, by where the state came from: a warm standby copy "
            "(ENGAGEMENT_STANDBY_REPLICAS) or cold (local snapshot and changelog).",
            ["source"], registry=r,
        )
        self.score_changes_pending = Gauge(
            "engagement_score_changes_pending",
            "Accounts that moved and wait to be re-scored for the score-change stream "
            "(ENGAGEMENT_SCORE_CHANGE_SHARE caps its cost; a backfill or catch-up "
            "raises this, live traffic keeps it near 0).", registry=r,
        )
        self.score_rescores = Counter(
            "engagement_score_rescores",
            "Accounts scored afresh for the score-change stream (each at most once per "
            "checkpoint; its rate is what ENGAGEMENT_SCORE_CHANGE_SHARE buys).", registry=r,
        )
        self.score_changes_published = Counter(
            "engagement_score_changes_published",
            "Score changes written to the score-change topic (tombstones included).",
            registry=r,
        )
        self.standby_partitions = Gauge(
            "engagement_standby_partitions",
            "Partitions this instance keeps a warm standby copy of.", registry=r,
        )
        self.restored_records = Counter(
            "engagement_restore_changelog_records",
            "Changelog records read to restore partitions.", registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "engagement_checkpoint_duration_seconds",
            "Time of one partition's checkpoint transaction (changelog and offsets).",
            buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.checkpoint_failures = Counter(
            "engagement_checkpoint_failures",
            "Checkpoint transactions that failed (their changes go with the next one).",
            registry=r,
        )
        self.changelog_records = Counter(
            "engagement_changelog_records", "Records written to the changelog topic.",
            registry=r,
        )
        self.audience_interactions = Counter(
            "engagement_audience_interactions",
            "Interactions judged by the actor side (re-keyed by actor).", registry=r,
        )
        self.audience_signals = Counter(
            "engagement_audience_signals",
            "Audience signals folded into accounts (per account and time bucket).",
            registry=r,
        )
        self.rebalances = Counter(
            "engagement_rebalances", "Group assignments received by this instance.",
            registry=r,
        )
        self.connect_attempts = Counter(
            "engagement_kafka_connect_attempts",
            "Attempts to reach the broker at start-up or after a failure, by outcome.",
            ["outcome"], registry=r,
        )
        self.broker_reachable = Gauge(
            "engagement_kafka_broker_reachable",
            "1 while the broker answers, 0 from the first failed call until one succeeds.",
            registry=r,
        )
        self.broker_unreachable_since = Gauge(
            "engagement_kafka_broker_unreachable_since_seconds",
            "Unix time at which the broker last became unreachable.", registry=r,
        )
        self.consumer_restarts = Counter(
            "engagement_consumer_restarts",
            "Times the consumer ended with an error and was started again.", registry=r,
        )
        self.consumer_running = Gauge(
            "engagement_consumer_running",
            "1 while the consumer task runs (retrying to connect counts as running).",
            registry=r,
        )
        self.forwarded = Counter(
            "engagement_forwarded_requests",
            "Requests forwarded to the instance that owns the account, by route.",
            ["route"], registry=r,
        )
        self.forwarding_errors = Counter(
            "engagement_forwarding_errors",
            "Forwarded requests that failed (owner unreachable or timed out), by route.",
            ["route"], registry=r,
        )
        self.http_seconds = Histogram(
            "engagement_http_request_duration_seconds",
            "HTTP request latency, by route template, method and status.",
            ["route", "method", "status"], buckets=_LATENCY_BUCKETS, registry=r,
        )
        self.event_loop_block_seconds = Histogram(
            "engagement_event_loop_block_seconds",
            "How late the event-loop monitor woke up from each 10 ms sleep: how long "
            "ingestion, queries and expiry held the loop (one interval more at most).",
            buckets=_LOOP_BLOCK_BUCKETS, registry=r,
        )
        self.event_loop_longest_block_seconds = Gauge(
            "engagement_event_loop_longest_block_seconds",
            "The longest event-loop block since start-up.", registry=r,
        )
        self.event_loop_longest_block_cpu_seconds = Gauge(
            "engagement_event_loop_longest_block_cpu_seconds",
            "The longest event-loop block since start-up in the loop thread's CPU time: "
            "the service's own part of it, without the waits for a busy core.",
            registry=r,
        )
        for route in ("/accounts/{account_id}/score",):  # exported before the first one
            self.forwarded.labels(route)
            self.forwarding_errors.labels(route)
        self.gc_frozen_objects = Gauge(
            "engagement_gc_frozen_objects",
            "Objects moved out of the garbage collector's reach (gc.freeze: the restored "
            "state and, with the collector pacer, every survivor); a steady climb at a "
            "steady state means cyclic garbage kept.", registry=r,
        )
        self.gc_frozen_objects.set_function(gc.get_freeze_count)
        self.build = Info("engagement_build", "Build information.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})

    def loop_monitor(self) -> LoopBlockMonitor:
        """A monitor that feeds the event-loop metrics; run its `run()` as a task."""
        monitor = LoopBlockMonitor(observe=self.event_loop_block_seconds.observe)
        self.event_loop_longest_block_seconds.set_function(lambda: monitor.longest_s)
        self.event_loop_longest_block_cpu_seconds.set_function(lambda: monitor.longest_cpu_s)
        return monitor

    def watch_partitions(self, states: Callable[[], list[PartitionState]],
                         snapshot_finished_at: Callable[[], float | None] = lambda: None
                         ) -> None:
        self.registry.register(PartitionsCollector(states, snapshot_finished_at))

    def forget_partition(self, partition: int) -> None:
        """A partition that moved away: its lag is another instance's to report."""
        with contextlib.suppress(KeyError):
            self.consumer_lag.remove(str(partition))
