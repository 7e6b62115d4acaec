"""The compiled decoders (Rust for interactions, msgspec) and the contract's validator
(pydantic) give the same answers: the same events, field for field, and the same
dead-letter reasons and details.

`decode_event` takes the Rust path, then the msgspec path, and hands what neither accepts
to the contract; these tests hold both compiled paths to accepting only what the contract
accepts, with the same values, and to accepting the usual forms themselves (else they
would be fast in name only). tests/unit/test_wire_native.py tries the Rust path harder.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from service.events import (
    Event,
    Rejection,
    RejectReason,
    decode_event,
    decode_event_compiled,
    decode_event_reference,
    decode_interaction_native,
)
from tests.events import followers, interaction, post
from tests.unit.test_decode import BAD_MESSAGES

NOW = 1_800_000_000.0
LIMITS: dict[str, Any] = {"now": NOW, "max_event_bytes": 8192, "max_future_skew_s": 300}


def fields(event: Event) -> tuple[Any, ...]:
    """Everything an event carries, the time's offset included (datetimes compare equal
    across offsets)."""
    return (type(event), *(getattr(event, name) for name in event.__struct_fields__),
            event.occurred_at.utcoffset())


def assert_agree(key: bytes | None, value: bytes | None) -> Event | Rejection:
    """Both decoders give the same answer, and the compiled path accepts only what the
    contract accepts, with the same values."""
    reference = decode_event_reference(key, value, **LIMITS)
    combined = decode_event(key, value, **LIMITS)
    if isinstance(reference, Rejection):
        assert combined == reference, (value, combined, reference)
    else:
        assert not isinstance(combined, Rejection), (value, combined, reference)
        assert fields(combined) == fields(reference), value
    if value is not None and len(value) <= LIMITS["max_event_bytes"]:
        compiled = decode_event_compiled(key, value, now=NOW, max_future_skew_s=300)
        if compiled is not None:
            assert not isinstance(reference, Rejection), (value, compiled, reference)
            assert fields(compiled) == fields(reference), value
        native = decode_interaction_native(key, value, **LIMITS)
        if native is not None:
            assert not isinstance(reference, Rejection), (value, native, reference)
            assert fields(native) == fields(reference), value
            assert native.occurred_at_s.hex() == reference.occurred_at_s.hex(), value
    return reference


@pytest.mark.parametrize("count", [2**63, 2**64, 10**30])
def test_a_follower_count_past_64_bits_is_dead_lettered_by_both(count: int) -> None:
    """A packed account holds a signed 64-bit count: a larger one must be rejected here,
    with a reason, not accepted and fail when the account is packed."""
    result = assert_agree(b"acc-42", orjson.dumps(followers("acc-42", 0))
                          .replace(b'"followers":0', f'"followers":{count}'.encode()))
    assert isinstance(result, Rejection)
    assert "followers" in result.detail
    largest = assert_agree(b"acc-42", orjson.dumps(followers("acc-42", 2**63 - 1)))
    assert not isinstance(largest, Rejection)


def compiled_accepts(event: dict[str, Any], value: bytes | None = None) -> bool:
    value = orjson.dumps(event) if value is None else value
    key = event["account_id"].encode()
    return decode_event_compiled(key, value, now=NOW, max_future_skew_s=300) is not None


@pytest.mark.parametrize(("value", "reason"), BAD_MESSAGES)
def test_every_known_bad_message_gets_the_same_reason_from_both(
    value: bytes | None, reason: RejectReason
) -> None:
    result = assert_agree(b"acc-42", value)
    assert isinstance(result, Rejection)
    assert result.reason == reason
    if value is not None and len(value) <= 8192:
        assert decode_event_compiled(b"acc-42", value, now=NOW, max_future_skew_s=300) is None


@pytest.mark.parametrize("key", [b"someone-else", None, b"ACC-42", b"acc-42 "])
def test_a_key_mismatch_is_the_same_rejection_from_both(key: bytes | None) -> None:
    result = assert_agree(key, orjson.dumps(interaction("like", "acc-42", "p", "u", 0)))
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.KEY_MISMATCH


@pytest.mark.parametrize("account", ["has space", "a/b", "ü", "acc-42\n", "x" * 129, "\u0000"])
def test_an_account_id_outside_the_pattern_is_rejected_by_both(account: str) -> None:
    value = orjson.dumps(interaction("like", account, "p", "u", 0))
    result = assert_agree(account.encode(), value)
    assert isinstance(result, Rejection)
    assert result.reason == RejectReason.INVALID_ID


VALID_LIKE = interaction("like", "acc-42", "p9", "u7", 0)
BASE = '"event_id":"e","account_id":"acc-42","occurred_at":"2026-11-01T00:00:00Z"'

# Forms where a compiled decoder could drift from the contract: each must give the same
# answer from both.
EDGE_CASES: list[bytes] = [
    # The last of two keys wins, the event's type included.
    b'{"type":"like",' + BASE.encode() + b',"post_id":"p","actor_id":"u","followers":5,'
    b'"type":"followers"}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":5,"followers":6}',
    # Fields of other types: ignored by the contract, whatever their value.
    b'{"type":"followers",' + BASE.encode() + b',"followers":5,"post_id":7,"topics":"x"}',
    b'{"type":"like",' + BASE.encode() + b',"post_id":"p","actor_id":"u","followers":null}',
    # Numbers.
    b'{"type":"followers",' + BASE.encode() + b',"followers":123456789012345678901234567890}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":5.0}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":1e2}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":-0}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":true}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":5,"extra":NaN}',
    # JSON text.
    b'\xef\xbb\xbf{"type":"followers",' + BASE.encode() + b',"followers":5}',
    b' {"type":"followers",' + BASE.encode() + b',"followers":5} \n',
    b'{"type":"followers",' + BASE.encode() + b',"followers":5,}',
    b'{"type":"followers",' + BASE.encode() + b',"followers":5,"deep":' + b"[" * 3000
    + b"]" * 3000 + b"}",
    # Strings: escapes, surrogates, control characters, non-ASCII, lengths in characters.
    b'{"type":"like",' + BASE.encode() + b',"post_id":"\\ud800","actor_id":"u"}',
    b'{"type":"like",' + BASE.encode() + b',"post_id":"\\ud83d\\ude00","actor_id":"u"}',
    b'{"type":"like",' + BASE.encode() + b',"post_id":"a\\u0000b","actor_id":"u"}',
    b'{"type":"like",' + BASE.encode() + b',"post_id":"' + "é".encode() * 128
    + b'","actor_id":"u"}',
    b'{"type":"like",' + BASE.encode() + b',"post_id":"' + "😀".encode() * 129
    + b'","actor_id":"u"}',
    b'{"type":"like",' + BASE.replace("acc-42", "acc-4\\u0032").encode()
    + b',"post_id":"p","actor_id":"u"}',
    b'{"type":"like",' + BASE.replace("acc-42", "acc-42\\n").encode()
    + b',"post_id":"p","actor_id":"u"}',
    b'{"type":"lik\\u0065",' + BASE.encode() + b',"post_id":"p","actor_id":"u"}',
    b'{"type":"post",' + BASE.encode() + b',"post_id":"p","sponsored":false,"topics":[]}',
    b'{"type":"post",' + BASE.encode() + b',"post_id":"p","sponsored":0,"topics":["a"]}',
    b'{"type":"post",' + BASE.encode() + b',"post_id":"p","sponsored":true,"topics":'
    + orjson.dumps(["t"] * 21) + b"}",
    b'{"type":"post",' + BASE.encode() + b',"post_id":"p","sponsored":true,"topics":'
    + orjson.dumps(["t" * 65]) + b"}",
]

TIMES = [
    "2026-11-01T10:00:03Z", "2026-11-01t10:00:03z", "2026-11-01 10:00:03Z",
    "2026-11-01T10:00:03.1Z", "2026-11-01T10:00:03.123456Z", "2026-11-01T10:00:03.1234567Z",
    "2026-11-01T10:00:03.123456789Z", "2026-11-01T10:00:03.9999995Z",
    "2026-11-01T10:00:03.12345678901234567890Z", "2026-11-01T10:00:03.1234567+01:00",
    "2026-11-01T10:00:03.12+01:00", "2026-11-01T10:00:03.123456-05:30",
    "2026-11-01T10:00:03+0100", "2026-11-01T10:00:03.1234567+0100", "2026-11-01T10:00:03+01",
    "2026-11-01T10:00:03-00:00", "2026-11-01T10:00:03+23:59", "2026-11-01T10:00:03+24:00",
    "2026-11-01T10:00:03+00:60", "2026-11-01T10:00Z", "2026-11-01_10:00:03Z",
    "2026-11-01T10:00:03,5Z", "2026-11-01T23:59:60Z", "2026-11-01T24:00:00Z",
    "2026-02-29T10:00:03Z", "2028-02-29T10:00:03Z", "0001-01-01T00:00:00Z", "0000-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z", "1700000000", "1700000000.5", "2026-11-01", "20261101T100003Z",
    "2026-11-01T10:00:03", "2026-11-01T10:00:03 Z", "+2026-11-01T10:00:03Z",
    "2026-11-01T10:00:03.Z", "\u0032026-11-01T10:00:03.1234567Z",
]


@pytest.mark.parametrize("value", EDGE_CASES)
def test_the_decoders_agree_on_the_edge_cases(value: bytes) -> None:
    assert_agree(b"acc-42", value)


@pytest.mark.parametrize("moment", TIMES)
def test_the_decoders_agree_on_every_form_of_time(moment: str) -> None:
    assert_agree(b"acc-42", orjson.dumps({**VALID_LIKE, "occurred_at": moment}))
    escaped = json.dumps({**VALID_LIKE, "occurred_at": moment}).replace(":0", ":\\u0030")
    assert_agree(b"acc-42", escaped.encode())


def test_the_compiled_path_takes_the_usual_forms() -> None:
    for event in (VALID_LIKE, interaction("comment", "a.b:c@d_e-F9", "p", "u", 5),
                  interaction("share", "x" * 128, "p" * 128, "ü" * 128, 5),
                  post("acc-42", "p1", 0, sponsored=True, topics=("a", "b" * 64)),
                  post("acc-42", "p1", 0, topics=()),
                  followers("acc-42", 0), followers("acc-42", 2**63 - 1)):
        assert compiled_accepts(event), event
    for moment in ("2026-11-01T10:00:03Z", "2026-11-01T10:00:03.123Z",
                   "2026-11-01T10:00:03.123456Z", "2026-11-01T10:00:03.123456+00:00",
                   "2026-11-01T10:00:03-05:30", "2026-11-01 10:00:03.5+01:00"):
        assert compiled_accepts({**VALID_LIKE, "occurred_at": moment}), moment


# Mostly valid values, near the limits, and some past them: the answers must agree on both.
any_text = st.one_of(st.text(st.characters(codec="utf-8"), max_size=130),
                     st.text("abc", min_size=127, max_size=130))
ids = st.one_of(st.text(st.characters(codec="utf-8"), min_size=1, max_size=128),
                st.text("abc", min_size=126, max_size=128))
plain_account_ids = st.text("abcXYZ019._:@-", min_size=1, max_size=128)
odd_account_ids = st.one_of(st.text("abc.Z9/ \n", max_size=130), any_text)
usual_moments = st.builds(
    lambda instant, digits, offset, separator: (
        f"{instant:%Y-%m-%d}".zfill(10) + f"{separator}{instant:%H:%M:%S}"
        + (f".{instant.microsecond:06d}"[:1 + digits] if digits else "") + offset),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(2026, 12, 30)),
    st.integers(min_value=0, max_value=6),
    st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+23:59", "+0130"]),
    st.sampled_from(["T", "t", " "]),
)
odd_moments = st.one_of(
    st.sampled_from(TIMES),
    st.builds(
        lambda instant, digits, offset, separator: (
            f"{instant:%Y-%m-%d}".zfill(10) + f"{separator}{instant:%H:%M:%S}" + digits
            + offset),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        st.text("0123456789", max_size=12).map(lambda digits: f".{digits}" if digits else ""),
        st.sampled_from(["Z", "z", "", "+24:00", "+01", "+00:60", " Z", "+01:00:00"]),
        st.sampled_from(["T", "_", "x"]),
    ),
    st.text(max_size=40),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)
topic_lists = st.lists(st.text(st.characters(codec="utf-8"), min_size=1, max_size=64),
                       max_size=20)
odd_topic_lists = st.one_of(st.lists(st.text(max_size=66), max_size=22), json_values)


@st.composite
def messages(draw: st.DrawFn, odd: bool = True) -> tuple[bytes | None, bytes]:
    """An event of any type, most of them valid, the others (if `odd`) with a field drawn
    past the contract's limits, dropped, or replaced, with extra fields or none,
    serialized in one of several ways."""
    def usually(usual: st.SearchStrategy[Any], unusual: st.SearchStrategy[Any]) -> Any:
        if odd and draw(st.integers(min_value=0, max_value=9)) == 0:
            return draw(unusual)
        return draw(usual)

    kind = usually(st.sampled_from(["like", "comment", "share", "post", "followers"]),
                   st.sampled_from(["poke", "Like", "", "likes"]))
    event: dict[str, Any] = {
        "event_id": usually(ids, any_text), "type": kind,
        "account_id": usually(plain_account_ids, odd_account_ids),
        "occurred_at": usually(usual_moments, odd_moments),
    }
    if kind == "post":
        event |= {"post_id": usually(ids, any_text),
                  "sponsored": usually(st.booleans(), json_values),
                  "topics": usually(topic_lists, odd_topic_lists)}
    elif kind == "followers":
        event["followers"] = usually(st.integers(min_value=0, max_value=10**7),
                                     st.integers(min_value=-5, max_value=2**70) | json_values)
    else:
        event |= {"post_id": usually(ids, any_text), "actor_id": usually(ids, any_text)}
    for name in usually(st.just([]), st.lists(st.sampled_from(sorted(event)), max_size=2,
                                              unique=True)):
        if draw(st.booleans()):
            del event[name]
        else:
            event[name] = draw(json_values)
    event |= usually(st.just({}), st.dictionaries(
        st.sampled_from(["followers", "post_id", "topics", "sponsored", "x"]), json_values,
        max_size=2))
    style = draw(st.sampled_from(["orjson", "ascii", "spaced"]))
    try:
        value = orjson.dumps(event) if style == "orjson" else b""
    except TypeError:  # orjson refuses integers beyond 64 bits
        style = "ascii"
    if style != "orjson":
        value = json.dumps(event, ensure_ascii=style == "ascii",
                           indent=2 if style == "spaced" else None).encode()
    account = event.get("account_id")
    own_key = account.encode() if isinstance(account, str) else None
    key = usually(st.just(own_key), st.sampled_from([b"acc-42", None]))
    return key, value


@settings(max_examples=4_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages())
@example((b"acc-42", orjson.dumps(VALID_LIKE)))
def test_the_decoders_agree_on_generated_messages(message: tuple[bytes | None, bytes]) -> None:
    key, value = message
    assert_agree(key, value)


@settings(max_examples=1_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(messages(odd=False))
def test_the_compiled_path_takes_every_valid_message_in_the_usual_forms(
    message: tuple[bytes | None, bytes]
) -> None:
    key, value = message
    reference = decode_event_reference(key, value, **LIMITS)
    assert not isinstance(reference, Rejection), (value, reference)
    compiled = decode_event_compiled(key, value, now=NOW, max_future_skew_s=300)
    assert compiled is not None, value
    assert fields(compiled) == fields(reference)


@settings(max_examples=1_000, deadline=None)
@given(st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2026, 12, 31),
                    timezones=st.sampled_from([UTC, None])),
       st.integers(min_value=-23 * 60, max_value=23 * 60))
def test_the_compiled_path_gives_the_references_epoch_seconds(
    instant: datetime, offset_minutes: int
) -> None:
    aware = instant.replace(tzinfo=timezone(timedelta(minutes=offset_minutes)))
    event = {**VALID_LIKE, "occurred_at": aware.isoformat()}
    compiled = decode_event_compiled(b"acc-42", orjson.dumps(event), now=4e9,
                                     max_future_skew_s=300)
    assert compiled is not None
    assert compiled.occurred_at_s == aware.timestamp()
    assert compiled.occurred_at == aware
    assert compiled.occurred_at.utcoffset() == aware.utcoffset()
