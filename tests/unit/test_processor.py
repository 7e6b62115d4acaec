"""The processor's own logic over Kafka in memory (tests/unit/kafka_in_memory.py): a
partition's state goes to its changelog and comes back whole on another instance, a
failed checkpoint is written by the next, and a fenced instance lets its partition go.
The same paths run against the real broker in tests/integration."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import TopicPartition

from service import snapshots
from service.consumer import Owned, StreamProcessor, Unavailable
from service.engine.audience import ACTIVITY_BUCKET_S, ActorActivity, actor_partition
from service.engine.sketches import actor_hash
from service.metrics import Metrics
from service.partition_state import Status
from service.settings import Settings
from tests.events import T0, interaction, post
from tests.unit.kafka_in_memory import InMemoryBroker, InMemoryClients

TOPIC = "events"


def settings_for(tmp_path: Path, name: str) -> Settings:
    return Settings(kafka_bootstrap_servers="memory:9092", events_topic=TOPIC,
                    consumer_group="g", snapshot_dir=tmp_path / name,
                    commit_interval_s=0.05, snapshot_interval_s=3600,
                    fetch_timeout_ms=10, advertised_url=f"http://{name}")


def broker_with_events(partitions: int = 2) -> InMemoryBroker:
    broker = InMemoryBroker()
    broker.create(TOPIC, partitions)
    broker.create(f"{TOPIC}.dlq", 1)
    return broker


def produce(broker: InMemoryBroker, events: list[dict[str, Any]]) -> None:
    from service.routing import partition_for

    partitions = len(broker.logs[TOPIC])
    for event in events:
        key = event["account_id"]
        broker.append(TOPIC, partition_for(key, partitions), key.encode(), orjson.dumps(event))


def likes_of(processor: StreamProcessor, account: str) -> int | None:
    _, where = processor.locate(account)
    if not isinstance(where, Owned):
        return None
    score = where.state.engine.score(account)
    return None if score is None else score.counts.likes


async def run_until(processor: StreamProcessor, done: Any, timeout_s: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not done():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def restore_elsewhere(tmp_path: Path, broker: InMemoryBroker,
                            likes: dict[str, int]) -> int:
    """Another instance restores what committed: once the first account has its likes,
    every other one must have its own. Returns how many changelog records it read."""
    (first, first_likes), *rest = likes.items()
    settings = settings_for(tmp_path, "two")
    second = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(second.run())
    await run_until(second, lambda: likes_of(second, first) == first_likes)
    assert {account: likes_of(second, account) for account, _ in rest} == dict(rest)
    restored = sum(state.restored_records for state in second.states.values())
    second.stop()
    await task
    return restored


Commit = Callable[[], Awaitable[None]]


def wrap_commits(clients: InMemoryClients, wrap: Callable[[Any, Commit], Commit]) -> None:
    """Each transactional producer's commit becomes `wrap(producer, its commit)`: how a
    test holds, fails or loses a commit."""
    transactional = clients.transactional_producer

    def wrapped(partition: int) -> Any:
        producer = transactional(partition)
        producer.commit_transaction = wrap(producer, producer.commit_transaction)
        return producer

    clients.transactional_producer = wrapped  # type: ignore[method-assign]


def events(account: str, likes: int, tag: str) -> list[dict[str, Any]]:
    return ([post(account, "p1", 0.0)] if tag == "a" else []) + [
        interaction("like", account, "p1", f"{tag}{n}", 60.0 + n) for n in range(likes)]


async def test_a_partition_restored_from_its_changelog_answers_as_its_last_owner(
    tmp_path: Path,
) -> None:
    broker = broker_with_events()
    produce(broker, events("x", 7, "a") + events("y", 3, "a"))
    first = StreamProcessor(settings_for(tmp_path, "first"), Metrics(),
                            InMemoryClients(settings_for(tmp_path, "first"), broker))
    task = asyncio.create_task(first.run())
    await run_until(first, lambda: likes_of(first, "x") == 7 and likes_of(first, "y") == 3)
    await asyncio.sleep(0.2)  # a few checkpoints
    first.stop()
    await task
    # What the changelog holds, read_committed: both accounts, and the clocks.
    keys = {r.key for log in broker.logs["g-accounts-changelog"] for r in log if r.committed}
    assert {b"x", b"y", b"!clock"} <= keys

    produce(broker, events("x", 2, "b"))
    # Another instance, with no local snapshot: changelog, then the events after it.
    second = StreamProcessor(settings_for(tmp_path, "second"), Metrics(),
                             InMemoryClients(settings_for(tmp_path, "second"), broker))
    task = asyncio.create_task(second.run())
    await run_until(second, lambda: likes_of(second, "x") == 9)
    assert likes_of(second, "y") == 3
    restored = [s.restored_records for s in second.states.values()]
    assert sum(restored) > 0
    second.stop()
    await task


async def test_a_checkpoint_that_fails_is_written_by_the_next_one(tmp_path: Path) -> None:
    broker = broker_with_events(partitions=1)
    broker.fail_commits = 3
    produce(broker, events("x", 5, "a"))
    settings = settings_for(tmp_path, "one")
    processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(processor.run())
    await run_until(processor, lambda: likes_of(processor, "x") == 5)
    await run_until(processor, lambda: broker.committed_offsets)
    processor.stop()
    await task
    changelog = broker.logs["g-accounts-changelog"][0]
    assert any(r.key == b"x" and r.committed and not r.aborted for r in changelog)
    assert any(r.aborted for r in changelog)  # the failed ones never count


async def test_events_are_folded_while_a_checkpoint_waits_for_the_broker(
    tmp_path: Path,
) -> None:
    """A checkpoint's transaction in flight does not hold up the loop, and commits exactly
    what it took: the events folded meanwhile go into the next checkpoint."""
    broker = broker_with_events(partitions=1)
    broker.commit_gate = asyncio.Event()
    produce(broker, events("x", 5, "a"))
    settings = settings_for(tmp_path, "one")
    processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(processor.run())
    events_tp = TopicPartition(TOPIC, 0)
    await run_until(processor, lambda: broker.commits_waiting == 1)
    produce(broker, events("x", 4, "b"))
    # Well within the transaction's timeout (BROKER_CALL_TIMEOUT_S), which would end it.
    await run_until(processor, lambda: likes_of(processor, "x") == 9, timeout_s=2)
    await asyncio.sleep(0.2)  # several commit intervals: none starts beside the one waiting
    assert broker.commits_waiting == 1
    assert events_tp not in broker.committed_offsets
    broker.commit_gate.set()
    await run_until(processor, lambda: broker.committed_offsets.get(events_tp) == 10)
    processor.stop()
    await task
    # The committed changelog holds the newest state: another instance restores it whole.
    assert await restore_elsewhere(tmp_path, broker, {"x": 9}) > 0


async def test_a_fenced_instance_lets_its_partition_go_at_once(tmp_path: Path) -> None:
    broker = broker_with_events(partitions=1)
    produce(broker, events("x", 4, "a"))
    settings = settings_for(tmp_path, "zombie")
    zombie = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(zombie.run())
    await run_until(zombie, lambda: likes_of(zombie, "x") == 4)
    # A new owner's producer takes the partition's transactional id: the broker fences.
    broker.epochs["g-events-0"] += 1
    produce(broker, events("x", 1, "b"))
    await run_until(zombie, lambda: 0 not in zombie.states)
    _, where = zombie.locate("x")
    assert isinstance(where, Unavailable)  # never its stale state again
    zombie.stop()
    await task


def audience_of(processor: StreamProcessor, account: str) -> dict[str, Any] | None:
    _, where = processor.locate(account)
    if not isinstance(where, Owned):
        return None
    score = where.state.engine.score(account)
    if score is None:
        return None
    return dict(score.credibility.components["audience_authenticity"].inputs)


async def test_the_audience_signal_goes_round_through_kafka_and_survives_a_move(
    tmp_path: Path,
) -> None:
    """Interactions re-keyed by actor, judged by the actor side on another partition,
    and folded back into the accounts, all through the in-memory topics; a farm's bot
    that engages 60 accounts is farm-like, the fans of one account are not."""
    broker = broker_with_events(partitions=3)
    stream = []
    for number in range(60):
        account = f"acct-{number}"
        stream.append(post(account, "p1", 0.0))
        stream += [interaction("like", account, "p1", "bot-1", 120.0 + number),
                   interaction("like", account, "p1", f"fan-{number}", 130.0 + number)]
    produce(broker, stream)
    settings = settings_for(tmp_path, "one")
    processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(processor.run())

    def audiences() -> list[dict[str, Any] | None]:
        return [audience_of(processor, f"acct-{n}") for n in range(60)]

    await run_until(processor, lambda: all(
        a is not None and a["judged_interactions"] == 2 for a in audiences()))
    judged = [a for a in audiences() if a is not None]
    # Only the bot is ever suspect, and it is once it has served a few accounts.
    assert all(a["from_busy_actors"] <= 1 for a in judged)
    assert sum(a["from_busy_actors"] for a in judged) >= 40
    before = judged[0]["from_farm_like_actors"]
    processor.stop()
    await task

    # Another instance restores the accounts and the actors' activity: the bot's next
    # like is judged farm-like at once.
    produce(broker, [interaction("like", "acct-0", "p1", "bot-1", 400.0)])
    settings = settings_for(tmp_path, "two")
    second = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(second.run())

    def judged_again() -> bool:
        audience = audience_of(second, "acct-0")
        return audience is not None and audience["judged_interactions"] == 3

    await run_until(second, judged_again)
    again = audience_of(second, "acct-0")
    assert again is not None
    assert again["from_farm_like_actors"] == before + 1
    second.stop()
    await task


async def test_the_actors_month_view_survives_a_restart_the_repartition_topic_no_longer_covers(
    tmp_path: Path,
) -> None:
    """A bot liked 30 accounts 20 days ago (outside the 6-8 day period, inside the month
    view), then retention deleted those repartition records, then it liked 3 more on
    another instance. Restored from its local snapshot, the first instance's month view
    of the bot holds all 33 (the snapshot's, and the 3 replayed from the offset it names);
    restored without one, only the 3 the topic still holds."""
    day = 86_400.0
    broker = broker_with_events(partitions=3)
    bot = actor_hash("bot-1")
    actor_side = actor_partition(bot, 3)
    reference = ActorActivity()
    old = [(f"old-{number}", 0.0, 60.0 + number) for number in range(30)]
    new = [(f"new-{number}", 20 * day, 20 * day + 60 + number) for number in range(3)]

    def produce_likes(likes: list[tuple[str, float, float]]) -> None:
        produce(broker, [event for account, posted, liked in likes for event in (
            post(account, "p1", posted), interaction("like", account, "p1", "bot-1", liked))])
        for account, _, liked in likes:
            reference.observe(bot, account, T0.timestamp() + liked)

    def month_view(processor: StreamProcessor) -> float:
        state = processor.states.get(actor_side)
        return 0.0 if state is None else state.actors.month_accounts_of(bot)

    def restored(processor: StreamProcessor) -> bool:
        return len(processor.states) == 3 and all(
            s.status is Status.ACTIVE for s in processor.states.values())

    async def run(name: str, done: Callable[[StreamProcessor], bool]) -> float:
        settings = settings_for(tmp_path, name)
        processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
        task = asyncio.create_task(processor.run())
        await run_until(processor, lambda: done(processor))
        seen = month_view(processor)
        processor.stop()
        await task  # a final checkpoint and snapshot
        return seen

    produce_likes(old)
    assert await run("one", lambda p: month_view(p) == reference.month_accounts_of(bot)) > 25
    actors = settings_for(tmp_path, "one").actors
    for partition, log in enumerate(broker.logs[actors]):
        broker.log_start[(actors, partition)] = len(log)  # retention: all of it deleted
    produce_likes(new)
    recent = await run("two", lambda p: sum(s.actors.stats.observed
                                            for s in p.states.values()) == 3)
    assert 2 < recent < 4
    assert await run("one", restored) == reference.month_accounts_of(bot) > 30
    assert await run("three", restored) == recent


async def test_a_snapshot_whose_actor_activity_does_not_fit_is_loaded_without_it(
    tmp_path: Path,
) -> None:
    """An actor activity taken with another period (a changed build) is refused, not
    retried forever: the snapshot's accounts load and the actors are replayed."""
    broker = broker_with_events(partitions=2)
    produce(broker, events("x", 4, "a"))
    settings = settings_for(tmp_path, "one")
    first = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(first.run())
    await run_until(first, lambda: sum(s.actors.stats.observed
                                       for s in first.states.values()) == 4)
    activity = {p: s.actors.snapshot() for p, s in first.states.items()}
    first.stop()
    await task
    other = ActorActivity(bucket_s=ACTIVITY_BUCKET_S / 2).snapshot()
    for partition in range(2):
        store = snapshots.partition_store(settings.snapshot_dir, partition, 3)
        newest = store.load_newest()
        assert newest is not None
        store.write(snapshots.encode(newest.header, newest.account_pairs(), other))
    again = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(again.run())
    await run_until(again, lambda: likes_of(again, "x") == 4 and all(
        s.status is Status.ACTIVE for s in again.states.values()) and len(again.states) == 2)
    assert {p: s.actors.snapshot() for p, s in again.states.items()} == activity
    again.stop()
    await task


def stream_records(broker: InMemoryBroker) -> list[tuple[bytes | None, bytes | None]]:
    return [(r.key, r.value) for log in broker.logs.get("engagement-scores", []) for r in log
            if r.committed and not r.aborted]


async def test_the_score_change_stream_is_written_with_the_state_and_not_repeated_after_a_move(
    tmp_path: Path,
) -> None:
    broker = broker_with_events(partitions=2)
    produce(broker, events("x", 6, "a") + events("y", 2, "a"))
    settings = settings_for(tmp_path, "first")
    first = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(first.run())
    await run_until(first, lambda: {k for k, _ in stream_records(broker)} == {b"x", b"y"})
    records = dict(stream_records(broker))
    assert records[b"x"] is not None
    assert orjson.loads(records[b"x"])["counts"]["likes"] == 6  # the HTTP body's schema
    said = {account: state.gate.last(account) for state in first.states.values()
            for account in ("x", "y") if state.gate.last(account) is not None}
    first.stop()
    await task
    written = len(stream_records(broker))

    # Another instance takes over: the stream already holds these scores, so nothing is
    # emitted again for accounts that did not change.
    settings = settings_for(tmp_path, "second")
    second = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(second.run())
    await run_until(second, lambda: likes_of(second, "x") == 6)
    await asyncio.sleep(0.3)  # several checkpoints
    assert len(stream_records(broker)) == written
    # The gate came back exactly, from the records' headers.
    assert {account: state.gate.last(account) for state in second.states.values()
            for account in ("x", "y") if state.gate.last(account) is not None} == said
    second.stop()
    await task


async def test_a_standby_copy_follows_the_owner_and_takes_over_warm(tmp_path: Path) -> None:
    """Two instances with one standby replica each: each keeps a warm copy of the other's
    partition (changelog, actor activity, score-change gate). When one dies, the other
    takes its partition over from that copy, and the counts stay exact."""
    broker = broker_with_events(partitions=2)
    accounts = [f"acct-{n}" for n in range(12)]
    stream = []
    for account in accounts:
        stream += events(account, 4, "a")
    produce(broker, stream)

    def instance(name: str) -> StreamProcessor:
        settings = settings_for(tmp_path, name).model_copy(update={"standby_replicas": 1})
        return StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))

    first, second = instance("first"), instance("second")
    first_task = asyncio.create_task(first.run())
    await run_until(first, lambda: len(first.states) == 2)
    second_task = asyncio.create_task(second.run())
    await run_until(second, lambda: len(second.states) == 1 and len(first.states) == 1)
    await run_until(second, lambda: all(
        likes_of(first, a) == 4 or likes_of(second, a) == 4 for a in accounts))

    def standby_caught_up(standby: StreamProcessor, owner: StreamProcessor) -> bool:
        for partition, copy in standby.standbys.states.items():
            active = owner.states.get(partition)
            if active is None or active.uncommitted or copy.changelog_next != \
                    active.changelog_next:
                return False
        return bool(standby.standbys.states)

    await run_until(second, lambda: standby_caught_up(second, first)
                    and standby_caught_up(first, second))
    (warm_partition,) = second.standbys.states
    copy = second.standbys.states[warm_partition]
    owned = first.states[warm_partition]
    assert dict(copy.engine.accounts.packed()) == dict(owned.engine.accounts.packed())
    assert [p["state"] for p in second.local_partitions()] == ["active", "standby"]

    # The first instance dies without a last checkpoint; its partition moves to the
    # second, which starts from its standby copy, not from the changelog's beginning.
    first_task.cancel()
    await asyncio.gather(first_task, return_exceptions=True)
    await run_until(second, lambda: len(second.states) == 2 and all(
        likes_of(second, a) == 4 for a in accounts))
    assert second.metrics.restores.labels("standby")._value.get() == 1
    assert not second.standbys.states
    produce(broker, [interaction("like", a, "p1", "late", 500.0) for a in accounts])
    await run_until(second, lambda: all(likes_of(second, a) == 5 for a in accounts))
    second.stop()
    await second_task


