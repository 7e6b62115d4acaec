"""The AsyncAPI document of the topics: it parses, and what it refers to exists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import yaml

from service.events import RejectReason
from service.responses import ScoreBody
from service.score_stream import SCORES_TOPIC, score_schema
from service.settings import Settings

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def load() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((SCHEMAS / "asyncapi.yaml").read_text())
    return document


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_document_is_asyncapi_3_with_the_three_topics() -> None:
    document = load()
    assert document["asyncapi"].startswith("3.")
    settings = Settings()
    addresses = {channel["address"] for channel in document["channels"].values()}
    assert addresses == {settings.events_topic, settings.dlq_topic, SCORES_TOPIC}
    for operation in document["operations"].values():
        assert operation["action"] in {"send", "receive"}


def test_every_reference_resolves_to_a_part_or_an_existing_schema() -> None:
    document = load()
    seen = list(references(document))
    assert seen
    for reference in seen:
        if reference.startswith("#/"):
            assert resolve(document, reference) is not None, reference
        else:
            schema = orjson.loads((SCHEMAS / reference).read_bytes())
            assert schema["$id"].endswith(Path(reference).name)


def test_score_topic_is_compacted_and_carries_the_http_body() -> None:
    scores = next(channel for channel in load()["channels"].values()
                  if channel["address"] == SCORES_TOPIC)
    assert scores["bindings"]["kafka"]["topicConfiguration"]["cleanup.policy"] == ["compact"]
    assert set(scores["messages"]) == {"score", "tombstone"}
    published = orjson.loads((SCHEMAS / "score.schema.json").read_bytes())
    assert published == score_schema(), "schemas/score.schema.json is stale: make schemas"
    assert set(published["properties"]) == set(ScoreBody.model_fields)


def test_dead_letter_reasons_are_those_the_service_gives() -> None:
    headers = load()["components"]["messages"]["deadLetter"]["headers"]
    assert headers["properties"]["dlq.reason"]["enum"] == [reason.value
                                                           for reason in RejectReason]
