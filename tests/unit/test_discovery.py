"""The discovery index and the merge of partition pages, against a brute-force oracle."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.engine import Engine, discovery
from service.engine.discovery import (
    MAX_INDEXED_TOPICS,
    Cursor,
    CursorExpired,
    DiscoveryIndex,
    DiscoveryQuery,
    Hit,
    IndexEntry,
    Page,
    Sort,
    decode_cursor,
    decode_pages,
    encode_cursor,
    encode_pages,
    index_topics,
    merge_pages,
    order_key,
    reindex,
)
from service.engine.engine import AccountScore
from service.engine.scoring import Counts, Credibility, Engagement
from tests.events import decoded, followers, interaction, post

TIERS = ("nano", "micro", "mid", "macro", "mega", "unknown")
TOPICS = ("vegan", "travel", "chess", "diy")


def make_score(account_id: str, credibility: float, tier: str = "micro",
               followers: int | None = 5_000, rate: float | None = 0.05,
               confidence: float = 0.8, partition: int = 0) -> AccountScore:
    return AccountScore(
        account_id=account_id, partition=partition, tier=tier, tier_scheme="article",
        followers=followers,
        counts=Counts(posts=1, likes=1, comments=0, shares=0, sponsored_posts=0,
                      awaiting_post=0),
        engagement=Engagement(rate=rate, weighted_rate=rate, expected_rate=0.03, posts=1,
                              posts_with_followers=1, mean_followers_at_post=followers),
        credibility=Credibility(score=credibility, confidence=confidence),
        window_days=30.0, window_start=0.0, as_of=1.0,
    )


Row = dict[str, Any]


def random_rows(rng: random.Random, count: int) -> list[Row]:
    rows = []
    for number in range(count):
        known_followers = rng.random() < 0.9
        rows.append({
            "account_id": f"acc-{number:04d}",
            # Few distinct values, so that ties (broken by id) are common.
            "credibility": float(rng.randrange(0, 20) * 5),
            "tier": rng.choice(TIERS),
            "followers": rng.randrange(0, 50) * 100 if known_followers else None,
            "rate": rng.randrange(0, 10) / 100 if rng.random() < 0.8 else None,
            "confidence": rng.randrange(0, 5) / 4,
            "topics": tuple(sorted(rng.sample(TOPICS, rng.randrange(0, 3)))),
        })
    return rows


def index_rows(index: DiscoveryIndex, rows: Iterable[Row]) -> None:
    for row in rows:
        index.update(make_score(row["account_id"], row["credibility"], row["tier"],
                                row["followers"], row["rate"], row["confidence"],
                                index.partition), row["topics"])


def oracle(rows: list[Row], query: DiscoveryQuery) -> list[str]:
    """What the query must answer, in order, by looking at every account."""
    field = {"credibility": "credibility", "engagement_rate": "rate",
             "followers": "followers"}[query.sort.field]

    def accepted(row: Row) -> bool:
        checks = [
            not query.tiers or row["tier"] in query.tiers,
            query.topic is None or query.topic in row["topics"],
            query.min_credibility is None or row["credibility"] >= query.min_credibility,
            query.min_confidence is None or row["confidence"] >= query.min_confidence,
            query.min_engagement_rate is None or (
                row["rate"] is not None and row["rate"] >= query.min_engagement_rate),
            query.min_followers is None or (
                row["followers"] is not None and row["followers"] >= query.min_followers),
            query.max_followers is None or (
                row["followers"] is not None and row["followers"] <= query.max_followers),
        ]
        return all(checks)

    hits = [Hit(row["account_id"], row[field], 0) for row in rows if accepted(row)]
    hits.sort(key=order_key(query.sort), reverse=query.sort.descending)
    return [hit.account_id for hit in hits]


def page_through(ask: Callable[[DiscoveryQuery], tuple[list[str], Cursor | None]],
                 query: DiscoveryQuery, most_pages: int = 10_000) -> list[str]:
    seen: list[str] = []
    after = None
    for _ in range(most_pages):
        ids, after = ask(_with(query, after=after))
        seen += ids
        if after is None:
            return seen
    raise AssertionError("pagination did not end")


def _with(query: DiscoveryQuery, **changes: Any) -> DiscoveryQuery:
    fields = {name: getattr(query, name) for name in query.__dataclass_fields__}
    return DiscoveryQuery(**{**fields, **changes})


def ask_index(index: DiscoveryIndex, budget: int = 20_000
              ) -> Callable[[DiscoveryQuery], tuple[list[str], Cursor | None]]:
    def ask(query: DiscoveryQuery) -> tuple[list[str], Cursor | None]:
        page = index.query(query, budget)
        assert len(page.hits) <= query.limit
        return [hit.account_id for hit in page.hits], page.resume_after
    return ask


queries = st.builds(
    DiscoveryQuery,
    sort=st.builds(Sort, st.sampled_from(("credibility", "engagement_rate", "followers")),
                   st.booleans()),
    limit=st.integers(1, 12),
    tiers=st.frozensets(st.sampled_from(TIERS), max_size=2),
    topic=st.none() | st.sampled_from((*TOPICS, "VEGAN", "nobody-posts-this")),
    min_credibility=st.none() | st.sampled_from((0.0, 25.0, 50.0, 97.5)),
    min_followers=st.none() | st.sampled_from((0, 1_000, 2_500)),
    max_followers=st.none() | st.sampled_from((500, 3_000)),
    min_engagement_rate=st.none() | st.sampled_from((0.0, 0.05)),
    min_confidence=st.none() | st.sampled_from((0.5, 1.0)),
)


@settings(max_examples=200, deadline=None)
@given(query=queries, seed=st.integers(0, 1_000), budget=st.sampled_from((3, 20_000)),
       small_topic=st.sampled_from((0, 2_000)))
def test_paging_through_a_query_lists_exactly_what_a_full_scan_finds(
    query: DiscoveryQuery, seed: int, budget: int, small_topic: int
) -> None:
    """With small_topic 0, a topic query walks the whole order instead of sorting the
    topic's accounts: both ways must give the same answer."""
    rows = random_rows(random.Random(seed), 120)
    for row in rows:
        row["topics"] = tuple(topic.casefold() for topic in row["topics"])
    index = DiscoveryIndex()
    index_rows(index, rows)
    expected = oracle(rows, _with(query, topic=None if query.topic is None
                                  else query.topic.casefold()))
    with mock.patch.object(discovery, "SMALL_TOPIC_ACCOUNTS", small_topic):
        assert page_through(ask_index(index, budget), query) == expected


