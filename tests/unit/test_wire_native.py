"""The Rust interaction decoder (native/src/wire.rs) against the contract's validator.

Whatever the Rust decoder accepts, the contract accepts with the same values: the ids, the
type, the time and its offset, and epoch seconds to the bit. It hands everything else to
Python (None); these tests also hold it to taking the forms the streams use, so that the
fast path is the path taken. The messages are valid interactions, then the same with one
thing wrong or unusual: a field's type, length or pattern, escapes, non-ASCII, duplicate,
unknown or other types' keys, whitespace, every form of time, future times, the key,
truncation, a stray byte.
"""

from __future__ import annotations

import json
import random
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import engagement_native
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.ingest import realistic_events
from service import events
from service.events import (
    CommentEvent,
    Event,
    LikeEvent,
    Rejection,
    ShareEvent,
    decode_event,
    decode_event_compiled,
    decode_event_reference,
    decode_interaction_native,
)
from service.simulation import account_events, demo_accounts
from tests.unit.test_decoders_agree import TIMES

if not events.NATIVE_AVAILABLE:
    pytest.skip("engagement_native is not built (make install)", allow_module_level=True)

NOW = 1_800_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "max_event_bytes": 8192, "max_future_skew_s": 300}
INTERACTIONS = (LikeEvent, CommentEvent, ShareEvent)


def fields(event: Event) -> tuple[Any, ...]:
    """Everything an event carries: the time's offset and tzinfo type too (datetimes
    compare equal across offsets), and the epoch seconds' exact bits."""
    moment = event.occurred_at
    return (type(event), *(getattr(event, name) for name in event.__struct_fields__),
            moment.utcoffset(), type(moment.tzinfo), event.occurred_at_s.hex())


def native(key: bytes | None, value: bytes, **limits: Any) -> Event | None:
    return decode_interaction_native(key, value, **(LIMITS | limits))


def assert_sound(key: bytes | None, value: bytes, **limits: Any) -> Event | None:
    """If the Rust decoder takes the message, the contract gives the same event, and so
    does `decode_event` (the path the consumer takes)."""
    limits = LIMITS | limits
    decoded = decode_interaction_native(key, value, **limits)
    if decoded is not None:
        reference = decode_event_reference(key, value, **limits)
        assert not isinstance(reference, Rejection), (value, decoded, reference)
        assert fields(decoded) == fields(reference), value
        assert isinstance(decoded, INTERACTIONS)
        combined = decode_event(key, value, **limits)
        assert not isinstance(combined, Rejection)
        assert fields(combined) == fields(decoded)
    return decoded


# ---------------------------------------------------------------- what the streams send

def test_it_takes_every_interaction_of_the_benchmark_and_demo_streams() -> None:
    rng = random.Random(7)
    streams = realistic_events(3_000)
    for account_id, profile in demo_accounts(5, rng):
        streams += [orjson.dumps(event) for event in
                    account_events(account_id, profile, NOW - 30 * 86_400, 3_600, rng)]
    taken = 0
    for value in streams:
        message = orjson.loads(value)
        key = message["account_id"].encode()
        decoded = assert_sound(key, value)
        if message["type"] in {"like", "comment", "share"}:
            assert decoded is not None, value
            # msgspec's path gives the very same event, down to the tzinfo object.
            compiled = decode_event_compiled(key, value, now=NOW, max_future_skew_s=300)
            assert compiled is not None
            assert fields(compiled) == fields(decoded)
            assert decoded.occurred_at.tzinfo is compiled.occurred_at.tzinfo
            taken += 1
        else:
            assert decoded is None, value  # posts and follower counts are Python's
    assert taken > 4_000


