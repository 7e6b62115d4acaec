"""The actor side of the audience signal: per-actor breadth with bounded memory, the
records that cross Kafka, and how the account side folds them in."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Iterator

import msgpack
import pytest

from service.engine import Engine, audience, packing
from service.engine.audience import (
    ACTIVITY_BUCKET_S,
    BUSY,
    BUSY_ACCOUNTS,
    FARM_LIKE,
    MONTH_ACCOUNTS,
    MONTH_TURNOVER,
    ActorActivity,
    ActorInteraction,
    AudienceSignal,
    actor_partition,
    estimate_distinct,
    pack_interactions,
    pack_signals,
    unpack_interactions,
    unpack_signals,
)
from service.engine.sketches import actor_hash
from tests.events import T0, decoded, followers, interaction, post

DAY = 86_400.0
NOW = T0.timestamp()


@pytest.fixture(autouse=True, params=["reference", "compiled"])
def implementation(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every test here holds for the Python reference and the compiled actor core."""
    if request.param == "compiled":
        assert audience.COMPILED_AVAILABLE, "the compiled core is not built (make install)"
    selected = audience.compiled_in_use()
    audience.use_compiled(request.param == "compiled")
    yield request.param
    audience.use_compiled(selected)


def test_signal_and_interaction_records_round_trip_through_bytes() -> None:
    signal = AudienceSignal("acc-42", 1_764_000_000.0, 1_200, 90, 41)
    data = signal.to_bytes()
    assert AudienceSignal.from_bytes(data) == signal
    assert len(data) == 21 + len("acc-42")
    record = ActorInteraction.of("u7", "acc-42", NOW + 0.25)
    assert ActorInteraction.from_bytes(record.to_bytes()) == record
    assert record.actor == actor_hash("u7")