@settings(max_examples=100, deadline=None)
@given(query=queries, seed=st.integers(0, 1_000), budget=st.sampled_from((2, 20_000)))
def test_three_partitions_merged_page_by_page_equal_one_index(
    query: DiscoveryQuery, seed: int, budget: int
) -> None:
    rows = random_rows(random.Random(seed), 90)
    whole = DiscoveryIndex()
    index_rows(whole, rows)
    partitions = {number: DiscoveryIndex(number) for number in range(3)}
    for position, row in enumerate(rows):
        index_rows(partitions[position % 3], [row])

    def ask_cluster(page_query: DiscoveryQuery) -> tuple[list[str], Cursor | None]:
        pages: dict[int, Page | None] = {
            number: index.query(page_query, budget) for number, index in partitions.items()}
        merged = merge_pages(pages, page_query.sort, page_query.limit)
        assert not merged.partial
        assert len(merged.hits) <= page_query.limit
        for hit in merged.hits:
            assert hit.account_id in partitions[hit.partition]
        return [hit.account_id for hit in merged.hits], merged.next_cursor

    assert page_through(ask_cluster, query) == page_through(ask_index(whole), query)


def test_accounts_that_did_not_change_are_listed_once_while_others_move() -> None:
    rng = random.Random(7)
    rows = random_rows(rng, 300)
    index = DiscoveryIndex()
    index_rows(index, rows)
    query = DiscoveryQuery(sort=Sort("credibility", True), limit=25)
    changed: set[str] = set()
    seen: list[str] = []
    after = None
    while True:
        page = index.query(_with(query, after=after))
        seen += [hit.account_id for hit in page.hits]
        after = page.resume_after
        if after is None:
            break
        # Between pages, a tenth of the accounts move anywhere, some leave, some arrive.
        for row in rng.sample(rows, 30):
            row["credibility"] = float(rng.randrange(0, 20) * 5)
            changed.add(row["account_id"])
            index_rows(index, [row])
        gone = rng.choice(rows)
        index.remove(gone["account_id"])
        changed.add(gone["account_id"])
        newcomer = random_rows(rng, 1)[0] | {"account_id": f"new-{len(seen)}"}
        index_rows(index, [newcomer])
        changed.add(newcomer["account_id"])
    unchanged = [row["account_id"] for row in rows if row["account_id"] not in changed]
    listed_unchanged = [account_id for account_id in seen if account_id not in changed]
    assert sorted(listed_unchanged) == sorted(unchanged)
    assert len(listed_unchanged) == len(set(listed_unchanged))