def test_it_builds_the_same_event_as_msgspec_for_each_kind_and_zone() -> None:
    for kind in ("like", "comment", "share"):
        for moment in ("2026-11-01T10:00:03Z", "2026-11-01t10:00:03.5z",
                       "2026-11-01 10:00:03.000001+00:00", "2026-11-01T10:00:03-00:00",
                       "2026-11-01T10:00:03.123+01:30", "2026-11-01T10:00:03.1234-05:45",
                       "1900-01-01T00:00:00+23:59", "2199-12-31T23:59:59.999999-23:59"):
            value = orjson.dumps({"type": kind, "event_id": "e", "account_id": "a",
                                  "post_id": "p", "actor_id": "u", "occurred_at": moment})
            decoded = assert_sound(b"a", value, now=1e10)
            compiled = decode_event_compiled(b"a", value, now=1e10, max_future_skew_s=0)
            assert decoded is not None, value
            assert compiled is not None, value
            assert fields(decoded) == fields(compiled), value
            assert decoded.occurred_at.tzinfo == compiled.occurred_at.tzinfo


def test_the_switch_turns_it_off_and_on() -> None:
    value = orjson.dumps({"type": "like", "event_id": "e", "account_id": "a", "post_id": "p",
                          "actor_id": "u", "occurred_at": "2026-11-01T10:00:03Z"})
    assert events.native_in_use()
    assert native(b"a", value) is not None
    events.use_native(False)
    try:
        assert not events.native_in_use()
        assert native(b"a", value) is None
        assert isinstance(decode_event(b"a", value, **LIMITS), LikeEvent)  # msgspec's
    finally:
        events.use_native(True)
    assert native(b"a", value) is not None


@pytest.mark.parametrize(("key", "value"), [
    (None, b'{"type":"like"}'), (b"a", b""), (b"a", b"{}"), (b"a", b"null"),
    (b"a", bytearray(b'{"type":"like","event_id":"e","account_id":"a","post_id":"p",'
                     b'"actor_id":"u","occurred_at":"2026-11-01T10:00:03Z"}')),
])
def test_what_is_not_an_interaction_in_bytes_is_pythons(key: bytes | None,
                                                        value: bytes) -> None:
    assert native(key, value) is None


@pytest.mark.parametrize("limits", [
    {"max_event_bytes": 2**70}, {"max_event_bytes": -1}, {"now": 10**400},
    {"max_future_skew_s": -(10**400)}, {"now": "soon"},
])
def test_limits_it_cannot_hold_are_pythons(limits: dict[str, Any]) -> None:
    value = orjson.dumps({"type": "like", "event_id": "e", "account_id": "a", "post_id": "p",
                          "actor_id": "u", "occurred_at": "2026-11-01T10:00:03Z"})
    assert native(b"a", value, **limits) is None


def test_a_message_over_the_size_limit_is_pythons() -> None:
    value = orjson.dumps({"type": "like", "event_id": "e", "account_id": "a", "post_id": "p",
                          "actor_id": "u", "occurred_at": "2026-11-01T10:00:03Z"})
    assert native(b"a", value, max_event_bytes=len(value)) is not None
    assert native(b"a", value, max_event_bytes=len(value) - 1) is None


def test_the_future_limit_is_the_same_comparison_as_pythons() -> None:
    value = orjson.dumps({"type": "like", "event_id": "e", "account_id": "a", "post_id": "p",
                          "actor_id": "u", "occurred_at": "2027-01-15T08:00:00.5Z"})
    seconds = datetime(2027, 1, 15, 8, 0, 0, 500_000, tzinfo=UTC).timestamp()
    assert native(b"a", value, now=seconds - 300, max_future_skew_s=300) is not None
    assert native(b"a", value, now=seconds - 300.5, max_future_skew_s=300) is None
    assert isinstance(decode_event(b"a", value, now=seconds - 300.5, max_event_bytes=8192,
                                   max_future_skew_s=300), Rejection)


# ---------------------------------------------------------------- generated messages

SAFE_ID_CHARS = "".join(c for c in string.printable if c.isprintable() and c not in '"\\')
ACCOUNT_ID_CHARS = string.ascii_letters + string.digits + "._:@-"


