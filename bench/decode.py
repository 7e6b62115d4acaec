"""Decoding one event: the Rust and msgspec decoders against the pydantic path, in the
same run.

    python -m bench.decode [--events 200000] [--rounds 5]

The realistic stream of bench/ingest.py, decoded in process (no Kafka), each contender in
alternating rounds so that the machine's drift falls on both; the best round counts:
  * pydantic:  what the pipeline did before: the contract's `validate_json`, the future and
               key checks, then the engine's `occurred_at.timestamp()` (a datetime with
               pydantic's own tzinfo);
  * reference: `decode_event_reference`, the pydantic path that now builds the decoded
               event (what every message the compiled decoder hands over costs);
  * compiled:  `decode_event` with the Rust decoder switched off (msgspec, the hot path
               before session 7), then the engine's read of `occurred_at_s`;
  * native:    `decode_event` as it runs (the Rust decoder for likes, comments and
               shares, native/src/wire.rs; msgspec for the rest), the same read.
The same messages give the same events either way (tests/unit/test_decoders_agree.py,
tests/unit/test_wire_native.py).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import orjson

from bench.ingest import realistic_events
from service import event_contract, events
from service.events import Rejection, decode_event, decode_event_reference

SKEW_S = 300.0
MAX_BYTES = 8192


def pydantic_path(messages: list[tuple[bytes, bytes]], now: float) -> float:
    """The decoder before the compiled path, as it was, and the engine's conversion."""
    validate = event_contract.event_adapter.validate_json
    total = 0.0
    for key, value in messages:
        if len(value) > MAX_BYTES:
            continue
        event = validate(value)
        if event.occurred_at.timestamp() > now + SKEW_S:
            continue
        if key != event.account_id.encode():
            continue
        total += event.occurred_at.timestamp()
    return total


def reference_path(messages: list[tuple[bytes, bytes]], now: float) -> float:
    total = 0.0
    for key, value in messages:
        event = decode_event_reference(key, value, now=now, max_event_bytes=MAX_BYTES,
                                       max_future_skew_s=SKEW_S)
        if not isinstance(event, Rejection):
            total += event.occurred_at_s
    return total


def compiled_path(messages: list[tuple[bytes, bytes]], now: float) -> float:
    events.use_native(False)
    try:
        return native_path(messages, now)
    finally:
        events.use_native(True)


def native_path(messages: list[tuple[bytes, bytes]], now: float) -> float:
    total = 0.0
    for key, value in messages:
        event = decode_event(key, value, now=now, max_event_bytes=MAX_BYTES,
                             max_future_skew_s=SKEW_S)
        if not isinstance(event, Rejection):
            total += event.occurred_at_s
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    arguments = parser.parse_args()
    values = realistic_events(arguments.events)
    messages = [(orjson.loads(value)["account_id"].encode(), value) for value in values]
    now = time.time()
    contenders: dict[str, Callable[[list[tuple[bytes, bytes]], float], float]] = {
        "pydantic": pydantic_path, "reference": reference_path, "compiled": compiled_path,
        "native": native_path,
    }
    assert events.native_in_use(), "the Rust decoder is not installed (make install)"
    sums = {name: run(messages, now) for name, run in contenders.items()}
    assert len(set(sums.values())) == 1, sums  # the same events, the same times
    best = dict.fromkeys(contenders, float("inf"))
    for _ in range(arguments.rounds):
        for name, run in contenders.items():
            started = time.perf_counter()
            run(messages, now)
            best[name] = min(best[name], time.perf_counter() - started)
    count = len(messages)
    for name, seconds in best.items():
        print(f"{name:>10}: {seconds / count * 1e6:6.2f} us per event  "
              f"{count / seconds:>12,.0f} events/s")
    print(f"compiled / pydantic: {best['pydantic'] / best['compiled']:.2f}x as fast")
    print(f"native / pydantic:   {best['pydantic'] / best['native']:.2f}x as fast")
    print(f"native / compiled:   {best['compiled'] / best['native']:.2f}x as fast")


if __name__ == "__main__":
    main()
