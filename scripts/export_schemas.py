"""Writes the JSON Schemas into schemas/: the events (service/events.py) and the score
body that the HTTP API and the score-change stream share (service/responses.py).
Run after changing either."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from service.events import json_schemas
from service.score_stream import score_schema


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "schemas"
    target.mkdir(exist_ok=True)
    for name, schema in {**json_schemas(), "score.schema.json": score_schema()}.items():
        (target / name).write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        print(f"wrote schemas/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