def seeded_text(alphabet: str, min_size: int, max_size: int) -> st.SearchStrategy[str]:
    """Text of a drawn length from a drawn seed: long ids drawn character by character
    make the tests slow."""
    return st.builds(lambda size, seed: "".join(random.Random(seed).choices(alphabet, k=size)),
                     st.integers(min_value=min_size, max_value=max_size), st.integers())


safe_ids = st.one_of(st.text(SAFE_ID_CHARS, min_size=1, max_size=8),
                     seeded_text(SAFE_ID_CHARS, 1, 128), seeded_text(SAFE_ID_CHARS, 127, 128))
account_ids = st.one_of(st.text(ACCOUNT_ID_CHARS, min_size=1, max_size=8),
                        seeded_text(ACCOUNT_ID_CHARS, 1, 128))
moments = st.builds(
    lambda instant, digits, offset, separator, zulu: (
        f"{instant:%Y-%m-%d}{separator}{instant:%H:%M:%S}"
        + (f".{instant.microsecond:06d}"[:1 + digits] if digits else "")
        + (zulu if offset is None else
           f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}:{abs(offset) % 60:02d}")),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2199, 12, 31, 23, 59)),
    st.integers(min_value=0, max_value=6),
    st.none() | st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["Z", "z"]),
)
# Characters that look like whitespace and are not JSON's.
ODD_WHITESPACE = ["\x0b", "\x0c", "\x85", "\xa0", "\u2028", "\x00"]
RAW_BYTES = [b"\x00", b"\x01", b"\t", b"\n", b"\x1f", b"\x7f", b"\x80", b"\xc3\xa9", b"\xff",
             b'"', b"\\"]
# Calendar strings built from numbers in and just past every field's range.
raw_moments = st.builds(
    lambda year, month, day, hour, minute, second, fraction, offset: (
        f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        f"{fraction}{offset}"),
    st.sampled_from([1899, 1900, 1904, 2000, 2024, 2100, 2199, 2200]),
    st.integers(min_value=0, max_value=13), st.integers(min_value=0, max_value=32),
    st.integers(min_value=0, max_value=25), st.integers(min_value=0, max_value=61),
    st.integers(min_value=0, max_value=61),
    st.text("0123456789", max_size=8).map(lambda digits: f".{digits}" if digits else ""),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+00:60",
                     "+0100", "+01", "", "Zz", " Z"]),
)


@st.composite
def valid_interactions(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": draw(st.sampled_from(["like", "comment", "share"])),
            "event_id": draw(safe_ids), "account_id": draw(account_ids),
            "post_id": draw(safe_ids), "actor_id": draw(safe_ids),
            "occurred_at": draw(moments)}


class RawJson(str):
    """A value written into the message as it is (an escaped string)."""


def serialize(draw: st.DrawFn, pairs: list[tuple[str, Any]]) -> bytes:
    """The pairs as a JSON object in their order: compact, or with JSON whitespace around
    every token (from one drawn seed: drawing each piece makes the test slow)."""
    rng = random.Random(draw(st.integers(min_value=0, max_value=2**32)))
    spaced = draw(st.booleans())

    def space() -> str:
        if not spaced or rng.random() < 0.5:
            return ""
        return "".join(rng.choice(" \t\r\n") for _ in range(rng.randint(1, 3)))

    ascii_only = draw(st.booleans())
    pieces = [space(), "{"]
    for index, (name, item) in enumerate(pairs):
        if index:
            pieces.append(",")
        written = str(item) if isinstance(item, RawJson) else json.dumps(
            item, ensure_ascii=ascii_only)
        pieces += [space(), json.dumps(name), space(), ":", space(), written, space()]
    pieces += ["}", space()]
    return "".join(pieces).encode()


