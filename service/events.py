"""Decoded events and the decoder: every Kafka message becomes an `Event` or a `Rejection`.

A `Rejection` names why, so that the consumer can dead-letter the message with a reason
producers can act on.

The hot path decodes with compiled code into the small structs below, the objects the
engine folds; the event time is parsed once, and converted to epoch seconds once
(`occurred_at_s`). Likes, comments and shares in the usual forms are decoded in Rust
(native/src/wire.rs, about twice as fast as msgspec: bench/decode.py); what it does not
take goes to msgspec. The pydantic models in `service.event_contract` remain the contract
and the source of the JSON Schemas: whatever the compiled decoders do not accept as it
is - every bad message, and the rare valid forms listed at `decode_event_compiled` - is
decided by the contract's validator, so a rejection has the same reason code and detail
as before. `tests/unit/test_decoders_agree.py` and `tests/unit/test_wire_native.py` hold
the decoders to the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

import msgspec
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from service import event_contract as contract
from service.event_contract import (
    ACCOUNT_ID_PATTERN,
    MAX_ID_CHARS,
    MAX_TOPIC_CHARS,
    MAX_TOPICS,
    json_schemas,
)

try:
    import engagement_native
except ImportError:  # not built: the msgspec path serves, slower (bench/decode.py)
    engagement_native = None  # type: ignore[assignment]

__all__ = [
    "ACCOUNT_ID_PATTERN",
    "MAX_ID_CHARS",
    "CommentEvent",
    "Event",
    "FollowersEvent",
    "LikeEvent",
    "PostEvent",
    "RejectReason",
    "Rejection",
    "ShareEvent",
    "decode_event",
    "decode_event_compiled",
    "decode_event_reference",
    "decode_interaction_native",
    "json_schemas",
]


# gc=False: events never form reference cycles, so the cyclic collector need not track
# them (each tracked allocation brings its next collection closer).
class _DecodedEvent(msgspec.Struct, frozen=True, gc=False):
    event_id: str
    account_id: str
    occurred_at: datetime
    occurred_at_s: float  # occurred_at in epoch seconds, as datetime.timestamp() gives it


class _Interaction(_DecodedEvent, frozen=True, gc=False):
    post_id: str
    actor_id: str


class LikeEvent(_Interaction, frozen=True, gc=False):
    type: ClassVar[Literal["like"]] = "like"


class CommentEvent(_Interaction, frozen=True, gc=False):
    type: ClassVar[Literal["comment"]] = "comment"


class ShareEvent(_Interaction, frozen=True, gc=False):
    type: ClassVar[Literal["share"]] = "share"


class PostEvent(_DecodedEvent, frozen=True, gc=False):
    type: ClassVar[Literal["post"]] = "post"
    post_id: str
    sponsored: bool
    topics: tuple[str, ...]


class FollowersEvent(_DecodedEvent, frozen=True, gc=False):
    type: ClassVar[Literal["followers"]] = "followers"
    followers: int


Event = LikeEvent | CommentEvent | ShareEvent | PostEvent | FollowersEvent


class RejectReason(StrEnum):
    """Why a message was dead-lettered; the value goes into the `dlq.reason` header."""

    PAYLOAD_TOO_LARGE = "payload_too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_TYPE = "unknown_type"
    MISSING_FIELD = "missing_field"
    INVALID_ID = "invalid_id"
    INVALID_VALUE = "invalid_value"
    INVALID_TIMESTAMP = "invalid_timestamp"
    TIMESTAMP_IN_FUTURE = "timestamp_in_future"
    KEY_MISMATCH = "key_mismatch"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


def decode_event(
    key: bytes | None,
    value: bytes | None,
    *,
    now: float,
    max_event_bytes: int,
    max_future_skew_s: float,
) -> Event | Rejection:
    """Decode and validate one Kafka message; never raises.

    `now` is the wall clock in epoch seconds, passed in so the check stays deterministic.
    """
    if value is not None and len(value) <= max_event_bytes:
        event: Event | None = None
        if _native_interactions is not None:
            event = _native_interactions(key, value, now, max_event_bytes, max_future_skew_s)
        if event is None:
            event = decode_event_compiled(key, value, now=now,
                                          max_future_skew_s=max_future_skew_s)
        if event is not None:
            return event
    return decode_event_reference(key, value, now=now, max_event_bytes=max_event_bytes,
                                  max_future_skew_s=max_future_skew_s)


# The native path (native/src/wire.rs): likes, comments and shares in the usual forms,
# decoded in Rust into the same events; None hands the message to the msgspec path.
_NativeDecode = Callable[[bytes | None, bytes, float, int, float],
                         LikeEvent | CommentEvent | ShareEvent | None]
_native_interactions: _NativeDecode | None = None
NATIVE_AVAILABLE = engagement_native is not None
# Builds this module's event classes; compiled code that decodes on its own (the batch
# fold) builds the events it hands to Python through it too.
native_decoder = (None if engagement_native is None else
                  engagement_native.InteractionDecoder(LikeEvent, CommentEvent, ShareEvent))


def use_native(native: bool) -> None:
    """Selects whether `decode_event` tries the Rust decoder first (if it is installed);
    the msgspec and pydantic paths decide the same messages the same way without it."""
    global _native_interactions
    _native_interactions = (native_decoder.decode if native and native_decoder is not None
                            else None)


def native_in_use() -> bool:
    return _native_interactions is not None


def decode_interaction_native(
    key: bytes | None, value: bytes, *, now: float, max_event_bytes: int,
    max_future_skew_s: float,
) -> LikeEvent | CommentEvent | ShareEvent | None:
    """The Rust decoder alone: the interaction if it takes the message as it is, else None
    (also when it is not installed or switched off)."""
    if _native_interactions is None:
        return None
    return _native_interactions(key, value, now, max_event_bytes, max_future_skew_s)


use_native(True)


# The compiled path. One flat struct for all types rather than a tagged union: msgspec
# takes the first "type" of an object with two, pydantic the last, as it does for every
# other key; decoded flat, the last one wins here too. Fields of other types are checked
# for their type here where the contract ignores them; a mismatch only hands the message
# to the contract.
_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_CHARS)]
_Topics = Annotated[
    tuple[Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TOPIC_CHARS)], ...],
    msgspec.Meta(max_length=MAX_TOPICS),
]


class _Wire(msgspec.Struct, gc=False):
    type: str
    event_id: _Id
    account_id: _Id  # the pattern is checked on the key, which must equal it
    occurred_at: msgspec.Raw  # the JSON string, quotes included; parsed below
    post_id: _Id | None = None
    actor_id: _Id | None = None
    sponsored: bool | None = None
    topics: _Topics | None = None
    followers: Annotated[int, msgspec.Meta(ge=0, le=contract.MAX_FOLLOWERS)] | None = None


_wire_decoder = msgspec.json.Decoder(_Wire)
_moment_decoder = msgspec.json.Decoder(Annotated[datetime, msgspec.Meta(tz=True)])
_INTERACTIONS: dict[str, type[LikeEvent | CommentEvent | ShareEvent]] = {
    "like": LikeEvent, "comment": CommentEvent, "share": ShareEvent,
}
_ACCOUNT_ID_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:@-"
# msgspec parses RFC 3339 as YYYY-MM-DD?HH:MM:SS[.fraction]offset. A JSON string of at
# most 29 bytes with its quotes cannot hold more than 6 fractional digits; past 6, msgspec
# rounds to the microsecond where pydantic truncates, so such times go to the contract.
_SHORT_TIMESTAMP_BYTES = 29


def decode_event_compiled(
    key: bytes | None, value: bytes, *, now: float, max_future_skew_s: float
) -> Event | None:
    """The event if the message is valid in the usual forms; otherwise None, and the
    contract's validator decides. The valid forms handed over (none in the benchmarks'
    streams): a time with more than 6 fractional digits or JSON escapes in it, or in
    another form that pydantic accepts (e.g. "2026-11-24_10:00:00Z", or epoch seconds as
    a string); a follower count beyond 64 bits; a field of another event type present
    with a value of the wrong type; a time in the future (for the rejection's detail).
    """
    try:
        wire = _wire_decoder.decode(value)
        raw = wire.occurred_at
        if len(raw) > _SHORT_TIMESTAMP_BYTES and _finer_than_microseconds(bytes(raw)):
            return None
        moment = _moment_decoder.decode(raw)
    except (msgspec.DecodeError, RecursionError):  # DecodeError includes ValidationError
        return None
    seconds = moment.timestamp()
    account_id = wire.account_id
    if (seconds > now + max_future_skew_s or key is None or not account_id.isascii()
            or key != account_id.encode() or key.translate(None, _ACCOUNT_ID_BYTES)):
        return None
    kind = wire.type
    interaction = _INTERACTIONS.get(kind)
    if interaction is not None:
        post_id, actor_id = wire.post_id, wire.actor_id
        if post_id is None or actor_id is None:
            return None
        return interaction(wire.event_id, account_id, moment, seconds, post_id, actor_id)
    if kind == "post":
        post_id, sponsored, topics = wire.post_id, wire.sponsored, wire.topics
        if post_id is None or sponsored is None or topics is None:
            return None
        return PostEvent(wire.event_id, account_id, moment, seconds, post_id, sponsored, topics)
    if kind == "followers":
        followers = wire.followers
        if followers is None:
            return None
        return FollowersEvent(wire.event_id, account_id, moment, seconds, followers)
    return None


def _finer_than_microseconds(quoted: bytes) -> bool:
    # Index 20 is the "." after the seconds, 21 to 27 the first 7 fractional digits; an
    # escaped string does not keep those positions.
    return b"\\" in quoted or (quoted[20:21] == b"." and quoted[21:28].isdigit())


# The reference path: the contract's pydantic validator.
_ID_FIELDS = frozenset({"event_id", "account_id", "post_id", "actor_id"})
_TIMESTAMP_ERRORS = frozenset(
    {"datetime_parsing", "datetime_from_date_parsing", "timezone_aware", "datetime_type"}
)


def decode_event_reference(
    key: bytes | None,
    value: bytes | None,
    *,
    now: float,
    max_event_bytes: int,
    max_future_skew_s: float,
) -> Event | Rejection:
    """`decode_event` with the contract's pydantic validator alone; never raises."""
    if value is None:
        return Rejection(RejectReason.NOT_JSON, "message has no value (tombstone)")
    if len(value) > max_event_bytes:
        return Rejection(
            RejectReason.PAYLOAD_TOO_LARGE, f"{len(value)} bytes > limit of {max_event_bytes}"
        )
    try:
        model = contract.event_adapter.validate_json(value)
    except ValidationError as invalid:
        errors = invalid.errors(include_url=False, include_input=False)
        first = errors[0]
        reason = _classify(first)
        if reason is RejectReason.NOT_JSON and not _is_utf8(value):
            return Rejection(RejectReason.NOT_UTF8, "value is not valid UTF-8")
        detail = "; ".join(_describe(error) for error in errors[:3])
        return Rejection(reason, detail)
    except ValueError as broken:  # defensive: pydantic raises ValidationError for all we know
        return Rejection(RejectReason.NOT_JSON, str(broken)[:200])
    if model.occurred_at.timestamp() > now + max_future_skew_s:
        return Rejection(
            RejectReason.TIMESTAMP_IN_FUTURE,
            f"occurred_at {model.occurred_at.isoformat()} is more than "
            f"{max_future_skew_s:g}s ahead of the consumer's clock",
        )
    if key is None or key != model.account_id.encode():
        shown = "none" if key is None else repr(key[:MAX_ID_CHARS])
        return Rejection(
            RejectReason.KEY_MISMATCH,
            f"key {shown} must equal account_id {model.account_id!r} (UTF-8)",
        )
    return _from_contract(model)


def _from_contract(model: contract.Event) -> Event:
    aware = model.occurred_at
    offset = aware.utcoffset()
    # pydantic's own tzinfo makes every timestamp() three times as slow as the standard one.
    moment = aware if offset is None else aware.replace(tzinfo=timezone(offset))
    seconds = aware.timestamp()
    if isinstance(model, contract.FollowersEvent):
        return FollowersEvent(model.event_id, model.account_id, moment, seconds,
                              model.followers)
    if isinstance(model, contract.PostEvent):
        return PostEvent(model.event_id, model.account_id, moment, seconds, model.post_id,
                         model.sponsored, tuple(model.topics))
    return _INTERACTIONS[model.type](model.event_id, model.account_id, moment, seconds,
                                     model.post_id, model.actor_id)


def _classify(error: ErrorDetails) -> RejectReason:
    kind = error["type"]
    location = error["loc"]
    field = str(location[-1]) if location else ""
    if kind == "json_invalid":
        return RejectReason.NOT_JSON
    if kind in {"model_attributes_type", "dict_type", "model_type"} and len(location) <= 1:
        return RejectReason.NOT_AN_OBJECT
    if kind == "union_tag_invalid":
        return RejectReason.UNKNOWN_TYPE
    if kind in {"missing", "union_tag_not_found"}:
        return RejectReason.MISSING_FIELD
    if kind in _TIMESTAMP_ERRORS or field == "occurred_at":
        return RejectReason.INVALID_TIMESTAMP
    if field in _ID_FIELDS:
        return RejectReason.INVALID_ID
    return RejectReason.INVALID_VALUE


def _describe(error: ErrorDetails) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"])
    return f"{location}: {message}" if location else message


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
