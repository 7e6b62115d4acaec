"""How well credibility separates authentic accounts from bought ones: a labelled,
randomised population fed straight into `Engine`, with the actor side
(`ActorActivity`) in the same process for the cross-account signal.

    python -m bench.scoring [--seed 1] [--quick] [--co-engagement] [--candidates]
    python -m bench.scoring --candidates-only [--communities] [--farm-defence]

Prints, for every kind of fraud: the AUC of credibility (authentic against that kind;
1.0 = every authentic account above every fraud), the AUC with each component removed
(ablation), the AUC of candidate signals on their own, the share of fraud per score
band (calibration), and the seed's orderings (principle pairs with equal followers).

The world: `--authentic` real accounts (nano, micro, mid) whose audiences are people
drawn from one shared pool, each person engaging with a stable handful of accounts
(a few power users with dozens); posts at daytime in the account's time zone,
interactions decaying over hours with a night trough, per-post counts that vary,
organic follower growth. Farms: bot pools shared by all their customers, each bot also
serving accounts outside the labelled set (their interactions reach the actor side
only). The kinds of fraud are in `FRAUD_KINDS`; every account's size, posts and rates
are drawn at random.

`--candidates` measures candidate second signals against the narrow docs reader
(`CANDIDATES`) on the raw events; `--communities` builds the world they need (people with
a home time zone and interests, audiences drawn from them), `--farm-defence` gives the
docs readers' farms the defence a farm can afford against them.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import math
import random
import time
import tracemalloc
import zlib
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from service.engine import Engine, EngineConfig
from service.engine.audience import (
    MONTH_ACCOUNTS,
    MONTH_TURNOVER,
    ActorActivity,
    ActorInteraction,
    account_bit,
)
from service.engine.scoring import COMPONENTS, Credibility
from service.engine.sketches import actor_hash
from service.engine.tiers import expected_engagement_rate
from service.events import CommentEvent, Event, FollowersEvent, LikeEvent, PostEvent, ShareEvent
from service.simulation import (
    AUTHENTIC_MICRO,
    LIKES_ONLY,
    MEGA_LOW,
    PAID_FEED,
    POD_PUMPED,
    SCATTERED,
    Profile,
    account_events,
)

DAY = 86_400.0
HOUR = 3_600.0
START = datetime(2026, 10, 1, tzinfo=UTC).timestamp()
SPAN_DAYS = 26  # posts go up over this many days; the score is taken at the end
TOPICS = ("veganism", "motherhood", "running", "chronic-illness", "climate", "gardening",
          "gaming", "fashion", "travel", "finance", "cooking", "photography")
ZONES = (-8, -5, 0, 1, 2, 5.5, 8, 9)  # accounts' (and, in --communities, people's) zones
BRANDS = ("fashion", "finance", "travel", "cosmetics", "energy-drinks", "crypto")
FRAUD_KINDS = ("engagement_pod", "burst_farm", "drip_bought_likes", "bought_comments",
               "mixed_real_and_bought", "fake_followers", "tuned_rate", "unflagged_sponsoring",
               "issue_adversary", "docs_reader", "narrow_docs_reader")
# A narrow docs reader's bots serve as few accounts as real people do.
NARROW_BREADTH = 3

# One raw event: (time, kind, account, post_id, actor_id, payload)
Raw = tuple[float, str, str, str, str, object]


@dataclass
class World:
    rng: random.Random
    raw: list[Raw] = field(default_factory=list)
    actor_only: list[tuple[float, str, str]] = field(default_factory=list)  # (t, actor, acct)
    labels: dict[str, str] = field(default_factory=dict)  # account -> kind
    # Candidate signals measured from the raw events, before deciding to keep state.
    interaction_times: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    time_zone: dict[str, float] = field(default_factory=dict)
    ids: Iterable[int] = field(default_factory=itertools.count)
    # The candidates' world (`--communities`): each person's home time zone, and each
    # labelled account's main topic (outside accounts: `outside_shard`).
    person_zone: dict[str, float] = field(default_factory=dict)
    account_topic: dict[str, str] = field(default_factory=dict)

    def emit(self, moment: float, kind: str, account: str, post_id: str = "",
             actor: str = "", payload: object = None) -> None:
        self.raw.append((moment, kind, account, post_id, actor, payload))
        if actor:
            self.interaction_times[account].append(moment)


# -- people and their audiences ------------------------------------------------------------

def human_breadth(rng: random.Random) -> int:
    """How many of the tracked accounts a real person engages with."""
    draw = rng.random()
    if draw < 0.70:
        return rng.randint(1, 3)
    if draw < 0.95:
        return rng.randint(4, 8)
    if draw < 0.99:
        return rng.randint(9, 20)
    return rng.randint(20, 45)  # power users


def deal_audiences(sizes: dict[str, int], rng: random.Random) -> dict[str, list[str]]:
    """Audiences from one pool of people: each person holds `human_breadth` places, the
    places are shuffled and dealt out, so people overlap across accounts naturally."""
    places: list[str] = []
    person = 0
    while len(places) < sum(sizes.values()):
        places += [f"h{person}"] * human_breadth(rng)
        person += 1
    rng.shuffle(places)
    audiences: dict[str, list[str]] = {}
    start = 0
    for account, size in sizes.items():
        audiences[account] = list(dict.fromkeys(places[start : start + size]))
        start += size
    return audiences


def deal_communities(sizes: dict[str, int], shapes: dict[str, Shape], world: World,
                     rng: random.Random) -> dict[str, list[str]]:
    """Audiences as communities (`--communities`, the candidates' world): every person
    has a home time zone and one or two interests; 80 % of a person's places are on one
    of its interests, and an account's audience is drawn 70 % from people interested in
    its main topic and 85 % from its own zone (the default world's sixth in other
    zones). People's breadth is `human_breadth` as in the default world; only *whom*
    they engage with changes."""
    demand: Counter[tuple[str, float]] = Counter()
    for account, size in sizes.items():
        demand[(shapes[account].main_topic, shapes[account].zone_h)] += size
    keys = list(demand)
    weights = list(itertools.accumulate(demand[key] for key in keys))
    places: dict[tuple[str, float], list[str]] = defaultdict(list)
    total = 0
    person = 0
    while total < sum(sizes.values()) * 1.1:
        topic, zone = keys[bisect.bisect_left(weights, rng.random() * weights[-1])]
        interests = [topic] + ([rng.choice(TOPICS)] if rng.random() < 0.4 else [])
        name = f"h{person}"
        world.person_zone[name] = zone
        for _ in range(human_breadth(rng)):
            place_topic = rng.choice(interests) if rng.random() < 0.8 else rng.choice(TOPICS)
            places[(place_topic, zone)].append(name)
            total += 1
        person += 1
    for pool in places.values():
        rng.shuffle(pool)
    nonempty = [key for key, pool in places.items() if pool]
    audiences: dict[str, list[str]] = {}
    for account, size in sizes.items():
        shape = shapes[account]
        drawn = []
        for _ in range(size):
            key = (shape.main_topic if rng.random() < 0.7 else rng.choice(TOPICS),
                   shape.zone_h if rng.random() < 0.85 else rng.choice(ZONES))
            while not places.get(key):
                nonempty = [k for k in nonempty if places[k]]
                key = rng.choice(nonempty)
            drawn.append(places[key].pop())
        audiences[account] = list(dict.fromkeys(drawn))
    return audiences


def activity_weights(count: int, rng: random.Random) -> list[float]:
    """Cumulative weights: a few people interact on most posts, most now and then."""
    weights = [rng.paretovariate(1.3) for _ in range(count)]
    return list(itertools.accumulate(weights))


def pick(audience: list[str], cumulative: list[float], rng: random.Random) -> str:
    return audience[bisect.bisect_left(cumulative, rng.random() * cumulative[-1])]


# -- time --------------------------------------------------------------------------------

def human_delay(rng: random.Random, posted_at: float, zone_h: float,
                own_zone: bool = False) -> float:
    """Seconds after posting at which a person interacts: mostly within hours, fewer at
    night in the account's time zone (`own_zone`: in the person's own, `zone_h`), a few
    with notifications on within seconds."""
    if rng.random() < 0.01:
        return rng.uniform(2, 25)
    # A sixth of an audience lives in another time zone.
    if not own_zone and rng.random() < 0.15:
        zone_h += rng.choice((-9, -6, 6, 9))
    while True:
        delay = 30 + rng.expovariate(1 / (3 * HOUR))
        local_hour = ((posted_at + delay) / HOUR + zone_h) % 24
        if 1 <= local_hour < 7 and rng.random() < 0.7:
            continue
        return min(delay, 3 * DAY)


def daytime_post(rng: random.Random, day: int, zone_h: float) -> float:
    local = rng.uniform(8, 22)
    return START + day * DAY + (local - zone_h) * HOUR


# -- farms -------------------------------------------------------------------------------

@dataclass
class Farm:
    name: str
    bots: list[str]
    # How many accounts outside the labelled set each bot serves per day: their
    # interactions reach the actor side only.
    outside_per_day: float
    # The candidates' world (`--communities`): outside work on a human day in the
    # outside account's zone, as a docs reader must deliver (its other customers'
    # daily_rhythm would catch it); `shard_of` (`--farm-defence`): each bot's outside
    # accounts share the topic and zone of its (first) labelled customer.
    human_day: bool = False
    shard_of: dict[str, tuple[str, float]] = field(default_factory=dict)

    def background(self, world: World, rng: random.Random) -> None:
        # From a period before the first post (the actor side's memory) to the end.
        for bot in self.bots:
            shard = self.shard_of.get(bot)
            for day in range(-8, SPAN_DAYS + 1):
                for _ in range(_poisson(rng, self.outside_per_day)):
                    if not self.human_day:  # the default world (its draws in this order)
                        moment = START + (day + rng.random()) * DAY
                        index = rng.randrange(OUTSIDE_ACCOUNTS)
                    else:
                        index = (rng.randrange(OUTSIDE_ACCOUNTS) if shard is None
                                 else outside_index(shard, rng))
                        local = rng.uniform(7, 25)  # 7:00 to 1:00
                        moment = START + day * DAY + (local - outside_shard(index)[1]) * HOUR
                    world.actor_only.append((moment, bot, f"outside-{self.name}-{index}"))


OUTSIDE_ACCOUNTS = 50_000  # per farm


def outside_shard(index: int) -> tuple[str, float]:
    """The topic and time zone of a farm's outside account (the candidates' world)."""
    return TOPICS[index % len(TOPICS)], ZONES[(index // len(TOPICS)) % len(ZONES)]


def outside_index(shard: tuple[str, float], rng: random.Random) -> int:
    """A random outside account of the given topic and zone."""
    per_round = len(TOPICS) * len(ZONES)
    return (TOPICS.index(shard[0]) + len(TOPICS) * ZONES.index(shard[1])
            + per_round * rng.randrange(OUTSIDE_ACCOUNTS // per_round))


def _poisson(rng: random.Random, mean: float) -> int:
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


# -- accounts ------------------------------------------------------------------------------

@dataclass
class Shape:
    followers: int
    posts: int
    ratio: float  # real engagement, in multiples of normal for the size
    deep_share: float
    sponsored_share: float
    main_topic: str
    off_topic_share: float
    growth: float  # organic follower growth over the span
    zone_h: float


def authentic_shape(rng: random.Random) -> Shape:
    draw = rng.random()
    if draw < 0.15:
        followers = int(math.exp(rng.uniform(math.log(300), math.log(1_000))))
    elif draw < 0.85:
        followers = int(math.exp(rng.uniform(math.log(1_000), math.log(10_000))))
    else:
        followers = int(math.exp(rng.uniform(math.log(10_000), math.log(25_000))))
    return Shape(
        followers=followers,
        posts=rng.randint(3, 8),
        ratio=math.exp(rng.gauss(math.log(1.2), 0.35)),
        deep_share=rng.uniform(0.10, 0.35),
        sponsored_share=rng.choice((0.0, 0.0, 0.1, 0.2, 0.3)),
        main_topic=rng.choice(TOPICS),
        off_topic_share=rng.choice((0.0, 0.0, 0.1, 0.2, 0.35)),
        growth=rng.uniform(-0.02, 0.15),
        zone_h=rng.choice(ZONES),
    )


def posts_of(world: World, account: str, shape: Shape, rng: random.Random,
             ad_share: float = 0.0) -> list[tuple[str, float, bool]]:
    """Emits the account's posts and follower counts; returns (post_id, time, is_ad)."""
    days = sorted(rng.sample(range(SPAN_DAYS), shape.posts))
    posts = []
    for index, day in enumerate(days):
        posted_at = daytime_post(rng, day, shape.zone_h)
        post_id = f"{account}-p{index}"
        is_ad = rng.random() < ad_share
        if is_ad:
            topics = [rng.choice(BRANDS)]
        elif rng.random() < shape.off_topic_share:
            topics = [rng.choice(TOPICS)]
        else:
            topics = [shape.main_topic]
        sponsored = (not is_ad) and rng.random() < shape.sponsored_share
        world.emit(posted_at, "post", account, post_id, "", (sponsored, topics))
        posts.append((post_id, posted_at, is_ad))
    for day in range(-3, SPAN_DAYS + 1, 2):
        count = int(shape.followers * (1 + shape.growth * max(day, 0) / SPAN_DAYS))
        world.emit(START + day * DAY + 1, "followers", account, "", "", count)
    world.time_zone[account] = shape.zone_h
    return posts


