import pytest

from service.engine import Engine, EngineConfig, Outcome
from tests.events import decoded, followers, interaction, post

DAY = 86_400.0


def feed(engine: Engine, *events: dict[str, object], partition: int = 0) -> list[Outcome]:
    return [engine.apply(decoded(event), partition) for event in events]


def test_counts_rate_and_tier_follow_the_walking_skeleton_formula() -> None:
    engine = Engine()
    feed(engine, followers("acc", 5_000, 0), post("acc", "p1", 10), post("acc", "p2", 20))
    feed(engine, *[interaction("like", "acc", "p1", f"u{i}", 30 + i) for i in range(200)])
    feed(engine, *[interaction("comment", "acc", "p2", f"u{i}", 300 + i) for i in range(50)])
    feed(engine, *[interaction("share", "acc", "p2", f"u{i}", 400 + i) for i in range(50)])
    score = engine.score("acc")
    assert score is not None
    assert (score.counts.posts, score.counts.likes, score.counts.comments,
            score.counts.shares) == (2, 200, 50, 50)
    # (likes + comments + shares) / (posts x followers)
    assert score.engagement.rate == pytest.approx(300 / (2 * 5_000))
    assert score.tier == "micro"
    assert score.followers == 5_000


def test_resent_event_counts_once() -> None:
    engine = Engine()
    like = interaction("like", "acc", "p1", "u1", 50)
    outcomes = feed(engine, followers("acc", 100), post("acc", "p1", 10), like, like)
    assert outcomes[-2:] == [Outcome.COUNTED, Outcome.DUPLICATE]
    score = engine.score("acc")
    assert score is not None
    assert score.counts.likes == 1


def test_event_older_than_the_window_and_its_grace_is_dropped_and_reported_late() -> None:
    engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=3_600))
    feed(engine, post("acc", "p1", 30 * 3_600))
    outcomes = feed(engine, interaction("like", "acc", "p1", "u1", 4 * 3_600),
                    interaction("like", "acc", "p1", "u2", 5.5 * 3_600))
    assert outcomes == [Outcome.LATE, Outcome.COUNTED]


def test_window_holds_only_posts_of_the_last_window_days() -> None:
    engine = Engine(EngineConfig(window_s=30 * DAY))
    feed(engine, followers("acc", 1_000, 0), post("acc", "old", 1),
         interaction("like", "acc", "old", "u1", 2))
    feed(engine, post("acc", "new", 40 * DAY),
         interaction("like", "acc", "new", "u1", 40 * DAY + 5))
    score = engine.score("acc")
    assert score is not None
    assert score.counts.posts == 1
    assert score.counts.likes == 1


def test_rate_uses_followers_at_posting_time_even_when_they_arrive_late() -> None:
    engine = Engine()
    feed(engine, post("acc", "p1", 100), post("acc", "p2", 200))
    feed(engine, interaction("like", "acc", "p1", "u1", 150),
         interaction("like", "acc", "p2", "u1", 250))
    feed(engine, followers("acc", 100, 50), followers("acc", 200, 180))
    score = engine.score("acc")
    assert score is not None
    assert score.engagement.rate == pytest.approx((1 / 100 + 1 / 200) / 2)
    assert score.followers == 200


def test_interaction_before_its_post_waits_and_then_counts() -> None:
    engine = Engine()
    feed(engine, followers("acc", 100), interaction("like", "acc", "p1", "u1", 20))
    waiting = engine.score("acc")
    assert waiting is not None
    assert (waiting.counts.likes, waiting.counts.awaiting_post) == (0, 1)
    feed(engine, post("acc", "p1", 10))
    counted = engine.score("acc")
    assert counted is not None
    assert (counted.counts.likes, counted.counts.awaiting_post) == (1, 0)
    assert counted.credibility.components["timing_authenticity"].inputs["early_interactions"] == 1


def test_account_cap_evicts_the_least_recently_active() -> None:
    engine = Engine(EngineConfig(max_accounts=2))
    feed(engine, followers("a", 1, 0), followers("b", 1, 1), followers("a", 2, 2),
         followers("c", 1, 3))
    assert set(engine.accounts) == {"a", "c"}
    assert engine.stats.evicted_accounts == 1


def test_expiry_drops_accounts_whose_state_left_the_window() -> None:
    engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0))
    feed(engine, followers("quiet", 10, 0), post("quiet", "p", 1))
    feed(engine, followers("busy", 10, 3 * DAY))
    assert engine.expire() == 1
    assert set(engine.accounts) == {"busy"}
    assert engine.stats.expired_accounts == 1


def test_each_partition_keeps_its_own_stream_time() -> None:
    engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=60))
    feed(engine, followers("a", 1, 3 * DAY), partition=0)
    assert feed(engine, followers("b", 1, 10), partition=1) == [Outcome.COUNTED]
    assert feed(engine, followers("c", 1, 10), partition=0) == [Outcome.LATE]


