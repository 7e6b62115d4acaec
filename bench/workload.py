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
        seconds = moment.timestamp()
        partition = index % partitions
        engine.apply(FollowersEvent(f"{account}-f", account, moment, seconds,
                                    rng.randrange(200, 20_000)), partition)
        for post in range(2):
            post_id = f"{account}-p{post}"
            engine.apply(PostEvent(f"{post_id}-c", account, moment, seconds, post_id,
                                   rng.random() < 0.2, ("veganism",)), partition)
            for number in range(3):
                kind = LikeEvent if number else CommentEvent
                at = moment + timedelta(seconds=40 + number)
                engine.apply(kind(f"{post_id}-{number}", account, at, at.timestamp(), post_id,
                                  f"fan-{rng.randrange(4)}"), partition)
        applied += 9
    return applied


def fresh_engine(max_accounts: int = 2_000_000) -> Engine:
    return Engine(EngineConfig(max_accounts=max_accounts))
