from pathlib import Path

import orjson

from service.events import json_schemas

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_published_schemas_match_the_models() -> None:
    """If this fails, run `make schemas` and commit the result."""
    for name, schema in json_schemas().items():
        published = orjson.loads((SCHEMAS / name).read_bytes())
        assert published == schema, f"schemas/{name} is stale"


def test_every_event_type_has_a_schema() -> None:
    names = {path.name for path in SCHEMAS.glob("*.schema.json")}
    assert names == {"event.schema.json", "like.schema.json", "comment.schema.json",
                     "share.schema.json", "post.schema.json", "followers.schema.json",
                     "score.schema.json"}