def _standby_instance(tmp_path: Path, broker: InMemoryBroker, name: str) -> StreamProcessor:
    settings = settings_for(tmp_path, name).model_copy(update={"standby_replicas": 1})
    return StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))


def _copy_matches_owner(copy: StreamProcessor, owner: StreamProcessor, partition: int
                        ) -> bool:
    standby, active = copy.standbys.states.get(partition), owner.states.get(partition)
    return (standby is not None and active is not None and not active.uncommitted
            and standby.changelog_next == active.changelog_next
            and dict(standby.engine.accounts.packed()) == dict(active.engine.accounts.packed()))


async def test_a_partition_that_moves_away_goes_on_as_this_instances_standby_copy(
    tmp_path: Path,
) -> None:
    """The first instance owns both partitions; a second joins and gets one. The group
    names the first that partition's standby: its active state, committed by the revoke,
    goes on as the standby copy (the same object, not one rebuilt from the snapshot and
    the changelog) and follows the new owner's changelog from there."""
    broker = broker_with_events(partitions=2)
    accounts = [f"acct-{n}" for n in range(12)]
    produce(broker, [e for account in accounts for e in events(account, 4, "a")])
    first = _standby_instance(tmp_path, broker, "first")
    first_task = asyncio.create_task(first.run())
    await run_until(first, lambda: len(first.states) == 2
                    and all(likes_of(first, a) == 4 for a in accounts))
    before = dict(first.states)

    second = _standby_instance(tmp_path, broker, "second")
    second_task = asyncio.create_task(second.run())
    await run_until(second, lambda: len(second.states) == 1 and len(first.states) == 1)
    (moved,) = set(before) - set(first.states)
    assert first.standbys.states[moved] is before[moved]
    assert [p["state"] for p in first.local_partitions()] == ["active", "standby"]

    produce(broker, [interaction("like", a, "p1", "b", 300.0) for a in accounts])
    await run_until(second, lambda: all(likes_of(first, a) == 5 or likes_of(second, a) == 5
                                        for a in accounts))
    await run_until(first, lambda: _copy_matches_owner(first, second, moved))
    assert first.standbys.states[moved] is before[moved]
    # And back: the second leaves; the first takes the partition over from the copy.
    second.stop()
    await second_task
    await run_until(first, lambda: len(first.states) == 2
                    and all(likes_of(first, a) == 5 for a in accounts))
    assert first.states[moved] is before[moved]
    assert first.metrics.restores.labels("standby")._value.get() == 1
    first.stop()
    await first_task