def test_batches_of_records_round_trip_as_one_message_each() -> None:
    records = [ActorInteraction.of(f"u{n}", f"acc-{n % 7}-ü", NOW + n / 3) for n in range(500)]
    assert unpack_interactions(pack_interactions(records)) == records
    signals = [AudienceSignal(f"acc-{n}", NOW, n, n // 2, n // 3) for n in range(300)]
    assert unpack_signals(pack_signals(signals)) == signals
    assert unpack_interactions(pack_interactions([])) == []
    data = bytearray(pack_signals(signals))
    data[0] = 7
    with pytest.raises(ValueError, match="version"):
        unpack_signals(bytes(data))


def test_an_actor_always_goes_to_the_same_repartition_partition_and_actors_spread() -> None:
    partitions = [actor_partition(actor_hash(f"u{n}"), 6) for n in range(6_000)]
    assert partitions[:50] == [actor_partition(actor_hash(f"u{n}"), 6) for n in range(50)]
    assert all(800 < partitions.count(p) < 1_200 for p in range(6))


def test_records_of_an_unknown_version_are_refused() -> None:
    data = bytearray(AudienceSignal("a", 0.0, 1, 0, 0).to_bytes())
    data[0] = 9
    with pytest.raises(ValueError, match="version"):
        AudienceSignal.from_bytes(bytes(data))
    record = bytearray(ActorInteraction.of("u", "a", 0.0).to_bytes())
    record[0] = 9
    with pytest.raises(ValueError, match="version"):
        ActorInteraction.from_bytes(bytes(record))


def test_a_fan_of_a_few_accounts_stays_ordinary_and_a_bot_of_many_turns_farm_like() -> None:
    activity = ActorActivity()
    fan, bot = actor_hash("fan"), actor_hash("bot")
    verdicts = [activity.observe(fan, f"acc-{n % 4}", NOW + n * 3_600) for n in range(200)]
    assert set(verdicts) == {0}
    verdicts = [activity.observe(bot, f"acc-{n}", NOW + n * 600) for n in range(200)]
    assert verdicts[0] == 0
    assert BUSY in verdicts
    assert verdicts[-1] == BUSY | FARM_LIKE
    first_farm_like = verdicts.index(BUSY | FARM_LIKE)
    assert 30 <= first_farm_like <= 55  # FARM_ACCOUNTS = 40, within the estimate's error


def test_an_actor_that_moves_on_from_account_to_account_is_farm_like_a_fan_is_not() -> None:
    """A bot as narrow as a fan (3 accounts in a bucket) that never comes back to an
    account turns farm-like once it has been seen in two buckets; a fan of three
    accounts who comes back does not, nor does a newcomer seen in one bucket only."""
    activity = ActorActivity()
    bot, fan, newcomer = actor_hash("bot"), actor_hash("fan"), actor_hash("new")
    bot_verdicts = [activity.observe(bot, f"customer-{n}", NOW + n * DAY) for n in range(6)]
    fan_verdicts = [activity.observe(fan, f"fav-{n % 3}", NOW + n * DAY) for n in range(6)]
    newcomer_verdicts = [activity.observe(newcomer, f"acc-{n}", NOW + n) for n in range(5)]
    assert bot_verdicts[:2] == [0, 0]
    assert bot_verdicts[-1] == FARM_LIKE
    assert set(fan_verdicts) == {0}
    assert set(newcomer_verdicts) == {0}


def test_breadth_slides_an_actor_forgets_accounts_of_buckets_that_left_the_period() -> None:
    activity = ActorActivity()
    bot = actor_hash("bot")
    for n in range(100):
        activity.observe(bot, f"acc-{n}", NOW + n)
    assert activity.distinct_accounts(bot) > 60
    # Two buckets on: still inside the period of four.
    activity.observe(bot, "acc-0", NOW + 2 * ACTIVITY_BUCKET_S)
    assert activity.distinct_accounts(bot) > 60
    # Past the period: only the newest interaction is left in it, and the month view
    # still holds the hundred accounts: busy.
    assert activity.observe(bot, "acc-0", NOW + 6 * ACTIVITY_BUCKET_S) == BUSY
    assert activity.distinct_accounts(bot) == pytest.approx(1, abs=0.1)
    assert activity.month_accounts_of(bot) > 60
    # Past the month view (two slots of 8 buckets): ordinary again.
    assert activity.observe(bot, "acc-0", NOW + 20 * ACTIVITY_BUCKET_S) == 0
    assert activity.month_accounts_of(bot) == pytest.approx(1, abs=0.1)


def test_a_bot_moving_on_over_a_month_turns_busy_a_person_with_stable_accounts_does_not(
        ) -> None:
    """The narrow docs reader's bot: a new customer every 1.5 days, 5-6 per 8-day
    period, never busy by the period; over the month it has met MONTH_ACCOUNTS (10) and
    more, and at least MONTH_TURNOVER (3) times its period's whenever its month view
    holds about 3 weeks or more of it: busy then. A person of 8 accounts, every day,
    never is."""
    activity = ActorActivity()
    bot, person = actor_hash("bot"), actor_hash("person")
    bot_verdicts = []
    person_verdicts = []
    for hour in range(0, 48 * 24, 36):
        at = NOW + hour * 3_600.0
        bot_verdicts.append(activity.observe(bot, f"customer-{hour}", at))
        assert activity.distinct_accounts(bot) < 8
        person_verdicts.append(activity.observe(person, f"fav-{hour % 8}", at + 600))
    assert not any(verdict & BUSY for verdict in bot_verdicts[:8])  # its first 12 days
    late = bot_verdicts[len(bot_verdicts) // 2 :]
    assert sum(1 for verdict in late if verdict & BUSY) >= len(late) // 2
    assert not any(verdict & BUSY for verdict in person_verdicts)


def test_many_accounts_over_the_month_are_busy_only_when_most_are_outside_the_period(
        ) -> None:
    """A person who cycles through 12 accounts, one a day, meets 6-9 of them in any
    period: never busy by the period, and not a bot moving on (MONTH_TURNOVER, 3: the
    month would need three times the period's accounts), though at MONTH_ACCOUNTS (10)
    and more over the month; with any turnover allowed (1) it would be busy all the time
    once its month is full."""
    assert (MONTH_ACCOUNTS, MONTH_TURNOVER) == (10, 3)
    late_busy = {}
    for turnover in (1, MONTH_TURNOVER):
        activity = ActorActivity(month_turnover=turnover)
        person = actor_hash("person")
        verdicts = []
        for n in range(36):
            verdicts.append(activity.observe(person, f"acc-{n % 12}",
                                             NOW + n * DAY) & BUSY)
            assert activity.distinct_accounts(person) < BUSY_ACCOUNTS
        assert activity.month_accounts_of(person) >= MONTH_ACCOUNTS
        late_busy[turnover] = sum(1 for verdict in verdicts[18:] if verdict)
    assert late_busy[1] == 18
    assert late_busy[MONTH_TURNOVER] == 0


def test_an_interaction_older_than_the_actors_period_is_judged_but_not_kept() -> None:
    activity = ActorActivity()
    bot = actor_hash("bot")
    activity.observe(bot, "new", NOW + 10 * ACTIVITY_BUCKET_S)
    activity.observe(bot, "old", NOW)
    assert activity.stats.too_old == 1
    assert activity.distinct_accounts(bot) == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize("accounts", [5, 12, 25, 40, 80])
def test_linear_counting_estimates_distinct_accounts_within_a_fifth(accounts: int) -> None:
    errors = []
    for trial in range(200):
        activity = ActorActivity()
        actor = actor_hash(f"a{trial}")
        for n in range(accounts):
            activity.observe(actor, f"acc-{trial}-{n}", NOW)
        errors.append(activity.distinct_accounts(actor) / accounts - 1)
    mean_error = sum(errors) / len(errors)
    spread = (sum(error * error for error in errors) / len(errors)) ** 0.5
    assert abs(mean_error) < 0.05
    assert spread < 0.2


def test_a_full_bitmap_reads_as_at_least_a_few_hundred() -> None:
    assert estimate_distinct((1 << 64) - 1) > 250
    assert estimate_distinct(0) == 0


def test_batch_yields_one_signal_per_account_and_bucket_with_its_farm_share() -> None:
    activity = ActorActivity()
    batch = [ActorInteraction(actor_hash("bot"), f"acc-{n}", NOW) for n in range(60)]
    batch += [ActorInteraction(actor_hash(f"fan{n}"), "acc-0", NOW) for n in range(10)]
    batch.append(ActorInteraction(actor_hash("bot"), "acc-0", NOW + ACTIVITY_BUCKET_S))
    signals = {(s.account_id, s.bucket_start): s for s in activity.observe_batch(batch)}
    assert len(signals) == 61
    bucket = (NOW // ACTIVITY_BUCKET_S) * ACTIVITY_BUCKET_S
    first = signals[("acc-0", bucket)]
    assert (first.interactions, first.busy, first.farm_like) == (11, 0, 0)
    later = signals[("acc-0", bucket + ACTIVITY_BUCKET_S)]
    assert (later.interactions, later.busy, later.farm_like) == (1, 1, 1)
    # The fans were seen in one bucket only; the bot in two, always on new accounts.
    assert sum(s.interactions for s in signals.values()) == len(batch)


def test_actors_are_bounded_by_the_cap_and_forgotten_after_the_month_view() -> None:
    activity = ActorActivity(max_actors=100)
    for n in range(250):
        activity.observe(n, "acc", NOW)
    assert len(activity) == 100
    assert activity.stats.evicted_actors == 150
    # Past the period, within the month view: kept, their month's accounts count.
    assert activity.expire(NOW + 6 * ACTIVITY_BUCKET_S) == 0
    assert activity.expire(NOW + 20 * ACTIVITY_BUCKET_S) == 100
    assert len(activity) == 0


# tracemalloc sees Python's allocations only: the compiled core's memory per actor is
# measured by resident memory in test_audience_native.py.
@pytest.mark.parametrize("implementation", ["reference"], indirect=True)
def test_memory_per_actor_stays_under_200_bytes(implementation: str) -> None:
    rng = random.Random(3)
    actors = 20_000
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    activity = ActorActivity()
    for _n in range(actors):
        actor = rng.getrandbits(64)
        for bucket in range(4):
            activity.observe(actor, f"acc-{rng.randrange(1000)}",
                             NOW + bucket * ACTIVITY_BUCKET_S)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(activity) == actors
    assert used / actors < 200, used / actors


def engine_with_account() -> Engine:
    engine = Engine()
    engine.apply(decoded(followers("acc", 2_000, 0)))
    engine.apply(decoded(post("acc", "p", 10)))
    for n in range(120):
        engine.apply(decoded(interaction("like", "acc", "p", f"u{n}", 3_600 + n * 60)))
    return engine


def test_farm_like_audience_costs_credibility_and_is_explained() -> None:
    clean, farmed = engine_with_account(), engine_with_account()
    for engine, farm_like in ((clean, 0), (farmed, 90)):
        assert engine.apply_audience(AudienceSignal("acc", NOW, 120, farm_like, farm_like))
    clean_score, farmed_score = clean.score("acc"), farmed.score("acc")
    assert clean_score is not None
    assert farmed_score is not None
    for name in ("audience_authenticity", "audience_rotation"):
        component = farmed_score.credibility.components[name]
        assert component.value == 0
        assert component.points < 0
    assert component.inputs["from_farm_like_actors"] == 90
    assert farmed_score.credibility.score < clean_score.credibility.score - 10


def test_signals_for_untracked_accounts_are_counted_and_dropped() -> None:
    engine = Engine()
    assert not engine.apply_audience(AudienceSignal("nobody", NOW, 5, 5, 5))
    assert engine.stats.audience_signals_unmatched == 1
    assert engine.score("nobody") is None


def test_signals_sum_per_bucket_survive_packing_and_expire_with_the_window() -> None:
    engine = engine_with_account()
    for day in (0, 1, 7, 7, 3):
        engine.apply_audience(AudienceSignal("acc", NOW + day * DAY, 10, 2, 1))
    account = engine.accounts.get("acc")
    assert account is not None
    assert account.audience is not None
    buckets = account.audience[::4]
    assert buckets == sorted(buckets)
    assert account.audience_in(0) == (50, 10, 5)
    again = packing.unpack("acc", packing.pack(account))
    assert again.audience == account.audience
    assert packing.pack(again) == packing.pack(account)
    first_live = int((NOW + 7 * DAY) // engine.config.actor_bucket_s)
    kept = sum(1 for day in (0, 1, 7, 7, 3)
               if (NOW + day * DAY) // engine.config.actor_bucket_s >= first_live)
    assert 2 <= kept < 5
    account.expire(horizon=-1e18, first_live_bucket=first_live)
    assert account.audience_in(0) == (10 * kept, 2 * kept, kept)


def test_an_account_packed_before_signals_and_day_profiles_unpacks_without_them() -> None:
    engine = engine_with_account()
    account = engine.accounts.get("acc")
    assert account is not None
    packed = packing.pack(account)
    header = packed[: packing._HEADER.size]
    posts, history, actors = msgpack.unpackb(packed[packing._HEADER.size :])
    old_actors = [sketch[:5] for sketch in actors]  # no time-of-day counters yet
    old = packing.unpack("acc", header + msgpack.packb((posts, history, old_actors)))
    assert old.audience is None
    assert [sketch.rhythm for sketch in old.actors] == [[0] * 8 for _ in old.actors]
    assert [sketch.counts for sketch in old.actors] == [s.counts for s in account.actors]


def test_a_snapshot_of_the_actor_side_restores_every_actor_and_its_verdicts() -> None:
    activity = ActorActivity()
    rng = random.Random(5)
    for n in range(3_000):
        activity.observe(rng.getrandbits(64) if n % 3 else actor_hash("bot"),
                         f"acc-{rng.randrange(200)}", NOW + n * 100)
    data = activity.snapshot()
    assert len(data) == 21 + len(activity) * 60
    again = ActorActivity()
    again.restore(data)
    assert again.snapshot() == data
    assert again.distinct_accounts(actor_hash("bot")) == activity.distinct_accounts(
        actor_hash("bot"))
    later = NOW + 3_000 * 100
    assert again.observe(actor_hash("bot"), "acc-x", later) == activity.observe(
        actor_hash("bot"), "acc-x", later) == BUSY | FARM_LIKE
    with pytest.raises(ValueError, match="buckets"):
        ActorActivity(buckets=7).restore(data)
    with pytest.raises(ValueError, match="month slots"):
        ActorActivity(month_slots=3).restore(data)


def test_an_actor_snapshot_of_version_1_loads_with_its_accounts_in_the_month_view() -> None:
    """Written before the month view: 4 + 4 x 8 bytes of state an actor, no month
    bitmaps; they are rebuilt from the period's slots, as the actors would have set them."""
    import struct

    activity = ActorActivity()
    rng = random.Random(8)
    for _n in range(2_000):
        activity.observe(actor_hash(f"u{rng.randrange(300)}"), f"acc-{rng.randrange(60)}",
                         NOW + rng.uniform(0, 4 * ACTIVITY_BUCKET_S))
    data = activity.snapshot()
    header = 13 + 8
    old = struct.pack("<BdI", 1, ACTIVITY_BUCKET_S, 4) + b"".join(
        data[start : start + 8 + 36] for start in range(header, len(data), 60))
    again = ActorActivity()
    again.restore(old)
    assert again.snapshot() == data
    bot = actor_hash("u7")
    assert again.month_accounts_of(bot) == activity.month_accounts_of(bot) > 0


def test_a_packed_batch_is_judged_as_its_interactions_and_old_batches_still_read() -> None:
    import struct

    rng = random.Random(3)
    records = [ActorInteraction(actor_hash(f"u{rng.randrange(40)}"), f"acc-{rng.randrange(90)}",
                                NOW + rng.uniform(0, 3 * ACTIVITY_BUCKET_S))
               for _ in range(3_000)]
    packed = pack_interactions(records)
    assert unpack_interactions(packed) == records
    assert len(packed) < 22 * len(records)  # each account id once, 20 bytes a record
    one, other = ActorActivity(), ActorActivity()
    assert one.observe_packed(packed) == other.observe_batch(records)
    # Version 1 (an account id per record), as written by the release before.
    legacy = struct.pack("<BI", 1, len(records)) + b"".join(
        struct.pack("<QdH", r.actor, r.occurred_at, len(r.account_id)) + r.account_id.encode()
        for r in records)
    assert unpack_interactions(legacy) == records
