"""The score-change stream's contract: topic, key, value and tombstone of
`engagement-scores`, as schemas/asyncapi.yaml documents them.

A record is (key, value): the key is the account id in UTF-8, the value the same JSON
body as `GET /accounts/{id}/score` (`score_json`), and a tombstone (value None) says that
the account left the window. The topic is compacted, so it holds the latest score of
every account in the window. When to emit is `service.engine.score_changes`'s business;
producing the records in the changelog's transaction is the consumer's.
"""

from __future__ import annotations

from typing import Any

from service.engine import AccountScore
from service.responses import ScoreBody, score_json

SCORES_TOPIC = "engagement-scores"
TOPIC_CONFIG = {"cleanup.policy": "compact"}
SCHEMA_ID = "https://engagement-scoring.invalid/schemas/score.schema.json"


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