async def test_a_partition_whose_last_checkpoint_failed_is_not_kept_as_it_is(
    tmp_path: Path,
) -> None:
    """The same move, but the checkpoints fail from before it: the state holds changes
    that the changelog never got. It must not go on as the standby copy (a copy must be
    exactly what is committed); the copy is rebuilt from the changelog instead, and
    agrees with the new owner."""
    broker = broker_with_events(partitions=2)
    accounts = [f"acct-{n}" for n in range(12)]
    produce(broker, [e for account in accounts for e in events(account, 4, "a")])
    first = _standby_instance(tmp_path, broker, "first")
    first_task = asyncio.create_task(first.run())
    await run_until(first, lambda: len(first.states) == 2
                    and all(likes_of(first, a) == 4 for a in accounts))
    await run_until(first, lambda: all(s.committed for s in first.states.values()))
    broker.fail_commits = 10**9
    produce(broker, [interaction("like", a, "p1", "b", 300.0) for a in accounts])
    await run_until(first, lambda: all(likes_of(first, a) == 5 for a in accounts))
    before = dict(first.states)
    assert not any(s.committed for s in before.values())

    second = _standby_instance(tmp_path, broker, "second")
    second_task = asyncio.create_task(second.run())
    await run_until(second, lambda: len(second.states) == 1 and len(first.states) == 1)
    broker.fail_commits = 0
    (moved,) = set(before) - set(first.states)
    await run_until(second, lambda: all(likes_of(first, a) == 5 or likes_of(second, a) == 5
                                        for a in accounts))
    await run_until(first, lambda: _copy_matches_owner(first, second, moved))
    assert first.standbys.states[moved] is not before[moved]
    second.stop()
    first.stop()
    await asyncio.gather(first_task, second_task)


