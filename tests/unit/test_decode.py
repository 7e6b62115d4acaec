"""The decoder: every bad message is classified, none raises."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.events import Event, Rejection, RejectReason, decode_event
from tests.events import interaction

NOW = 1_800_000_000.0
VALID = interaction("like", "acc-42", "p9", "u7", 0)


def decode(value: bytes | None, key: bytes | None = b"acc-42") -> Event | Rejection:
    return decode_event(key, value, now=NOW, max_event_bytes=8192, max_future_skew_s=300)


def rejected(value: bytes | None, key: bytes | None = b"acc-42") -> RejectReason:
    result = decode(value, key)
    assert isinstance(result, Rejection), result
    assert result.detail
    return result.reason


def with_(**changes: Any) -> bytes:
    return orjson.dumps({**VALID, **changes})


def without(field: str) -> bytes:
    return orjson.dumps({k: v for k, v in VALID.items() if k != field})


def test_a_valid_event_decodes() -> None:
    assert not isinstance(decode(orjson.dumps(VALID)), Rejection)


# Every class of bad message, with the reason it is dead-lettered for (the compiled and
# the reference decoder must agree on each: tests/unit/test_decoders_agree.py).
BAD_MESSAGES: list[tuple[bytes | None, RejectReason]] = [
    (b"\xff\xfe\x00", RejectReason.NOT_UTF8),
    (b"{not json", RejectReason.NOT_JSON),
    (None, RejectReason.NOT_JSON),
    (b"[1, 2]", RejectReason.NOT_AN_OBJECT),
    (with_(type="poke"), RejectReason.UNKNOWN_TYPE),
    (without("type"), RejectReason.MISSING_FIELD),
    (without("actor_id"), RejectReason.MISSING_FIELD),
    (with_(account_id="x" * 129), RejectReason.INVALID_ID),
    (with_(account_id="has space"), RejectReason.INVALID_ID),
    (with_(post_id=7), RejectReason.INVALID_ID),
    (with_(occurred_at="yesterday"), RejectReason.INVALID_TIMESTAMP),
    (with_(occurred_at="2026-11-24T10:00:00"), RejectReason.INVALID_TIMESTAMP),
    (with_(occurred_at="2099-01-01T00:00:00Z"), RejectReason.TIMESTAMP_IN_FUTURE),
    (orjson.dumps({"event_id": "f", "type": "followers", "account_id": "acc-42",
                   "followers": -1, "occurred_at": "2026-11-01T00:00:00Z"}),
     RejectReason.INVALID_VALUE),
    (orjson.dumps({"event_id": "f", "type": "followers", "account_id": "acc-42",
                   "followers": "12", "occurred_at": "2026-11-01T00:00:00Z"}),
     RejectReason.INVALID_VALUE),
    (b" " * 9000, RejectReason.PAYLOAD_TOO_LARGE),
]


@pytest.mark.parametrize(("value", "reason"), BAD_MESSAGES)
def test_bad_messages_are_classified(value: bytes | None, reason: RejectReason) -> None:
    assert rejected(value) == reason


def test_key_must_equal_the_account_id() -> None:
    assert rejected(orjson.dumps(VALID), key=b"someone-else") == RejectReason.KEY_MISMATCH
    assert rejected(orjson.dumps(VALID), key=None) == RejectReason.KEY_MISMATCH


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=2_000, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise(value: bytes) -> None:
    result = decode(value)
    assert isinstance(result, Rejection)
    assert result.reason in RejectReason


@settings(max_examples=2_000, deadline=None)
@given(json_values)
def test_arbitrary_json_never_raises(value: Any) -> None:
    result = decode(json.dumps(value).encode())
    assert isinstance(result, Rejection)


@settings(max_examples=3_000, deadline=None)
@given(st.sampled_from(sorted(VALID)), json_values, st.booleans())
def test_every_damaged_valid_event_is_rejected_with_a_reason(
    field: str, replacement: Any, drop: bool
) -> None:
    damaged = {k: v for k, v in VALID.items() if k != field}
    if not drop:
        damaged[field] = replacement
    result = decode(json.dumps(damaged).encode())
    free_text_id = field in {"event_id", "post_id", "actor_id"}
    still_valid = not drop and free_text_id and isinstance(replacement, str) \
        and 0 < len(replacement) <= 128
    if still_valid or damaged == VALID:
        return
    assert isinstance(result, Rejection), (damaged, result)
    assert result.reason in RejectReason


@pytest.mark.parametrize("moment", ["0", "1700000000", "12.5"])
def test_unix_seconds_in_a_string_are_not_an_rfc_3339_time(moment: str) -> None:
    # pydantic alone reads them as Unix seconds; the contract says RFC 3339.
    assert rejected(json.dumps({**VALID, "occurred_at": moment}).encode()) \
        is RejectReason.INVALID_TIMESTAMP
