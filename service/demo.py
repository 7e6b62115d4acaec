"""Demo traffic for `make run`: a few hundred accounts of different kinds, first a week
of history, then a live stream, so a newcomer sees scores appear and move.

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
from service.simulation import Profile, account_events, demo_accounts, rfc3339

HISTORY_DAYS = 7
MAX_DEMO_INTERACTIONS_PER_POST = 80
NEW_POST_CHANCE = 0.005


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
            # The stream's time is already past this history: it would only count as late.
            print("demo: the topic already holds events; streaming live only", flush=True)
            await _stream_live(producer, settings.events_topic, chosen, rate, rng)
            return
        history: list[dict[str, object]] = []
        for account_id, profile in chosen:
            shaped = replace(profile, interactions_per_post=min(
                profile.interactions_per_post, MAX_DEMO_INTERACTIONS_PER_POST))
            start = now - HISTORY_DAYS * 86_400 + rng.uniform(0, 86_400)
            spacing = (HISTORY_DAYS * 86_400) / (shaped.posts + 1)
            history.extend(  # same RFC 3339 format throughout: strings order like times
                event for event in account_events(account_id, shaped, start, spacing, rng,
                                                  interaction_span_s=spacing / 2)
                if str(event["occurred_at"]) <= rfc3339(now))
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
        await _stream_live(producer, settings.events_topic, chosen, rate, rng)
    finally:
        await producer.stop()


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
    """New posts now and then, and interactions on each account's newest post."""
    run = int(time.time())  # live event ids must differ from an earlier run's
    newest_post = {account_id: f"{account_id}-post-{profile.posts - 1}"
                   for account_id, profile in chosen}
    sent = 0
    started = time.monotonic()
    while True:
        account_id, profile = rng.choice(chosen)
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