def test_only_a_committed_state_can_become_a_standby() -> None:
    from datetime import UTC, datetime

    from service.consumer import engine_config
    from service.events import FollowersEvent
    from service.partition_state import PartitionState

    state = PartitionState(0, engine_config(Settings()))
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    state.engine.apply(FollowersEvent("f-1", "x", moment, moment.timestamp(), 500), 0)
    state.position = 1
    assert not state.committed
    checkpoint = state.checkpoint(TOPIC, "actors", "signals")
    assert checkpoint is not None
    assert state.committed  # (once its transaction commits; the caller knows)
    state.requeue_checkpoint(checkpoint)  # it did not
    assert not state.committed
    with pytest.raises(ValueError, match="uncommitted"):
        state.become_standby()
    checkpoint = state.checkpoint(TOPIC, "actors", "signals")
    assert checkpoint is not None
    assert state.committed
    state.become_standby()
    assert state.status.value == "standby"


def test_the_change_gate_travels_in_the_local_snapshot() -> None:
    from service.consumer import engine_config
    from service.partition_state import PartitionState

    settings = Settings()
    state = PartitionState(0, engine_config(settings))
    state.gate.offer("x", "micro", 71.25, 100.0)
    state.gate.offer("x", "mid", 71.25, 110.0)  # held until 160
    copy = PartitionState(0, engine_config(settings))
    copy.load_snapshot(state.snapshot_header(), [])
    assert list(copy.gate.export()) == list(state.gate.export())
    assert copy.gate.due(160.0) == ["x"]


