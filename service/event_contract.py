"""The event contract: pydantic models of what producers send.

These models are the documented contract: the JSON Schemas under `schemas/` are generated
from them (`make schemas`), and they are the reference validator. The hot path decodes with
a compiled decoder instead (`service.events`), and a test holds the two to the same
answers; anything the compiled decoder does not accept is decided here.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidatorFunctionWrapHandler,
    field_validator,
)

MAX_ID_CHARS = 128
MAX_TOPICS = 20
# What a packed account can hold (a signed 64-bit count): a larger one would be accepted
# and fail later, when the account is packed, instead of being dead-lettered.
MAX_FOLLOWERS = 2**63 - 1
MAX_TOPIC_CHARS = 64
ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9._:@-]+$"

EventId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
AccountId = Annotated[
    str, Field(min_length=1, max_length=MAX_ID_CHARS, pattern=ACCOUNT_ID_PATTERN)
]
Topic = Annotated[str, Field(min_length=1, max_length=MAX_TOPIC_CHARS)]
# A date, then a time: pydantic alone would also read "1700000000" as Unix seconds.
_RFC3339_START = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt _]\d")


class _EventBase(BaseModel):
    # Unknown fields are ignored so producers can add fields before consumers know them.
    model_config = ConfigDict(strict=True, frozen=True, extra="ignore")

    event_id: EventId = Field(description="Unique per event; a re-sent event counts once.")
    account_id: AccountId = Field(description="The scored account; also the Kafka key.")
    # Lax only so that the check below can hand the string on; the check keeps what
    # strict JSON parsing would also take, minus Unix seconds ("1700000000", 1700000000).
    occurred_at: Annotated[AwareDatetime, Strict(False)] = Field(
        description="RFC 3339 time with offset, e.g. 2026-11-24T10:00:00Z."
    )

    @field_validator("occurred_at", mode="wrap")
    @classmethod
    def _a_date_and_time(cls, value: object, handler: ValidatorFunctionWrapHandler
                         ) -> object:
        if isinstance(value, datetime):
            return handler(value)
        if not isinstance(value, str) or not _RFC3339_START.match(value):
            raise ValueError("must be an RFC 3339 date and time, e.g. 2026-11-24T10:00:00Z")
        return handler(value)


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
    followers: int = Field(ge=0, le=MAX_FOLLOWERS,
                           description="The account's follower count at occurred_at.")


Event = LikeEvent | CommentEvent | ShareEvent | PostEvent | FollowersEvent
EVENT_TYPES: tuple[type[BaseModel], ...] = (
    LikeEvent,
    CommentEvent,
    ShareEvent,
    PostEvent,
    FollowersEvent,
)

event_adapter: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="type")])


def json_schemas() -> dict[str, dict[str, Any]]:
    """The published JSON Schemas, by file name under schemas/."""
    schemas: dict[str, dict[str, Any]] = {
        "event.schema.json": event_adapter.json_schema(),
    }
    for model in EVENT_TYPES:
        event_type = model.model_fields["type"].annotation.__args__[0]  # type: ignore[union-attr]
        schemas[f"{event_type}.schema.json"] = model.model_json_schema()
    for name, schema in schemas.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://engagement-scoring.invalid/schemas/{name}"
    return schemas
