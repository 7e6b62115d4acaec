"""The discovery route over a synthetic index, for bench/discovery.py's HTTP part: the
service's router and renderer, with `BENCH_DISCOVERY_ACCOUNTS` synthetic scores (the
same ones the bench indexes) instead of engines fed from Kafka."""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence

from fastapi import FastAPI

from bench.discovery import synthetic_scores
from service import problems
from service.discovery_api import Found, Scores, build_discovery_router
from service.engine.discovery import DiscoveryIndex, DiscoveryQuery, merge_pages
from service.engine.engine import AccountScore
from service.responses import score_json


class SyntheticReader:
    """LocalReader's steps, with the scores held in a dict instead of an engine."""

    def __init__(self, count: int) -> None:
        self.index = DiscoveryIndex()
        self.by_id: dict[str, AccountScore] = {}
        for score, topics in synthetic_scores(count):
            self.index.update(score, topics)
            self.by_id[score.account_id] = score

    async def discover(self, query: DiscoveryQuery) -> Found:
        merged = merge_pages({0: self.index.query(query)}, query.sort, query.limit)
        bodies = [score_json(self.by_id[hit.account_id]) for hit in merged.hits]
        return Found(bodies, merged.next_cursor, merged.missing_partitions)

    async def scores(self, account_ids: Sequence[str]) -> Scores:
        known = {account_id: score_json(self.by_id[account_id])
                 for account_id in account_ids if account_id in self.by_id}
        return Scores(known, [account_id for account_id in account_ids
                              if account_id not in known])


app = FastAPI()
app.include_router(build_discovery_router(
    SyntheticReader(int(os.environ.get("BENCH_DISCOVERY_ACCOUNTS", "1000000")))))
problems.install(app)
gc.freeze()  # as the service does after a restore