@st.composite
def valid_messages(draw: st.DrawFn) -> tuple[bytes, bytes]:
    event = draw(valid_interactions())
    pairs = draw(st.permutations(list(event.items())))
    return event["account_id"].encode(), serialize(draw, pairs)


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(valid_messages())
@example((b"a", b'{"type":"like","event_id":"e","account_id":"a","post_id":"p",'
          b'"actor_id":"u","occurred_at":"2026-11-01T10:00:03Z"}'))
def test_it_takes_every_valid_interaction_in_the_usual_forms(
    message: tuple[bytes, bytes]
) -> None:
    key, value = message
    assert assert_sound(key, value, now=1e10) is not None, value


wrong_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(),
                                                         max_size=1),
    st.text(max_size=140), st.text(st.characters(codec="utf-8"), max_size=130),
    st.text("ab", min_size=128, max_size=130), st.just(""),
    st.sampled_from(["like", "comment", "share", "post", "followers", "Like", "poke",
                     "a/b", "a b", "ü", "x\n", "\\", '"', "\u0000", "\x7f", "😀" * 64]),
    st.sampled_from(TIMES),
)


@st.composite
def near_valid_messages(draw: st.DrawFn, valid: st.SearchStrategy[dict[str, Any]] | None = None
                        ) -> tuple[bytes | None, bytes]:
    """A valid event (an interaction unless `valid` draws another) with one or two things
    changed."""
    event = draw(valid_interactions() if valid is None else valid)
    key: bytes | None = event["account_id"].encode()
    pairs = draw(st.permutations(list(event.items())))
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        change = draw(st.sampled_from([
            "value", "drop", "duplicate", "unknown", "other_type", "time", "future", "key",
            "escape"]))
        index = draw(st.integers(min_value=0, max_value=len(pairs) - 1))
        name, item = pairs[index]
        if change == "value":
            pairs[index] = (name, draw(wrong_values))
        elif change == "drop" and len(pairs) > 1:
            del pairs[index]
        elif change == "duplicate":
            pairs.insert(draw(st.integers(min_value=0, max_value=len(pairs))),
                         (name, draw(st.just(item) | wrong_values)))
        elif change == "unknown":
            pairs.append((draw(st.sampled_from(["x", "Type", "event_id ", ""])),
                          draw(wrong_values)))
        elif change == "other_type":
            pairs.append(draw(st.sampled_from([("followers", 5), ("sponsored", False),
                                               ("topics", ["a"]), ("post_id", None)])))
        elif change == "time":
            pairs = [(n, draw(st.sampled_from(TIMES) | moments | raw_moments
                              | st.text(max_size=35)))
                     if n == "occurred_at" else (n, v) for n, v in pairs]
        elif change == "future":
            future = datetime.fromtimestamp(NOW + draw(st.floats(min_value=299,
                                                                 max_value=302)), UTC)
            pairs = [(n, future.isoformat()) if n == "occurred_at" else (n, v)
                     for n, v in pairs]
        elif change == "key":
            key = draw(st.sampled_from([None, b"", b"acc-42", key + b" " if key else b"x",
                                        key.upper() if key else b"X"]))
        elif change == "escape" and isinstance(item, str) and item:
            at = draw(st.integers(min_value=0, max_value=len(item) - 1))
            escaped = json.dumps(item[:at])[:-1] + f"\\u{ord(item[at]):04x}" + json.dumps(
                item[at + 1:])[1:]
            pairs[index] = (name, RawJson(escaped))
    value = serialize(draw, pairs)
    mangle = draw(st.sampled_from(["none"] * 6 + ["truncate", "byte", "insert", "bom",
                                                  "space", "raw"]))
    if mangle == "truncate":
        value = value[:draw(st.integers(min_value=0, max_value=len(value) - 1))]
    elif mangle == "byte":
        at = draw(st.integers(min_value=0, max_value=len(value) - 1))
        value = value[:at] + bytes([draw(st.integers(0, 255))]) + value[at + 1:]
    elif mangle == "insert":
        at = draw(st.integers(min_value=0, max_value=len(value)))
        value = value[:at] + draw(st.binary(min_size=1, max_size=2)) + value[at:]
    elif mangle == "bom":
        value = b"\xef\xbb\xbf" + value
    elif mangle == "raw":  # a byte a JSON string may not hold as it is, or ends it
        at = draw(st.sampled_from([index for index, byte in enumerate(value)
                                   if chr(byte).isalnum()]))
        value = value[:at] + draw(st.sampled_from(RAW_BYTES)) + value[at:]
    elif mangle == "space":  # between two tokens, or at either end
        at = draw(st.sampled_from([0, len(value), *(index + 1 for index, byte
                                                    in enumerate(value) if byte in b"{,:")]))
        value = value[:at] + draw(st.sampled_from(ODD_WHITESPACE)).encode() + value[at:]
    return key, value


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_valid_messages())
@example((b"a", b'{"type":"like","event_id":"e","account_id":"a","post_id":"p",'
          b'"actor_id":"u","occurred_at":"2026-11-01T10:00:03Z","type":"like"}'))
