"""GET /accounts and POST /accounts/scores over real engines, through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from service import problems
from service.discovery_api import (
    MAX_BATCH_IDS,
    Found,
    LocalReader,
    PartitionView,
    Scores,
    build_discovery_router,
)
from service.engine import Engine
from service.engine.discovery import DiscoveryIndex, DiscoveryQuery, IndexEntry, reindex
from service.responses import ScoreBody, score_json
from tests.events import decoded, followers, interaction, post

# (account, followers, topic, likes on its post)
ACCOUNTS = [
    ("vegan-small", 3_000, "veganism", 300),
    ("vegan-micro", 6_000, "veganism", 150),
    ("chess-micro", 8_000, "chess", 400),
    ("vegan-big", 500_000, "veganism", 900),
    ("nano-one", 400, "veganism", 40),
    ("no-followers", None, "chess", 20),
]


def build_partitions() -> dict[int, PartitionView]:
    views = {number: PartitionView(Engine(), DiscoveryIndex(number)) for number in range(3)}
    for position, (account, count, topic, likes) in enumerate(ACCOUNTS):
        view = views[position % 3]
        events = [] if count is None else [followers(account, count, 0)]
        events.append(post(account, "p1", 10, topics=(topic,)))
        events += [interaction("like", account, "p1", f"fan{n}", 100 + n) for n in range(likes)]
        events += [interaction("comment", account, "p1", f"fan{n}", 2_000 + n)
                   for n in range(likes // 10)]
        for event in events:
            view.engine.apply(decoded(event), position % 3)
        reindex(view.index, view.engine, [account])
    return views


@pytest.fixture(scope="module")
def views() -> dict[int, PartitionView]:
    return build_partitions()


@pytest.fixture(scope="module")
def client(views: dict[int, PartitionView]) -> Iterator[TestClient]:
    app = FastAPI()
    app.include_router(build_discovery_router(LocalReader(lambda: views)))
    problems.install(app)
    with TestClient(app) as test_client:
        yield test_client


def test_found_items_are_the_score_bodies_in_the_asked_order(
    client: TestClient, views: dict[int, PartitionView]
) -> None:
    response = client.get("/accounts", params={"sort": "-credibility", "limit": 200})
    assert response.status_code == 200
    body = response.json()
    assert body["partial"] is False
    assert body["missing_partitions"] == []
    assert body["next_cursor"] is None
    ids = [item["account_id"] for item in body["items"]]
    assert sorted(ids) == sorted(account for account, *_ in ACCOUNTS)
    credibilities = [item["credibility"] for item in body["items"]]
    assert credibilities == sorted(credibilities, reverse=True)
    for item in body["items"]:
        ScoreBody.model_validate(item)
        partition = next(number for number, view in views.items()
                         if item["account_id"] in view.index)
        score = views[partition].engine.score(item["account_id"])
        assert score is not None
        assert item == orjson.loads(score_json(score))


def test_filters_combine(client: TestClient) -> None:
    response = client.get("/accounts", params=[("tier", "micro"), ("tier", "nano"),
                                               ("topic", "Veganism"), ("sort", "followers")])
    assert [item["account_id"] for item in response.json()["items"]] == [
        "nano-one", "vegan-small", "vegan-micro"]
    response = client.get("/accounts", params={"min_followers": 1_000,
                                               "max_followers": 7_000, "sort": "-followers"})
    assert [item["account_id"] for item in response.json()["items"]] == [
        "vegan-micro", "vegan-small"]
    response = client.get("/accounts", params={"sort": "-followers", "limit": 200})
    assert response.json()["items"][-1]["account_id"] == "no-followers"
    strict = client.get("/accounts", params={"min_credibility": 100}).json()
    assert strict["items"] == []


def test_pages_follow_the_cursor_to_the_end(client: TestClient) -> None:
    seen: list[str] = []
    params: dict[str, str | int] = {"sort": "engagement_rate", "limit": 2}
    for _ in range(10):
        body = client.get("/accounts", params=params).json()
        seen += [item["account_id"] for item in body["items"]]
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    everything = client.get("/accounts", params={"sort": "engagement_rate", "limit": 200})
    assert seen == [item["account_id"] for item in everything.json()["items"]]
    assert len(seen) == len(ACCOUNTS)


@pytest.mark.parametrize(("params", "parameter"), [
    ({"tier": "mikro"}, "tier"),
    ({"sort": "popularity"}, "sort"),
    ({"limit": 201}, "limit"),
    ({"limit": 0}, "limit"),
    ({"min_credibility": 101}, "min_credibility"),
    ({"min_credibility": "high"}, "min_credibility"),
    ({"min_confidence": 2}, "min_confidence"),
    ({"min_followers": -1}, "min_followers"),
    ({"min_followers": 10, "max_followers": 5}, "max_followers"),
    ({"min_engagement_rate": -0.1}, "min_engagement_rate"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"topic": "x" * 65}, "topic"),
])
def test_bad_parameters_are_a_422_problem_naming_the_parameter(
    client: TestClient, params: dict[str, object], parameter: str
) -> None:
    response = client.get("/accounts", params=params)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert parameter in response.json()["detail"]


def test_a_cursor_is_refused_with_another_sort(client: TestClient) -> None:
    first = client.get("/accounts", params={"limit": 1}).json()
    response = client.get("/accounts", params={"sort": "followers",
                                               "cursor": first["next_cursor"]})
    assert response.status_code == 422
    assert "cursor" in response.json()["detail"]


def test_batch_answers_scores_and_names_the_missing(
    client: TestClient, views: dict[int, PartitionView]
) -> None:
    ids = ["vegan-small", "nobody", "chess-micro", "vegan-small"]
    response = client.post("/accounts/scores", json={"account_ids": ids})
    assert response.status_code == 200
    body = response.json()
    assert set(body["scores"]) == {"vegan-small", "chess-micro"}
    assert body["missing"] == ["nobody"]
    assert body["partial"] is False
    score = views[0].engine.score("vegan-small")
    assert score is not None
    assert body["scores"]["vegan-small"] == orjson.loads(score_json(score))


def test_batch_of_the_largest_size_is_answered(client: TestClient) -> None:
    ids = [f"acc-{n}" for n in range(MAX_BATCH_IDS - 1)] + ["chess-micro"]
    body = client.post("/accounts/scores", json={"account_ids": ids}).json()
    assert list(body["scores"]) == ["chess-micro"]
    assert len(body["missing"]) == MAX_BATCH_IDS - 1


@pytest.mark.parametrize(("content", "status", "parameter"), [
    (orjson.dumps({"account_ids": [f"a{n}" for n in range(MAX_BATCH_IDS + 1)]}), 413,
     "account_ids"),
    (b"x" * 200_000, 413, "batch body"),
    (b"{not json", 422, "body"),
    (b'["a"]', 422, "account_ids"),
    (orjson.dumps({"account_ids": "a"}), 422, "account_ids"),
    (orjson.dumps({"account_ids": ["ok", "bad id"]}), 422, "account_ids[1]"),
    (orjson.dumps({"account_ids": ["ok", 7]}), 422, "account_ids[1]"),
    (orjson.dumps({"account_ids": ["x" * 129]}), 422, "account_ids[0]"),
])
def test_oversized_or_invalid_batches_are_refused(
    client: TestClient, content: bytes, status: int, parameter: str
) -> None:
    response = client.post("/accounts/scores", content=content,
                           headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert parameter in response.json()["detail"]


class PartialReader:
    """A reader whose partition 2 did not answer: the routes must say so."""

    async def discover(self, query: DiscoveryQuery) -> Found:
        return Found([b'{"account_id":"x"}'], None, [2])

    async def scores(self, account_ids: Sequence[str]) -> Scores:
        return Scores({}, [], [2, 0])


def test_partial_answers_name_the_partitions_that_did_not_answer() -> None:
    app = FastAPI()
    app.include_router(build_discovery_router(PartialReader()))
    with TestClient(app) as partial:
        body = partial.get("/accounts").json()
        assert body["partial"] is True
        assert body["missing_partitions"] == [2]
        body = partial.post("/accounts/scores", json={"account_ids": ["x"]}).json()
        assert body == {"scores": {}, "missing": [], "partial": True,
                        "missing_partitions": [0, 2]}


def test_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "get" in paths["/accounts"]
    assert "post" in paths["/accounts/scores"]


def test_a_partition_that_cannot_answer_makes_the_answers_partial(
    views: dict[int, PartitionView]
) -> None:
    app = FastAPI()
    some: dict[int, PartitionView | None] = {**views, 1: None}
    app.include_router(build_discovery_router(LocalReader(lambda: some)))
    with TestClient(app) as partial:
        body = partial.get("/accounts", params={"limit": 200}).json()
        assert body["partial"] is True
        assert body["missing_partitions"] == [1]
        # Partition 1 holds the 2nd and 5th accounts: they are absent, the rest are there.
        assert {item["account_id"] for item in body["items"]} == {
            account for position, (account, *_) in enumerate(ACCOUNTS) if position % 3 != 1}
        body = partial.post("/accounts/scores", json={"account_ids": ["vegan-micro"]}).json()
        assert body["missing"] == ["vegan-micro"]
        assert body["missing_partitions"] == [1]


def test_an_owner_answers_the_pages_of_the_partitions_asked_for(
    views: dict[int, PartitionView]
) -> None:
    reader = LocalReader(lambda: views)
    query = DiscoveryQuery(limit=200)
    pages = reader.pages(query, [0, 2, 5])
    assert set(pages) == {0, 2, 5}
    assert pages[5] is None  # not held here
    page = pages[0]
    assert page is not None
    assert [hit.account_id for hit in page.hits] == [
        hit.account_id for hit in views[0].index.query(query).hits]


def test_an_expired_cursor_is_a_410_problem_on_both_routes() -> None:
    views = build_partitions()
    app = FastAPI()
    reader = LocalReader(lambda: views)
    app.include_router(build_discovery_router(reader, reader))
    problems.install(app)
    with TestClient(app) as expiring:
        first = expiring.get("/accounts", params={"limit": 2}).json()
        cursor = first["next_cursor"]
        assert cursor is not None
        for view in views.values():  # the cursor's points in time are let go
            score = view.engine.score(next(iter(view.engine.accounts)))
            assert score is not None
            view.index.update(score, ("moved",))
            view.index.expire_before(view.index.generation)
        for path, params in (("/accounts", {"limit": 2, "cursor": cursor}),
                             ("/accounts/pages", {"partitions": "0,1,2", "limit": 2,
                                                  "cursor": cursor})):
            answer = expiring.get(path, params=params)
            assert answer.status_code == 410
            assert answer.headers["content-type"] == "application/problem+json"
            problem = answer.json()
            assert problem["title"] == "Cursor Expired"
            assert "older than its index keeps" in problem["detail"]
        assert expiring.get("/accounts", params={"limit": 2}).status_code == 200


def test_pages_follow_one_point_in_time_while_scores_move() -> None:
    views = build_partitions()
    app = FastAPI()
    app.include_router(build_discovery_router(LocalReader(lambda: views)))
    with TestClient(app) as moving:
        first = moving.get("/accounts", params={"limit": 2}).json()
        listed = [item["account_id"] for item in first["items"]]
        # The first page's accounts fall to the bottom: a cursor on live values would
        # list them again.
        for account in listed:
            view = next(view for view in views.values() if account in view.index)
            score = view.engine.score(account)
            assert score is not None
            entry = IndexEntry.of(score, ())
            entry.credibility = 0.0
            view.index.put(account, entry)
        cursor = first["next_cursor"]
        while cursor is not None:
            page = moving.get("/accounts", params={"limit": 2, "cursor": cursor}).json()
            listed += [item["account_id"] for item in page["items"]]
            cursor = page["next_cursor"]
        assert sorted(listed) == sorted(account for account, *_ in ACCOUNTS)


class SplicingReader(PartialReader):
    async def scores(self, account_ids: Sequence[str]) -> Scores:
        return Scores({"here": b'{"account_id":"here"}'}, ["gone"], [],
                      [b'"there":{"account_id":"there"},"also":{"account_id":"also"}', b""])


def test_members_encoded_by_another_instance_are_passed_on_as_they_are() -> None:
    app = FastAPI()
    app.include_router(build_discovery_router(SplicingReader()))
    with TestClient(app) as splicing:
        body = splicing.post("/accounts/scores", json={"account_ids": ["x"]}).json()
    assert body == {"scores": {"here": {"account_id": "here"},
                               "there": {"account_id": "there"},
                               "also": {"account_id": "also"}},
                    "missing": ["gone"], "partial": False, "missing_partitions": []}
