"""Per-account state: the account's posts, its follower history, its actor sketches and
what the actor side said about its audience (`audience`, see `engine/audience.py`).

Times are epoch seconds of event time. Interactions are attributed to their post, so that
the window is a window of posts ("interactions on the window's posts") and bursts can be
measured from the posting time. An interaction that arrives before its post waits on a
placeholder post (`posted_at is None`) until the post event arrives.
"""

from __future__ import annotations

import bisect
import math
from typing import NamedTuple

from service.engine.sketches import RHYTHM_BIN_S, RHYTHM_BINS, ActorSketch

# Most posts carry one of a few topic tuples: share them instead of one copy per post.
# Bounded, so that producers sending ever new topic lists cannot grow it for ever.
_shared_topics: dict[tuple[str, ...], tuple[str, ...]] = {}
SHARED_TOPIC_TUPLES = 4_096
MAX_PENDING_TIMES = 256
FOLLOWER_HISTORY_LIMIT = 64
# A view built without the named tuple's Python-level __new__ (half the cost).
_new_view = tuple.__new__


def shared_topics(topics: tuple[str, ...]) -> tuple[str, ...]:
    shared = _shared_topics.get(topics)
    if shared is None:
        if len(_shared_topics) >= SHARED_TOPIC_TUPLES:
            return topics
        shared = _shared_topics[topics] = topics
    return shared


class Post:
    __slots__ = ("comments", "early", "first_seen_at", "likes", "pending", "posted_at",
                 "shares", "sponsored", "topics")

    def __init__(self, first_seen_at: float) -> None:
        self.posted_at: float | None = None
        self.first_seen_at = first_seen_at
        self.sponsored = False
        self.topics: tuple[str, ...] = ()
        self.likes = 0
        self.comments = 0
        self.shares = 0
        self.early = 0  # interactions within the burst window after posting
        self.pending: list[float] | None = None  # interaction times before the post is known

    @property
    def interactions(self) -> int:
        return self.likes + self.comments + self.shares

    @property
    def anchor_time(self) -> float:
        return self.first_seen_at if self.posted_at is None else self.posted_at


class PostView(NamedTuple):
    """A post as the scoring sees it: inside the window, its post event known.

    A named tuple, not a frozen dataclass: a cold score builds one per post in the
    window, and a tuple is ~5x cheaper to build. Ordered by (posted_at, post_id), the
    order that `Account.window` gives (post ids are unique within an account)."""

    posted_at: float
    post_id: str
    sponsored: bool
    topics: tuple[str, ...]
    likes: int
    comments: int
    shares: int
    early: int
    followers_at_post: int | None


class Window(NamedTuple):
    """What a score reads from an account's posts, gathered in one pass
    (`Account.window`)."""

    posts: list[PostView]  # posted inside the window, by (posted_at, post_id)
    awaiting_post: int  # interactions on placeholders first seen inside the window
    # The oldest time that the window's contents rest on: until the window's start
    # passes it, a moving window changes nothing but its own bounds.
    boundary: float