def real_engagement(world: World, account: str, shape: Shape,
                    posts: list[tuple[str, float, bool]], audience: list[str],
                    rng: random.Random, scale: float = 1.0, ad_scale: float = 1.0) -> None:
    cumulative = activity_weights(len(audience), rng)
    per_post = shape.ratio * expected_engagement_rate(shape.followers) * shape.followers * scale
    for post_id, posted_at, is_ad in posts:
        count = int(per_post * math.exp(rng.gauss(0, 0.45)) * (ad_scale if is_ad else 1.0))
        deep = shape.deep_share * (0.5 if is_ad else 1.0)
        for _ in range(count):
            actor = pick(audience, cumulative, rng)
            kind = _kind(rng, deep)
            home = world.person_zone.get(actor)
            delay = (human_delay(rng, posted_at, shape.zone_h) if home is None
                     else human_delay(rng, posted_at, home, own_zone=True))
            world.emit(posted_at + delay, kind, account, post_id, actor)


def _kind(rng: random.Random, deep_share: float) -> str:
    if rng.random() < deep_share:
        return "comment" if rng.random() < 0.7 else "share"
    return "like"


def bought(world: World, account: str, posts: list[tuple[str, float, bool]], farm: Farm,
           per_post: float, rng: random.Random, *, deep_share: float, spread_s: float,
           burst: bool = False, jitter: float = 0.02, diurnal_zone: float | None = None,
           returning_pool: list[str] | None = None) -> None:
    """Interactions delivered by a farm: `per_post` each (+- jitter), from bots drawn
    from the farm (or from a per-customer pool of returning bots), in a burst after
    posting or spread evenly over `spread_s` (optionally following the day)."""
    for post_id, posted_at, _ in posts:
        count = int(per_post * math.exp(rng.gauss(0, jitter)))
        pool = returning_pool or farm.bots
        for _ in range(count):
            actor = rng.choice(pool)
            if burst:
                moment = posted_at + rng.uniform(1, 28)
            elif diurnal_zone is not None:
                moment = posted_at + human_delay(rng, posted_at, diurnal_zone)
            else:
                moment = posted_at + 30 + rng.uniform(0, spread_s)
            world.emit(moment, _kind(rng, deep_share), account, post_id, actor)


