"""The same events give byte-identical score answers: the compiled codec and scoring
against the Python references, and both against a golden file recorded before the per-core work of
issue 15 (the engine at e90b56b, which had neither the compiled codec nor the sharded
store).

The stream: simulated accounts of every kind (seeded), in event-time order over three
partitions, with a hot set of two accounts (almost every event unpacks one and packs
another), fewer accounts allowed than there are (evictions), expiry sweeps, and every
account's `GET /accounts/{id}/score` body (`responses.score_json`) at four points.

When the scoring itself changes on purpose, record the file again:

    python -m tests.unit.test_replay_golden --write
"""

from __future__ import annotations

import argparse
import random
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

from service.engine import Engine, EngineConfig, packing
from service.responses import score_json
from service.simulation import account_events, demo_accounts
from tests.events import T0, decoded, followers

GOLDEN = Path(__file__).parent / "golden" / "replay_score_bodies.jsonl"
SEED = 20261126
DAY = 86_400.0
ACCOUNTS = 9
DRIVE_BYS = 12
MAX_ACCOUNTS = ACCOUNTS + 4
CHECKPOINTS = 4


def stream() -> list[dict[str, Any]]:
    rng = random.Random(SEED)
    events: list[dict[str, Any]] = []
    for number, (account_id, profile) in enumerate(demo_accounts(ACCOUNTS, rng)):
        # Fewer interactions than the demo's, so that the test stays fast.
        small = replace(profile, interactions_per_post=max(1, profile.interactions_per_post // 4))
        events += account_events(account_id, small, T0.timestamp() + number * 3_600.0,
                                 1.5 * DAY, rng)
    # Accounts seen once, spread over the stream: past `max_accounts`, the least
    # recently active go.
    for number in range(DRIVE_BYS):
        events.append(followers(f"drive-by-{number}", 100 + number,
                                number * 9 * DAY / DRIVE_BYS))
    events.sort(key=lambda event: (event["occurred_at"], event["event_id"]))
    return events


def replay(events: list[dict[str, Any]], compiled: bool) -> bytes:
    engine = Engine(EngineConfig(window_s=5 * DAY, hot_accounts=2,
                                 max_accounts=MAX_ACCOUNTS, native_scoring=compiled))
    account_ids = sorted({event["account_id"] for event in events})
    bodies: list[bytes] = []
    step = len(events) // CHECKPOINTS
    for index, event in enumerate(events, start=1):
        engine.apply(decoded(event), zlib.crc32(event["account_id"].encode()) % 3)
        if index % step == 0 or index == len(events):
            engine.expire()
            for account_id in account_ids:
                score = engine.score(account_id)
                bodies.append(b"null" if score is None else score_json(score))
    return b"\n".join(bodies) + b"\n"


def with_codec(compiled: bool) -> bytes:
    use = getattr(packing, "use_compiled", None)  # absent before the compiled codec
    try:
        if use is not None:
            use(compiled)
        return replay(stream(), compiled)
    finally:
        if use is not None:
            use(True)


def test_compiled_and_reference_give_byte_identical_answers() -> None:
    compiled = with_codec(True)
    assert packing.compiled_in_use() or not packing.COMPILED_AVAILABLE
    assert compiled == with_codec(False)


def test_the_answers_are_the_recorded_ones() -> None:
    answers = with_codec(True).splitlines()
    recorded = GOLDEN.read_bytes().splitlines()
    assert len(answers) == len(recorded)
    for number, (mine, theirs) in enumerate(zip(answers, recorded, strict=True)):
        assert mine == theirs, (
            f"answer {number} differs from {GOLDEN.name}; if the scoring changed on purpose,"
            f" record it again: python -m tests.unit.test_replay_golden --write")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--output", type=Path, default=GOLDEN)
    arguments = parser.parse_args()
    if arguments.write:
        arguments.output.parent.mkdir(parents=True, exist_ok=True)
        arguments.output.write_bytes(with_codec(True))


if __name__ == "__main__":
    main()
