"""Writes the event JSON Schemas into schemas/ (run after changing service/events.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from service.events import json_schemas


def main() -> int:
    target = Path(__file__).resolve().parent.parent / "schemas"
    target.mkdir(exist_ok=True)
    for name, schema in json_schemas().items():
        (target / name).write_bytes(
            orjson.dumps(schema, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
        )
        print(f"wrote schemas/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
