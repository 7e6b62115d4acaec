"""Discovery: which accounts of a partition match a set of filters, in a stable order, a
page at a time, and how pages of several partitions merge into one. Pure; no I/O.

A `DiscoveryIndex` holds one partition's accounts as the scores last computed them
(`update` when an account is re-scored, `remove` when it leaves the window). Each sort
field keeps its accounts in a sorted list keyed by (value, account_id), so a query walks
from its cursor in sort order and stops after `limit` matches: it never looks at the
accounts before the cursor, and a bound on the sort field (`min_credibility` with
`sort=credibility`, say) starts or ends the walk there. Each topic keeps its accounts in
credibility order too (the default sort); in another order, a small topic is filtered and
sorted whole, a large one walked in that order with the topic as a filter.

Order: by the sort field's value, ties by account_id, both ascending or both descending;
accounts whose value is unknown (no follower count yet, no rate) come last either way.
A cursor is the (value, account_id) of the last account handed out, so paging on while
scores change hands out every account that did not change exactly once; one whose
score moved across the cursor in between may be missed or seen again.

A walk examines at most `budget` accounts. A rare combination of filters can therefore
end a page early, with fewer than `limit` items and a cursor that resumes the walk where
it stopped: each request stays bounded (DynamoDB's `Limit` with a filter behaves so).
"""

from __future__ import annotations

import base64
import binascii
import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import chain, islice, repeat
from typing import Any

import orjson
from sortedcontainers import SortedList

from service.engine.account import PostView
from service.engine.engine import AccountScore, Engine

SORT_FIELDS = ("credibility", "engagement_rate", "followers")
_FIELD_INDEX = {name: index for index, name in enumerate(SORT_FIELDS)}
MAX_LIMIT = 200
SCAN_BUDGET = 5_000  # accounts examined per request: ~2-10 ms, by the machine's load
# A topic this small is filtered and sorted whole: cheaper than walking the sort order
# for the few accounts that carry it.
SMALL_TOPIC_ACCOUNTS = 2_000
MAX_INDEXED_TOPICS = 8
# Above any account id (ids are printable ASCII): the end of the ties at one value.
_AFTER_ALL_IDS = "\U0010ffff"

Value = float | int | None


@dataclass(frozen=True, slots=True)
class Sort:
    field: str = "credibility"
    descending: bool = True

    @classmethod
    def parse(cls, text: str) -> Sort:
        descending = text.startswith("-")
        field = text[1:] if descending else text
        if field not in _FIELD_INDEX:
            raise ValueError(f"sort must be one of {', '.join(SORT_FIELDS)}, "
                             f"with a leading '-' for descending; got {text!r}")
        return cls(field, descending)

    def __str__(self) -> str:
        return f"-{self.field}" if self.descending else self.field


@dataclass(frozen=True, slots=True)
class Cursor:
    """The last account handed out: the next page starts strictly after it."""

    value: Value
    account_id: str


@dataclass(frozen=True, slots=True)
class DiscoveryQuery:
    sort: Sort = Sort()
    limit: int = 20
    tiers: frozenset[str] = frozenset()
    topic: str | None = None
    min_credibility: float | None = None
    min_followers: int | None = None
    max_followers: int | None = None
    min_engagement_rate: float | None = None
    min_confidence: float | None = None
    after: Cursor | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")


@dataclass(frozen=True, slots=True)
class Hit:
    account_id: str
    value: Value  # the sort field's value when the account was indexed
    partition: int


@dataclass(frozen=True, slots=True)
class Page:
    """One partition's answer. `resume_after` is where its walk stopped if it may hold
    more matches (the page is full, or the budget ran out); None when it holds no more."""

    hits: tuple[Hit, ...]
    resume_after: Cursor | None
    examined: int = 0


@dataclass(frozen=True, slots=True)
class MergedPage:
    hits: tuple[Hit, ...]
    next_cursor: Cursor | None
    missing_partitions: tuple[int, ...]

    @property
    def partial(self) -> bool:
        return bool(self.missing_partitions)