class _DeadLetterTopicDown(InMemoryClients):
    """The dead-letter topic cannot be written; `inject` is asked before each fetch
    whether to append an invalid message to the events' partition 0 first."""

    inject: Any = None

    def producer(self) -> Any:
        producer = super().producer()

        async def send(*_: Any, **__: Any) -> Any:
            raise OSError("the dead-letter topic cannot be written")

        producer.send = send
        return producer

    def group_consumer(self, assignor: Any) -> Any:
        consumer = super().group_consumer(assignor)
        fetch = consumer.getmany

        async def getmany(*tps: TopicPartition, **options: Any) -> Any:
            if self.inject is not None and self.inject():
                self.inject = None
                self.broker.append(TOPIC, 0, b"x", b"not an event")
            return await fetch(*tps, **options)

        consumer.getmany = getmany
        return consumer


async def test_a_background_checkpoint_never_commits_past_a_message_not_yet_dead_lettered(
    tmp_path: Path,
) -> None:
    """The offsets of a checkpoint are those of the batches folded before it starts: the
    batch fetched while it is in flight may hold a message whose dead letter cannot be
    written yet (the loop waits in `publish`); committing past it would lose the message
    if the process died then (docs/operations.md: the consumer never moves past it)."""
    broker = broker_with_events(partitions=1)
    produce(broker, events("x", 5, "a"))
    settings = settings_for(tmp_path, "one").model_copy(update={"expiry_interval_s": 3600})
    clients = _DeadLetterTopicDown(settings, broker)
    processor = StreamProcessor(settings, Metrics(), clients)
    events_tp = TopicPartition(TOPIC, 0)
    task = asyncio.create_task(processor.run())
    await run_until(processor, lambda: broker.committed_offsets.get(events_tp) == 6)
    # The next fetch after a checkpoint has started brings an invalid message.
    clients.inject = processor._committing
    await run_until(processor, lambda: clients.inject is None)
    invalid = len(broker.logs[TOPIC][0]) - 1
    await run_until(processor,
                    lambda: processor.metrics.dead_letter_failures._value.get() > 0)
    await asyncio.sleep(0.2)  # several commit intervals
    assert broker.committed_offsets[events_tp] <= invalid
    # The loop retries the dead letter for ever (by design), every few milliseconds, each
    # try in an `asyncio.wait_for`: Python 3.11's wait_for loses a cancellation that
    # arrives as its call completes (fixed in 3.12), which hung this test in full runs
    # under load.
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=1)


@pytest.mark.parametrize("error", [RuntimeError("a bug in the transaction"),
                                   asyncio.CancelledError()])  # aiokafka's, see `_close`
async def test_a_checkpoint_that_fails_unexpectedly_is_not_followed_by_a_final_one(
    tmp_path: Path, error: BaseException,
) -> None:
    """A checkpoint that raises something no retry covers has taken its changes without
    writing them: nothing may commit the offsets past them afterwards, not even the
    final checkpoint of a stop that arrives while it is in flight; the consumer fails."""
    broker = broker_with_events(partitions=1)
    settings = settings_for(tmp_path, "one")
    clients = InMemoryClients(settings, broker)
    processor = StreamProcessor(settings, Metrics(), clients)
    held, release = asyncio.Event(), asyncio.Event()

    def failing(producer: Any, commit: Commit) -> Commit:
        async def commit_or_fail() -> None:
            if any(r.key == b"x" for r in producer.pending):
                held.set()
                await release.wait()
                raise error
            await commit()
        return commit_or_fail

    wrap_commits(clients, failing)
    task = asyncio.create_task(processor.run())
    await run_until(processor, lambda: 0 in processor.states
                    and processor.states[0].status.value == "active")
    produce(broker, events("x", 5, "a"))
    await run_until(processor, held.is_set)
    produce(broker, events("y", 2, "a"))  # folded while that checkpoint is in flight
    await run_until(processor, lambda: likes_of(processor, "y") == 2)
    processor.stop()  # a SIGTERM, then the checkpoint fails
    release.set()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    # Whatever was committed, another instance restores the counts exactly.
    await restore_elsewhere(tmp_path, broker, {"y": 2, "x": 5})


