"""Demo traffic for `make run`: a few hundred accounts of different kinds, first a week
of history, then a live stream, so a newcomer sees scores appear and move. While the
live stream runs, a few more accounts are onboarded the way a crawler brings them: one
account's 20 days of history at a time, weeks behind the stream's time (a backfill).

    python -m service.demo [--accounts 300] [--rate 400]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from dataclasses import replace

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.settings import Settings
from service.simulation import (
    AUTHENTIC_MICRO,
    MID_TYPICAL,
    POD_PUMPED,
    Profile,
    account_events,
    demo_accounts,
    rfc3339,
    varied,
)

HISTORY_DAYS = 7
MAX_DEMO_INTERACTIONS_PER_POST = 80
NEW_POST_CHANCE = 0.005
# Onboarded during the live stream, one every ONBOARD_EVERY_S, each with its history.
ONBOARDED = (AUTHENTIC_MICRO, POD_PUMPED, MID_TYPICAL)
ONBOARDED_HISTORY_DAYS = 20
ONBOARD_EVERY_S = 15.0


async def produce(accounts: int, rate: float, seed: int) -> None:
    settings = Settings()
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers,
                                linger_ms=20, acks=1)
    await producer.start()
    try:
        chosen = demo_accounts(accounts, rng)
        now = time.time()
        if await _topic_holds_events(settings, producer):
            # This history (its times follow the clock) and the onboarded accounts were
            # sent by the first run; sent again they would be new events.
            print("demo: the topic already holds events; streaming live only", flush=True)
            await _stream_live(producer, settings.events_topic, chosen, rate, rng)
            return
        history: list[dict[str, object]] = []
        for account_id, profile in chosen:
            history.extend(_history(account_id, profile, HISTORY_DAYS, now, rng))
        # In time order, as a real replay would be: the engine windows by event time.
        history.sort(key=lambda event: str(event["occurred_at"]))
        for event in history:
            await producer.send(settings.events_topic, orjson.dumps(event),
                                key=str(event["account_id"]).encode())
        sent = len(history)
        await producer.flush()
        print(f"demo: sent {sent} events of history for {accounts} accounts; "
              f"now streaming live at ~{rate:g} events/s", flush=True)
        kinds = sorted({account_id.rsplit("-", 1)[0] for account_id, _ in chosen})
        print("demo: one account of each kind: "
              + " ".join(f"{kind}-0000" for kind in kinds), flush=True)
        await asyncio.gather(
            _stream_live(producer, settings.events_topic, chosen, rate, rng),
            _onboard(producer, settings, chosen, rng))
    finally:
        await producer.stop()


def _history(account_id: str, profile: Profile, days: float, now: float,
             rng: random.Random) -> list[dict[str, object]]:
    """The account's posts and interactions of the last `days`, in time order."""
    shaped = replace(profile, interactions_per_post=min(
        profile.interactions_per_post, MAX_DEMO_INTERACTIONS_PER_POST))
    start = now - days * 86_400 + rng.uniform(0, 86_400)
    spacing = (days * 86_400) / (shaped.posts + 1)
    return [  # same RFC 3339 format throughout: strings order like times
        event for event in account_events(account_id, shaped, start, spacing, rng,
                                          interaction_span_s=spacing / 2)
        if str(event["occurred_at"]) <= rfc3339(now)]


async def _onboard(producer: AIOKafkaProducer, settings: Settings,
                   live: list[tuple[str, Profile]], rng: random.Random) -> None:
    """New accounts as a crawler brings them: one account's whole history, weeks behind
    the live stream's time, then the account joins the live stream. Each counts in
    full (docs/scoring.md, time and windows)."""
    for profile in ONBOARDED:
        await asyncio.sleep(ONBOARD_EVERY_S)
        account_id = f"onboarded-{profile.kind}-0000"
        shaped = varied(profile, rng)
        history = _history(account_id, shaped, ONBOARDED_HISTORY_DAYS, time.time(), rng)
        for event in history:
            await producer.send(settings.events_topic, orjson.dumps(event),
                                key=account_id.encode())
        await producer.flush()
        live.append((account_id, shaped))
        print(f"demo: onboarded {account_id} with {len(history)} events of "
              f"{ONBOARDED_HISTORY_DAYS} days' history, sent after the live stream's; "
              f"try curl -s localhost:{settings.http_port}/accounts/{account_id}/score",
              flush=True)


async def _topic_holds_events(settings: Settings, producer: AIOKafkaProducer) -> bool:
    partitions = await producer.partitions_for(settings.events_topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(
            [TopicPartition(settings.events_topic, p) for p in partitions])
        return any(end > 0 for end in ends.values())
    finally:
        await consumer.stop()


async def _stream_live(producer: AIOKafkaProducer, topic: str,
                       chosen: list[tuple[str, Profile]], rate: float,
                       rng: random.Random) -> None:
    """New posts now and then, and interactions on each account's newest post; accounts
    appended to `chosen` meanwhile join in."""
    run = int(time.time())  # live event ids must differ from an earlier run's
    newest_post: dict[str, str] = {}
    sent = 0
    started = time.monotonic()
    while True:
        account_id, profile = rng.choice(chosen)
        if account_id not in newest_post:
            newest_post[account_id] = f"{account_id}-post-{profile.posts - 1}"
        event: dict[str, object]
        if rng.random() < NEW_POST_CHANCE:
            post_id = f"{account_id}-live-{run}-{sent}"
            newest_post[account_id] = post_id
            event = {"event_id": f"{post_id}-created", "type": "post",
                     "account_id": account_id, "post_id": post_id,
                     "sponsored": rng.random() < profile.sponsored_share,
                     "topics": ["live"], "occurred_at": rfc3339(time.time())}
        else:
            kind = "like"
            if rng.random() < profile.deep_share:
                kind = "comment" if rng.random() < 0.7 else "share"
            event = {"event_id": f"{account_id}-live-{run}-{sent}", "type": kind,
                     "account_id": account_id, "post_id": newest_post[account_id],
                     "actor_id": f"{account_id}-fan-{rng.randrange(profile.audience)}",
                     "occurred_at": rfc3339(time.time())}
        await producer.send(topic, orjson.dumps(event), key=account_id.encode())
        sent += 1
        ahead = sent / rate - (time.monotonic() - started)
        if ahead > 0:
            await asyncio.sleep(ahead)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--rate", type=float, default=400.0, help="live events per second")
    parser.add_argument("--seed", type=int, default=1,
                        help="the same seed gives the same accounts, so re-runs continue them")
    arguments = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(produce(arguments.accounts, arguments.rate, arguments.seed))


if __name__ == "__main__":
    main()
