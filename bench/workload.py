"""Accounts for the memory and snapshot benchmarks: built straight into an engine, with
the mix of state a real account carries (a follower count, posts, interactions)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from service.engine import Engine, EngineConfig
from service.events import CommentEvent, FollowersEvent, LikeEvent, PostEvent

START = datetime(2026, 11, 1, tzinfo=UTC)


def populate(engine: Engine, accounts: int, seed: int = 1, first: int = 0,
             partitions: int = 3) -> int:
    """Accounts `first` to `first + accounts - 1`, each with a follower count, 2 posts,
    6 interactions by 4 actors, spread over `partitions`. Returns the number of events
    applied."""
    rng = random.Random(seed)
    applied = 0
    for index in range(first, first + accounts):
        account = f"acct-{index}"
        moment = START + timedelta(milliseconds=index)
        partition = index % partitions
        engine.apply(FollowersEvent.model_construct(
            event_id=f"{account}-f", type="followers", account_id=account,
            followers=rng.randrange(200, 20_000), occurred_at=moment), partition)
        for post in range(2):
            post_id = f"{account}-p{post}"
            engine.apply(PostEvent.model_construct(
                event_id=f"{post_id}-c", type="post", account_id=account, post_id=post_id,
                sponsored=rng.random() < 0.2, topics=["veganism"], occurred_at=moment),
                partition)
            for number in range(3):
                kind = LikeEvent if number else CommentEvent
                engine.apply(kind.model_construct(
                    event_id=f"{post_id}-{number}", type=kind.__name__[:-5].lower(),
                    account_id=account, post_id=post_id,
                    actor_id=f"fan-{rng.randrange(4)}",
                    occurred_at=moment + timedelta(seconds=40 + number)), partition)
        applied += 9
    return applied


def fresh_engine(max_accounts: int = 2_000_000) -> Engine:
    return Engine(EngineConfig(max_accounts=max_accounts))