def expected_per_post(shape: Shape) -> float:
    return expected_engagement_rate(shape.followers) * shape.followers


@dataclass
class Population:
    authentic: int
    per_kind: int
    docs_breadth: int  # accounts a docs-reader's bot serves per day, outside included
    # The narrow docs reader's farm at --per-kind 30 (scaled with it): 3x the bots its
    # customers' pools take, so most of its bots serve one labelled customer.
    narrow_farm_bots: int = 40_000
    # The candidates' world: audiences as communities of topic and zone, and farms of
    # docs readers working on a human day (`deal_communities`, `Farm.human_day`).
    communities: bool = False
    # The docs readers' farms shard their bots by customer topic and zone.
    farm_defence: bool = False


def build(population: Population, seed: int) -> World:
    rng = random.Random(seed)
    world = World(rng)
    shapes: dict[str, Shape] = {}
    kinds: dict[str, str] = {}
    for index in range(population.authentic):
        shapes[f"authentic-{index:04d}"] = authentic_shape(rng)
        kinds[f"authentic-{index:04d}"] = "authentic"
    for kind in FRAUD_KINDS:
        for index in range(population.per_kind):
            account = f"{kind}-{index:04d}"
            shapes[account] = authentic_shape(rng)
            kinds[account] = kind
    world.labels = kinds
    # Real people's audiences: about a fifth of the followers ever interact.
    sizes = {account: max(20, int(shape.followers * rng.uniform(0.1, 0.3)))
             for account, shape in shapes.items()}
    audiences = (deal_communities(sizes, shapes, world, rng) if population.communities
                 else deal_audiences(sizes, rng))
    world.account_topic = {account: shape.main_topic for account, shape in shapes.items()}

    # Pools scale with the number of customers in the labelled set, so a bot serves
    # about as many of them in --quick as in a full run.
    scale = population.per_kind / 30
    big_farm = Farm("farm", [f"bot{n}" for n in range(int(4_000 * scale))],
                    outside_per_day=2.0)
    cheap_farm = Farm("cheap", [f"cheap{n}" for n in range(int(1_500 * scale))],
                      outside_per_day=8.0)
    docs_farm = Farm("docs", [], outside_per_day=population.docs_breadth / 8.0)
    docs_bots = [f"quiet{n}" for n in range(int(40_000 * scale))]
    narrow_farm = Farm("narrow", [], outside_per_day=NARROW_BREADTH / 8.0)
    narrow_bots = [f"narrow{n}" for n in range(int(population.narrow_farm_bots * scale))]
    farms = (big_farm, cheap_farm, docs_farm, narrow_farm)
    docs_farm.human_day = narrow_farm.human_day = population.communities
    pod_posts: dict[str, list[tuple[str, float, bool]]] = {}
    pods = [[account for account in kinds if kinds[account] == "engagement_pod"][start::2]
            for start in range(2)]

    for account, shape in shapes.items():
        kind = kinds[account]
        audience = audiences[account]
        normal = expected_per_post(shape)
        if kind == "authentic":
            real_engagement(world, account, shape, posts_of(world, account, shape, rng),
                            audience, rng)
        elif kind == "engagement_pod":
            posts = pod_posts[account] = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng,
                            scale=rng.uniform(0.4, 0.9))
        elif kind == "burst_farm":
            shape.ratio *= rng.uniform(0.3, 0.7)
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            bought(world, account, posts, cheap_farm, normal * rng.uniform(1.5, 4.0), rng,
                   deep_share=0.02, spread_s=0, burst=True)
        elif kind == "drip_bought_likes":
            shape.ratio *= rng.uniform(0.3, 0.7)
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            bought(world, account, posts, big_farm, normal * rng.uniform(1.5, 4.0), rng,
                   deep_share=0.0, spread_s=rng.uniform(6, 24) * HOUR)
        elif kind == "bought_comments":
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng,
                            scale=rng.uniform(0.5, 0.9))
            bought(world, account, posts, big_farm, normal * rng.uniform(0.3, 0.8), rng,
                   deep_share=0.9, spread_s=rng.uniform(3, 12) * HOUR)
        elif kind == "mixed_real_and_bought":
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            bought(world, account, posts, big_farm, normal * rng.uniform(0.8, 1.6), rng,
                   deep_share=0.15, spread_s=rng.uniform(6, 24) * HOUR, jitter=0.3)
        elif kind == "fake_followers":
            first = len(world.raw)
            posts = posts_of(world, account, shape, rng)
            # Bought after most posts went up: every count from a late day on is raised.
            jump_at = START + rng.randint(SPAN_DAYS - 10, SPAN_DAYS - 1) * DAY
            extra = int(shape.followers * rng.uniform(0.5, 3.0))
            for index in range(first, len(world.raw)):
                moment, event_kind, owner, post_id, actor, payload = world.raw[index]
                if event_kind == "followers" and moment >= jump_at:
                    assert isinstance(payload, int)
                    world.raw[index] = (moment, event_kind, owner, post_id, actor,
                                        payload + extra)
            real_engagement(world, account, shape, posts, audience, rng)
        elif kind == "tuned_rate":
            shape.ratio *= rng.uniform(0.4, 0.8)
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            target = rng.uniform(2.5, 3.0) - shape.ratio
            bought(world, account, posts, big_farm, normal * max(target, 0.5), rng,
                   deep_share=0.2, spread_s=rng.uniform(6, 24) * HOUR, jitter=0.25)
        elif kind == "unflagged_sponsoring":
            shape.sponsored_share = 0.0
            posts = posts_of(world, account, shape, rng, ad_share=rng.uniform(0.5, 0.8))
            real_engagement(world, account, shape, posts, audience, rng,
                            ad_scale=rng.uniform(0.3, 0.6))
        elif kind == "issue_adversary":
            # The case: 2,000+ actors, dripped over hours, comments mixed in,
            # 2.5-3x normal, one topic, nothing flagged.
            shape.ratio *= rng.uniform(0.3, 0.6)
            shape.sponsored_share = 0.0
            shape.off_topic_share = 0.0
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            target = rng.uniform(2.5, 3.0) - shape.ratio
            bought(world, account, posts, big_farm, normal * max(target, 0.5), rng,
                   deep_share=0.2, spread_s=rng.uniform(4, 20) * HOUR, jitter=0.1)
        else:  # docs readers: every per-account signal in the authentic range
            farm, bots = ((docs_farm, docs_bots) if kind == "docs_reader"
                          else (narrow_farm, narrow_bots))
            shape.ratio *= rng.uniform(0.4, 0.6)
            shape.sponsored_share = 0.0
            shape.off_topic_share = 0.0
            posts = posts_of(world, account, shape, rng)
            real_engagement(world, account, shape, posts, audience, rng)
            target = rng.uniform(2.0, 2.8) - shape.ratio
            per_post = normal * max(target, 0.5)
            # Returning bots: a pool per customer about as large as a real audience,
            # each bot serving `docs_breadth` (narrow: NARROW_BREADTH) accounts per 8
            # days, outside included.
            pool = rng.sample(bots, k=min(len(bots), max(30, int(per_post * 1.5))))
            farm.bots += pool
            if population.farm_defence:
                for bot in pool:
                    farm.shard_of.setdefault(bot, (shape.main_topic, shape.zone_h))
            bought(world, account, posts, farm, per_post, rng, deep_share=0.22,
                   spread_s=0, jitter=0.45, diurnal_zone=shape.zone_h, returning_pool=pool)
    for pod in pods:
        # Pod members are the pod's own owners and a few helpers; each engages with
        # (almost) every post of every other member, many within seconds.
        members = [f"{account}-owner" for account in pod]
        members += [f"pod-helper-{len(pod)}-{n}" for n in range(rng.randint(5, 20))]
        for account in pod:
            for post_id, posted_at, _ in pod_posts[account]:
                for member in members:
                    if member == f"{account}-owner" or rng.random() > 0.8:
                        continue
                    delay = (rng.uniform(5, 25) if rng.random() < 0.4
                             else rng.uniform(30, 2 * HOUR))
                    world.emit(posted_at + delay,
                               "comment" if rng.random() < 0.6 else "like",
                               account, post_id, member)
    docs_farm.bots = list(dict.fromkeys(docs_farm.bots))
    narrow_farm.bots = list(dict.fromkeys(narrow_farm.bots))
    for farm in farms:
        farm.background(world, rng)
    world.raw.sort(key=lambda event: event[0])
    return world