@example((b"a", b'{"type":"like","event_id":"e","account_id":"a","post_id":"p",'
          b'"actor_id":"u","occurred_at":"2026-11-01T10:00:03Z",}'))
@example((b"a", b'{"type":"like","event_id":"e","account_id":"a","post_id":"p",'
          b'"actor_id":"u","occurred_at":"2026-11-01T10:00:03Z"}x'))
def test_whatever_it_takes_the_contract_takes_with_the_same_values(
    message: tuple[bytes | None, bytes]
) -> None:
    key, value = message
    assert_sound(key, value)


ID_FIELDS = ("event_id", "account_id", "post_id", "actor_id")


def like_with(name: str, text: str) -> tuple[bytes, bytes]:
    """A valid like but for `name`, whose JSON string holds `text` as it is."""
    event = {"type": "like", "event_id": "e", "account_id": "a", "post_id": "p",
             "actor_id": "u", "occurred_at": "2026-11-01T10:00:03Z"}
    event[name] = "@@@"
    value = orjson.dumps(event).replace(b'"@@@"', b'"' + text.encode("latin-1") + b'"')
    return (text.encode("latin-1") if name == "account_id" else b"a"), value


@pytest.mark.parametrize("name", ID_FIELDS)
def test_an_id_takes_1_to_128_characters(name: str) -> None:
    for length in (0, 1, 2, 7, 8, 9, 16, 17, 127, 128, 129, 200):
        key, value = like_with(name, "x" * length)
        assert (assert_sound(key, value) is not None) == (1 <= length <= 128), (name, length)


@pytest.mark.parametrize("name", ID_FIELDS)
def test_a_byte_a_string_cannot_hold_as_it_is_hands_the_message_over(name: str) -> None:
    # At every position of the first chunks of eight bytes and of the tail after them.
    for raw in ("\x00", "\x01", "\t", "\n", "\x1f", "\x7f", "\x80", "\xc3", "\xff", "\\",
                '"'):
        for at in range(20):
            text = "abcdefghijklmnopqrs"
            key, value = like_with(name, text[:at] + raw + text[at:])
            assert assert_sound(key, value) is None, (name, raw, at)


@pytest.mark.parametrize("moment", [
    "1900-02-29T00:00:00Z", "2100-02-29T00:00:00Z", "2026-02-29T00:00:00Z",
    "2000-02-29T00:00:00Z", "2024-02-29T00:00:00Z", "2026-04-31T00:00:00Z",
    "2026-12-31T24:00:00Z", "2026-12-31T23:60:00Z", "2026-12-31T23:59:60Z",
    "2026-00-10T10:00:00Z", "2026-13-10T10:00:00Z", "2026-01-00T10:00:00Z",
])
def test_the_calendar_is_the_contracts(moment: str) -> None:
    value = orjson.dumps({"type": "like", "event_id": "e", "account_id": "a",
                          "post_id": "p", "actor_id": "u", "occurred_at": moment})
    accepted = assert_sound(b"a", value, now=1e10) is not None
    assert accepted == (moment[:4] in {"2000", "2024"}), moment