def index_topics(posts: Iterable[PostView]) -> tuple[str, ...]:
    """The topics an account is found by: those of its window's posts, most posted
    first (ties by name), case-folded, at most MAX_INDEXED_TOPICS."""
    counts = Counter(topic.casefold() for post in posts for topic in set(post.topics))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return tuple(topic for topic, _ in ranked[:MAX_INDEXED_TOPICS])


def reindex(index: DiscoveryIndex, engine: Engine, account_ids: Iterable[str]) -> None:
    """Brings `index` up to date for accounts whose state changed or left: each is scored
    again and indexed, or removed when the engine no longer holds it. The partition's
    owner calls it once per commit interval with the accounts changed since the last."""
    for account_id in account_ids:
        score = engine.score(account_id)
        if score is None:
            index.remove(account_id)
            continue
        account = engine.accounts.get(account_id)
        posts = [] if account is None else account.window_posts(score.window_start)
        index.update(score, index_topics(posts))


class _Entry:
    __slots__ = ("confidence", "credibility", "engagement_rate", "followers", "tier",
                 "topics", "values")

    def __init__(self, score: AccountScore, topics: tuple[str, ...]) -> None:
        self.tier = score.tier
        self.credibility = score.credibility.score
        self.confidence = score.credibility.confidence
        self.followers = score.followers
        self.engagement_rate = score.engagement.rate
        self.topics = topics
        # In SORT_FIELDS order.
        self.values: tuple[Value, Value, Value] = (self.credibility, self.engagement_rate,
                                                   self.followers)


class _Orders:
    """The accounts of one tier in each sort order, and per topic in credibility order."""

    __slots__ = ("known", "topics", "unknown")

    def __init__(self) -> None:
        self.known: tuple[SortedList[tuple[Any, str]], ...] = tuple(
            SortedList() for _ in SORT_FIELDS)
        self.unknown: tuple[SortedList[str], ...] = tuple(SortedList() for _ in SORT_FIELDS)
        self.topics: dict[str, SortedList[tuple[Any, str]]] = {}

    def __bool__(self) -> bool:
        return bool(self.known[0])

    def add(self, account_id: str, entry: _Entry) -> None:
        for field, value in enumerate(entry.values):
            if value is None:
                self.unknown[field].add(account_id)
            else:
                self.known[field].add((value, account_id))
        self._add_topics(account_id, entry.credibility, entry.topics)

    def discard(self, account_id: str, entry: _Entry) -> None:
        for field, value in enumerate(entry.values):
            if value is None:
                self.unknown[field].remove(account_id)
            else:
                self.known[field].remove((value, account_id))
        self._drop_topics(account_id, entry.credibility, entry.topics)

    def move(self, account_id: str, old: _Entry, new: _Entry) -> None:
        """The same account, same tier: only the orders whose value changed move."""
        for field, (was, now) in enumerate(zip(old.values, new.values, strict=True)):
            if was != now:
                if was is None:
                    self.unknown[field].remove(account_id)
                else:
                    self.known[field].remove((was, account_id))
                if now is None:
                    self.unknown[field].add(account_id)
                else:
                    self.known[field].add((now, account_id))
        if old.topics != new.topics or old.credibility != new.credibility:
            self._drop_topics(account_id, old.credibility, old.topics)
            self._add_topics(account_id, new.credibility, new.topics)

    def _add_topics(self, account_id: str, credibility: float,
                    topics: Iterable[str]) -> None:
        postings = self.topics
        for topic in topics:
            members = postings.get(topic)
            if members is None:
                members = postings[topic] = SortedList()
            members.add((credibility, account_id))

    def _drop_topics(self, account_id: str, credibility: float,
                     topics: Iterable[str]) -> None:
        postings = self.topics
        for topic in topics:
            members = postings[topic]
            members.remove((credibility, account_id))
            if not members:
                del postings[topic]


