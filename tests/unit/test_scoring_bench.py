"""The labelled evaluation (bench/scoring.py) on a small population: it runs, its AUC is
the Mann-Whitney statistic, and credibility separates the kinds it must. The full run and
its figures are in docs/scoring.md."""

from __future__ import annotations

import random

import pytest

from bench.scoring import (
    FRAUD_KINDS,
    LOCKSTEP_PERIOD,
    START,
    LockstepSketch,
    Population,
    World,
    auc,
    build,
    candidate_signals,
    co_engagement,
    outside_shard,
    run,
    without,
)


def test_auc_is_the_share_of_pairs_the_authentic_side_wins_ties_counting_half() -> None:
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 3], [2, 2]) == pytest.approx(0.5)
    assert auc([2, 2], [2, 2]) == pytest.approx(0.5)
    assert auc([1, 2, 3], [2]) == pytest.approx(0.5)


def test_a_small_labelled_population_is_separated_and_every_score_adds_up() -> None:
    world = build(Population(authentic=40, per_kind=4, docs_breadth=10), seed=3)
    assert set(world.labels.values()) == {"authentic", *FRAUD_KINDS}
    scores = run(world)
    authentic = [scores[a].score for a, kind in world.labels.items() if kind == "authentic"]
    fraud = [scores[a].score for a, kind in world.labels.items() if kind != "authentic"]
    assert auc(authentic, fraud) > 0.9
    for kind in ("burst_farm", "drip_bought_likes", "issue_adversary"):
        assert auc(authentic, [scores[a].score for a, k in world.labels.items()
                               if k == kind]) > 0.95, kind
    # Bots as narrow as fans (caught by audience_rotation) and undisclosed ads (by the
    # off-topic components): 4 accounts each here, so a looser bound.
    for kind in ("narrow_docs_reader", "unflagged_sponsoring"):
        assert auc(authentic, [scores[a].score for a, k in world.labels.items()
                               if k == kind]) > 0.9, kind
    # Its second leg: the month view makes its bots busy (0.24 without it, here).
    narrow_without_rotation = auc(
        [without(scores[a], "audience_rotation") for a, k in world.labels.items()
         if k == "authentic"],
        [without(scores[a], "audience_rotation") for a, k in world.labels.items()
         if k == "narrow_docs_reader"])
    assert narrow_without_rotation > 0.9
    for credibility in scores.values():
        # Removing nothing is the score itself (before rounding).
        assert without(credibility, "") == pytest.approx(credibility.score, abs=0.1)
        points = sum(c.points for c in credibility.components.values())
        assert points == pytest.approx(credibility.score, abs=0.1)


def test_co_engagement_counts_the_interactions_of_actors_shared_with_another_account() -> None:
    world = World(random.Random(0))
    world.labels = {"a": "authentic", "b": "authentic", "c": "authentic"}
    # Six actors engage both a and b in the first period; c has its own six, one of
    # whom also engages a (one shared actor: below every rule's 3).
    for n in range(6):
        world.emit(START + n, "like", "a", "a-p0", f"crew{n}")
        world.emit(START + n, "like", "b", "b-p0", f"crew{n}")
        world.emit(START + n, "like", "c", "c-p0", f"fan{n}")
    world.emit(START + 10, "like", "a", "a-p0", "fan0")
    # In the next period the crew engages b only: nothing shared there.
    for n in range(6):
        world.emit(START + LOCKSTEP_PERIOD + n, "like", "b", "b-p1", f"crew{n}")
    shares, world_size = co_engagement(world)
    assert world_size == {0: 12, 1: 6}
    five_shared = (5, 0.0)
    assert shares["a"][five_shared] == pytest.approx(6 / 7)  # not fan0's like
    assert shares["b"][five_shared] == pytest.approx(6 / 12)  # not the second period's
    assert shares["c"][five_shared] == 0.0
    assert shares["a"][(10, 0.0)] == 0.0
    # Chance for a and b: 7 x 6 / 12 = 3.5 shared actors; 6 is under 10x that.
    assert shares["a"][(5, 10.0)] == 0.0


