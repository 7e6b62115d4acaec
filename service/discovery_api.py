"""HTTP routes to find accounts and to read many scores at once: `GET /accounts` and
`POST /accounts/scores`.

The routes validate, call a `DiscoveryReader` and write the answer; where the scores come
from is the reader's business. `LocalReader` answers from the partitions this process
holds; a cluster reader fans the same calls out to the owners of the other partitions
and merges with `merge_pages`, naming the partitions that did not answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

import orjson
from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from service.engine import Engine
from service.engine.discovery import (
    MAX_LIMIT,
    SCAN_BUDGET,
    Cursor,
    CursorExpired,
    DiscoveryIndex,
    DiscoveryQuery,
    Page,
    Sort,
    decode_cursor,
    encode_cursor,
    encode_pages,
    merge_pages,
)
from service.engine.tiers import TIER_SCHEMES, UNKNOWN_TIER
from service.event_contract import ACCOUNT_ID_PATTERN, MAX_ID_CHARS, MAX_TOPIC_CHARS
from service.partition_state import Freshness
from service.problems import problem
from service.responses import ProblemBody, ScoreBody, score_json
from service.routing import FORWARDED_HEADER

MAX_BATCH_IDS = 1_000
# Room for the points in time of a few hundred partitions (encode_cursor).
MAX_CURSOR_CHARS = 16_384
SCORES_OPEN = b'{"scores":{'
SCORES_CLOSE = b'},"missing":'
EXPIRED_PREFIX = "cursor: the point in time it pages through is no longer held: "
MIN_BUDGET_PER_PARTITION = 1_000
# 1,000 ids of the longest kind, quoted, with commas: what a valid batch can weigh.
MAX_BATCH_BODY_BYTES = MAX_BATCH_IDS * (MAX_ID_CHARS + 3) + 64
TIERS = frozenset({UNKNOWN_TIER}.union(
    tier for scheme in TIER_SCHEMES.values()
    for tier in (*(name for _, name in scheme.upper_bounds), scheme.top_tier)))
_ACCOUNT_ID = re.compile(ACCOUNT_ID_PATTERN)
_PROBLEM = {"model": ProblemBody, "content": {"application/problem+json": {}}}


@dataclass(frozen=True, slots=True)
class Found:
    """A page of discovery: score bodies (as `score_json` renders them) in order."""

    bodies: Sequence[bytes]
    next_cursor: Cursor | None
    missing_partitions: Sequence[int] = ()


@dataclass(frozen=True, slots=True)
class Scores:
    bodies: Mapping[str, bytes]  # account id -> score body
    missing: Sequence[str]  # not found on the partitions that answered
    missing_partitions: Sequence[int] = ()  # partitions that did not answer: an id of
    # theirs is in `missing` too
    # Members of the "scores" object as another instance encoded them
    # (`"id":{...},"id":{...}`), passed on as they are: no decoding and encoding again.
    encoded_members: Sequence[bytes] = ()


class DiscoveryReader(Protocol):
    """Where the routes get scores from: this process's partitions, or the cluster's."""

    async def discover(self, query: DiscoveryQuery) -> Found:
        """Raises CursorExpired when a partition can no longer read the cursor's
        point in time."""

    async def scores(self, account_ids: Sequence[str]) -> Scores: ...


class PartitionSource(Protocol):
    """A partition as its owner holds it (service/partition_state.py's PartitionState)."""

    @property
    def engine(self) -> Engine: ...

    def freshness(self) -> Freshness: ...


@dataclass(frozen=True, slots=True)
class PartitionView:
    """One partition as the reader needs it: its engine, its discovery index, and how
    current its answers are (rendered into every body, as the score route does)."""

    engine: Engine
    index: DiscoveryIndex
    freshness: Freshness | None = None


class LocalReader:
    """Answers from the partitions this process owns, as `partitions()` lists them now
    (they move on a rebalance); a partition listed as None cannot answer yet (it is
    restoring, or its index is being built) and is named as missing."""

    def __init__(self, partitions: Callable[[], Mapping[int, PartitionView | None]]) -> None:
        self.partitions = partitions

    def pages(self, query: DiscoveryQuery, partitions: Iterable[int] | None = None,
              views: Mapping[int, PartitionView | None] | None = None,
              ) -> dict[int, Page | None]:
        """Each local partition's page (None: it cannot answer), all of them or those
        named: what an owner sends to the instance that merges (`encode_pages`)."""
        views = self.partitions() if views is None else views
        chosen = views if partitions is None else {
            partition: views.get(partition) for partition in partitions}
        # One request examines about SCAN_BUDGET accounts however many partitions it spans.
        budget = max(MIN_BUDGET_PER_PARTITION, SCAN_BUDGET // max(1, len(chosen)))
        return {partition: None if view is None else view.index.query(query, budget)
                for partition, view in chosen.items()}

    def discover_now(self, query: DiscoveryQuery) -> Found:
        views = self.partitions()
        pages = self.pages(query, views=views)
        merged = merge_pages(pages, query.sort, query.limit, query.after)
        bodies = []
        for hit in merged.hits:
            view = views[hit.partition]
            assert view is not None  # its page had hits
            # Rendered from the engine, not the index: the body is the score as of now.
            score = view.engine.score(hit.account_id)
            if score is not None:
                bodies.append(score_json(score, view.freshness))
        return Found(bodies, merged.next_cursor, merged.missing_partitions)

    def scores_now(self, account_ids: Sequence[str]) -> Scores:
        views = self.partitions()
        answering = [view for view in views.values() if view is not None]
        bodies: dict[str, bytes] = {}
        missing = []
        for account_id in account_ids:
            for view in answering:
                score = view.engine.score(account_id)
                if score is not None:
                    bodies[account_id] = score_json(score, view.freshness)
                    break
            else:
                missing.append(account_id)
        unavailable = sorted(partition for partition, view in views.items() if view is None)
        return Scores(bodies, missing, unavailable)

    async def discover(self, query: DiscoveryQuery) -> Found:
        return self.discover_now(query)

    async def scores(self, account_ids: Sequence[str]) -> Scores:
        return self.scores_now(account_ids)


class BatchRequest(BaseModel):
    account_ids: list[str] = Field(max_length=MAX_BATCH_IDS,
                                   description=f"At most {MAX_BATCH_IDS} account ids.")


class FoundBody(BaseModel):
    items: list[ScoreBody]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; "
                                                "null when there is none.")
    partial: bool = Field(description="True when a partition did not answer in time: "
                                      "its accounts are missing from this page.")
    missing_partitions: list[int]


class ScoresBody(BaseModel):
    scores: dict[str, ScoreBody]
    missing: list[str] = Field(description="Ids with no events in the current window.")
    partial: bool
    missing_partitions: list[int]


class InvalidParameter(ValueError):
    """A request the routes refuse, naming the parameter at fault."""

    def __init__(self, parameter: str, reason: str, status: int = 422) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.status = status

    @property
    def title(self) -> str:
        return "Content Too Large" if self.status == 413 else "Invalid Request"


Bound = Annotated[float | None, Query(ge=0)]


def build_discovery_router(reader: DiscoveryReader, local: LocalReader | None = None
                           ) -> APIRouter:
    """The routes over `reader` (the cluster's); with `local`, also the internal route an
    owner answers the merging instance with, and requests forwarded by another instance
    (they carry FORWARDED_HEADER) are answered from `local` alone: one hop, no loop."""
    router = APIRouter()

    def reader_for(request: Request) -> DiscoveryReader:
        if local is not None and request.headers.get(FORWARDED_HEADER):
            return local
        return reader

    async def find_accounts(
        request: Request,
        tier: Annotated[list[str] | None, Query(
            description="Repeatable: tier=micro&tier=nano.")] = None,
        topic: Annotated[str | None, Query(min_length=1, max_length=MAX_TOPIC_CHARS)] = None,
        min_credibility: Annotated[float | None, Query(ge=0, le=100)] = None,
        min_followers: Annotated[int | None, Query(ge=0)] = None,
        max_followers: Annotated[int | None, Query(ge=0)] = None,
        min_engagement_rate: Bound = None,
        min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        sort: Annotated[str, Query(description="credibility, engagement_rate or followers; "
                                               "a leading '-' for descending.")]
        = "-credibility",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
    ) -> Response:
        try:
            query = _query(tier, topic, min_credibility, min_followers, max_followers,
                           min_engagement_rate, min_confidence, sort, limit, cursor)
        except InvalidParameter as invalid:
            return problem(invalid.status, invalid.title, str(invalid), request.url.path)
        try:
            found = await reader_for(request).discover(query)
        except CursorExpired as expired:
            return _expired(expired, request.url.path)
        token = None if found.next_cursor is None else encode_cursor(query.sort,
                                                                      found.next_cursor)
        missing = sorted(found.missing_partitions)
        body = b"".join((
            b'{"items":[', b",".join(found.bodies), b'],"next_cursor":', orjson.dumps(token),
            b',"partial":', b"true" if missing else b"false",
            b',"missing_partitions":', orjson.dumps(missing), b"}",
        ))
        return Response(body, media_type="application/json")

    async def batch_scores(request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BATCH_BODY_BYTES:
            return problem(413, "Content Too Large",
                           f"a batch body is limited to {MAX_BATCH_BODY_BYTES} bytes",
                           request.url.path)
        try:
            account_ids = _batch_ids(raw)
        except InvalidParameter as invalid:
            return problem(invalid.status, invalid.title, str(invalid), request.url.path)
        answer = await reader_for(request).scores(account_ids)
        missing = sorted(answer.missing_partitions)
        members = [b'"%s":%s' % (account_id.encode(), score)  # ids are printable ASCII
                   for account_id, score in answer.bodies.items()]
        members += [encoded for encoded in answer.encoded_members if encoded]
        # This layout is also what ClusterReader splices from (SCORES_OPEN, SCORES_CLOSE).
        body = b"".join((
            SCORES_OPEN, b",".join(members),
            SCORES_CLOSE, orjson.dumps(list(answer.missing)),
            b',"partial":', b"true" if missing else b"false",
            b',"missing_partitions":', orjson.dumps(missing), b"}",
        ))
        return Response(body, media_type="application/json")

    async def partition_pages(
        request: Request,
        partitions: Annotated[str, Query(pattern=r"^[0-9]+(,[0-9]+)*$")],
        tier: Annotated[list[str] | None, Query()] = None,
        topic: Annotated[str | None, Query(min_length=1, max_length=MAX_TOPIC_CHARS)] = None,
        min_credibility: Annotated[float | None, Query(ge=0, le=100)] = None,
        min_followers: Annotated[int | None, Query(ge=0)] = None,
        max_followers: Annotated[int | None, Query(ge=0)] = None,
        min_engagement_rate: Bound = None,
        min_confidence: Annotated[float | None, Query(ge=0, le=1)] = None,
        sort: str = "-credibility",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
        cursor: Annotated[str | None, Query(max_length=MAX_CURSOR_CHARS)] = None,
    ) -> Response:
        """Internal: this owner's pages of the named partitions, for the instance that
        merges a discovery request (`encode_pages`)."""
        assert local is not None
        try:
            query = _query(tier, topic, min_credibility, min_followers, max_followers,
                           min_engagement_rate, min_confidence, sort, limit, cursor)
        except InvalidParameter as invalid:
            return problem(invalid.status, invalid.title, str(invalid), request.url.path)
        wanted = [int(part) for part in partitions.split(",")]
        try:
            pages = local.pages(query, wanted)
        except CursorExpired as expired:
            return _expired(expired, request.url.path)
        return Response(encode_pages(pages), media_type="application/json")

    if local is not None:
        router.add_api_route("/accounts/pages", partition_pages, methods=["GET"],
                             include_in_schema=False)
    router.add_api_route(
        "/accounts", find_accounts, methods=["GET"], response_model=FoundBody,
        responses={410: {**_PROBLEM, "description": "The cursor expired: start again "
                                                    "from the first page."},
                   422: _PROBLEM},
        summary="Find accounts by tier, topic and thresholds, in a chosen order, "
                "a page at a time",
    )
    router.add_api_route(
        "/accounts/scores", batch_scores, methods=["POST"], response_model=ScoresBody,
        responses={413: _PROBLEM, 422: _PROBLEM},
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
            "schema": BatchRequest.model_json_schema()}}}},
        summary=f"Scores of up to {MAX_BATCH_IDS} accounts at once",
    )
    return router