class DiscoveryIndex:
    """One partition's accounts, searchable by tier, topic and thresholds, in the order
    of any sort field. Maintained incrementally: `update` moves an account only in the
    orders whose value changed.

    Accounts are held per tier, each tier with its own orders: a tier filter (nearly every
    search names one) walks that tier's accounts only, and a search over several tiers
    merges their orders as it walks."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition
        self._entries: dict[str, _Entry] = {}
        self._tiers: dict[str, _Orders] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._entries

    def topic_size(self, topic: str) -> int:
        folded = topic.casefold()
        return sum(len(orders.topics.get(folded, ())) for orders in self._tiers.values())

    def update(self, score: AccountScore, topics: Iterable[str]) -> None:
        """Indexes the account as `score` has it; `topics` as `index_topics` makes them."""
        account_id = score.account_id
        entry = _Entry(score, tuple(dict.fromkeys(topic.casefold() for topic in topics)))
        old = self._entries.get(account_id)
        self._entries[account_id] = entry
        if old is not None and old.tier == entry.tier:
            self._tiers[entry.tier].move(account_id, old, entry)
            return
        if old is not None:
            self._leave(account_id, old)
        orders = self._tiers.get(entry.tier)
        if orders is None:
            orders = self._tiers[entry.tier] = _Orders()
        orders.add(account_id, entry)

    def remove(self, account_id: str) -> bool:
        entry = self._entries.pop(account_id, None)
        if entry is None:
            return False
        self._leave(account_id, entry)
        return True

    def _leave(self, account_id: str, entry: _Entry) -> None:
        orders = self._tiers[entry.tier]
        orders.discard(account_id, entry)
        if not orders:
            del self._tiers[entry.tier]

    def query(self, query: DiscoveryQuery, budget: int = SCAN_BUDGET) -> Page:
        field = _FIELD_INDEX[query.sort.field]
        accepts = _filter(query)
        tiers = self._tiers
        chosen = [tiers[tier] for tier in sorted(query.tiers or tiers) if tier in tiers]
        known = [orders.known[field] for orders in chosen]
        unknown = [orders.unknown[field] for orders in chosen]
        if query.topic is not None:
            folded = query.topic.casefold()
            members = [orders.topics[folded] for orders in chosen if folded in orders.topics]
            if query.sort.field == "credibility":
                known, unknown = members, []
            elif sum(len(accounts) for accounts in members) <= SMALL_TOPIC_ACCOUNTS:
                return self._sort_members(members, query, field, accepts)
        if not known and not unknown:
            return Page((), None)
        low, high = _bounds(query)
        return self._walk(query, known, unknown, low, high, accepts, budget)

    def _walk(self, query: DiscoveryQuery, known: list[SortedList[tuple[Any, str]]],
              unknown: list[SortedList[str]], low: Value, high: Value,
              accepts: Callable[[_Entry], bool], budget: int) -> Page:
        entry_of = self._entries.__getitem__
        partition = self.partition
        hits: list[Hit] = []
        limit = query.limit
        examined = 0
        value: Value = None
        account_id = ""
        # The hot loop of a selective query: a few hundred nanoseconds an account.
        for examined, (value, account_id) in enumerate(
                islice(_in_order(known, unknown, query, low, high), budget), 1):
            if accepts(entry_of(account_id)):
                hits.append(Hit(account_id, value, partition))
                if len(hits) == limit:
                    return Page(tuple(hits), Cursor(value, account_id), examined)
        if examined == budget:
            return Page(tuple(hits), Cursor(value, account_id), examined)
        return Page(tuple(hits), None, examined)

    def _sort_members(self, members: list[SortedList[tuple[Any, str]]],
                      query: DiscoveryQuery, field: int,
                      accepts: Callable[[_Entry], bool]) -> Page:
        """A small topic in another order than credibility: filtered and sorted whole."""
        entries = self._entries
        low, high = _bounds(query)
        descending = query.sort.descending
        # Positions as order_key makes them, as plain tuples: no object per member.
        after = None
        if query.after is not None:
            after = order_key(query.sort)(Hit(query.after.account_id, query.after.value, 0))
        matches = []
        position: tuple[bool, Value, str]
        examined = 0
        for accounts in members:
            examined += len(accounts)
            for _, account_id in accounts:
                entry = entries[account_id]
                value = entry.values[field]
                if value is None:
                    if low is not None or high is not None:
                        continue
                    position = (not descending, 0, account_id)
                elif (low is not None and value < low) or (high is not None and value > high):
                    continue
                else:
                    position = (descending, value, account_id)
                if after is not None and (position >= after if descending
                                          else position <= after):
                    continue
                if accepts(entry):
                    matches.append(position)
        pick = heapq.nlargest if descending else heapq.nsmallest
        chosen = pick(query.limit + 1, matches)
        hits = tuple(Hit(account_id, value if known is descending else None, self.partition)
                     for known, value, account_id in chosen[: query.limit])
        if len(chosen) > query.limit:
            last = hits[-1]
            return Page(hits, Cursor(last.value, last.account_id), examined)
        return Page(hits, None, examined)


def _in_order(known: list[SortedList[tuple[Any, str]]], unknown: list[SortedList[str]],
              query: DiscoveryQuery, low: Value, high: Value) -> Iterator[tuple[Value, str]]:
    """(value, account_id) from just after the cursor on, in the query's order, within
    [low, high] on the sort field, over the orders of the chosen tiers merged; the
    accounts without a value last, unless bounded. Built from sortedcontainers' and
    heapq's own iterators: no step of this module's per account."""
    after = query.after
    descending = query.sort.descending
    parts: list[Iterator[tuple[Value, str]]] = []
    resume_in_unknown = after is not None and after.value is None
    if not resume_in_unknown:
        start: tuple[Any, str] | None = None if low is None else (low, "")
        stop: tuple[Any, str] | None = None if high is None else (high, _AFTER_ALL_IDS)
        start_inclusive = stop_inclusive = True
        if after is not None:
            cursor = (after.value, after.account_id)
            if not descending and (start is None or cursor >= start):
                start, start_inclusive = cursor, False
            if descending and (stop is None or cursor <= stop):
                stop, stop_inclusive = cursor, False
        parts.append(_merged([order.irange(start, stop, (start_inclusive, stop_inclusive),
                                           reverse=descending) for order in known],
                             descending))
    if low is None and high is None:
        first = after.account_id if resume_in_unknown and after is not None else None
        if descending:
            ranges = [ids.irange(None, first, (True, False), reverse=True) for ids in unknown]
        else:
            ranges = [ids.irange(first, None, (False, True)) for ids in unknown]
        parts.append(zip(repeat(None), _merged(ranges, descending), strict=False))
    return chain.from_iterable(parts)


def _merged(orders: list[Iterator[Any]], descending: bool) -> Iterator[Any]:
    if len(orders) == 1:
        return orders[0]
    return heapq.merge(*orders, reverse=descending)


def _bounds(query: DiscoveryQuery) -> tuple[Value, Value]:
    """The filters that bound the sort field itself: where a walk starts and ends."""
    field = query.sort.field
    if field == "credibility":
        return query.min_credibility, None
    if field == "engagement_rate":
        return query.min_engagement_rate, None
    return query.min_followers, query.max_followers


def _filter(query: DiscoveryQuery) -> Callable[[_Entry], bool]:
    """One predicate with the query's filters bound; a filter not given costs nothing.
    Tiers are not in it: a walk only visits the accounts of the tiers asked for."""
    topic = None if query.topic is None else query.topic.casefold()
    min_credibility = query.min_credibility
    min_confidence = query.min_confidence
    min_rate = query.min_engagement_rate
    min_followers = query.min_followers
    max_followers = query.max_followers
    followers_bounded = min_followers is not None or max_followers is not None

    def accepts(entry: _Entry) -> bool:
        if min_credibility is not None and entry.credibility < min_credibility:
            return False
        if min_confidence is not None and entry.confidence < min_confidence:
            return False
        if min_rate is not None and (entry.engagement_rate is None
                                     or entry.engagement_rate < min_rate):
            return False
        if followers_bounded:
            followers = entry.followers
            if followers is None:
                return False
            if min_followers is not None and followers < min_followers:
                return False
            if max_followers is not None and followers > max_followers:
                return False
        return topic is None or topic in entry.topics

    return accepts


def order_key(sort: Sort) -> Callable[[Hit], tuple[bool, Any, str]]:
    """A key in which every order is ascending-like: sort ascending by it for an
    ascending query, descending (reverse=True) for a descending one. Accounts without a
    value rank last either way."""
    if sort.descending:
        def descending(hit: Hit) -> tuple[bool, Any, str]:
            return (hit.value is not None, 0 if hit.value is None else hit.value,
                    hit.account_id)
        return descending

    def ascending(hit: Hit) -> tuple[bool, Any, str]:
        return hit.value is None, 0 if hit.value is None else hit.value, hit.account_id
    return ascending


def merge_pages(pages: Mapping[int, Page | None], sort: Sort, limit: int) -> MergedPage:
    """One page from the pages of several partitions (None: the partition did not
    answer), each from the same query and cursor. The merged page stops where the
    partition that stopped first stopped: past that, one of its accounts could still be
    missing. Missing partitions are named, never hidden; their accounts are absent from
    this page and, since the cursor moves on, from the pages after it."""
    missing = tuple(sorted(partition for partition, page in pages.items() if page is None))
    present = [page for page in pages.values() if page is not None]
    order = order_key(sort)
    descending = sort.descending
    stops = [Hit(page.resume_after.account_id, page.resume_after.value, -1)
             for page in present if page.resume_after is not None]
    boundary = None
    if stops:
        boundary = (max if descending else min)(stops, key=order)
    candidates = sorted((hit for page in present for hit in page.hits), key=order,
                        reverse=descending)
    if boundary is not None:
        edge = order(boundary)
        candidates = [hit for hit in candidates
                      if (order(hit) >= edge if descending else order(hit) <= edge)]
    hits = tuple(candidates[:limit])
    next_cursor: Cursor | None = None
    if len(candidates) > limit:
        next_cursor = Cursor(hits[-1].value, hits[-1].account_id)
    elif boundary is not None:
        next_cursor = Cursor(boundary.value, boundary.account_id)
    return MergedPage(hits, next_cursor, missing)


def encode_cursor(sort: Sort, cursor: Cursor) -> str:
    """An opaque, URL-safe token; it names its sort so that it cannot be used with
    another one."""
    raw = orjson.dumps([str(sort), cursor.value, cursor.account_id])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(sort: Sort, token: str) -> Cursor:
    """The cursor in `token`; ValueError if it is not one, or was made for another sort."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        made_for, value, account_id = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError) as broken:
        raise ValueError("cursor is not one this service made") from broken
    if made_for != str(sort):
        raise ValueError(f"cursor was made for sort={made_for}, not sort={sort}")
    if not isinstance(account_id, str) or not (
            value is None or (isinstance(value, int | float) and not isinstance(value, bool))):
        raise ValueError("cursor is not one this service made")
    return Cursor(value, account_id)


