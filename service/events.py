"""The event contract: pydantic models of what producers send, and the decoder.

Every message either decodes into an `Event` or into a `Rejection` that names why, so
that the consumer can dead-letter it with a reason producers can act on.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

MAX_ID_CHARS = 128
MAX_TOPICS = 20
MAX_TOPIC_CHARS = 64
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"

EventId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
AccountId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ACCOUNT_ID_PATTERN)
]
Topic = Annotated[str, Field(min_length=1, max_length=MAX_TOPIC_CHARS)]


class _EventBase(BaseModel):
    # Unknown fields are ignored so producers can add fields before consumers know them.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    event_id: EventId = Field(description="Unique per event; a re-sent event counts once.")
    account_id: AccountId = Field(description="The scored account; also the Kafka key.")
    occurred_at: AwareDatetime = Field(
        description="RFC 3339 time with offset, e.g. 2026-11-24T10:00:00Z."
    )


class _InteractionBase(_EventBase):
    post_id: EventId = Field(description="The account's post that was interacted with.")
    actor_id: EventId = Field(description="Who interacted (an opaque, stable id).")


class LikeEvent(_InteractionBase):
    type: Literal["like"]


class CommentEvent(_InteractionBase):
    type: Literal["comment"]


class ShareEvent(_InteractionBase):
    type: Literal["share"]


class PostEvent(_EventBase):
    type: Literal["post"]
    post_id: EventId
    sponsored: bool = Field(description="A paid cooperation.")
    topics: list[Topic] = Field(max_length=MAX_TOPICS, description="Thematic tags of the post.")


class FollowersEvent(_EventBase):
    type: Literal["followers"]
    followers: int = Field(ge=0, description="The account's follower count at occurred_at.")


Event = LikeEvent | CommentEvent | ShareEvent | PostEvent | FollowersEvent
EVENT_TYPES: tuple[type[BaseModel], ...] = (
    LikeEvent,
    CommentEvent,
    ShareEvent,
    PostEvent,
    FollowersEvent,
)

_event_adapter: TypeAdapter[Event] = TypeAdapter(
    Annotated[Event, Field(discriminator="type")]
)


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


_ID_FIELDS = frozenset({"event_id", "account_id", "post_id", "actor_id"})
_TIMESTAMP_ERRORS = frozenset(
    {"datetime_parsing", "datetime_from_date_parsing", "timezone_aware", "datetime_type"}
)


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
    if value is None:
        return Rejection(RejectReason.NOT_JSON, "message has no value (tombstone)")
    if len(value) > max_event_bytes:
        return Rejection(
            RejectReason.PAYLOAD_TOO_LARGE, f"{len(value)} bytes > limit of {max_event_bytes}"
        )
    try:
        event = _event_adapter.validate_json(value)
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
    if event.occurred_at.timestamp() > now + max_future_skew_s:
        return Rejection(
            RejectReason.TIMESTAMP_IN_FUTURE,
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{max_future_skew_s:g}s ahead of the consumer's clock",
        )
    if key is None or key != event.account_id.encode():
        shown = "none" if key is None else repr(key[:MAX_ID_CHARS])
        return Rejection(
            RejectReason.KEY_MISMATCH,
            f"key {shown} must equal account_id {event.account_id!r} (UTF-8)",
        )
    return event


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published JSON Schemas, by file name under schemas/."""
    schemas: dict[str, dict[str, Any]] = {
        "event.schema.json": _event_adapter.json_schema(),
    }
    for model in EVENT_TYPES:
        event_type = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        schemas[f"{event_type}.schema.json"] = model.model_json_schema()
    for name, schema in schemas.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://engagement-scoring.invalid/schemas/{name}"
    return schemas