def test_update_moves_an_account_and_remove_forgets_it() -> None:
    index = DiscoveryIndex()
    index.update(make_score("a", 40.0), ["vegan"])
    index.update(make_score("b", 60.0), ["vegan", "chess"])
    top = DiscoveryQuery(limit=5, topic="vegan")
    assert [hit.account_id for hit in index.query(top).hits] == ["b", "a"]
    index.update(make_score("a", 90.0, followers=None, rate=None), ["chess"])
    assert [hit.account_id for hit in index.query(top).hits] == ["b"]
    assert index.topic_size("chess") == 2
    by_followers = DiscoveryQuery(sort=Sort("followers", True), limit=5)
    assert [(hit.account_id, hit.value) for hit in index.query(by_followers).hits] == [
        ("b", 5_000), ("a", None)]
    assert index.remove("b")
    assert not index.remove("b")
    assert index.topic_size("vegan") == 0
    assert [hit.account_id for hit in index.query(DiscoveryQuery()).hits] == ["a"]
    assert len(index) == 1


def test_topics_given_twice_or_in_capitals_count_once() -> None:
    index = DiscoveryIndex()
    index.update(make_score("a", 50.0), ["Vegan", "vegan", "VEGAN"])
    index.update(make_score("a", 60.0), ["vegan"])
    assert [hit.account_id for hit in index.query(DiscoveryQuery(topic="vegan")).hits] == [
        "a"]
    assert index.remove("a")
    assert index.topic_size("vegan") == 0


def test_a_missing_partition_is_named_and_the_rest_still_merge() -> None:
    first, second = DiscoveryIndex(0), DiscoveryIndex(1)
    first.update(make_score("a", 80.0), ())
    second.update(make_score("b", 70.0, partition=1), ())
    query = DiscoveryQuery(limit=10)
    merged = merge_pages({0: first.query(query), 1: second.query(query), 2: None},
                         query.sort, query.limit)
    assert [hit.account_id for hit in merged.hits] == ["a", "b"]
    assert merged.missing_partitions == (2,)
    assert merged.partial
    assert merged.next_cursor is None


def test_a_partition_that_stopped_early_bounds_the_merged_page() -> None:
    slow, quick = DiscoveryIndex(0), DiscoveryIndex(1)
    for number in range(10):
        slow.update(make_score(f"s{number}", 90.0 - number, confidence=0.1), ())
    slow.update(make_score("s-sure", 50.0, confidence=0.9), ())
    quick.update(make_score("q", 60.0, confidence=0.9, partition=1), ())
    query = DiscoveryQuery(limit=5, min_confidence=0.5)
    pages: dict[int, Page | None] = {0: slow.query(query, budget=4), 1: quick.query(query)}
    merged = merge_pages(pages, query.sort, query.limit)
    # The slow partition only looked down to credibility 87: "q" (60) may not come yet.
    assert merged.hits == ()
    # Each partition pinned at the generation its page read (11 and 1 changes made).
    assert merged.next_cursor == Cursor(87.0, "s3", ((0, 0, 11), (1, 0, 1)))
    again = _with(query, after=merged.next_cursor)
    pages = {0: slow.query(again), 1: quick.query(again)}
    merged = merge_pages(pages, query.sort, query.limit)
    assert [hit.account_id for hit in merged.hits] == ["q", "s-sure"]


