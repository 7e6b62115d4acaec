"""The time model for backfills: an account's history may arrive up to a window behind
its partition's stream time and still counts, exactly once; older events are late."""

from __future__ import annotations

import random
import zlib
from typing import Any

import pytest

from service.engine import Engine, EngineConfig, Outcome
from service.engine.engine import EVENT_LAG_BUCKETS_S
from service.engine.persistence import export_accounts, export_partitions, import_state
from tests.events import decoded, followers, interaction, post

DAY = 86_400.0
KINDS = ("like", "comment", "share")


def history(account: str, start: float, posts: int, per_kind: tuple[int, int, int],
            rng: random.Random) -> list[dict[str, Any]]:
    """An account's history in time order: a follower count, then `posts` posts two days
    apart, with `per_kind` (likes, comments, shares) spread over them."""
    events = [followers(account, 5_000, start)]
    for number in range(posts):
        events.append(post(account, f"{account}-p{number}", start + 60 + number * 2 * DAY))
    for kind, total in zip(KINDS, per_kind, strict=True):
        for index in range(total):
            number = index % posts
            events.append(interaction(kind, account, f"{account}-p{number}",
                                      f"fan-{rng.randrange(25)}",
                                      start + 120 + number * 2 * DAY + rng.uniform(0, DAY)))
    events.sort(key=lambda event: event["occurred_at"])
    return events


def apply_all(engine: Engine, events: list[dict[str, Any]],
              partitions: int = 1) -> list[Outcome]:
    return [engine.apply(decoded(event), zlib.crc32(event["account_id"].encode()) % partitions)
            for event in events]


def test_a_crawlers_backfill_behind_a_live_stream_counts_exactly() -> None:
    """The issue's case: 9 accounts, 20 days of history, sent account by account after
    a live account has moved every partition's stream time to now."""
    rng = random.Random(13)
    engine = Engine()
    apply_all(engine, [followers(f"live-{p}", 100, 21 * DAY) for p in range(12)], 3)
    assert len(engine.partitions) == 3
    big = history("crawled-0", 0, 10, (4_200, 450, 180), rng)
    others = [history(f"crawled-{n}", rng.uniform(0, DAY), 3, (40, 6, 2), rng)
              for n in range(1, 9)]
    outcomes = apply_all(engine, big + [event for events in others for event in events], 3)
    assert set(outcomes) == {Outcome.COUNTED}
    score = engine.score("crawled-0")
    assert score is not None
    assert (score.counts.posts, score.counts.likes, score.counts.comments,
            score.counts.shares) == (10, 4_200, 450, 180)
    # Every crawled event was days behind its partition: the histogram shows how far.
    counts = engine.stats.event_lag_counts
    assert sum(counts[EVENT_LAG_BUCKETS_S.index(DAY) + 1 :]) >= len(big)


def test_a_re_crawl_days_later_counts_each_event_once() -> None:
    rng = random.Random(5)
    engine = Engine()
    events = history("acct", 0, 4, (30, 5, 2), rng)
    apply_all(engine, events)
    apply_all(engine, [followers("live", 1, 25 * DAY)])  # the stream moves on
    assert set(apply_all(engine, events[3:])) == {Outcome.DUPLICATE}
    score = engine.score("acct")
    assert score is not None
    assert (score.counts.likes, score.counts.comments, score.counts.shares) == (30, 5, 2)


def test_only_events_older_than_the_window_and_its_grace_are_late() -> None:
    config = EngineConfig(window_s=30 * DAY, allowed_lateness_s=6 * 3_600)
    engine = Engine(config)
    engine.apply(decoded(followers("live", 1, 40 * DAY)))
    inside = followers("old", 1, 10 * DAY - 5 * 3_600)  # 30 days and 5 hours behind
    beyond = followers("old", 1, 10 * DAY - 7 * 3_600)  # 30 days and 7 hours behind
    assert engine.apply(decoded(inside)) is Outcome.COUNTED
    assert engine.apply(decoded(beyond)) is Outcome.LATE


def test_expiry_drops_a_backfilled_account_once_its_history_leaves_the_window() -> None:
    engine = Engine(EngineConfig(window_s=10 * DAY, allowed_lateness_s=0))
    engine.apply(decoded(followers("live", 1, 12 * DAY)))
    apply_all(engine, history("acct", 3 * DAY, 2, (5, 1, 1), random.Random(1)))
    engine.expire()
    assert "acct" in set(engine.accounts)
    engine.apply(decoded(followers("live", 1, 30 * DAY)))
    engine.expire()
    assert set(engine.accounts) == {"live"}
    assert engine.remembered_event_ids == 1  # the live account's newest


