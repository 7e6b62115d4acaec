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

Paging reads a point in time (as Elasticsearch's point-in-time does): each change to the
index is a new `generation`, and a query answers as of one generation, the current one
for a first page. A cursor names the last account handed out, (value, account_id), and
the generation each partition's first page was read at; the following pages read those
same generations, so they continue one fixed order: no account twice, none skipped. To
serve them, a change keeps the version it replaces: the old (value, account_id) stays in
the sorted lists, and a walk checks each account it meets against the version of that
generation (`_history`; an account not changed since the oldest generation kept has one
version and needs no check). `expire_before` moves the oldest generation readable on,
and `prune` then drops what only older ones could read. A cursor older than that, or
made by an index since rebuilt (a partition moved or restored), raises `CursorExpired`
instead of paging on in another order. While no query has read a generation still held
(nobody is paging), `update` moves accounts in place and keeps nothing.

A walk examines at most `budget` accounts. A rare combination of filters can therefore
end a page early, with fewer than `limit` items and a cursor that resumes the walk where
it stopped: each request stays bounded (DynamoDB's `Limit` with a filter behaves so).
"""

from __future__ import annotations

import base64
import binascii
import heapq
import sys
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
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
MAX_SHARED_TOPIC_TUPLES = 65_536  # combinations of topics shared between entries
LOAD_STEP_ELEMENTS = 20_000  # a run of a bulk load: ~5-20 ms to sort
# Above any account id (ids are printable ASCII): the end of the ties at one value.
_AFTER_ALL_IDS = "\U0010ffff"

Value = float | int | None
# Which index, and when: (incarnation, generation). An index rebuilt gets another
# incarnation, so a cursor of the old one can never read the new one's generations.
Snapshot = tuple[int, int]


class CursorExpired(Exception):
    """A cursor names a point in time that a partition's index no longer holds (the
    message says which partition and why)."""


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
    """The last account handed out: the next page starts strictly after it, in the order
    of the points in time (partition, incarnation, generation) the first page read."""

    value: Value
    account_id: str
    snapshots: tuple[tuple[int, int, int], ...] = ()

    def snapshot_of(self, partition: int) -> Snapshot | None:
        for pinned, incarnation, generation in self.snapshots:
            if pinned == partition:
                return incarnation, generation
        return None


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
    snapshot: Snapshot | None = None  # the point in time the page was read at


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
        else:
            index.put(account_id, entry_of(engine, score))


def entry_of(engine: Engine, score: AccountScore) -> IndexEntry:
    """What the index keeps of an account the engine holds, scored as `score`."""
    account = engine.accounts.get(score.account_id)
    posts = [] if account is None else account.window_posts(score.window_start)
    return IndexEntry.of(score, index_topics(posts))


class IndexEntry:
    """The fields of a score that discovery filters and sorts on, and the topics."""

    __slots__ = ("confidence", "credibility", "engagement_rate", "followers", "tier",
                 "topics")

    def __init__(self, tier: str, credibility: float, confidence: float,
                 followers: int | None, engagement_rate: float | None,
                 topics: tuple[str, ...]) -> None:
        self.tier = tier
        self.credibility = credibility
        self.confidence = confidence
        self.followers = followers
        self.engagement_rate = engagement_rate
        self.topics = topics

    @classmethod
    def of(cls, score: AccountScore, topics: Iterable[str]) -> IndexEntry:
        return cls(score.tier, score.credibility.score, score.credibility.confidence,
                   score.followers, score.engagement.rate, _shared_topics(topics))

    def value(self, field: int) -> Value:
        """The value of SORT_FIELDS[field]."""
        if field == 0:
            return self.credibility
        return self.engagement_rate if field == 1 else self.followers

    def same_as(self, other: IndexEntry) -> bool:
        return (self.credibility == other.credibility and self.tier == other.tier
                and self.engagement_rate == other.engagement_rate
                and self.followers == other.followers
                and self.confidence == other.confidence and self.topics == other.topics)

    def slots(self, account_id: str) -> list[_Slot]:
        """Where the account sits in the sorted lists: (tier, field or topic, value, id)."""
        tier = self.tier
        slots: list[_Slot] = [(tier, 0, self.credibility, account_id),
                              (tier, 1, self.engagement_rate, account_id),
                              (tier, 2, self.followers, account_id)]
        slots += [(tier, topic, self.credibility, account_id) for topic in self.topics]
        return slots


def _shared_topics(topics: Iterable[str]) -> tuple[str, ...]:
    """The topics case-folded, each once, as one tuple shared by every entry with the
    same ones: most accounts carry one of a few combinations, and a tuple of its own
    (and a folded copy of each name) would cost each ~100 bytes more."""
    folded = tuple(dict.fromkeys(sys.intern(topic.casefold()) for topic in topics))
    shared = _TOPIC_TUPLES.get(folded)
    if shared is not None:
        return shared
    if len(_TOPIC_TUPLES) < MAX_SHARED_TOPIC_TUPLES:
        _TOPIC_TUPLES[folded] = folded
    return folded


_TOPIC_TUPLES: dict[tuple[str, ...], tuple[str, ...]] = {}


# (tier, sort field's number or topic, value, account_id): one element of a sorted list.
_Slot = tuple[str, int | str, Value, str]
# An account's versions still readable, oldest first, as (generation it was made, the
# entry or None while the account was not indexed); the last one is the current one.
_Versions = list[tuple[int, IndexEntry | None]]


class _Orders:
    """The accounts of one tier in each sort order, and per topic in credibility order."""

    __slots__ = ("known", "topics", "unknown")

    def __init__(self) -> None:
        self.known: list[SortedList[tuple[Any, str]]] = [SortedList() for _ in SORT_FIELDS]
        self.unknown: list[SortedList[str]] = [SortedList() for _ in SORT_FIELDS]
        self.topics: dict[str, SortedList[tuple[Any, str]]] = {}

    def __bool__(self) -> bool:
        return any(self.known) or any(self.unknown) or bool(self.topics)


def _version_at(versions: _Versions, generation: int) -> IndexEntry | None:
    for made, entry in reversed(versions):
        if made <= generation:
            return entry
    return None


class DiscoveryIndex:
    """One partition's accounts, searchable by tier, topic and thresholds, in the order
    of any sort field, as of any generation since `horizon`. Maintained incrementally:
    `update` moves an account only in the orders whose value changed.

    Accounts are held per tier, each tier with its own orders: a tier filter (nearly every
    search names one) walks that tier's accounts only, and a search over several tiers
    merges their orders as it walks."""

    def __init__(self, partition: int = 0, incarnation: int = 0) -> None:
        self.partition = partition
        self.incarnation = incarnation
        self.generation = 0  # one more for every change
        self.horizon = 0  # the oldest generation a query may still read
        self._last_read = -1  # the newest generation a query read
        self._entries: dict[str, IndexEntry] = {}
        self._tiers: dict[str, _Orders] = {}
        self._history: dict[str, _Versions] = {}  # accounts changed since `horizon`
        # Per account with versions, how many of them put each element in the lists.
        self._held: dict[str, dict[_Slot, int]] = {}
        self._superseded: deque[tuple[int, str]] = deque()  # (generation, account)
        self._kept = 0  # versions kept besides the current ones

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, account_id: object) -> bool:
        return account_id in self._entries

    @property
    def versions_kept(self) -> int:
        """Versions kept for older generations only: what paging's point in time costs."""
        return self._kept

    def topic_size(self, topic: str) -> int:
        """How many accounts carry `topic` now."""
        folded = topic.casefold()
        entries = self._entries
        return sum(1 for tier, orders in self._tiers.items()
                   for credibility, account_id in orders.topics.get(folded, ())
                   if (entry := entries.get(account_id)) is not None
                   and entry.tier == tier and entry.credibility == credibility
                   and folded in entry.topics)

    def update(self, score: AccountScore, topics: Iterable[str]) -> None:
        """Indexes the account as `score` has it; `topics` as `index_topics` makes them."""
        self.put(score.account_id, IndexEntry.of(score, topics))

    def put(self, account_id: str, entry: IndexEntry) -> None:
        old = self._entries.get(account_id)
        if old is not None and old.same_as(entry):
            return  # re-scored, but nothing discovery sees moved: no new generation
        self._entries[account_id] = entry
        self._change(account_id, old, entry)

    def remove(self, account_id: str) -> bool:
        entry = self._entries.pop(account_id, None)
        if entry is None:
            return False
        self._change(account_id, entry, None)
        return True

    def load(self, entries: Iterable[tuple[str, IndexEntry]]) -> None:
        """Indexes many accounts into an empty index at once, each order sorted once
        instead of an insert at a time: the build after a restore."""
        for _ in self.loading(entries):
            pass

    def placed_in_runs(self, entries: Iterable[tuple[str, IndexEntry]],
                       runs: dict[tuple[str, int | str, bool], list[list[Any]]],
                       step: int) -> Iterator[None]:
        """A load's first phase, a chunk of entries per step: each entry is kept and its
        elements are appended to their order's runs of at most `step` elements."""
        given = iter(entries)
        # An entry makes 4-11 elements; placing them costs more than sorting them.
        while chunk := list(islice(given, max(1, step // 10))):
            for account_id, entry in chunk:
                self._entries[account_id] = entry
                for tier, key, value, slot_id in entry.slots(account_id):
                    unknown = value is None
                    held = runs.get((tier, key, unknown))
                    if held is None:
                        held = runs[(tier, key, unknown)] = [[]]
                    if len(held[-1]) >= step:
                        held.append([])
                    held[-1].append(slot_id if unknown else (value, slot_id))
            yield

    def loading(self, entries: Iterable[tuple[str, IndexEntry]],
                step: int = LOAD_STEP_ELEMENTS) -> Iterator[None]:
        """`load` in steps, each of about `step` elements at most whatever the index's
        size: the caller lets other work in between. A chunk of entries is spread over
        the orders; a run of `step` elements is sorted; the runs of an order are merged a
        piece of `step` elements at a time (`_merged_pieces`), each piece cut into the
        sorted list's sublists as it comes (`_sorted_list_of`). No step touches a whole
        order: a list of 500,000 elements made in one step took ~0.3 s, one merge of its
        last two runs as long (docs/benchmarks.md, "A partition's first build")."""
        if self._entries:
            raise ValueError("load fills an empty index only")
        # (tier, field or topic, unknown values?) -> its elements, in runs.
        runs: dict[tuple[str, int | str, bool], list[list[Any]]] = {}
        yield from self.placed_in_runs(entries, runs, step)
        sublist_size = SortedList.DEFAULT_LOAD_FACTOR
        for tier, key, unknown in list(runs):
            held = runs.pop((tier, key, unknown))  # its runs let go once it is made
            for run in held:
                run.sort()
                yield
            sublists: list[list[Any]] = []
            length = 0
            rest: list[Any] = []  # the end of the last piece, short of a sublist
            for piece in _merged_pieces(held, step):
                if rest:
                    piece = rest + piece
                whole = len(piece) - len(piece) % sublist_size
                sublists += [piece[start:start + sublist_size]
                             for start in range(0, whole, sublist_size)]
                length += whole
                rest = piece[whole:]
                yield
            if rest:
                sublists.append(rest)
                length += len(rest)
            orders = self._tiers.get(tier)
            if orders is None:
                orders = self._tiers[tier] = _Orders()
            if isinstance(key, str):
                orders.topics[key] = _sorted_list_of(sublists, length)
            elif unknown:
                orders.unknown[key] = _sorted_list_of(sublists, length)
            else:
                orders.known[key] = _sorted_list_of(sublists, length)

    def _change(self, account_id: str, old: IndexEntry | None, new: IndexEntry | None
                ) -> None:
        self.generation += 1
        versions = self._history.get(account_id)
        if versions is None and self._last_read < self.horizon:
            # No query read a generation still held: nothing to keep, move in place.
            before = set() if old is None else set(old.slots(account_id))
            after = set() if new is None else set(new.slots(account_id))
            for slot in before - after:
                self._unplace(slot)
            for slot in after - before:
                self._place(slot)
            return
        if versions is None:
            # The version replaced, as every generation still held reads it. One entry
            # in `_superseded` per account with versions: `prune` queues it again.
            versions = self._history[account_id] = [(-1, old)]
            self._held[account_id] = ({} if old is None
                                      else dict.fromkeys(old.slots(account_id), 1))
            self._superseded.append((self.generation, account_id))
        held = self._held[account_id]
        made, last = versions[-1]
        if made > self._last_read and len(versions) > 1:
            # No query read a generation since `last` was made, so none ever will: it
            # is replaced, not kept (an account re-scored every second keeps only the
            # versions someone may page through).
            versions.pop()
            self._release(account_id, held, last)
            self._kept -= 1
        versions.append((self.generation, new))
        self._kept += 1
        if new is not None:
            for slot in new.slots(account_id):
                count = held.get(slot, 0)
                held[slot] = count + 1
                if not count:
                    self._place(slot)

    def _release(self, account_id: str, held: dict[_Slot, int],
                 entry: IndexEntry | None) -> None:
        """A version no longer kept: its elements leave unless another version has them."""
        if entry is None:
            return
        for slot in entry.slots(account_id):
            count = held[slot] - 1
            if count:
                held[slot] = count
            else:
                del held[slot]
                self._unplace(slot)

    def expire_before(self, generation: int) -> None:
        """Queries may no longer read generations before `generation`; `prune` then
        takes the versions only those could read out of the sorted lists."""
        self.horizon = max(self.horizon, min(generation, self.generation))

    def prune(self, most: int = sys.maxsize) -> int:
        """Drops the versions that no generation from `horizon` on reads, for up to
        `most` accounts (each a few sorted-list removals: the caller bounds how long one
        call holds the loop); returns how many it looked at."""
        horizon = self.horizon
        superseded = self._superseded
        done = 0
        while done < most and superseded and superseded[0][0] <= horizon:
            _, account_id = superseded.popleft()
            done += 1
            versions = self._history.get(account_id)
            if versions is None:
                continue
            first = len(versions) - 1  # the version a query at `horizon` reads
            while versions[first][0] > horizon:
                first -= 1
            held = self._held[account_id]
            for _, entry in versions[:first]:
                self._release(account_id, held, entry)
            self._kept -= first
            del versions[:first]
            if len(versions) == 1:
                del self._history[account_id], self._held[account_id]
            else:
                # Looked at again once the next version is older than the horizon.
                superseded.append((versions[1][0], account_id))
        return done

    def keep_at_most(self, versions: int) -> None:
        """Expires the oldest generations until at most about `versions` old versions are
        kept (once pruned): the memory paging may take, whatever the churn."""
        excess = self._kept - versions
        if excess > 0 and self._superseded:
            position = min(excess, len(self._superseded)) - 1
            self.expire_before(max(generation for generation, _ in
                                   islice(self._superseded, position + 1)))

    def _place(self, slot: _Slot) -> None:
        tier, key, value, account_id = slot
        orders = self._tiers.get(tier)
        if orders is None:
            orders = self._tiers[tier] = _Orders()
        if isinstance(key, str):
            members = orders.topics.get(key)
            if members is None:
                members = orders.topics[key] = SortedList()
            members.add((value, account_id))
        elif value is None:
            orders.unknown[key].add(account_id)
        else:
            orders.known[key].add((value, account_id))

    def _unplace(self, slot: _Slot) -> None:
        tier, key, value, account_id = slot
        orders = self._tiers[tier]
        if isinstance(key, str):
            members = orders.topics[key]
            members.remove((value, account_id))
            if not members:
                del orders.topics[key]
        elif value is None:
            orders.unknown[key].remove(account_id)
        else:
            orders.known[key].remove((value, account_id))
        if not orders:
            del self._tiers[tier]

    def read_at(self, snapshot: Snapshot | None) -> int:
        """The generation a query with this snapshot reads (the current one for None);
        CursorExpired if this index cannot read it."""
        if snapshot is None:
            generation = self.generation
        else:
            incarnation, generation = snapshot
            if incarnation != self.incarnation:
                raise CursorExpired(f"partition {self.partition}: its index was built anew "
                                    "since the first page (the partition moved or was "
                                    "restored)")
            if generation < self.horizon:
                raise CursorExpired(f"partition {self.partition}: the first page is older "
                                    "than its index keeps")
            if generation > self.generation:
                raise CursorExpired(f"partition {self.partition}: not a point in time of "
                                    "its index")
        self._last_read = max(self._last_read, generation)
        return generation

    def query(self, query: DiscoveryQuery, budget: int = SCAN_BUDGET) -> Page:
        """A page of the accounts matching `query` after its cursor, as of the point in
        time the cursor pins for this partition (the current generation for a first
        page, or a cursor that pins none); its `resume_after` pins that same one."""
        after = query.after
        at = self.read_at(None if after is None else after.snapshot_of(self.partition))
        page = self._page(query, budget, at)
        pin = ((self.partition, self.incarnation, at),)
        resume = page.resume_after
        return replace(page, snapshot=(self.incarnation, at),
                       resume_after=None if resume is None else replace(resume, snapshots=pin))

    def _page(self, query: DiscoveryQuery, budget: int, at: int) -> Page:
        field = _FIELD_INDEX[query.sort.field]
        accepts = _filter(query)
        tiers = self._tiers
        names = sorted(query.tiers or tiers)
        chosen = [(tier, tiers[tier]) for tier in names if tier in tiers]
        known = [orders.known[field] for _, orders in chosen]
        unknown = [orders.unknown[field] for _, orders in chosen]
        if query.topic is not None:
            folded = query.topic.casefold()
            members = [(tier, orders.topics[folded]) for tier, orders in chosen
                       if folded in orders.topics]
            if query.sort.field == "credibility":
                known, unknown = [accounts for _, accounts in members], []
            elif sum(len(accounts) for _, accounts in members) <= SMALL_TOPIC_ACCOUNTS:
                return self._sort_members(members, query, field, accepts, at)
        if not known and not unknown:
            return Page((), None)
        low, high = _bounds(query)
        walked = frozenset(query.tiers) if query.tiers else None
        return self._walk(query, known, unknown, low, high, accepts, budget, at, field,
                          walked)

    def _walk(self, query: DiscoveryQuery, known: list[SortedList[tuple[Any, str]]],
              unknown: list[SortedList[str]], low: Value, high: Value,
              accepts: Callable[[IndexEntry], bool], budget: int, at: int, field: int,
              walked: frozenset[str] | None) -> Page:
        entry_of = self._entries.__getitem__
        versions_of = self._history.get
        partition = self.partition
        hits: list[Hit] = []
        limit = query.limit
        examined = 0
        value: Value = None
        account_id = ""
        last_versioned = ""
        # The hot loop of a selective query: a few hundred nanoseconds an account.
        for examined, (value, account_id) in enumerate(
                islice(_in_order(known, unknown, query, low, high), budget), 1):
            versions = versions_of(account_id)
            if versions is None:
                entry = entry_of(account_id)
            else:
                # Changed lately: this element counts only if the version read at `at`
                # put it here (it may be left by an older or a newer one), and once
                # (the same element may be left in another tier's list).
                found = _version_at(versions, at)
                if (found is None or found.value(field) != value
                        or (walked is not None and found.tier not in walked)
                        or account_id == last_versioned):
                    continue
                entry, last_versioned = found, account_id
            if accepts(entry):
                hits.append(Hit(account_id, value, partition))
                if len(hits) == limit:
                    return Page(tuple(hits), Cursor(value, account_id), examined)
        if examined == budget:
            return Page(tuple(hits), Cursor(value, account_id), examined)
        return Page(tuple(hits), None, examined)

    def _sort_members(self, members: list[tuple[str, SortedList[tuple[Any, str]]]],
                      query: DiscoveryQuery, field: int,
                      accepts: Callable[[IndexEntry], bool], at: int) -> Page:
        """A small topic in another order than credibility: filtered and sorted whole."""
        entries = self._entries
        versions_of = self._history.get
        low, high = _bounds(query)
        descending = query.sort.descending
        # Positions as order_key makes them, as plain tuples: no object per member.
        after = None
        if query.after is not None:
            after = order_key(query.sort)(Hit(query.after.account_id, query.after.value, 0))
        matches = []
        position: tuple[bool, Value, str]
        examined = 0
        for tier, accounts in members:
            examined += len(accounts)
            for credibility, account_id in accounts:
                versions = versions_of(account_id)
                if versions is None:
                    entry = entries[account_id]
                else:
                    found = _version_at(versions, at)
                    if (found is None or found.tier != tier
                            or found.credibility != credibility):
                        continue
                    entry = found
                value = entry.value(field)
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


def _merged_pieces(runs: list[list[Any]], step: int) -> Iterator[list[Any]]:
    """The elements of the sorted `runs`, in order, as sorted pieces of at most `step`
    elements (the runs are consumed). A piece is every element up to a cut: the smallest
    of the runs' elements a share (`step` over the runs left) ahead of where each run
    stands, so that no run gives more than its share and one gives all of it; the piece
    is sorted by timsort, which merges its runs' slices."""
    runs = [run for run in runs if run]
    starts = [0] * len(runs)
    while runs:
        share = max(1, step // len(runs))
        cut = min(run[min(len(run), start + share) - 1]
                  for run, start in zip(runs, starts, strict=True))
        piece: list[Any] = []
        for number, run in enumerate(runs):
            start = starts[number]
            end = bisect_right(run, cut, start, min(len(run), start + share))
            piece += run[start:end]
            starts[number] = end
        piece.sort()
        left = [number for number, run in enumerate(runs) if starts[number] < len(run)]
        if len(left) < len(runs):  # a run used up: let it go
            runs = [runs[number] for number in left]
            starts = [starts[number] for number in left]
        yield piece


def _sorted_list_of(sublists: list[list[Any]], length: int) -> SortedList[Any]:
    """The SortedList whose sublists are `sublists` (in order, together `length`
    elements, each of the list's load but the last), as `SortedList(values)` makes it from
    sorted values, without a pass over the values: it sets sortedcontainers 2's layout
    (`_lists`, `_maxes`, `_len`; the positional `_index` is built when first needed).
    The unit tests check the result with the list's own `_check`."""
    made: SortedList[Any] = SortedList()
    layout: dict[str, Any] = vars(made)
    layout["_lists"] = sublists
    layout["_maxes"] = [sublist[-1] for sublist in sublists]
    layout["_len"] = length
    return made


def _bounds(query: DiscoveryQuery) -> tuple[Value, Value]:
    """The filters that bound the sort field itself: where a walk starts and ends."""
    field = query.sort.field
    if field == "credibility":
        return query.min_credibility, None
    if field == "engagement_rate":
        return query.min_engagement_rate, None
    return query.min_followers, query.max_followers


def _filter(query: DiscoveryQuery) -> Callable[[IndexEntry], bool]:
    """One predicate with the query's filters bound; a filter not given costs nothing.
    Tiers are not in it: a walk only visits the accounts of the tiers asked for."""
    topic = None if query.topic is None else query.topic.casefold()
    min_credibility = query.min_credibility
    min_confidence = query.min_confidence
    min_rate = query.min_engagement_rate
    min_followers = query.min_followers
    max_followers = query.max_followers
    followers_bounded = min_followers is not None or max_followers is not None

    def accepts(entry: IndexEntry) -> bool:
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


def merge_pages(pages: Mapping[int, Page | None], sort: Sort, limit: int,
                after: Cursor | None = None) -> MergedPage:
    """One page from the pages of several partitions (None: the partition did not
    answer), each from the same query and cursor (`after`). The merged page stops where
    the partition that stopped first stopped: past that, one of its accounts could still
    be missing. Missing partitions are named, never hidden; their accounts are absent
    from this page and, since the cursor moves on, from the pages after it.

    The next cursor pins each partition to the point in time it was read at: the one of
    this page, or of `after` for a partition that did not answer now."""
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
    last: Hit | None = None
    if len(candidates) > limit:
        last = hits[-1]
    elif boundary is not None:
        last = boundary
    if last is None:
        return MergedPage(hits, None, missing)
    pinned = {partition: (incarnation, generation) for partition, incarnation, generation
              in (after.snapshots if after is not None else ())}
    pinned.update((partition, page.snapshot) for partition, page in pages.items()
                  if page is not None and page.snapshot is not None)
    snapshots = tuple((partition, *pinned[partition]) for partition in sorted(pinned))
    return MergedPage(hits, Cursor(last.value, last.account_id, snapshots), missing)


def encode_cursor(sort: Sort, cursor: Cursor) -> str:
    """An opaque, URL-safe token; it names its sort so that it cannot be used with
    another one, and the partitions' points in time."""
    raw = orjson.dumps([str(sort), cursor.value, cursor.account_id,
                        [list(pinned) for pinned in cursor.snapshots]])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(sort: Sort, token: str) -> Cursor:
    """The cursor in `token`; ValueError if it is not one, or was made for another sort."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        made_for, value, account_id, pinned = orjson.loads(raw)
        snapshots = tuple((int(partition), int(incarnation), int(generation))
                          for partition, incarnation, generation in pinned
                          if all(type(number) is int
                                 for number in (partition, incarnation, generation)))
    except (binascii.Error, ValueError, TypeError) as broken:
        raise ValueError("cursor is not one this service made") from broken
    if made_for != str(sort):
        raise ValueError(f"cursor was made for sort={made_for}, not sort={sort}")
    if not isinstance(account_id, str) or len(snapshots) != len(pinned) or not (
            value is None or (isinstance(value, int | float) and not isinstance(value, bool))):
        raise ValueError("cursor is not one this service made")
    return Cursor(value, account_id, snapshots)


def encode_pages(pages: Mapping[int, Page | None]) -> bytes:
    """Pages of several partitions as one owner answers them to the instance that
    merges: {"<partition>": {"hits": [[account_id, value], ...], "resume_after":
    [value, account_id] | null, "examined": n, "snapshot": [incarnation, generation]}
    | null}."""
    body = {
        str(partition): None if page is None else {
            "hits": [[hit.account_id, hit.value] for hit in page.hits],
            "resume_after": None if page.resume_after is None
            else [page.resume_after.value, page.resume_after.account_id],
            "examined": page.examined,
            "snapshot": None if page.snapshot is None else list(page.snapshot),
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
            snapshot = None
            pin: tuple[tuple[int, int, int], ...] = ()
            if page["snapshot"] is not None:
                incarnation, generation = (int(number) for number in page["snapshot"])
                snapshot, pin = (incarnation, generation), ((partition, incarnation,
                                                             generation),)
            pages[partition] = Page(
                tuple(Hit(str(account_id), value, partition)
                      for account_id, value in page["hits"]),
                None if resume is None else Cursor(resume[0], str(resume[1]), pin),
                int(page["examined"]),
                snapshot,
            )
    except (KeyError, TypeError, ValueError, AttributeError) as broken:
        raise ValueError("not a discovery pages answer") from broken
    return pages