def test_a_tier_filter_walks_only_that_tier() -> None:
    index = DiscoveryIndex()
    for number in range(50):
        index.update(make_score(f"big{number:02d}", 90.0, tier="mega"), ())
    index.update(make_score("small", 10.0, tier="micro"), ())
    page = index.query(DiscoveryQuery(tiers=frozenset({"micro"})), budget=5)
    assert [hit.account_id for hit in page.hits] == ["small"]
    assert page.examined == 1
    index.update(make_score("small", 95.0, tier="mega"), ())
    assert index.query(DiscoveryQuery(tiers=frozenset({"micro"}))).hits == ()
    assert index.query(DiscoveryQuery(tiers=frozenset({"mega"}))).hits[0].account_id == "small"


def test_topics_are_those_most_posted_case_folded_and_capped() -> None:
    engine = Engine()
    events = [followers("acc", 3_000, 0)]
    events += [post("acc", f"p{n}", 10 + n, topics=("Vegan", f"t{n:02d}")) for n in range(12)]
    events += [post("acc", "p-extra", 40, topics=("travel", "t00"))]
    for event in events:
        engine.apply(decoded(event))
    account = engine.accounts.get("acc")
    assert account is not None
    topics = index_topics(account.window_posts(-1e18))
    assert topics[:2] == ("vegan", "t00")
    assert len(topics) == MAX_INDEXED_TOPICS


def test_reindex_follows_the_engine_and_drops_what_it_no_longer_holds() -> None:
    engine = Engine()
    for event in [followers("acc", 3_000, 0), post("acc", "p1", 10, topics=("chess",)),
                  *[interaction("like", "acc", "p1", f"u{n}", 20 + n) for n in range(30)]]:
        engine.apply(decoded(event))
    index = DiscoveryIndex()
    reindex(index, engine, ["acc", "nobody"])
    hits = index.query(DiscoveryQuery(topic="chess", tiers=frozenset({"micro"}))).hits
    score = engine.score("acc")
    assert score is not None
    assert [(hit.account_id, hit.value) for hit in hits] == [("acc", score.credibility.score)]
    index.update(make_score("gone", 10.0), ())
    reindex(index, engine, ["gone"])
    assert "gone" not in index


def test_cursor_round_trips_and_refuses_other_sorts_and_garbage() -> None:
    sort = Sort.parse("-followers")
    for cursor in (Cursor(12, "a"), Cursor(None, "b"), Cursor(0.125, "c.d@e")):
        assert decode_cursor(sort, encode_cursor(sort, cursor)) == cursor
    token = encode_cursor(sort, Cursor(12, "a"))
    with pytest.raises(ValueError, match="sort=-followers"):
        decode_cursor(Sort.parse("followers"), token)
    for garbage in ("", "!!!", "bm90IGpzb24", encode_cursor(sort, Cursor(12, "a"))[:-3]):
        with pytest.raises(ValueError, match="cursor"):
            decode_cursor(sort, garbage)


@pytest.mark.parametrize("text", ["", "-", "name", "--credibility", "+credibility"])
def test_sort_names_one_of_three_fields(text: str) -> None:
    with pytest.raises(ValueError, match="sort must be one of"):
        Sort.parse(text)


def test_limit_is_bounded() -> None:
    for limit in (0, 201):
        with pytest.raises(ValueError, match="limit"):
            DiscoveryQuery(limit=limit)