@settings(max_examples=500, deadline=None)
@given(st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30),
                    timezones=st.just(UTC)),
       st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
       st.integers(min_value=0, max_value=6))
def test_its_epoch_seconds_are_pythons_to_the_bit(instant: datetime, offset_minutes: int,
                                                  digits: int) -> None:
    aware = instant.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    if digits < 6:
        aware = aware.replace(microsecond=aware.microsecond // 10 ** (6 - digits)
                              * 10 ** (6 - digits))
    moment = aware.isoformat(timespec="microseconds" if digits else "seconds")
    value = orjson.dumps({"type": "share", "event_id": "e", "account_id": "a",
                          "post_id": "p", "actor_id": "u", "occurred_at": moment})
    decoded = native(b"a", value, now=1e10)
    assert decoded is not None, moment
    assert decoded.occurred_at_s.hex() == aware.timestamp().hex()
    assert decoded.occurred_at == aware
    assert decoded.occurred_at.utcoffset() == aware.utcoffset()


# ---------------------------------------------------------------- posts and follower counts
# The batch fold (native/src/fold.rs) takes these through `decode_wire`, which the
# interaction decoder above shares; `decode_wire_fields` shows what it took.

def wire_fields(key: bytes | None, value: bytes, **limits: Any) -> tuple[Any, ...] | None:
    return engagement_native.decode_wire_fields(key, value, *(LIMITS | limits).values())


def reference_fields(event: Event) -> tuple[Any, ...]:
    return (event.type, event.event_id, event.account_id, event.occurred_at_s.hex(),
            getattr(event, "post_id", None), getattr(event, "actor_id", None),
            getattr(event, "sponsored", None), getattr(event, "topics", None),
            getattr(event, "followers", None))


def assert_wire_sound(key: bytes | None, value: bytes, **limits: Any) -> tuple[Any, ...] | None:
    """If `decode_wire` takes the message, the contract gives an event of the same type
    with the same values (the topics a tuple in their order), and so does `decode_event`;
    for an interaction it takes what the interaction decoder takes."""
    limits = LIMITS | limits
    taken = wire_fields(key, value, **limits)
    if taken is not None:
        taken = (*taken[:3], taken[3].hex(), *taken[4:])
        reference = decode_event_reference(key, value, **limits)
        assert not isinstance(reference, Rejection), (value, taken, reference)
        assert taken == reference_fields(reference), value
        combined = decode_event(key, value, **limits)
        assert not isinstance(combined, Rejection)
        assert reference_fields(combined) == taken
    if taken is None or taken[0] in {"like", "comment", "share"}:
        assert (taken is None) == (decode_interaction_native(key, value, **limits) is None)
    return taken


topic_lists = st.lists(st.one_of(st.text(SAFE_ID_CHARS, min_size=1, max_size=8),
                                 seeded_text(SAFE_ID_CHARS, 1, 64)), max_size=20)


@st.composite
def valid_posts(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": "post", "event_id": draw(safe_ids), "account_id": draw(account_ids),
            "post_id": draw(safe_ids), "sponsored": draw(st.booleans()),
            "topics": draw(topic_lists), "occurred_at": draw(moments)}


@st.composite
def valid_follower_counts(draw: st.DrawFn) -> dict[str, Any]:
    return {"type": "followers", "event_id": draw(safe_ids), "account_id": draw(account_ids),
            "followers": draw(st.integers(min_value=0, max_value=10**18 - 1)
                              | st.sampled_from([0, 1, 9, 10, 10**17, 10**18 - 1])),
            "occurred_at": draw(moments)}


@st.composite
def valid_post_and_follower_messages(draw: st.DrawFn) -> tuple[bytes, bytes]:
    event = draw(valid_posts() | valid_follower_counts())
    pairs = draw(st.permutations(list(event.items())))
    return event["account_id"].encode(), serialize(draw, pairs)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(valid_post_and_follower_messages())
