"""Builders of valid events for the tests, as dicts (for Kafka) or decoded (for the engine)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from service.events import Event, Rejection, decode_event

T0 = datetime(2026, 11, 1, tzinfo=UTC)
_ids = itertools.count()


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def followers(account: str, count: int, t: float = 0.0, **extra: Any) -> dict[str, Any]:
    return {"event_id": f"f{next(_ids)}", "type": "followers", "account_id": account,
            "followers": count, "occurred_at": at(t), **extra}


def post(account: str, post_id: str, t: float, sponsored: bool = False,
         topics: tuple[str, ...] = ("veganism",), **extra: Any) -> dict[str, Any]:
    return {"event_id": f"p{next(_ids)}", "type": "post", "account_id": account,
            "post_id": post_id, "sponsored": sponsored, "topics": list(topics),
            "occurred_at": at(t), **extra}


def interaction(kind: str, account: str, post_id: str, actor: str, t: float,
                **extra: Any) -> dict[str, Any]:
    return {"event_id": f"i{next(_ids)}", "type": kind, "account_id": account,
            "post_id": post_id, "actor_id": actor, "occurred_at": at(t), **extra}


def decoded(event: dict[str, Any]) -> Event:
    result = decode_event(event["account_id"].encode(), orjson.dumps(event), now=2e9,
                          max_event_bytes=8192, max_future_skew_s=300)
    assert not isinstance(result, Rejection), result
    return result