# -- running it --------------------------------------------------------------------------

def to_event(event: Raw, number: int) -> Event:
    moment, kind, account, post_id, actor, payload = event
    occurred_at = datetime.fromtimestamp(moment, UTC)
    event_id = f"e{number}"
    if kind == "post":
        assert isinstance(payload, tuple)
        sponsored, topics = payload
        return PostEvent(event_id=event_id, account_id=account, occurred_at=occurred_at,
                         occurred_at_s=moment, post_id=post_id, sponsored=sponsored,
                         topics=tuple(topics))
    if kind == "followers":
        assert isinstance(payload, int)
        return FollowersEvent(event_id=event_id, account_id=account, occurred_at=occurred_at,
                              occurred_at_s=moment, followers=payload)
    model = {"like": LikeEvent, "comment": CommentEvent, "share": ShareEvent}[kind]
    return model(event_id=event_id, account_id=account, occurred_at=occurred_at,
                 occurred_at_s=moment, post_id=post_id, actor_id=actor)


SIGNAL_BATCH = 2_000


def run(world: World, with_audience: bool = True, month_accounts: float = MONTH_ACCOUNTS,
        month_turnover: int = MONTH_TURNOVER) -> dict[str, Credibility]:
    engine = Engine(EngineConfig(max_accounts=100_000, hot_accounts=100_000))
    activity = ActorActivity(month_accounts=month_accounts, month_turnover=month_turnover)
    hashes: dict[str, int] = {}

    def hashed(actor: str) -> int:
        known = hashes.get(actor)
        if known is None:
            known = hashes[actor] = actor_hash(actor)
        return known

    outside = sorted(world.actor_only)
    outside_index = 0
    batch: list[ActorInteraction] = []
    for number, event in enumerate(world.raw):
        moment = event[0]
        engine.apply(to_event(event, number))
        if not with_audience:
            continue
        # The outside world reaches the actor side in time order with the rest.
        while outside_index < len(outside) and outside[outside_index][0] <= moment:
            seen_at, actor, account = outside[outside_index]
            batch.append(ActorInteraction(hashed(actor), account, seen_at))
            outside_index += 1
        if event[4]:
            batch.append(ActorInteraction(hashed(event[4]), event[2], moment))
        if len(batch) >= SIGNAL_BATCH:
            for signal in activity.observe_batch(batch):
                engine.apply_audience(signal)
            batch = []
    for signal in activity.observe_batch(batch):
        engine.apply_audience(signal)
    scores = {}
    for account in world.labels:
        score = engine.score(account)
        assert score is not None, account
        scores[account] = score.credibility
    return scores


# -- measuring ---------------------------------------------------------------------------

def auc(authentic: list[float], fraud: list[float]) -> float:
    """P(authentic > fraud), ties half: the Mann-Whitney statistic."""
    ranked = sorted([(value, 1) for value in authentic] + [(value, 0) for value in fraud])
    rank_sum = 0.0
    index = 0
    while index < len(ranked):
        end = index
        while end < len(ranked) and ranked[end][0] == ranked[index][0]:
            end += 1
        mean_rank = (index + 1 + end) / 2
        rank_sum += mean_rank * sum(label for _, label in ranked[index:end])
        index = end
    n_a, n_f = len(authentic), len(fraud)
    return (rank_sum - n_a * (n_a + 1) / 2) / (n_a * n_f)


def without(credibility: Credibility, removed: str) -> float:
    """The score recomputed without one component: its quality points or its factor."""
    quality = sum(c.points for name, c in credibility.components.items()
                  if c.role == "quality" and name != removed)
    multiplier = math.prod(c.factor for name, c in credibility.components.items()
                           if c.role == "authenticity" and name != removed)
    return quality * multiplier


def quiet_share(times: list[float], zone_h: float = 0.0) -> float:
    """Share of interactions in the quietest 6 hours of the day (circular, in UTC, so
    it needs no time zone): people sleep, drip-feeding bots do not."""
    del zone_h
    hours = Counter(int(moment // HOUR) % 24 for moment in times)
    total = len(times) or 1
    return min(sum(hours[(start + offset) % 24] for offset in range(6))
               for start in range(24)) / total


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths,
                                                                        strict=True)) + " |"
             for row in rows]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def report(world: World, scores: dict[str, Credibility]) -> None:
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, kind in world.labels.items():
        by_kind[kind].append(account)
    authentic = by_kind["authentic"]
    names = list(COMPONENTS)
    header = ["kind", "n", "mean", "AUC", "min AUC w/o one", "weakest w/o"]
    rows = [header]
    ablation_rows = [["kind", *[name.replace("_", " ") for name in names]]]
    kinds = ["all fraud", *FRAUD_KINDS]
    for kind in kinds:
        fraud = [a for a in world.labels if world.labels[a] != "authentic"] \
            if kind == "all fraud" else by_kind[kind]
        full = auc([scores[a].score for a in authentic], [scores[a].score for a in fraud])
        ablated = {name: auc([without(scores[a], name) for a in authentic],
                             [without(scores[a], name) for a in fraud]) for name in names}
        weakest = min(ablated, key=lambda name: ablated[name])
        mean = sum(scores[a].score for a in fraud) / len(fraud)
        rows.append([kind, str(len(fraud)), f"{mean:.1f}", f"{full:.3f}",
                     f"{ablated[weakest]:.3f}", weakest])
        ablation_rows.append([kind, *[f"{ablated[name]:.2f}" for name in names]])
    mean_authentic = sum(scores[a].score for a in authentic) / len(authentic)
    print(f"authentic: n={len(authentic)}, mean credibility {mean_authentic:.1f}\n")
    print("AUC of credibility, authentic against each kind (and the lowest AUC with any one "
          "component removed):\n")
    print(table(rows))
    print("\nAUC with each component removed (columns):\n")
    print(table(ablation_rows))

    print("\nAUC of single signals on their own (each component's effective value; the "
          "last column is the candidate daily_rhythm was chosen from, measured on the raw "
          "events: the quietest 6 hours of the day, UTC):\n")
    single_rows = [["kind", *[name.replace("_", " ") for name in names], "quiet hours"]]
    for kind in FRAUD_KINDS:
        fraud = by_kind[kind]
        cells = []
        for name in names:
            values = {a: scores[a].components[name].effective_value
                      for a in (*authentic, *fraud)}
            cells.append(f"{auc([values[a] for a in authentic], [values[a] for a in fraud]):.2f}")
        quiet = auc([quiet_share(world.interaction_times[a]) for a in authentic],
                    [quiet_share(world.interaction_times[a]) for a in fraud])
        single_rows.append([kind, *cells, f"{1 - quiet:.2f}"])
    print(table(single_rows))

    print("\nWhat the components saw (median per kind, 10th-90th percentile):\n")
    seen = [("engagement_fit", "ratio"), ("timing_authenticity", "early_share"),
            ("daily_rhythm", "quiet_share"), ("audience_authenticity", "busy_share"),
            ("audience_rotation", "farm_like_share"),
            ("off_topic_engagement", "shortfall"), ("off_topic_conversation", "drop"),
            ("audience_loyalty", "returning_share"),
            ("engagement_concentration", "top_actors_share"),
            ("post_variation", "coefficient_of_variation"),
            ("follower_consistency", "unexplained_growth"),
            ("follower_jumps", "unexplained_jump")]
    seen_rows = [["kind", *[inp.replace("_", " ") for _, inp in seen]]]
    for kind in ("authentic", *FRAUD_KINDS):
        cells = []
        for name, inp in seen:
            values = sorted(float(v) for a in by_kind[kind]
                            if isinstance(v := scores[a].components[name].inputs.get(inp),
                                          (int, float)))
            cells.append(f"{values[len(values) // 2]:.3f} ({values[len(values) // 10]:.3f}"
                         f"-{values[len(values) * 9 // 10]:.3f})" if values else "-")
        seen_rows.append([kind, *cells])
    print(table(seen_rows))

    print("\nCalibration: share of fraud per credibility band (labelled set: "
          f"{len(world.labels) - len(authentic)} fraud of {len(world.labels)} accounts):\n")
    bands = [(85, 101), (70, 85), (50, 70), (30, 50), (0, 30)]
    band_rows = [["credibility", "accounts", "fraud", "share fraud"]]
    for low, high in bands:
        inside = [a for a in world.labels if low <= scores[a].score < high]
        fraud = [a for a in inside if world.labels[a] != "authentic"]
        share = f"{len(fraud) / len(inside):.1%}" if inside else "-"
        band_rows.append([f"{low}-{min(high, 100)}", str(len(inside)), str(len(fraud)), share])
    print(table(band_rows))