def test_it_takes_every_valid_post_and_follower_count_in_the_usual_forms(
    message: tuple[bytes, bytes]
) -> None:
    key, value = message
    taken = assert_wire_sound(key, value, now=1e10)
    assert taken is not None, value
    assert decode_interaction_native(key, value, now=1e10, max_event_bytes=8192,
                                     max_future_skew_s=300) is None  # not an interaction


odd_post_and_follower_values = st.sampled_from([
    -1, 0, 1, 1.0, 1e3, 10**18 - 1, 10**18, 10**19, 2**63, 2**64, "5", True, False, None,
    [], [""], ["a" * 64], ["a" * 65], ["a"] * 20, ["a"] * 21, [1], "a", [["a"]], ["a", None],
    RawJson("01"), RawJson("00"), RawJson("-0"), RawJson("1e2"), RawJson("1.5"),
    RawJson("1E2"), RawJson("truex"), RawJson("tru"), RawJson("nul"), RawJson('["a",]'),
    RawJson('[,"a"]'), RawJson('[ "a" , "b" ]'), RawJson("[\n]"), RawJson('["a" "b"]'),
    RawJson('["\\u0061"]'), RawJson("TRUE"), RawJson("0x1"), RawJson("+1"),
])


@st.composite
def near_valid_post_and_follower_messages(draw: st.DrawFn) -> tuple[bytes | None, bytes]:
    """A valid post or follower count with one or two things changed, from the changes
    of interactions or a field set to an odd value."""
    if draw(st.booleans()):
        return draw(near_valid_messages(valid_posts() | valid_follower_counts()))
    event = draw(valid_posts() | valid_follower_counts())
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        name = draw(st.sampled_from(["sponsored", "topics", "followers", "post_id",
                                     "actor_id", "type"]))
        event[name] = draw(odd_post_and_follower_values | st.sampled_from(
            ["post", "followers", "like"]))
    pairs = draw(st.permutations(list(event.items())))
    return str(event["account_id"]).encode(), serialize(draw, pairs)


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(near_valid_post_and_follower_messages())
@example((b"a", b'{"type":"followers","event_id":"e","account_id":"a","followers":01,'
          b'"occurred_at":"2026-11-01T10:00:03Z"}'))
@example((b"a", b'{"type":"post","event_id":"e","account_id":"a","post_id":"p",'
          b'"sponsored":true,"topics":["a",],"occurred_at":"2026-11-01T10:00:03Z"}'))
def test_whatever_post_or_follower_count_it_takes_the_contract_takes_with_the_same_values(
    message: tuple[bytes | None, bytes]
) -> None:
    key, value = message
    assert_wire_sound(key, value)


@pytest.mark.parametrize(("raw", "taken"), [
    ("0", 0), ("7", 7), ("999999999999999999", 10**18 - 1), ("1000000000000000000", None),
    ("01", None), ("-1", None), ("-0", None), ("1.0", None), ("1e2", None), ("1 ", 1),
])
def test_a_follower_count_is_0_or_up_to_18_digits(raw: str, taken: int | None) -> None:
    value = (b'{"type":"followers","event_id":"e","account_id":"a","followers":'
             + raw.encode() + b',"occurred_at":"2026-11-01T10:00:03Z"}')
    fields = assert_wire_sound(b"a", value)
    assert (None if fields is None else fields[8]) == taken, raw


def test_it_takes_every_post_and_follower_count_of_the_benchmark_streams() -> None:
    from bench.ingest import wide_events

    taken = 0
    for value in realistic_events(3_000) + wide_events(3_000):
        message = orjson.loads(value)
        if message["type"] in {"post", "followers"}:
            assert assert_wire_sound(message["account_id"].encode(), value) is not None
            taken += 1
    assert taken > 2_000