async def test_a_partition_dropped_while_its_checkpoint_is_in_flight_gets_no_new_producer(
    tmp_path: Path,
) -> None:
    """The coordinator's task can take a partition away (`partitions_assigned`) while the
    loop's checkpoint of it waits for the broker. If that transaction then fails, no
    producer is started again for the partition: its transactional id belongs to the new
    owner now, and starting one would fence that owner."""
    broker = broker_with_events(partitions=2)
    produce(broker, events("acct-0", 2, "a") + events("acct-2", 2, "a"))  # partitions 0, 1
    settings = settings_for(tmp_path, "one")
    processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    task = asyncio.create_task(processor.run())
    await run_until(processor, lambda: likes_of(processor, "acct-0") == 2
                    and likes_of(processor, "acct-2") == 2)
    await processor.partitions_revoked([0, 1])  # a rebalance begins: all committed
    broker.commit_gate = asyncio.Event()
    produce(broker, events("acct-2", 1, "b"))
    # The loop's checkpoint waits: partition 1's, and partition 0's (the audience signal's
    # interactions of partition 1 go to it).
    await run_until(processor, lambda: broker.commits_waiting == 2)
    await processor.partitions_assigned([0])  # partition 1 goes to another member
    epoch = broker.epochs["g-events-1"]
    broker.fail_commits = 2
    broker.commit_gate.set()
    await run_until(processor, lambda: processor.metrics.checkpoint_failures._value.get() == 2)
    await asyncio.sleep(0.1)
    assert broker.epochs["g-events-1"] == epoch
    assert 1 not in processor._producers
    processor.stop()
    await task


async def test_a_rebalance_checkpoint_that_fails_unexpectedly_fails_the_consumer(
    tmp_path: Path,
) -> None:
    """aiokafka only logs what the rebalance listener raises. A checkpoint of
    `partitions_revoked` that fails beyond the failures it requeues has taken changes
    it did not write: the loop must fail before any later checkpoint commits the offsets
    past them."""
    broker = broker_with_events(partitions=1)
    settings = settings_for(tmp_path, "one")
    clients = InMemoryClients(settings, broker)
    processor = StreamProcessor(settings, Metrics(), clients)
    armed = asyncio.Event()

    def failing_once_armed(producer: Any, commit: Commit) -> Commit:
        async def commit_or_fail() -> None:
            if armed.is_set():
                armed.clear()
                raise RuntimeError("a bug in the transaction")
            await commit()
        return commit_or_fail

    wrap_commits(clients, failing_once_armed)
    task = asyncio.create_task(processor.run())
    await run_until(processor, lambda: 0 in processor.states
                    and processor.states[0].status.value == "active")
    produce(broker, [post("x", "p1", 0.0)])  # no interaction: nothing else touches x
    await run_until(processor, lambda: likes_of(processor, "x") == 0)
    # The rebalance's checkpoint takes x (before the loop's next one) and fails.
    armed.set()
    revoked = await asyncio.gather(processor.partitions_revoked([0]), return_exceptions=True)
    assert isinstance(revoked[0], RuntimeError)  # aiokafka's coordinator logs it, no more
    await processor.partitions_assigned([0])
    produce(broker, events("y", 2, "a"))
    await asyncio.sleep(0.3)  # several commit intervals
    processor.stop()
    results = await asyncio.gather(task, return_exceptions=True)
    assert isinstance(results[0], RuntimeError)
    await restore_elsewhere(tmp_path, broker, {"y": 2, "x": 0})


def test_a_checkpoint_that_failed_writes_its_expired_id_segments_tombstones_again() -> None:
    """An id segment that left the horizon is tombstoned once (it leaves `segments`
    then): a checkpoint whose transaction failed must give the tombstone back, or the
    segment stays in the compacted changelog and every restore merges it again."""
    from service.consumer import engine_config
    from service.partition_state import PartitionState

    state = PartitionState(0, engine_config(Settings()))
    key = b"!ids/000000000001"
    state.segments[key] = 0  # its newest hour: long gone below
    state.clock.stream_time = 90 * 86_400.0
    failed = state.checkpoint_records()
    assert (key, None) in failed
    state.requeue(failed)
    assert (key, None) in state.checkpoint_records()


@pytest.mark.xfail(strict=True, reason="known: a failed commit call is requeued, not "
                   "restored from Kafka (review s6); remove when fixed")