class Account:
    __slots__ = ("account_id", "actors", "audience", "followers", "last_event_at", "partition",
                 "posts", "version")

    def __init__(self, account_id: str, partition: int) -> None:
        self.account_id = account_id
        self.partition = partition
        self.posts: dict[str, Post] = {}
        self.followers: list[tuple[float, int]] = []  # (time, count), ascending by time
        # One sketch per actor-time bucket, oldest first; a list is smaller than a dict and
        # an account has at most a handful of buckets.
        self.actors: list[ActorSketch] = []
        # Audience signals summed per actor-time bucket, flat and in bucket order:
        # [bucket, interactions, busy, farm_like, bucket, ...]; None until the first one,
        # so that accounts without signals pay nothing.
        self.audience: list[int] | None = None
        self.last_event_at = -math.inf
        self.version = 0  # the engine's event count at this account's last change

    def touch(self, occurred_at: float, version: int) -> None:
        self.version = version
        if occurred_at > self.last_event_at:
            self.last_event_at = occurred_at

    def record_post(
        self, post_id: str, occurred_at: float, sponsored: bool, topics: tuple[str, ...],
        burst_window_s: float, max_posts: int,
    ) -> None:
        post = self.posts.get(post_id)
        if post is None:
            post = self._new_post(post_id, occurred_at, max_posts)
        elif post.posted_at is not None:
            return  # the same post announced twice under different event ids: keep the first
        post.posted_at = occurred_at
        post.sponsored = sponsored
        post.topics = shared_topics(topics)
        if post.pending:
            post.early = sum(1 for seen in post.pending if seen - occurred_at <= burst_window_s)
        post.pending = None

    def record_interaction(
        self, kind: str, post_id: str, occurred_at: float, actor: int,
        actor_bucket: int, burst_window_s: float, max_posts: int,
    ) -> None:
        post = self.posts.get(post_id)
        if post is None:
            post = self._new_post(post_id, occurred_at, max_posts)
        if kind == "like":
            post.likes += 1
        elif kind == "comment":
            post.comments += 1
        else:
            post.shares += 1
        if post.posted_at is None:
            if post.pending is None:
                post.pending = []
            if len(post.pending) < MAX_PENDING_TIMES:
                post.pending.append(occurred_at)
        elif occurred_at - post.posted_at <= burst_window_s:
            post.early += 1
        sketch = self._sketch_for(actor_bucket)
        sketch.add(actor)
        sketch.rhythm[int(occurred_at // RHYTHM_BIN_S) % RHYTHM_BINS] += 1

    def record_followers(self, occurred_at: float, followers: int) -> None:
        history = self.followers
        entry = (occurred_at, followers)
        # Compared as pairs, so that two counts at the same moment keep one order
        # whatever order they arrive in.
        if not history or entry >= history[-1]:
            history.append(entry)
        else:
            bisect.insort(history, entry)
        if len(history) > FOLLOWER_HISTORY_LIMIT:
            # Keep the newest and thin the oldest half: the window needs recent precision.
            del history[1 : len(history) // 2 : 2]

    def record_audience(self, bucket: int, interactions: int, busy: int,
                        farm_like: int) -> None:
        audience = self.audience
        if audience is None:
            audience = self.audience = []
        for start in range(len(audience) - 4, -1, -4):
            if audience[start] == bucket:
                audience[start + 1] += interactions
                audience[start + 2] += busy
                audience[start + 3] += farm_like
                return
            if audience[start] < bucket:
                audience[start + 4 : start + 4] = (bucket, interactions, busy, farm_like)
                return
        audience[0:0] = (bucket, interactions, busy, farm_like)

    def audience_in(self, first_bucket: int) -> tuple[int, int, int]:
        """(interactions, busy, farm_like) summed over the buckets from `first_bucket`."""
        interactions = busy = farm_like = 0
        audience = self.audience or ()
        for start in range(0, len(audience), 4):
            if audience[start] >= first_bucket:
                interactions += audience[start + 1]
                busy += audience[start + 2]
                farm_like += audience[start + 3]
        return interactions, busy, farm_like

    def followers_at(self, moment: float) -> int | None:
        history = self.followers
        if not history:
            return None
        index = bisect.bisect_right(history, (moment, math.inf))
        # Before the first observation, the first one is the best estimate there is.
        return history[index - 1][1] if index else history[0][1]

    def window_posts(self, window_start: float) -> list[PostView]:
        return self.window(window_start).posts

    def window(self, window_start: float) -> Window:
        """The window's posts, the interactions awaiting their post and the window's
        boundary, in one pass over the posts: this runs for every score the cache does
        not hold."""
        views: list[PostView] = []
        awaiting = 0
        boundary = math.inf
        history = self.followers
        first_count = history[0][1] if history else None
        for post_id, post in self.posts.items():
            posted_at = post.posted_at
            if posted_at is None:
                if post.first_seen_at >= window_start:
                    awaiting += post.likes + post.comments + post.shares
                    if post.first_seen_at < boundary:
                        boundary = post.first_seen_at
                continue
            if posted_at < window_start:
                continue
            if posted_at < boundary:
                boundary = posted_at
            # followers_at(posted_at), inlined: one bisect per post.
            index = bisect.bisect_right(history, (posted_at, math.inf))
            followers = history[index - 1][1] if index else first_count
            views.append(_new_view(PostView, (posted_at, post_id, post.sponsored, post.topics,
                                              post.likes, post.comments, post.shares,
                                              post.early, followers)))
        # Arrival order must not change a float sum: replays in any order agree exactly.
        views.sort()  # by (posted_at, post_id): ids are unique, so no further field decides
        # The follower count at the window's start changes once the start reaches the
        # next observation.
        later = bisect.bisect_right(history, (window_start, math.inf))
        if later < len(history):
            boundary = min(boundary, math.nextafter(history[later][0], -math.inf))
        return Window(views, awaiting, boundary)

    def expire(self, horizon: float, first_live_bucket: int) -> bool:
        """Drops state older than `horizon`; returns whether anything is left."""
        stale = [pid for pid, post in self.posts.items() if post.anchor_time < horizon]
        for post_id in stale:
            del self.posts[post_id]
        self.actors = [sketch for sketch in self.actors if sketch.bucket >= first_live_bucket]
        audience = self.audience
        if audience is not None:
            kept = next((start for start in range(0, len(audience), 4)
                         if audience[start] >= first_live_bucket), len(audience))
            del audience[:kept]
            if not audience:
                self.audience = None
        history = self.followers
        # Keep the last observation before the horizon: it is the count at the window start.
        cut = bisect.bisect_left(history, (horizon, -1))
        if cut > 1:
            del history[: cut - 1]
        return bool(self.posts or self.actors or self.last_event_at >= horizon)

    def _sketch_for(self, bucket: int) -> ActorSketch:
        actors = self.actors
        for sketch in reversed(actors):
            if sketch.bucket == bucket:
                return sketch
        sketch = ActorSketch(bucket)
        actors.append(sketch)
        actors.sort(key=lambda known: known.bucket)
        return sketch

    def _new_post(self, post_id: str, occurred_at: float, max_posts: int) -> Post:
        if len(self.posts) >= max_posts:
            oldest = min(self.posts, key=lambda pid: self.posts[pid].anchor_time)
            del self.posts[oldest]
        post = self.posts[post_id] = Post(occurred_at)
        return post
