"""Discovery and batch scores over the whole cluster: the instance that receives the
request asks every owner for its partitions' part, with a timeout, and merges.

Discovery: each owner answers the top of each of its partitions for the query and
cursor (`GET /accounts/pages`, internal); `merge_pages` keeps the global order and stops
where the partition that stopped first stopped, so pages never skip an account; then the
chosen accounts' bodies come from their owners (a batch each, in parallel). A partition
whose owner does not answer in time, that has no owner, or that is restoring is named in
`missing_partitions`: the answer says it is partial, never hides it.
Batch: the ids are grouped by the owner of their partition and forwarded in parallel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import orjson

from service.consumer import StreamProcessor
from service.discovery_api import (
    EXPIRED_PREFIX,
    SCORES_CLOSE,
    SCORES_OPEN,
    Found,
    LocalReader,
    Scores,
)
from service.engine.discovery import (
    CursorExpired,
    DiscoveryQuery,
    Page,
    decode_pages,
    encode_cursor,
    merge_pages,
)
from service.routing import Forwarder, ForwardingError, partition_for


class ClusterReader:
    def __init__(self, local: LocalReader, processor: StreamProcessor,
                 forwarder: Callable[[], Forwarder], own_url: str) -> None:
        self.local = local
        self.processor = processor
        self.forwarder = forwarder
        self.own_url = own_url

    def _owners(self) -> tuple[dict[str, list[int]], list[int]]:
        """Partitions by owner URL, and those with no owner right now."""
        cluster = self.processor.cluster
        by_owner: dict[str, list[int]] = {}
        orphans = []
        for partition in range(self.processor.partition_count or 0):
            owner = cluster.owner_of(partition)
            if owner is None:
                orphans.append(partition)
            else:
                by_owner.setdefault(owner, []).append(partition)
        return by_owner, orphans

    async def discover(self, query: DiscoveryQuery) -> Found:
        by_owner, orphans = self._owners()
        pages: dict[int, Page | None] = dict.fromkeys(orphans)
        local_partitions = by_owner.pop(self.own_url, [])
        pages.update(self.local.pages(query, local_partitions))
        remote = await asyncio.gather(*(self._remote_pages(url, partitions, query)
                                        for url, partitions in by_owner.items()))
        for found in remote:
            pages.update(found)
        merged = merge_pages(pages, query.sort, query.limit, query.after)
        owner_of = {p: url for url, partitions in by_owner.items() for p in partitions}
        ids = [hit.account_id for hit in merged.hits]
        bodies = await self._bodies(ids, {hit.account_id: owner_of.get(hit.partition)
                                          for hit in merged.hits})
        ordered = [bodies[account_id] for account_id in ids if account_id in bodies]
        return Found(ordered, merged.next_cursor, merged.missing_partitions)

    async def _remote_pages(self, url: str, partitions: list[int], query: DiscoveryQuery
                            ) -> dict[int, Page | None]:
        params: list[tuple[str, str]] = [("partitions", ",".join(map(str, partitions))),
                                         ("sort", str(query.sort)), ("limit", str(query.limit))]
        params += [("tier", tier) for tier in sorted(query.tiers)]
        for name in ("topic", "min_credibility", "min_followers", "max_followers",
                     "min_engagement_rate", "min_confidence"):
            value = getattr(query, name)
            if value is not None:
                params.append((name, str(value)))
        if query.after is not None:
            params.append(("cursor", encode_cursor(query.sort, query.after)))
        try:
            answer = await self.forwarder().get(url, "/accounts/pages?" + urlencode(params))
            if answer.status == 200:
                return decode_pages(answer.body)
        except (ForwardingError, ValueError):
            return dict.fromkeys(partitions)
        if answer.status == 410:
            # The owner cannot read the cursor's point in time: the whole answer would
            # page in another order, so the request fails as a local expiry does.
            raise CursorExpired(_owner_reason(answer.body, partitions))
        return dict.fromkeys(partitions)

    async def _bodies(self, ids: list[str], owners: dict[str, str | None]
                      ) -> dict[str, bytes]:
        """Score bodies of accounts whose owners are known, each asked once."""
        local = [i for i in ids if owners.get(i) is None]
        bodies = dict(self.local.scores_now(local).bodies) if local else {}
        grouped: dict[str, list[str]] = {}
        for account_id in ids:
            owner = owners.get(account_id)
            if owner is not None:
                grouped.setdefault(owner, []).append(account_id)
        answers = await asyncio.gather(*(self._remote_scores(url, group)
                                         for url, group in grouped.items()))
        for answer in answers:
            if answer is not None:
                bodies.update(answer.bodies)
        return bodies

    async def scores(self, account_ids: Sequence[str]) -> Scores:
        partitions = self.processor.partition_count
        if partitions is None:
            return Scores({}, [], [])
        cluster = self.processor.cluster
        grouped: dict[str, list[str]] = {}
        local_ids: list[str] = []
        unavailable: set[int] = set()
        for account_id in account_ids:
            partition = partition_for(account_id, partitions)
            owner = cluster.owner_of(partition)
            if owner == self.own_url:
                local_ids.append(account_id)
            elif owner is None:
                unavailable.add(partition)
            else:
                grouped.setdefault(owner, []).append(account_id)
        bodies: dict[str, bytes] = {}
        encoded: list[bytes] = []
        missing: list[str] = []
        if local_ids:
            mine = self.local.scores_now(local_ids)
            bodies.update(mine.bodies)
            missing += mine.missing
            unavailable.update(mine.missing_partitions)
        groups = list(grouped.items())
        answers = await asyncio.gather(*(self._remote_scores(url, ids, spliced=True)
                                         for url, ids in groups))
        for (_, ids), answer in zip(groups, answers, strict=True):
            if answer is None:
                unavailable.update(partition_for(i, partitions) for i in ids)
                continue
            bodies.update(answer.bodies)
            encoded += answer.encoded_members
            missing += answer.missing
            unavailable.update(answer.missing_partitions)
        # Ids of partitions that did not answer are neither scored nor known missing.
        unanswered = {i for i in account_ids if partition_for(i, partitions) in unavailable}
        missing = [i for i in missing if i not in unanswered]
        return Scores(bodies, missing, sorted(unavailable), encoded)

    async def _remote_scores(self, url: str, ids: list[str], spliced: bool = False
                             ) -> Scores | None:
        """The owner's answer for `ids`; `spliced`: its "scores" members kept encoded
        as they came (a batch passes them on), else one body per id (discovery orders
        them)."""
        try:
            answer = await self.forwarder().post(url, "/accounts/scores",
                                                 orjson.dumps({"account_ids": ids}))
        except ForwardingError:
            return None
        if answer.status != 200:
            return None
        raw = answer.body
        # The route's layout: {"scores":{<members>},"missing":[...],...}. The last
        # SCORES_CLOSE is the top level's: what follows it holds no object.
        close = raw.rfind(SCORES_CLOSE)
        if spliced and raw.startswith(SCORES_OPEN) and close >= 0:
            rest = orjson.loads(b"{" + raw[close + 2:])
            return Scores({}, list(rest["missing"]), list(rest["missing_partitions"]),
                          [raw[len(SCORES_OPEN):close]])
        body = orjson.loads(raw)
        return Scores({i: orjson.dumps(score) for i, score in body["scores"].items()},
                      list(body["missing"]), list(body["missing_partitions"]))


def _owner_reason(problem_body: bytes, partitions: list[int]) -> str:
    """Why the owner could not read the cursor's point in time, as its problem says."""
    try:
        detail = str(orjson.loads(problem_body)["detail"])
    except (ValueError, KeyError, TypeError):
        return f"partitions {partitions}: their owner no longer holds it"
    return detail.removeprefix(EXPIRED_PREFIX).split("; ask again")[0]
