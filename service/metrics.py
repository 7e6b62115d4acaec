"""Every Prometheus metric the service exposes, declared once, in one registry per app.

Names follow Prometheus conventions: base units in the name, `_total` for counters, no
unbounded labels (never an account id; partitions are bounded by the topic).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service import __version__
from service.engine import Engine
from service.loop_monitor import LoopBlockMonitor

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_SNAPSHOT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_LOOP_BLOCK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class EngineCollector(Collector):
    """Reads the engine's own counters at scrape time, so the engine stays free of I/O."""

    def __init__(self, engine: Engine, snapshot_finished_at: Callable[[], float | None]) -> None:
        self._engine = engine
        self._snapshot_finished_at = snapshot_finished_at

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        engine = self._engine
        yield GaugeMetricFamily(
            "engagement_accounts_tracked", "Accounts held in memory.", value=len(engine.accounts)
        )
        yield GaugeMetricFamily(
            "engagement_accounts_hot",
            "Accounts held as objects; the rest are packed until an event or query needs "
            "them (ENGAGEMENT_HOT_ACCOUNTS caps this).",
            value=engine.accounts.hot,
        )
        yield CounterMetricFamily(
            "engagement_account_unpacks",
            "Packed accounts opened for an event or a query; a steep rate means the hot "
            "set is smaller than the working set.",
            value=engine.accounts.stats.unpacks,
        )
        yield CounterMetricFamily(
            "engagement_accounts_evicted",
            "Accounts evicted because the account cap was reached (least recently active).",
            value=engine.stats.evicted_accounts,
        )
        yield CounterMetricFamily(
            "engagement_accounts_expired",
            "Accounts dropped because all their state left the window.",
            value=engine.stats.expired_accounts,
        )
        yield CounterMetricFamily(
            "engagement_event_ids_forgotten",
            "Event ids dropped from the dedupe memory early because its cap was reached.",
            value=engine.stats.forgotten_event_ids,
        )
        stream_times = [c.stream_time for c in engine.partitions.values() if c.stream_time > 0]
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
                "Seconds since the newest snapshot was written or restored.",
                value=time.time() - finished,
            )


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
        self.restore_seconds = Gauge(
            "engagement_restore_duration_seconds", "Time the start-up restore took.", registry=r
        )
        self.replayed_events = Counter(
            "engagement_restore_replayed_events",
            "Messages consumed after a restore up to the offsets seen at start-up.", registry=r,
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
        self.build = Info("engagement_build", "Build information.", registry=r)
        self.build.info({"version": __version__, "python": platform.python_version()})

    def loop_monitor(self) -> LoopBlockMonitor:
        """A monitor that feeds the event-loop metrics; run its `run()` as a task."""
        monitor = LoopBlockMonitor(observe=self.event_loop_block_seconds.observe)
        self.event_loop_longest_block_seconds.set_function(lambda: monitor.longest_s)
        return monitor

    def watch_engine(
        self, engine: Engine, snapshot_finished_at: Callable[[], float | None]
    ) -> None:
        self.registry.register(EngineCollector(engine, snapshot_finished_at))