def test_a_restore_in_the_middle_of_a_backfill_keeps_its_dedupe() -> None:
    rng = random.Random(2)
    engine = Engine()
    apply_all(engine, [followers("live", 1, 25 * DAY)])
    events = history("acct", 0, 5, (50, 10, 4), rng)
    apply_all(engine, events[:40])
    restored = import_state(engine.config, export_partitions(engine),
                            list(export_accounts(engine)), engine.changes)
    outcomes = apply_all(restored, events)  # the crawler starts over
    assert outcomes.count(Outcome.DUPLICATE) == 40
    score = restored.score("acct")
    assert score is not None
    assert (score.counts.likes, score.counts.comments, score.counts.shares) == (50, 10, 4)


def test_a_snapshot_of_the_previous_format_keeps_its_event_ids() -> None:
    event = followers("acct", 1, 100)
    engine = Engine()
    engine.apply(decoded(event))
    plain = export_partitions(engine)[0]
    hour = next(iter(plain["event_ids"]))
    old = {"stream_time": plain["stream_time"], "seen_ids": {hour: [event["event_id"]]}}
    restored = import_state(engine.config, {0: old}, [], engine.changes)
    assert restored.apply(decoded(event)) is Outcome.DUPLICATE
    assert restored.remembered_event_ids == 1


def test_an_unknown_hash_in_a_snapshot_is_refused() -> None:
    engine = Engine()
    engine.apply(decoded(followers("acct", 1, 100)))
    plain = {**export_partitions(engine)[0], "event_id_hash": "blake2b_64"}
    with pytest.raises(ValueError, match="blake2b_64"):
        import_state(engine.config, {0: plain}, [], engine.changes)


def test_a_changelog_can_follow_the_dedupe_memory() -> None:
    engine = Engine(EngineConfig(track_dedupe_changes=True, window_s=DAY,
                                 allowed_lateness_s=0))
    apply_all(engine, [followers("acct", n, 60 + n) for n in range(5)])
    (partition,) = engine.partitions
    event_ids = engine.clock(partition).event_ids
    added = event_ids.drain_added()
    assert sum(len(data) for data in added.values()) == 5 * 8
    apply_all(engine, [followers("acct", 9, 2 * DAY)])
    engine.expire()
    assert event_ids.drain_retired() == list(added)


def test_lag_histogram_reads_as_a_prometheus_histogram() -> None:
    engine = Engine()
    apply_all(engine, [followers("a", 1, 10 * DAY), followers("b", 1, 10 * DAY - 30),
                       followers("c", 1, 2 * DAY)])
    buckets, total = engine.stats.event_lag_histogram()
    assert buckets[0] == ("1.0", 1)  # the first event: no lag
    assert dict(buckets)["60.0"] == 2
    assert dict(buckets)["604800.0"] == 2
    assert dict(buckets)["1209600.0"] == 3  # 8 days behind: in the 14-day bucket
    assert buckets[-1] == ("+Inf", 3)
    assert total == pytest.approx(30 + 8 * DAY)


def test_the_metrics_read_lag_and_dedupe_memory_at_scrape_time() -> None:
    from service.metrics import PartitionsCollector
    from service.partition_state import PartitionState

    state = PartitionState(0, EngineConfig())
    apply_all(state.engine, [followers("a", 1, 10 * DAY), followers("b", 1, 2 * DAY)])
    families = {family.name: family
                for family in PartitionsCollector(lambda: [state], lambda: None).collect()}
    lag = {(sample.name, sample.labels.get("le")): sample.value
           for sample in families["engagement_event_behind_stream_seconds"].samples}
    assert lag["engagement_event_behind_stream_seconds_bucket", "604800.0"] == 1
    assert lag["engagement_event_behind_stream_seconds_bucket", "+Inf"] == 2
    assert lag["engagement_event_behind_stream_seconds_count", None] == 2
    assert families["engagement_dedupe_event_ids"].samples[0].value == 2
    assert families["engagement_dedupe_memory_bytes"].samples[0].value > 16
    # One id per hour: no pair of ids could collide.
    assert families["engagement_dedupe_expected_false_duplicates"].samples[0].value == 0