@settings(max_examples=60, deadline=None)
@given(query=queries, seed=st.integers(0, 1_000))
def test_an_index_after_many_updates_answers_as_one_built_afresh(
    query: DiscoveryQuery, seed: int
) -> None:
    rng = random.Random(seed)
    rows = {row["account_id"]: row for row in random_rows(rng, 80)}
    churned = DiscoveryIndex()
    index_rows(churned, rows.values())
    for _ in range(200):
        account_id = rng.choice(sorted(rows))
        if rng.random() < 0.1:
            churned.remove(account_id)
            del rows[account_id]
            continue
        # Tier, values and topics all move: the account changes buckets and orders.
        moved = random_rows(rng, 1)[0] | {"account_id": account_id}
        rows[account_id] = moved
        index_rows(churned, [moved])
    fresh = DiscoveryIndex()
    index_rows(fresh, rows.values())
    assert len(churned) == len(fresh) == len(rows)
    assert page_through(ask_index(churned, 7), query) == page_through(ask_index(fresh), query)


def test_pages_travel_between_instances_unchanged() -> None:
    first, second = DiscoveryIndex(0), DiscoveryIndex(4)
    first.update(make_score("a", 80.0), ())
    first.update(make_score("b", 70.0, followers=None), ())
    second.update(make_score("c", 75.0, partition=4), ())
    query = DiscoveryQuery(sort=Sort("followers", True), limit=1)
    pages: dict[int, Page | None] = {0: first.query(query), 4: second.query(query), 9: None}
    assert decode_pages(encode_pages(pages)) == pages
    for garbage in (b"[]", b'{"x": null}', b'{"1": {"hits": 3}}', b"not json"):
        with pytest.raises(ValueError, match="discovery pages"):
            decode_pages(garbage)


def churn(index: DiscoveryIndex, rows: dict[str, Row], rng: random.Random, changes: int,
          changed: set[str]) -> None:
    """`changes` accounts move anywhere (tier, values, topics), leave or arrive."""
    for _ in range(changes):
        roll = rng.random()
        if roll < 0.1 and rows:
            gone = rng.choice(sorted(rows))
            index.remove(gone)
            del rows[gone]
            changed.add(gone)
            continue
        account_id = (f"new-{rng.randrange(10**9)}" if roll < 0.2
                      else rng.choice(sorted(rows)))
        moved = random_rows(rng, 1)[0] | {"account_id": account_id}
        rows[account_id] = moved
        changed.add(account_id)
        index_rows(index, [moved])


def test_an_account_moving_across_the_page_boundary_is_listed_once() -> None:
    """Without a point in time, "c" (handed out on the first page, then moved below the
    cursor) was listed again, and "d" (moved above it) was skipped."""
    index = DiscoveryIndex()
    for account_id, credibility in (("a", 90.0), ("b", 80.0), ("c", 70.0), ("d", 60.0),
                                    ("e", 50.0)):
        index.update(make_score(account_id, credibility), ())
    query = DiscoveryQuery(limit=3)
    first = index.query(query)
    assert [hit.account_id for hit in first.hits] == ["a", "b", "c"]
    index.update(make_score("c", 10.0), ())
    index.update(make_score("d", 95.0), ())
    second = index.query(_with(query, after=first.resume_after))
    assert [hit.account_id for hit in second.hits] == ["d", "e"]
    # In the order of the first page's moment; a new first page reads the new order.
    assert [hit.value for hit in second.hits] == [60.0, 50.0]
    assert [hit.account_id for hit in index.query(DiscoveryQuery(limit=5)).hits] == [
        "d", "a", "b", "e", "c"]


@settings(max_examples=120, deadline=None)
@given(query=queries, seed=st.integers(0, 1_000), budget=st.sampled_from((3, 20_000)),
       small_topic=st.sampled_from((0, 2_000)))
def test_paging_under_churn_lists_the_first_pages_moment_exactly(
    query: DiscoveryQuery, seed: int, budget: int, small_topic: int
) -> None:
    """Every account that matched when the first page was read is listed once, in that
    moment's order, however accounts move, leave and arrive between pages; hence none
    twice, and none that did not change skipped."""
    rng = random.Random(seed)
    rows = {row["account_id"]: row for row in random_rows(rng, 120)}
    index = DiscoveryIndex()
    index_rows(index, rows.values())
    churn(index, rows, rng, 40, set())  # versions already kept before the first page
    index.query(DiscoveryQuery())
    churn(index, rows, rng, 40, set())
    folded = _with(query, topic=None if query.topic is None else query.topic.casefold())
    expected = oracle(list(rows.values()), folded)
    seen: list[str] = []
    after = None
    with mock.patch.object(discovery, "SMALL_TOPIC_ACCOUNTS", small_topic):
        for _ in range(10_000):
            page = index.query(_with(query, after=after), budget)
            seen += [hit.account_id for hit in page.hits]
            after = page.resume_after
            if after is None:
                break
            churn(index, rows, rng, rng.randrange(0, 15), set())
    assert seen == expected