def test_unknown_account_has_no_score() -> None:
    assert Engine().score("nobody") is None


def test_cached_scores_equal_fresh_ones_as_the_window_moves() -> None:
    engine = Engine(EngineConfig(window_s=10 * DAY))
    feed(engine, followers("acc", 2_000, 0))
    answers = []
    for day in range(25):
        feed(engine, post("acc", f"p{day}", day * DAY + 1),
             interaction("like", "acc", f"p{day}", f"u{day % 7}", day * DAY + 60))
        for hour in range(0, 24, 6):  # another account moves the partition's stream time
            feed(engine, followers("other", 5, day * DAY + hour * 3_600 + 120))
            answers.append(engine.score("acc"))
    fresh = Engine(EngineConfig(window_s=10 * DAY))
    feed(fresh, followers("acc", 2_000, 0))
    index = 0
    for day in range(25):
        feed(fresh, post("acc", f"p{day}", day * DAY + 1),
             interaction("like", "acc", f"p{day}", f"u{day % 7}", day * DAY + 60))
        for hour in range(0, 24, 6):
            feed(fresh, followers("other", 5, day * DAY + hour * 3_600 + 120))
            account = fresh.accounts.get("acc")
            as_of = fresh.clock(0).stream_time
            start = as_of - fresh.config.window_s
            uncached = fresh._compute_score(  # the cache's reference
                account, as_of, start, int(start // fresh.config.actor_bucket_s))
            assert answers[index] == uncached, (day, hour)
            index += 1


def test_dedupe_memory_is_capped_by_forgetting_the_oldest_hour_first() -> None:
    engine = Engine(EngineConfig(max_event_ids=1_000, allowed_lateness_s=DAY))
    events = [followers(f"a{i}", 1, i * 10.0) for i in range(3_000)]  # 8+ hours of ids
    for index, event in enumerate(events):  # three partitions with the same hours
        engine.apply(decoded(event), partition=index % 3)
    remembered = sum(len(clock.event_ids) for clock in engine.partitions.values())
    assert remembered <= 1_000
    assert engine.stats.forgotten_event_ids == 3_000 - remembered
    newest = len(events) - 1  # the newest are still known, on their own partition
    assert engine.apply(decoded(events[newest]), newest % 3) == Outcome.DUPLICATE
    # A re-send of a forgotten id is late, never counted twice.
    assert engine.apply(decoded(events[0]), 0) == Outcome.LATE
    assert engine.stats.late_after_forgetting == 1


def test_expiry_in_slices_drops_what_a_whole_sweep_drops() -> None:
    def build() -> Engine:
        engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0))
        feed(engine, *[followers(f"quiet-{i}", 10, i) for i in range(7)])
        feed(engine, followers("busy", 10, 3 * DAY))
        return engine

    whole, sliced = build(), build()
    assert whole.expire() == 7
    steps = sliced.expire_in_slices(accounts_per_slice=2)
    first = next(steps)
    assert first in (1, 2)  # two accounts examined: "busy" may be one of them
    feed(sliced, followers("busy", 11, 3 * DAY + 1))  # events arrive between slices
    assert sum(steps) == 7 - first
    assert set(sliced.accounts) == set(whole.accounts) == {"busy"}
    assert sliced.stats.expired_accounts == 7


def test_shared_topic_tuples_stay_bounded() -> None:
    from service.engine import account

    engine = Engine()
    feed(engine, *[post("acc", f"p{i}", i, topics=(f"topic-{i}",)) for i in range(200)])
    assert len(account._shared_topics) <= account.SHARED_TOPIC_TUPLES
    original = account.SHARED_TOPIC_TUPLES
    account.SHARED_TOPIC_TUPLES = len(account._shared_topics)
    try:
        feed(engine, post("acc", "fresh", 500, topics=("never-seen",)))
        assert ("never-seen",) not in account._shared_topics
        assert engine.accounts.get("acc").posts["fresh"].topics == ("never-seen",)
    finally:
        account.SHARED_TOPIC_TUPLES = original


def test_expiry_lets_go_the_event_ids_of_hours_beyond_the_horizon() -> None:
    engine = Engine(EngineConfig(window_s=DAY, allowed_lateness_s=0))
    feed(engine, *[followers("acc", n, 60 + n) for n in range(35)])
    feed(engine, followers("acc", 99, DAY + 2 * 3_600))  # the first hour leaves the horizon
    event_ids = engine.clock(0).event_ids
    hours = event_ids.hours
    list(engine.expire_in_slices())
    assert event_ids.hours == hours[-1:]
    assert engine.remembered_event_ids == 1  # counted down as the hour was retired