# Co-engagement (CopyCatch's lockstep), measured exactly on the raw events before
# deciding to keep state for it: the upper bound of what any sketch of it could show.
LOCKSTEP_PERIOD = 8 * DAY  # the actor side's period
LOCKSTEP_RULES = ((5, 0.0), (10, 0.0), (20, 0.0), (3, 3.0), (5, 10.0))


def co_engagement(world: World) -> tuple[dict[str, dict[tuple[int, float], float]],
                                         dict[int, int]]:
    """Per labelled account, the share of its interactions whose actor, in the same
    8-day period, also engaged another account D that shares at least `least` actors
    with it in that period (and, when `lift` > 0, at least `lift` times the actors two
    audiences of their sizes share by chance in that period's world). Returns those
    shares per rule (least, lift) and the distinct actors of each period."""
    accounts_of: dict[tuple[int, str], Counter[str]] = defaultdict(Counter)
    for moment, _, account, _, actor, _ in world.raw:
        if actor:
            accounts_of[(int((moment - START) // LOCKSTEP_PERIOD), actor)][account] += 1
    for moment, actor, account in world.actor_only:
        accounts_of[(int((moment - START) // LOCKSTEP_PERIOD), actor)][account] += 1
    audiences: dict[tuple[int, str], set[str]] = defaultdict(set)
    world_size: Counter[int] = Counter()
    for (period, actor), engaged in accounts_of.items():
        world_size[period] += 1
        for account in engaged:
            audiences[(period, account)].add(actor)
    shared: dict[tuple[int, str, str], int] = {}
    lockstep: dict[str, Counter[tuple[int, float]]] = {a: Counter() for a in world.labels}
    judged: Counter[str] = Counter()
    for (period, _actor), engaged in accounts_of.items():
        for account in engaged:
            if account not in world.labels:
                continue
            judged[account] += engaged[account]
            own = audiences[(period, account)]
            met: set[tuple[int, float]] = set()
            for other in engaged:
                if other == account:
                    continue
                key = (period, account, other) if account < other else (period, other, account)
                common = shared.get(key)
                if common is None:
                    common = shared[key] = len(own & audiences[(period, other)])
                chance = len(own) * len(audiences[(period, other)]) / world_size[period]
                met.update(rule for rule in LOCKSTEP_RULES
                           if common >= rule[0] and common >= rule[1] * chance)
            for rule in met:
                lockstep[account][rule] += engaged[account]
    shares = {account: {rule: counts[rule] / max(judged[account], 1)
                        for rule in LOCKSTEP_RULES}
              for account, counts in lockstep.items()}
    return shares, dict(world_size)


def report_co_engagement(world: World) -> None:
    shares, world_size = co_engagement(world)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, kind in world.labels.items():
        by_kind[kind].append(account)
    authentic = by_kind["authentic"]
    names = [f">= {least} shared" + (f", {lift:g}x chance" if lift else "")
             for least, lift in LOCKSTEP_RULES]
    rows = [["kind", *names]]
    for kind in ("authentic", *FRAUD_KINDS):
        cells = []
        for rule in LOCKSTEP_RULES:
            values = sorted(shares[a][rule] for a in by_kind[kind])
            median = values[len(values) // 2]
            if kind == "authentic":
                cells.append(f"median {median:.3f}, p90 {values[len(values) * 9 // 10]:.3f}")
            else:
                separation = auc([-shares[a][rule] for a in authentic],
                                 [-shares[a][rule] for a in by_kind[kind]])
                cells.append(f"AUC {separation:.2f} (median {median:.3f})")
        rows.append([kind, *cells])
    print("\nCo-engagement (lockstep), exact, per 8-day period: the share of an account's "
          "interactions whose actor also engaged an account sharing many actors with it "
          "(authentic: the share's median and 90th percentile; fraud: AUC of the share "
          "alone):\n")
    print(table(rows))
    print("\nDistinct actors per 8-day period (the world the chance overlap is taken in): "
          + ", ".join(f"{count:,}" for _, count in sorted(world_size.items())))


class LockstepSketch:
    """A bounded, streaming form of the co-engagement candidate, as the actor side would
    keep it (prototype, measured here only): per actor, the 32-bit hashes of its last
    RECENT accounts with their bucket; per 2-day bucket, a count-min sketch of actors
    per pair of accounts (an actor adds 1 to a pair when it first meets the second
    account of it in the period). An interaction is lockstep when, at that moment, a pair
    of its account and one of its actor's recent others counts >= `least` actors over
    the period's buckets."""

    RECENT = 4

    def __init__(self, least: int, width: int = 1 << 18, depth: int = 2,
                 bucket_s: float = 2 * DAY, buckets: int = 4) -> None:
        assert width & (width - 1) == 0, "a power of two"
        self.least = least
        self.width = width
        self.depth = depth
        self.bucket_s = bucket_s
        self.buckets = buckets
        self.tables = [array("H", bytes(2 * width * depth)) for _ in range(buckets)]
        self.table_bucket = [-1] * buckets
        # actor -> packed (account hash 32 bits, bucket mod 256 8 bits) x RECENT
        self.actors: dict[int, int] = {}
        self.pair_updates = 0

    def observe(self, actor: int, account: int, moment: float) -> bool:
        bucket = int(moment // self.bucket_s)
        slot = bucket % self.buckets
        if self.table_bucket[slot] != bucket:
            self.tables[slot] = array("H", bytes(2 * self.width * self.depth))
            self.table_bucket[slot] = bucket
        state = self.actors.get(actor, 0)
        recent = []
        met = False
        while state:
            entry, state = state & 0xFF_FFFF_FFFF, state >> 40
            other, seen = entry & 0xFFFF_FFFF, entry >> 32
            if (bucket - seen) % 256 >= self.buckets:
                continue  # left the period
            if other == account:
                met = True
            else:
                recent.append((other, seen))
        table = self.tables[slot]
        cells = [self._cells(account, other) for other, _ in recent]
        if not met:
            self.pair_updates += len(cells)
            # Conservative update: raise only the cells at the pair's minimum (the
            # others already overcount it).
            for pair in cells:
                least = min(table[cell] for cell in pair)
                if least < 0xFFFF:
                    for cell in pair:
                        if table[cell] == least:
                            table[cell] = least + 1
        live = [self.tables[s] for s in range(self.buckets)
                if bucket - self.table_bucket[s] < self.buckets]
        lockstep = any(sum(min(t[cell] for cell in pair) for t in live) >= self.least
                       for pair in cells)
        recent = [(account, bucket % 256), *recent][: self.RECENT]
        packed = 0
        for other, seen in reversed(recent):
            packed = (packed << 40) | (seen << 32) | other
        self.actors[actor] = packed
        return lockstep

    def _cells(self, first: int, second: int) -> list[int]:
        # The top bits of a multiple by an odd constant per row mix all 64 bits of the
        # pair (the low bits would depend only on the pair's low bits).
        low, high = (first, second) if first < second else (second, first)
        pair = low << 32 | high
        shift = 64 - (self.width.bit_length() - 1)
        return [row * self.width + (((pair * multiplier) & _WORD64) >> shift)
                for row, multiplier in enumerate(_ROW_MULTIPLIERS[: self.depth])]


_ROW_MULTIPLIERS = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9)
_WORD64 = (1 << 64) - 1


def report_lockstep_sketch(world: World, least: int) -> None:
    """The streaming sketch on the same world: its AUC per kind, its memory per actor,
    and its cost per interaction against the actor side's (`ActorActivity`) in the
    same run."""
    stream = sorted([(moment, actor, account) for moment, _, account, _, actor, _
                     in world.raw if actor] + world.actor_only)
    actors = {actor: actor_hash(actor) for _, actor, _ in stream}
    accounts = {account: zlib.crc32(account.encode()) for _, _, account in stream}
    records = [(actors[actor], account, accounts[account], moment)
               for moment, actor, account in stream]
    sketch = LockstepSketch(least)
    # The actor side's per-interaction step as its batch path calls it (account bits
    # computed once per batch's distinct account).
    baseline = ActorActivity()
    bits = {account: account_bit(account) for account in accounts}
    began = time.perf_counter()
    for actor, account, _, moment in records:
        baseline._observe(actor, bits[account], int(moment // baseline.bucket_s))
    baseline_s = time.perf_counter() - began
    lockstep: Counter[str] = Counter()
    judged: Counter[str] = Counter()
    began = time.perf_counter()
    for actor, account, hashed, moment in records:
        if sketch.observe(actor, hashed, moment):
            lockstep[account] += 1
    sketch_s = time.perf_counter() - began
    for _, _, account in stream:
        judged[account] += 1
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    copy = {actor: (state << 1) >> 1 for actor, state in sketch.actors.items()}
    per_actor = (tracemalloc.get_traced_memory()[0] - before) / len(copy)
    tracemalloc.stop()
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, kind in world.labels.items():
        by_kind[kind].append(account)
    share = {a: lockstep[a] / max(judged[a], 1) for a in world.labels}
    authentic = sorted(share[a] for a in by_kind["authentic"])
    authentic_shares = [-share[a] for a in by_kind["authentic"]]
    cells = [f"{kind} {auc(authentic_shares, [-share[a] for a in by_kind[kind]]):.2f}"
             for kind in FRAUD_KINDS]
    table_kib = sketch.buckets * len(sketch.tables[0]) * 2 / 1024
    print(f"\nThe streaming sketch (k >= {least}, {sketch.RECENT} recent accounts per actor, "
          f"count-min {sketch.depth} x {sketch.width:,} x {sketch.buckets} buckets of 16-bit "
          f"counters = {table_kib:,.0f} KiB): authentic share median "
          f"{authentic[len(authentic) // 2]:.3f}, p90 {authentic[len(authentic) * 9 // 10]:.3f}; "
          f"AUC: {', '.join(cells)}")
    buckets = len({int(moment // sketch.bucket_s) for moment, _, _ in stream})
    print(f"  {len(records):,} interactions, {len(sketch.actors):,} actors, "
          f"{sketch.pair_updates:,} pair updates in {buckets} buckets: "
          f"{per_actor:.0f} bytes per actor (its dict entry and packed int); "
          f"{sketch_s / len(records) * 1e6:.2f} us per interaction against "
          f"{baseline_s / len(records) * 1e6:.2f} us for ActorActivity.observe "
          f"({sketch_s / baseline_s:.1f}x) in the same run")


# Candidates for a second signal against the narrow docs reader, independent of
# audience_rotation (which reads *when* an actor meets its accounts, not *which* ones or
# at what hour), measured exactly on the raw events per 8-day period before deciding to
# keep state for them. Each is a share of the account's interactions (higher: more
# suspicious).
CANDIDATES = {
    "off_niche": "over the interactions whose actor engaged other accounts in the "
                 "period, the mean share of those accounts off the account's main topic",
    "elsewhere_quiet": "the quietest 6 hours' share (circular, UTC) of what the account's "
                       "actors did on other accounts in the period",
    "sleepless": "share of the interactions whose actor, with >= 6 interactions in the "
                 "period over all accounts, never had 6 quiet hours in a row",
}
SLEEPLESS_LEAST = 6
SLEEP_GAP_H = 6.0


def account_topic(world: World, account: str) -> str:
    known = world.account_topic.get(account)
    if known is not None:
        return known
    return outside_shard(int(account.rsplit("-", 1)[1]))[0]


def candidate_signals(world: World) -> dict[str, dict[str, float]]:
    """Per labelled account, each of `CANDIDATES`."""
    done: dict[tuple[int, str], list[tuple[str, float]]] = defaultdict(list)
    for moment, _, account, _, actor, _ in world.raw:
        if actor:
            done[(int((moment - START) // LOCKSTEP_PERIOD), actor)].append((account, moment))
    for moment, actor, account in world.actor_only:
        done[(int((moment - START) // LOCKSTEP_PERIOD), actor)].append((account, moment))
    judged_topic: Counter[str] = Counter()
    off_niche: dict[str, float] = defaultdict(float)
    elsewhere: dict[str, list[int]] = {a: [0] * 24 for a in world.labels}
    judged_sleep: Counter[str] = Counter()
    sleepless: Counter[str] = Counter()
    topics: dict[str, str] = {}
    for entries in done.values():
        on: Counter[str] = Counter(account for account, _ in entries)
        labelled = [account for account in on if account in world.labels]
        if not labelled:
            continue
        for account in on:
            if account not in topics:
                topics[account] = account_topic(world, account)
        hours = [0] * 24
        for _, moment in entries:
            hours[int(moment // HOUR) % 24] += 1
        awake = len(entries) >= SLEEPLESS_LEAST
        never_slept = awake and _longest_gap_h([m for _, m in entries]) < SLEEP_GAP_H
        for account in labelled:
            count = on[account]
            others = [topics[other] for other in on if other != account]
            if others:
                judged_topic[account] += count
                off = sum(topic != topics[account] for topic in others) / len(others)
                off_niche[account] += count * off
            own = [0] * 24
            for other, moment in entries:
                if other == account:
                    own[int(moment // HOUR) % 24] += 1
            elsewhere[account] = [total + h - o for total, h, o
                                  in zip(elsewhere[account], hours, own, strict=True)]
            if awake:
                judged_sleep[account] += count
                sleepless[account] += count * never_slept
    result = {}
    for account in world.labels:
        profile = elsewhere[account]
        total = sum(profile)
        quiet = (min(sum(profile[(start + offset) % 24] for offset in range(6))
                     for start in range(24)) / total) if total else 0.0
        result[account] = {
            "off_niche": off_niche[account] / max(judged_topic[account], 1),
            "elsewhere_quiet": quiet,
            "sleepless": sleepless[account] / max(judged_sleep[account], 1),
        }
    return result


def _longest_gap_h(moments: list[float]) -> float:
    """The longest stretch of the day (circular, hours) without an interaction."""
    hours = sorted((moment / HOUR) % 24 for moment in moments)
    gaps = [later - earlier for earlier, later in itertools.pairwise(hours)]
    return max([*gaps, hours[0] + 24 - hours[-1]])


def report_candidates(world: World, scores: dict[str, Credibility] | None) -> None:
    signals = candidate_signals(world)
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, kind in world.labels.items():
        by_kind[kind].append(account)
    authentic = by_kind["authentic"]
    rows = [["kind", *CANDIDATES]]
    for kind in ("authentic", *FRAUD_KINDS):
        cells = []
        for name in CANDIDATES:
            values = sorted(signals[a][name] for a in by_kind[kind])
            spread = (f"{values[len(values) // 2]:.3f} ({values[len(values) // 10]:.3f}-"
                      f"{values[len(values) * 9 // 10]:.3f})")
            if kind == "authentic":
                cells.append(spread)
            else:
                separation = auc([-signals[a][name] for a in authentic],
                                 [-signals[a][name] for a in by_kind[kind]])
                cells.append(f"AUC {separation:.2f}, {spread}")
        rows.append([kind, *cells])
    print("\nCandidate second signals (exact, per 8-day period; authentic: median and "
          "10th-90th percentile; fraud: AUC of the signal alone, and its spread):\n")
    for name, meaning in CANDIDATES.items():
        print(f"  {name}: {meaning}")
    print()
    print(table(rows))
    if scores is None:
        return
    # What credibility without audience_rotation would give with each candidate as a
    # factor, weight 0.7 like audience_rotation: tolerated up to the authentic 90th
    # percentile, zero credit twice the authentic spread (p90 - median) above it. A
    # quick check of the ablation, not a calibrated component.
    print("\nAUC against narrow_docs_reader without audience_rotation, with each candidate "
          "as an extra factor (weight 0.7; full credit to the authentic p90, zero at p90 + "
          "2 x (p90 - median)):")
    narrow = by_kind["narrow_docs_reader"]
    for name in CANDIDATES:
        values = sorted(signals[a][name] for a in authentic)
        median, tolerance = values[len(values) // 2], values[len(values) * 9 // 10]
        span = max(2 * (tolerance - median), 1e-9)

        def ablated(account: str, name: str = name, tolerance: float = tolerance,
                    span: float = span) -> float:
            value = min(1.0, max(0.0, 1 - (signals[account][name] - tolerance) / span))
            return without(scores[account], "audience_rotation") * (1 - 0.7 * (1 - value))

        separation = auc([ablated(a) for a in authentic], [ablated(a) for a in narrow])
        print(f"  {name}: {separation:.3f}")


# -- the month view: an actor's distinct accounts over 16-32 days -----------------------------

MONTH_THRESHOLDS = (8, 10, 12, 14, 16, 20)
# (month slots, 2-day buckets per slot): two alternating 16-day bitmaps (the actor side's),
# and four of 8 days (the union covers 24-32 days instead of 16-32).
MONTH_VIEWS = ((2, 8), (4, 4))


def month_breadth(world: World, slots: int, span: int
                  ) -> dict[str, dict[int, float]]:
    """Per labelled account, for each of MONTH_THRESHOLDS, the share of its interactions
    whose actor had, at that moment (this interaction included), at least that many
    distinct accounts in the actor side's month view (linear counting on its 64-bit
    bitmaps, outside accounts included), fed in time order as `run` feeds it."""
    activity = ActorActivity(month_slots=slots, month_span=span)
    hashes: dict[str, int] = {}
    counts: dict[str, list[int]] = {account: [0] * (len(MONTH_THRESHOLDS) + 1)
                                    for account in world.labels}
    outside = sorted(world.actor_only)
    outside_index = 0
    for moment, _, account, _, actor, _ in world.raw:
        if not actor:
            continue
        while outside_index < len(outside) and outside[outside_index][0] <= moment:
            seen_at, other, elsewhere = outside[outside_index]
            activity.observe(hashes.setdefault(other, actor_hash(other)), elsewhere, seen_at)
            outside_index += 1
        hashed = hashes.setdefault(actor, actor_hash(actor))
        activity.observe(hashed, account, moment)
        own = counts.get(account)
        if own is None:
            continue
        breadth = activity.month_accounts_of(hashed)
        own[0] += 1
        for index, least in enumerate(MONTH_THRESHOLDS, 1):
            if breadth >= least:
                own[index] += 1
    return {account: {least: own[index] / max(own[0], 1)
                      for index, least in enumerate(MONTH_THRESHOLDS, 1)}
            for account, own in counts.items()}


def report_month_breadth(world: World, scores: dict[str, Credibility]) -> None:
    """The month view as a signal of its own (a `broad` flag): its share alone, and as
    an extra factor (weight 0.7, full credit to the authentic p90, none at p90 + 2 x
    (p90 - median)) the AUC of credibility without audience_rotation against the narrow
    docs reader, the lowest AUC of the full score over every kind, and the authentic
    mean it leaves."""
    by_kind: dict[str, list[str]] = defaultdict(list)
    for account, kind in world.labels.items():
        by_kind[kind].append(account)
    authentic, narrow = by_kind["authentic"], by_kind["narrow_docs_reader"]
    full = {account: without(score, "") for account, score in scores.items()}
    lowest_now = min(auc([full[a] for a in authentic], [full[a] for a in by_kind[kind]])
                     for kind in FRAUD_KINDS)
    print(f"\nThe month view (share of an account's interactions whose actor had >= K "
          f"distinct accounts over the month at that moment; without it: authentic mean "
          f"{sum(full[a] for a in authentic) / len(authentic):.1f}, lowest AUC "
          f"{lowest_now:.3f}):\n")
    rows = [["view", "K", "authentic median, p90, p95", "narrow median (p10-p90)",
             "AUC alone: narrow", "lowest alone (bot kinds)",
             "w/o rotation + factor: narrow", "full + factor: lowest AUC",
             "authentic mean"]]
    bot_kinds = [kind for kind in FRAUD_KINDS
                 if kind not in ("fake_followers", "unflagged_sponsoring")]
    for slots, span in MONTH_VIEWS:
        shares = month_breadth(world, slots, span)
        for least in MONTH_THRESHOLDS:
            values = sorted(shares[a][least] for a in authentic)
            median, p90 = values[len(values) // 2], values[len(values) * 9 // 10]
            p95 = values[len(values) * 19 // 20]
            theirs = sorted(shares[a][least] for a in narrow)
            alone = {kind.replace("_docs_reader", ""): auc([-shares[a][least] for a in authentic],
                               [-shares[a][least] for a in by_kind[kind]])
                     for kind in bot_kinds}
            tolerance, room = p90, max(2 * (p90 - median), 1e-9)

            def factor(account: str, least: int = least, tolerance: float = tolerance,
                       room: float = room,
                       shares: dict[str, dict[int, float]] = shares) -> float:
                value = min(1.0, max(0.0, 1 - (shares[account][least] - tolerance) / room))
                return 1 - 0.7 * (1 - value)

            check = auc([without(scores[a], "audience_rotation") * factor(a)
                         for a in authentic],
                        [without(scores[a], "audience_rotation") * factor(a)
                         for a in narrow])
            lowest = min(auc([full[a] * factor(a) for a in authentic],
                             [full[a] * factor(a) for a in by_kind[kind]])
                         for kind in FRAUD_KINDS)
            mean = sum(full[a] * factor(a) for a in authentic) / len(authentic)
            rows.append([f"{slots} x {span * 2} days", str(least),
                         f"{median:.3f}, {p90:.3f}, {p95:.3f}",
                         f"{theirs[len(theirs) // 2]:.3f} ({theirs[len(theirs) // 10]:.3f}-"
                         f"{theirs[len(theirs) * 9 // 10]:.3f})",
                         f"{alone['narrow']:.3f}",
                         "{1:.3f} ({0})".format(*min(alone.items(), key=lambda item: item[1])),
                         f"{check:.3f}", f"{lowest:.3f}", f"{mean:.1f}"])
    print(table(rows))


def seed_orderings(pairs: int, seed: int) -> None:
    """The article's principles as pairs with equal followers: the authentic niche
    account against each rival of service/simulation.py, each pair with its own seed."""
    rng = random.Random(seed)
    rivals: tuple[Profile, ...] = (POD_PUMPED, PAID_FEED, SCATTERED, LIKES_ONLY)
    rows = [["rival", "pairs", "authentic ahead", "ahead by < 3 points", "mean margin"]]
    for rival in (*rivals, MEGA_LOW):
        margins = []
        for _ in range(pairs):
            followers = rng.randint(1_500, 9_000)
            pair_seed = rng.randrange(1 << 30)
            authentic = _simulated(AUTHENTIC_MICRO, followers, pair_seed)
            other_followers = rival.followers if rival is MEGA_LOW else followers
            other = _simulated(rival, other_followers, pair_seed + 1)
            margins.append(authentic - other)
        rows.append([rival.kind, str(pairs), str(sum(m > 0 for m in margins)),
                     str(sum(0 < m < 3 for m in margins) + sum(m <= 0 for m in margins)),
                     f"{sum(margins) / len(margins):.1f}"])
    print("\nThe seed's orderings: authentic-micro against each rival, equal followers "
          "(the mega account keeps its 2 M):\n")
    print(table(rows))


def _simulated(profile: Profile, followers: int, seed: int) -> float:
    from dataclasses import replace

    rng = random.Random(seed)
    scale = followers / profile.followers if profile is not MEGA_LOW else 1.0
    shaped = replace(profile, followers=followers,
                     interactions_per_post=max(1, int(profile.interactions_per_post * scale)),
                     audience=max(2, int(profile.audience * scale)))
    engine = Engine()
    for event_dict in account_events("acc", shaped, START, DAY, rng):
        engine.apply(_from_dict(event_dict))
    score = engine.score("acc")
    assert score is not None
    return score.credibility.score


def _from_dict(event: dict[str, object]) -> Event:
    moment = datetime.fromisoformat(str(event["occurred_at"]).replace("Z", "+00:00"))
    kind = str(event["type"])
    fields = {key: value for key, value in event.items() if key != "type"}
    fields.update(occurred_at=moment, occurred_at_s=moment.timestamp())
    if "topics" in fields:
        fields["topics"] = tuple(fields["topics"])  # type: ignore[arg-type]
    model: Callable[..., Event] = {
        "like": LikeEvent, "comment": CommentEvent, "share": ShareEvent, "post": PostEvent,
        "followers": FollowersEvent}[kind]
    return model(**fields)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="a small population (smoke test)")
    parser.add_argument("--authentic", type=int, default=None)
    parser.add_argument("--per-kind", type=int, default=None)
    parser.add_argument("--docs-breadth", type=int, default=10,
                        help="accounts a docs-reader's bot serves per 8 days, outside it too")
    parser.add_argument("--narrow-farm-bots", type=int, default=40_000,
                        help="bots of the narrow docs reader's farm (at --per-kind 30)")
    parser.add_argument("--co-engagement", action="store_true",
                        help="also measure the co-engagement (lockstep) candidate, exactly "
                             "(~2 min for the full population)")
    parser.add_argument("--candidates", action="store_true",
                        help="also measure the candidate second signals against the narrow "
                             "docs reader (CANDIDATES), exactly")
    parser.add_argument("--candidates-only", action="store_true",
                        help="the candidates (and --co-engagement, exactly) on the raw events "
                             "alone: no engine, no orderings")
    parser.add_argument("--communities", action="store_true",
                        help="the candidates' world: audiences as communities of topic and "
                             "time zone, docs readers' farms working on a human day")
    parser.add_argument("--month-busy", type=float, default=MONTH_ACCOUNTS,
                        help="distinct accounts over the month at which an actor is busy "
                             "(the actor side's MONTH_ACCOUNTS; a large value: never)")
    parser.add_argument("--month-turnover", type=int, default=MONTH_TURNOVER,
                        help="... and at least this many times its accounts in the period "
                             "(the actor side's MONTH_TURNOVER; 1: any)")
    parser.add_argument("--month-breadth", action="store_true",
                        help="also measure the actor's month view (distinct accounts over "
                             "16-32 days) as a signal against the narrow docs reader")
    parser.add_argument("--farm-defence", action="store_true",
                        help="with --communities: the docs readers' farms shard their bots "
                             "by customer topic and zone")
    args = parser.parse_args()
    population = Population(
        authentic=args.authentic or (40 if args.quick else 300),
        per_kind=args.per_kind or (6 if args.quick else 30),
        docs_breadth=args.docs_breadth,
        narrow_farm_bots=args.narrow_farm_bots,
        communities=args.communities or args.farm_defence,
        farm_defence=args.farm_defence,
    )
    began = time.perf_counter()
    world = build(population, args.seed)
    built = time.perf_counter()
    scores = None if args.candidates_only else run(world, month_accounts=args.month_busy,
                                                    month_turnover=args.month_turnover)
    ran = time.perf_counter()
    print(f"# bench.scoring seed={args.seed} authentic={population.authentic} "
          f"per_kind={population.per_kind} docs_breadth={population.docs_breadth} "
          f"narrow_farm_bots={population.narrow_farm_bots} month_busy={args.month_busy:g} "
          f"month_turnover={args.month_turnover}"
          + (" communities" if population.communities else "")
          + (" farm_defence" if population.farm_defence else "")
          + f": {len(world.raw):,} events, {len(world.actor_only):,} outside interactions; "
          f"built in {built - began:.1f} s, engine in {ran - built:.1f} s\n")
    if scores is not None:
        report(world, scores)
    if args.candidates or args.candidates_only:
        report_candidates(world, scores)
    if scores is None:
        if args.co_engagement:
            report_co_engagement(world)
        print(f"\n(total {time.perf_counter() - began:.1f} s)")
        return
    if args.co_engagement:
        report_co_engagement(world)
        report_lockstep_sketch(world, least=10)
    if args.month_breadth:
        report_month_breadth(world, scores)
    seed_orderings(5 if args.quick else 30, args.seed)
    print(f"\n(total {time.perf_counter() - began:.1f} s)")


if __name__ == "__main__":
    main()