async def test_a_transaction_committed_though_its_commit_call_failed_sends_nothing_twice(
    tmp_path: Path,
) -> None:
    """The broker can commit a transaction whose commit call fails at the client (its
    answer lost, a timeout). The requeued checkpoint then sends its outputs again: the
    re-keyed interactions are judged twice by the actor side."""
    broker = broker_with_events(partitions=1)
    produce(broker, [post("acct-0", "p1", 0.0),
                     interaction("like", "acct-0", "p1", "fan-1", 120.0),
                     interaction("like", "acct-0", "p1", "fan-2", 130.0)])
    settings = settings_for(tmp_path, "one")
    clients = InMemoryClients(settings, broker)
    lost: list[bool] = []

    def losing_the_answer(producer: Any, commit: Commit) -> Commit:
        async def commit_then_fail() -> None:
            carries = any(r.topic == settings.actors for r in producer.pending)
            await commit()
            if carries and not lost:
                lost.append(True)
                raise OSError("the answer to the commit was lost")
        return commit_then_fail

    wrap_commits(clients, losing_the_answer)
    processor = StreamProcessor(settings, Metrics(), clients)
    task = asyncio.create_task(processor.run())

    def judged() -> Any:
        audience = audience_of(processor, "acct-0")
        return None if audience is None else audience["judged_interactions"]

    await run_until(processor, lambda: lost and judged() == 2)
    await asyncio.sleep(0.3)  # the requeued checkpoint and what comes back of it
    assert judged() == 2
    processor.stop()
    await task


# --- a checkpoint's records in batches --------------------------------------------------

CHANGELOG = "g-accounts-changelog"


def _checkpoint(changelog: list[tuple[bytes, bytes | None]],
                produced: list[tuple[str, int, bytes | None, bytes | None, Any]]) -> Any:
    from service.partition_state import Checkpoint

    return Checkpoint(changelog=changelog, produced=produced, positions={TOPIC: 7})


async def _one_transaction(tmp_path: Path, broker: InMemoryBroker, checkpoint: Any
                           ) -> tuple[Any, list[tuple[str, int, int]]]:
    """`checkpoint` sent by a processor's transaction on partition 0; returns the state
    and the batches sent: (topic, partition, records)."""
    from service.consumer import engine_config
    from service.partition_state import PartitionState

    settings = settings_for(tmp_path, "one")
    processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
    producer = processor.clients.transactional_producer(0)
    await producer.start()
    batches: list[tuple[str, int, int]] = []
    send_batch = producer.send_batch

    async def counted(batch: Any, topic: str, *, partition: int) -> Any:
        batches.append((topic, partition, batch.record_count()))
        return await send_batch(batch, topic, partition=partition)

    producer.send_batch = counted
    state = PartitionState(0, engine_config(settings))
    await processor._transaction(producer, state, checkpoint)
    return state, batches


def _written(broker: InMemoryBroker, topic: str, partition: int) -> list[Any]:
    return [(r.key, r.value, r.headers) for r in broker.logs[topic][partition]
            if r.committed and not r.aborted]


async def test_a_checkpoint_writes_each_partition_its_records_in_order_across_batches(
    tmp_path: Path,
) -> None:
    """Batches per (topic, partition) keep what one send per record wrote: each
    partition's records in the checkpoint's order, headers included; the changelog's
    next offset is the one after its last record, several batches and earlier records
    in the partition on."""
    broker = broker_with_events(partitions=1)
    for topic, partitions in ((CHANGELOG, 1), ("actors", 3), ("signals", 3)):
        broker.create(topic, partitions)
    for n in range(5):  # an earlier owner's records: offsets do not start at 0
        broker.append(CHANGELOG, 0, b"old%d" % n, b"v")
        broker.append("actors", 1, b"old%d" % n, b"v")
    broker.batch_bytes = 400
    changelog: list[tuple[bytes, bytes | None]] = [
        (b"acct-%d" % n, None if n % 7 == 3 else b"x" * (n * 13 % 90)) for n in range(60)]
    produced: list[tuple[str, int, bytes | None, bytes | None, Any]] = [
        ("actors" if n % 2 else "signals", n % 3, b"k%d" % n, b"y" * (n % 50),
         (("score.tier", b"micro"),) if n % 5 == 0 else ()) for n in range(90)]
    state, batches = await _one_transaction(tmp_path, broker, _checkpoint(changelog,
                                                                          produced))
    assert _written(broker, CHANGELOG, 0)[5:] == [(k, v, ()) for k, v in changelog]
    assert state.changelog_next == 5 + len(changelog) == len(broker.logs[CHANGELOG][0])
    for topic in ("actors", "signals"):
        for partition in range(3):
            earlier = 5 if (topic, partition) == ("actors", 1) else 0
            assert _written(broker, topic, partition)[earlier:] == [
                (k, v, h) for t, p, k, v, h in produced if (t, p) == (topic, partition)]
    changelog_batches = [n for topic, _, n in batches if topic == CHANGELOG]
    assert len(changelog_batches) > 3
    assert sum(changelog_batches) == len(changelog)
    assert broker.committed_offsets[TopicPartition(TOPIC, 0)] == 7


async def test_a_full_batch_is_sent_and_the_record_it_refused_starts_the_next(
    tmp_path: Path,
) -> None:
    broker = broker_with_events(partitions=1)
    broker.create(CHANGELOG, 1)
    # Each record: 1 + 100 bytes plus 21; a batch: 61 bytes plus three of them.
    broker.batch_bytes = 61 + 3 * 122
    changelog = [(b"%d" % n, b"v" * 100) for n in range(10)]
    state, batches = await _one_transaction(tmp_path, broker, _checkpoint(changelog, []))
    assert batches == [(CHANGELOG, 0, 3)] * 3 + [(CHANGELOG, 0, 1)]
    assert _written(broker, CHANGELOG, 0) == [(k, v, ()) for k, v in changelog]
    assert state.changelog_next == 10
    # A record larger than a batch goes alone in its own (the broker may refuse it).
    broker.batch_bytes = 100
    state, batches = await _one_transaction(tmp_path, broker, _checkpoint(changelog[:2], []))
    assert batches == [(CHANGELOG, 0, 1)] * 2
    assert state.changelog_next == 12


