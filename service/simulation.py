"""Realistic synthetic traffic: accounts of different sizes and kinds, as event dicts.

Used by the demo producer (`make run`), the end-to-end tests and the benchmarks, so all
three see the same kinds of accounts: authentic niche accounts, engagement pods, paid
feeds, scattered feeds, like-only feeds and large accounts with low engagement.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

EventDict = dict[str, Any]
TOPICS = ("veganism", "motherhood", "running", "chronic-illness", "climate", "gardening",
          "gaming", "fashion", "travel", "finance", "cooking", "photography")


@dataclass(frozen=True, slots=True)
class Profile:
    kind: str
    followers: int
    posts: int
    interactions_per_post: int
    deep_share: float  # comments and shares among interactions
    audience: int  # distinct people who may interact
    loyal_core_share: float  # interactions that come from the most attached tenth
    burst_share: float  # interactions within seconds of posting
    sponsored_share: float
    topic_pool: int  # how many topics the account posts about


AUTHENTIC_MICRO = Profile("authentic-micro", 5_000, 6, 300, 0.22, 1_500, 0.5, 0.01, 0.1, 1)
POD_PUMPED = Profile("pod-pumped", 5_000, 6, 300, 0.22, 12, 0.5, 0.8, 0.1, 1)
PAID_FEED = Profile("paid-feed", 5_000, 6, 300, 0.22, 1_500, 0.5, 0.01, 0.85, 1)
SCATTERED = Profile("scattered", 5_000, 6, 300, 0.22, 1_500, 0.5, 0.01, 0.1, 12)
LIKES_ONLY = Profile("likes-only", 5_000, 6, 300, 0.0, 1_500, 0.5, 0.01, 0.1, 1)
MEGA_LOW = Profile("mega-low-rate", 2_000_000, 6, 2_000, 0.1, 200_000, 0.05, 0.02, 0.3, 4)
NANO_AUTHENTIC = Profile("nano-authentic", 600, 6, 45, 0.3, 150, 0.6, 0.01, 0.0, 1)
MID_TYPICAL = Profile("mid-typical", 40_000, 6, 700, 0.12, 20_000, 0.2, 0.03, 0.3, 3)
MACRO_TYPICAL = Profile("macro-typical", 400_000, 6, 1_500, 0.08, 100_000, 0.1, 0.03, 0.5, 4)

# Real posts draw different numbers of interactions; identical counts on every post are
# what bought packages look like (the `post_variation` component). Fixed factors, so the
# random stream (and every seed's events) stays as it was apart from the counts.
PER_POST_SPREAD = (1.0, 0.7, 1.3, 0.85, 1.15, 0.6, 1.4)

DEMO_MIX: tuple[tuple[Profile, float], ...] = (
    (AUTHENTIC_MICRO, 0.30), (NANO_AUTHENTIC, 0.15), (MID_TYPICAL, 0.12),
    (POD_PUMPED, 0.08), (PAID_FEED, 0.08), (SCATTERED, 0.08), (LIKES_ONLY, 0.07),
    (MACRO_TYPICAL, 0.07), (MEGA_LOW, 0.05),
)


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def varied(profile: Profile, rng: random.Random) -> Profile:
    """The same kind of account with some natural spread in size and activity."""
    scale = rng.uniform(0.6, 1.4)
    return replace(
        profile,
        followers=max(1, int(profile.followers * scale)),
        interactions_per_post=max(1, int(profile.interactions_per_post * scale
                                         * rng.uniform(0.8, 1.2))),
        audience=max(2, int(profile.audience * scale)),
    )


def account_events(account_id: str, profile: Profile, start: float, spacing_s: float,
                   rng: random.Random, interaction_span_s: float = 6 * 3600.0) -> list[EventDict]:
    """All events of one account: a follower count, posts `spacing_s` apart from `start`,
    and their interactions; sorted by occurred_at."""
    events: list[EventDict] = [{
        "event_id": f"{account_id}-followers-0", "type": "followers",
        "account_id": account_id, "followers": profile.followers, "occurred_at": rfc3339(start),
    }]
    topics = rng.sample(TOPICS, k=min(profile.topic_pool, len(TOPICS)))
    core = max(1, profile.audience // 10)
    for index in range(profile.posts):
        posted_at = start + 1 + index * spacing_s
        post_id = f"{account_id}-post-{index}"
        events.append({
            "event_id": f"{post_id}-created", "type": "post", "account_id": account_id,
            "post_id": post_id, "sponsored": rng.random() < profile.sponsored_share,
            "topics": [rng.choice(topics)], "occurred_at": rfc3339(posted_at),
        })
        count = max(1, round(profile.interactions_per_post
                             * PER_POST_SPREAD[index % len(PER_POST_SPREAD)]))
        for number in range(count):
            if rng.random() < profile.loyal_core_share:
                actor = rng.randrange(core)
            else:
                actor = rng.randrange(profile.audience)
            if rng.random() < profile.burst_share:
                delay = rng.uniform(0.5, 20.0)
            else:
                delay = min(interaction_span_s, 25.0 + rng.expovariate(3 / interaction_span_s))
            kind = "like"
            if rng.random() < profile.deep_share:
                kind = "comment" if rng.random() < 0.7 else "share"
            events.append({
                "event_id": f"{post_id}-{number}", "type": kind, "account_id": account_id,
                "post_id": post_id, "actor_id": f"{account_id}-fan-{actor}",
                "occurred_at": rfc3339(posted_at + delay),
            })
    events.sort(key=lambda event: event["occurred_at"])
    return events


def demo_accounts(count: int, rng: random.Random) -> list[tuple[str, Profile]]:
    profiles = [profile for profile, _ in DEMO_MIX]
    weights = [weight for _, weight in DEMO_MIX]
    # The first of each kind is always there (authentic-micro-0000, pod-pumped-0000, ...),
    # so the README's examples work whatever the seed.
    extra = max(0, count - len(profiles))
    chosen = profiles[:count] + rng.choices(profiles, weights=weights, k=extra)
    numbered: dict[str, int] = {}
    accounts = []
    for profile in chosen:
        number = numbered.get(profile.kind, 0)
        numbered[profile.kind] = number + 1
        accounts.append((f"{profile.kind}-{number:04d}", varied(profile, rng)))
    return accounts