def _expired(expired: CursorExpired, path: str) -> Response:
    return problem(410, "Cursor Expired", f"{EXPIRED_PREFIX}{expired}; ask again without "
                   "a cursor for a first page", path)


def _query(tiers: list[str] | None, topic: str | None, min_credibility: float | None,
           min_followers: int | None, max_followers: int | None,
           min_engagement_rate: float | None, min_confidence: float | None, sort: str,
           limit: int, cursor: str | None) -> DiscoveryQuery:
    unknown = sorted(set(tiers or ()) - TIERS)
    if unknown:
        raise InvalidParameter("tier", f"unknown tier {unknown[0]!r}; one of "
                                       f"{', '.join(sorted(TIERS))}")
    try:
        order = Sort.parse(sort)
    except ValueError as invalid:
        raise InvalidParameter("sort", str(invalid)) from invalid
    if min_followers is not None and max_followers is not None and min_followers > max_followers:
        raise InvalidParameter("max_followers", "must not be below min_followers")
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(order, cursor)
        except ValueError as invalid:
            raise InvalidParameter("cursor", str(invalid)) from invalid
    return DiscoveryQuery(
        sort=order, limit=limit, tiers=frozenset(tiers or ()), topic=topic,
        min_credibility=min_credibility, min_followers=min_followers,
        max_followers=max_followers, min_engagement_rate=min_engagement_rate,
        min_confidence=min_confidence, after=after,
    )


def _batch_ids(raw: bytes) -> list[str]:
    """The ids of a batch body, each once, in the order given."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as broken:
        raise InvalidParameter("body", "not valid JSON") from broken
    if not isinstance(body, dict) or not isinstance(body.get("account_ids"), list):
        raise InvalidParameter("account_ids", 'the body must be {"account_ids": [...]}')
    account_ids = body["account_ids"]
    if len(account_ids) > MAX_BATCH_IDS:
        raise InvalidParameter("account_ids", f"at most {MAX_BATCH_IDS} ids per request, "
                                              f"got {len(account_ids)}", status=413)
    for position, account_id in enumerate(account_ids):
        if not (isinstance(account_id, str) and 0 < len(account_id) <= MAX_ID_CHARS
                and _ACCOUNT_ID.fullmatch(account_id)):
            raise InvalidParameter(f"account_ids[{position}]",
                                   f"must be 1-{MAX_ID_CHARS} characters of "
                                   f"{ACCOUNT_ID_PATTERN}")
    return list(dict.fromkeys(account_ids))
