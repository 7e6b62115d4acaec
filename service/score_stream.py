"""The score-change stream's contract: topic, key, value and tombstone of
`engagement-scores`, as schemas/asyncapi.yaml documents them.

A record is (key, value): the key is the account id in UTF-8, the value the same JSON
body as `GET /accounts/{id}/score` (`score_json`), and a tombstone (value None) says that
the account left the window. The topic is compacted, so it holds the latest score of
every account in the window. When to emit is `service.engine.score_changes`'s business;
producing the records in the changelog's transaction is the consumer's, at the pace
`RescoreBudget` sets.
"""

from __future__ import annotations

from typing import Any

from service.engine import AccountScore
from service.responses import ScoreBody, score_json

SCORES_TOPIC = "engagement-scores"
TOPIC_CONFIG = {"cleanup.policy": "compact"}
SCHEMA_ID = "https://engagement-scoring.invalid/schemas/score.schema.json"


class RescoreBudget:
    """How many accounts a checkpoint may score afresh for the stream, per partition.

    Each account that moved costs a fresh score (and a body if it is published). In live
    traffic the interval bounds that: an account is scored at most once per interval of
    event time. History that arrives faster than real time (a backfill, a catch-up after
    downtime) passes event time quickly, and every event could then cost a score. So the
    stream may take at most `share` of the consumer's time, judged from what re-scoring
    measured so far (a moving average per account), and a partition's share of it at
    most MOST_BLOCK_S at a time (it runs on the event loop); the accounts left over wait
    their turn, each once however often it moves (`PartitionState.score_changes`)."""

    AT_LEAST_PER_PARTITION = 20  # progress, whatever a score costs
    # A partition's re-scoring runs on the event loop in one go: queries wait behind it.
    MOST_BLOCK_S = 0.025
    SMOOTHING = 0.2
    LEAST_COST_S = 1e-6

    def __init__(self, share: float, commit_interval_s: float = 1.0,
                 first_cost_s: float = 100e-6) -> None:
        if not 0 < share <= 1:
            raise ValueError("share must be in (0, 1]")
        self.share = share
        # A stall earns no more than two intervals' worth: the re-scoring runs on the
        # event loop, and share x a long stall could hold it past the session timeout.
        self.most_elapsed_s = 2 * commit_interval_s
        self.cost_s = first_cost_s  # per account scored afresh, with its body

    def allowances(self, elapsed_s: float, waiting: dict[int, int]) -> dict[int, int]:
        """Accounts each partition may score at a checkpoint `elapsed_s` after the last
        one, in proportion to what waits in each (`waiting`: partition -> accounts)."""
        elapsed_s = min(max(elapsed_s, 0.0), self.most_elapsed_s)
        cost_s = max(self.cost_s, self.LEAST_COST_S)
        affordable = self.share * elapsed_s / cost_s
        most = max(self.AT_LEAST_PER_PARTITION, int(self.MOST_BLOCK_S / cost_s))
        total = sum(waiting.values())
        return {partition: max(self.AT_LEAST_PER_PARTITION,
                               min(most, int(affordable * count / total) if total else 0))
                for partition, count in waiting.items()}

    def spent(self, accounts: int, seconds: float) -> None:
        if accounts > 0:
            self.cost_s += self.SMOOTHING * (seconds / accounts - self.cost_s)


def score_record(score: AccountScore) -> tuple[bytes, bytes]:
    return score.account_id.encode(), score_json(score)


def tombstone(account_id: str) -> tuple[bytes, None]:
    return account_id.encode(), None


def score_schema() -> dict[str, Any]:
    """The JSON Schema of a record's value (and of the HTTP score body)."""
    schema = ScoreBody.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    return schema