async def test_a_checkpoint_with_no_changelog_records_leaves_the_changelog_offset(
    tmp_path: Path,
) -> None:
    broker = broker_with_events(partitions=1)
    broker.create(CHANGELOG, 1)
    broker.create("signals", 1)
    state, batches = await _one_transaction(
        tmp_path, broker, _checkpoint([], [("signals", 0, b"k", b"v", ())]))
    assert batches == [("signals", 0, 1)]
    assert state.changelog_next == 0


async def test_a_lost_batch_aborts_the_checkpoint_and_the_next_one_writes_it(
    tmp_path: Path,
) -> None:
    """A batch that fails for good (here the changelog's first of several) must not be
    left out of a committed transaction: it is aborted, its changes are requeued and
    written by the next checkpoint, and no batch's failure is left unretrieved."""
    loop = asyncio.get_running_loop()
    unretrieved: list[dict[str, Any]] = []
    handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unretrieved.append(context))
    try:
        broker = broker_with_events(partitions=1)
        broker.batch_bytes = 200  # the changelog needs several batches
        produce(broker, [post(f"acct-{n}", "p1", 0.0) for n in range(8)])
        settings = settings_for(tmp_path, "one")
        processor = StreamProcessor(settings, Metrics(), InMemoryClients(settings, broker))
        broker.fail_batches = 1
        task = asyncio.create_task(processor.run())
        await run_until(processor,
                        lambda: processor.metrics.checkpoint_failures._value.get() == 1)
        await run_until(processor, lambda: not processor.states[0].uncommitted)
        assert broker.fail_batches == 0
        processor.stop()
        await task
        gc.collect()
        assert not [c for c in unretrieved if "never retrieved" in c.get("message", "")]
    finally:
        loop.set_exception_handler(handler)
    await restore_elsewhere(tmp_path, broker, {f"acct-{n}": 0 for n in range(8)})


async def test_a_partition_taken_over_answers_once_it_has_consumed_what_its_input_held(
    tmp_path: Path,
) -> None:
    """The previous owner answered from events it had not committed: the new one, which
    restored the committed state, waits (503) until it has consumed the input as far as
    the first fetch after the takeover says it reaches, or for `takeover_catch_up_s`."""
    from service.routing import partition_for

    settings = settings_for(tmp_path, "new-owner")
    processor = StreamProcessor(settings, Metrics(),
                                InMemoryClients(settings, broker_with_events()))
    processor.partition_count = 2
    partition = partition_for("x", 2)
    state = processor.states[partition] = processor._new_state(partition)
    state.finish_restore()
    state.position = 3  # the committed position
    state.catch_up(at_most_s=30)
    _, where = processor.locate("x")
    assert isinstance(where, Unavailable)  # no fetch has told the input's end yet
    assert "records to go" not in where.reason
    state.note_input(3, None)
    assert isinstance(processor.locate("x")[1], Unavailable)
    state.note_input(3, 10)  # the first end seen is the one it waits for
    _, where = processor.locate("x")
    assert isinstance(where, Unavailable)
    assert "(7 records to go)" in where.reason
    state.position = 9  # the last record folded; offset 9 is a transaction marker
    state.note_input(9, 12)  # the input grew meanwhile: not waited for
    assert isinstance(processor.locate("x")[1], Unavailable)
    end = state.note_input(10, 12)  # the consumer's position steps over the marker
    assert end is not None
    assert end.behind == 0
    assert isinstance(processor.locate("x")[1], Owned)

    state.catch_up(at_most_s=0.01)  # a long backlog: the wait has a limit
    assert state.note_input(10, 1_000_000) is None
    assert isinstance(processor.locate("x")[1], Unavailable)
    await asyncio.sleep(0.02)
    assert isinstance(processor.locate("x")[1], Owned)
    assert state.catching_up  # until the consumer's next look ends the wait (and logs it)
    end = state.note_input(20, 1_000_001)
    assert end is not None
    assert end.behind == 999_980
    assert end.waited_s >= 0.01
    assert not state.catching_up
    assert state.note_input(30, 1_000_001) is None
    state.catch_up(at_most_s=0.01)  # and no fetch told the input's end in time
    await asyncio.sleep(0.02)
    end = state.note_input(30, None)
    assert end is not None
    assert end.behind is None
    state.catch_up(at_most_s=0)  # off
    assert isinstance(processor.locate("x")[1], Owned)


def test_the_end_of_a_catch_up_is_logged_as_done_or_as_cut_short(
        caplog: pytest.LogCaptureFixture) -> None:
    from service import consumer
    from service.partition_state import CatchUpEnd

    with caplog.at_level(logging.INFO, logger=consumer.log.name):
        consumer._log_catch_up_end(1, 10, CatchUpEnd(0.25, 0))
        consumer._log_catch_up_end(2, 10, CatchUpEnd(10.0, 500))
    done, cut_short = caplog.records
    assert (done.levelno, done.getMessage()) == (logging.INFO, "partition caught up after the move")
    assert cut_short.levelno == logging.WARNING
    assert "before catching up" in cut_short.getMessage()
    assert cut_short.records_behind == 500  # type: ignore[attr-defined]