@settings(max_examples=60, deadline=None)
@given(query=queries, seed=st.integers(0, 1_000), budget=st.sampled_from((2, 20_000)))
def test_merged_pages_of_three_partitions_under_churn_list_each_account_once(
    query: DiscoveryQuery, seed: int, budget: int
) -> None:
    rng = random.Random(seed)
    rows = [{row["account_id"]: row for row in random_rows(rng, 40)} for _ in range(3)]
    for number, part in enumerate(rows):
        for row in list(part.values()):
            part.pop(row["account_id"])
            row["account_id"] = f"p{number}-{row['account_id']}"
            part[row["account_id"]] = row
    partitions = {number: DiscoveryIndex(number, incarnation=100 + number)
                  for number in range(3)}
    for number, index in partitions.items():
        index_rows(index, rows[number].values())
    folded = _with(query, topic=None if query.topic is None else query.topic.casefold())
    expected = sorted(
        oracle([row for part in rows for row in part.values()], folded))
    seen: list[str] = []
    after: Cursor | None = None
    changed: set[str] = set()
    for _ in range(10_000):
        asked = _with(query, after=after)
        merged = merge_pages({number: index.query(asked, budget)
                              for number, index in partitions.items()},
                             query.sort, query.limit, after)
        seen += [hit.account_id for hit in merged.hits]
        after = merged.next_cursor
        if after is None:
            break
        for number, index in partitions.items():
            churn(index, rows[number], rng, rng.randrange(0, 6), changed)
    assert len(seen) == len(set(seen))
    assert sorted(seen) == expected


def test_a_cursor_older_than_the_index_keeps_or_of_a_rebuilt_index_expires() -> None:
    index = DiscoveryIndex(3, incarnation=7)
    for number in range(6):
        index.update(make_score(f"a{number}", 50.0 + number), ())
    first = index.query(DiscoveryQuery(limit=2))
    assert first.resume_after is not None
    assert first.resume_after.snapshots == ((3, 7, 6),)
    index.update(make_score("a0", 99.0), ())
    index.expire_before(6)  # the first page's generation is still kept
    assert len(index.query(DiscoveryQuery(limit=2, after=first.resume_after)).hits) == 2
    index.expire_before(7)
    with pytest.raises(CursorExpired, match="partition 3: the first page is older"):
        index.query(DiscoveryQuery(limit=2, after=first.resume_after))
    rebuilt = DiscoveryIndex(3, incarnation=8)
    with pytest.raises(CursorExpired, match="built anew"):
        rebuilt.query(DiscoveryQuery(limit=2, after=first.resume_after))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 1_000))
def test_expired_versions_leave_an_index_equal_to_one_built_afresh(seed: int) -> None:
    rng = random.Random(seed)
    rows = {row["account_id"]: row for row in random_rows(rng, 60)}
    index = DiscoveryIndex()
    index_rows(index, rows.values())
    for _ in range(5):
        index.query(DiscoveryQuery())  # a reader: versions are kept from here on
        churn(index, rows, rng, 30, set())
    assert index.versions_kept > 0
    index.expire_before(index.generation)
    assert index.prune(most=3) == 3  # a slice at a time
    index.prune()
    assert index.versions_kept == 0
    fresh = DiscoveryIndex()
    index_rows(fresh, rows.values())
    assert tiers_of(index) == tiers_of(fresh)