def encode_pages(pages: Mapping[int, Page | None]) -> bytes:
    """Pages of several partitions as one owner answers them to the instance that
    merges: {"<partition>": {"hits": [[account_id, value], ...], "resume_after":
    [value, account_id] | null, "examined": n} | null}."""
    body = {
        str(partition): None if page is None else {
            "hits": [[hit.account_id, hit.value] for hit in page.hits],
            "resume_after": None if page.resume_after is None
            else [page.resume_after.value, page.resume_after.account_id],
            "examined": page.examined,
        }
        for partition, page in pages.items()
    }
    return orjson.dumps(body)


def decode_pages(raw: bytes) -> dict[int, Page | None]:
    """What `encode_pages` wrote; ValueError if it is not that."""
    try:
        body = orjson.loads(raw)
        pages: dict[int, Page | None] = {}
        for key, page in body.items():
            partition = int(key)
            if page is None:
                pages[partition] = None
                continue
            resume = page["resume_after"]
            pages[partition] = Page(
                tuple(Hit(str(account_id), value, partition)
                      for account_id, value in page["hits"]),
                None if resume is None else Cursor(resume[0], str(resume[1])),
                int(page["examined"]),
            )
    except (KeyError, TypeError, ValueError, AttributeError) as broken:
        raise ValueError("not a discovery pages answer") from broken
    return pages