def test_the_lockstep_sketch_counts_actors_per_pair_once_and_forgets_old_buckets() -> None:
    sketch = LockstepSketch(least=3)
    bucket = sketch.bucket_s
    a, b, c = 11, 22, 33  # account hashes
    # One actor going back and forth between a and b is one actor on the pair.
    assert not any(sketch.observe(1, account, n) for n in range(10) for account in (a, b))
    # Two more actors on a then b: the third one's b meets a pair of 3 actors.
    assert not sketch.observe(2, a, 20)
    assert not sketch.observe(2, b, 21)
    assert not sketch.observe(3, a, 22)
    assert sketch.observe(3, b, 23)
    # An actor on a and c alone is not lockstep; nor is a on its own.
    assert not sketch.observe(4, a, 24)
    assert not sketch.observe(4, c, 25)
    # Four buckets later the pair's counts have left the period.
    later = 4 * bucket + 30
    assert not sketch.observe(5, a, later)
    assert not sketch.observe(5, b, later + 1)


def test_candidate_signals_read_an_actors_other_accounts_in_the_period() -> None:
    world = World(random.Random(0))
    world.labels = {"a": "authentic", "b": "authentic"}
    world.account_topic = {"a": "running", "b": "running"}
    hour = 3_600.0
    # fan: a and b (both running) within one waking day; bot: a, then outside accounts
    # 1 and 3 (motherhood, chronic-illness: not running) around the clock.
    world.emit(START + 9 * hour, "like", "a", "a-p0", "fan")
    world.emit(START + 10 * hour, "like", "b", "b-p0", "fan")
    world.emit(START + 9 * hour, "like", "a", "a-p0", "bot")
    world.actor_only += [(START + n * 4 * hour, "bot", f"outside-narrow-{1 + 2 * (n % 2)}")
                         for n in range(6)]
    # lone: only a, so it is judged by none of the three.
    world.emit(START + 11 * hour, "like", "a", "a-p0", "lone")
    # In the next period the fan meets b alone: nothing elsewhere for b there.
    world.emit(START + LOCKSTEP_PERIOD + hour, "like", "b", "b-p1", "fan")
    signals = candidate_signals(world)
    # a: the fan's other account is on topic (0 off), the bot's two are not (1 off).
    assert signals["a"]["off_niche"] == pytest.approx(0.5)
    assert signals["b"]["off_niche"] == 0.0
    # The bot's 7 interactions (>= 6) leave no 6 quiet hours: its 1 of a's 3 is sleepless.
    assert signals["a"]["sleepless"] == pytest.approx(1.0)
    assert signals["b"]["sleepless"] == 0.0
    # Elsewhere for a: the fan's 10:00 on b and the bot's six, every 4 hours: some
    # 6-hour stretch holds exactly one of the seven.
    assert signals["a"]["elsewhere_quiet"] == pytest.approx(1 / 7)
    # Elsewhere for b: the fan's 9:00 on a only: the quietest 6 hours hold none.
    assert signals["b"]["elsewhere_quiet"] == 0.0


def test_the_defended_farm_takes_its_bots_other_work_from_their_customers_topic_and_zone() -> None:
    world = build(Population(authentic=10, per_kind=2, docs_breadth=10, communities=True,
                             farm_defence=True), seed=5)
    customer_of: dict[str, str] = {}
    for _, kind, account, _, actor, _ in world.raw:
        if kind != "post" and actor.startswith("narrow"):
            customer_of.setdefault(actor, account)
    # (Bots drawn into a pool whose customer they never reached keep its shard too,
    # but do not show which customer it was.)
    outside = [(actor, account) for _, actor, account in world.actor_only
               if actor in customer_of]
    assert len(outside) > 100
    # A bot serving two labelled customers takes the first one's shard, which may not be
    # the first it was seen with here; every bot serving one must match it.
    matching = sum(outside_shard(int(account.rsplit("-", 1)[1]))
                   == (world.account_topic[customer_of[actor]],
                       world.time_zone[customer_of[actor]])
                   for actor, account in outside)
    assert matching / len(outside) > 0.9
    # People live in their own zone: every person has one, and only people have one.
    assert world.person_zone
    assert all(person.startswith("h") for person in world.person_zone)