def test_keeping_at_most_so_many_versions_expires_the_oldest_cursors() -> None:
    index = DiscoveryIndex()
    for number in range(10):
        index.update(make_score(f"a{number}", float(number)), ())
    first = index.query(DiscoveryQuery(limit=2))
    for number in range(10):
        index.update(make_score(f"a{number}", 50.0 + number), ())
    assert index.versions_kept == 10
    index.keep_at_most(4)
    index.prune()
    assert index.versions_kept <= 4
    with pytest.raises(CursorExpired):
        index.query(DiscoveryQuery(limit=2, after=first.resume_after))


def test_a_bulk_load_answers_as_updates_one_at_a_time() -> None:
    rows = random_rows(random.Random(4), 200)
    one_by_one, loaded = DiscoveryIndex(), DiscoveryIndex()
    index_rows(one_by_one, rows)
    loaded.load((row["account_id"], IndexEntry.of(
        make_score(row["account_id"], row["credibility"], row["tier"], row["followers"],
                   row["rate"], row["confidence"]), row["topics"])) for row in rows)
    assert tiers_of(loaded) == tiers_of(one_by_one)
    assert len(loaded) == len(one_by_one)
    with pytest.raises(ValueError, match="empty"):
        loaded.load(())


def entries_of(rows: Iterable[Row]) -> list[tuple[str, IndexEntry]]:
    return [(row["account_id"], IndexEntry.of(
        make_score(row["account_id"], row["credibility"], row["tier"], row["followers"],
                   row["rate"], row["confidence"]), row["topics"])) for row in rows]


def sorted_lists_of(index: DiscoveryIndex) -> list[Any]:
    return [order for orders in index._tiers.values()
            for order in (*orders.known, *orders.unknown, *orders.topics.values())]


@pytest.mark.parametrize("step", [1, 3, 7, 50])
def test_a_load_in_small_steps_makes_the_sorted_lists_updates_make(step: int) -> None:
    """Many runs per order, merged a piece at a time, cut into sublists of 4 (the
    sorted lists' load, made small so that a list has many): the same lists, valid by
    sortedcontainers' own check, and they go on working as the updates' do."""
    rng = random.Random(step)
    rows = {row["account_id"]: row for row in random_rows(rng, 300)}
    with mock.patch.object(discovery.SortedList, "DEFAULT_LOAD_FACTOR", 4):
        one_by_one, loaded = DiscoveryIndex(), DiscoveryIndex()
        index_rows(one_by_one, rows.values())
        steps = sum(1 for _ in loaded.loading(entries_of(rows.values()), step=step))
    assert steps > len(rows) // max(1, step // 10)
    assert tiers_of(loaded) == tiers_of(one_by_one)
    for order in sorted_lists_of(loaded):
        order._check()
        assert all(len(sublist) == 4 for sublist in order._lists[:-1])
    for index in (loaded, one_by_one):  # the same changes after the load
        churn(index, dict(rows), random.Random(1), 100, set())
    assert tiers_of(loaded) == tiers_of(one_by_one)
    for order in sorted_lists_of(loaded):
        order._check()
    for query in (DiscoveryQuery(limit=200), DiscoveryQuery(topic="vegan", limit=200),
                  DiscoveryQuery(sort=Sort("followers", False), limit=200)):
        assert page_through(ask_index(loaded), query) == page_through(
            ask_index(one_by_one), query)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.integers(0, 30), max_size=40), max_size=6),
       st.integers(1, 25))
def test_merged_pieces_are_bounded_and_in_order(runs: list[list[int]], step: int) -> None:
    """With duplicates across and within runs too (an order's elements never repeat)."""
    everything = sorted(value for run in runs for value in run)
    pieces = list(discovery._merged_pieces([sorted(run) for run in runs], step))
    assert [value for piece in pieces for value in piece] == everything
    assert all(piece for piece in pieces)
    assert all(len(piece) <= max(step, len(runs)) for piece in pieces)


def tiers_of(index: DiscoveryIndex) -> dict[str, Any]:
    """Every sorted list of the index, as plain lists."""
    return {tier: ([list(order) for order in orders.known],
                   [list(order) for order in orders.unknown],
                   {topic: list(members) for topic, members in orders.topics.items()})
            for tier, orders in index._tiers.items()}
