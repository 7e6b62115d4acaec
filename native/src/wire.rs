//! One event message decoded straight from its Kafka bytes: interactions (like, comment,
//! share) for the decoder and the fold, posts and follower counts for the fold.
//!
//! `service.events.decode_event` is the specification, and the contract's pydantic
//! validator (`service/event_contract.py`) behind it. This decoder accepts only the forms
//! the streams use and that provably decode to the same event there: a JSON object with
//! exactly the fields of its event type, in any order, each once; strings of printable
//! ASCII without escapes; an RFC 3339 time `YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,6}](Z|z|±HH:MM)`
//! between 1900 and 2199; the key equal to the account id. Anything else - posts, follower
//! counts, unknown or duplicate keys, escapes, non-ASCII, other time forms, times in the
//! future, every invalid message - gives None, and Python decides as before, so correctness
//! never depends on covering a rare form. The accepted path allocates nothing: the ids are
//! borrowed from the message. tests/unit/test_wire_native.py holds it to the contract.

use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDateTime, PyDelta, PyDict, PyFloat, PyString, PyTuple, PyTzInfo};

/// service/event_contract.py's MAX_ID_CHARS (ASCII only here, so bytes = characters).
const MAX_ID_BYTES: usize = 128;

/// The calendar fields of `occurred_at` as written, and its offset from UTC: what the
/// Python event's datetime is built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct WireMoment {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    pub microsecond: u32,
    /// None for "Z"/"z", "+00:00" and "-00:00" (the datetime's tzinfo is then
    /// `timezone.utc`, as msgspec gives it); else minutes east of UTC.
    pub offset_minutes: Option<i16>,
}

/// A message's event kind, as its "type" names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EventKind {
    Like,
    Comment,
    Share,
    Post,
    Followers,
}

/// service/event_contract.py's MAX_TOPICS and MAX_TOPIC_CHARS (ASCII only here).
pub(crate) const MAX_TOPICS: usize = 20;
const MAX_TOPIC_BYTES: usize = 64;

/// Any event of the usual forms, borrowed from the message: the fields of its kind are
/// set, the others empty ("", false, no topics, 0).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct WireEvent<'a> {
    pub kind: EventKind,
    pub event_id: &'a str,
    pub account_id: &'a str,
    pub post_id: &'a str,
    pub actor_id: &'a str,
    pub sponsored: bool,
    pub topics: [&'a str; MAX_TOPICS],
    pub topic_count: usize,
    pub followers: i64,
    /// Bit-identical to Python's `occurred_at.timestamp()`: total microseconds / 1e6.
    pub occurred_at_s: f64,
    pub moment: WireMoment,
}

impl<'a> WireEvent<'a> {
    pub(crate) fn topics(&self) -> &[&'a str] {
        &self.topics[..self.topic_count]
    }
}

const TYPE: u16 = 1;
const EVENT_ID: u16 = 2;
const ACCOUNT_ID: u16 = 4;
const POST_ID: u16 = 8;
const ACTOR_ID: u16 = 16;
const OCCURRED_AT: u16 = 32;
const SPONSORED: u16 = 64;
const TOPICS: u16 = 128;
const FOLLOWERS: u16 = 256;
/// Exactly the fields of each kind: an extra one (which the contract ignores, or checks
/// on another path) hands the message to Python.
const INTERACTION_FIELDS: u16 = TYPE | EVENT_ID | ACCOUNT_ID | POST_ID | ACTOR_ID | OCCURRED_AT;
const POST_FIELDS: u16 = TYPE | EVENT_ID | ACCOUNT_ID | POST_ID | SPONSORED | TOPICS | OCCURRED_AT;
const FOLLOWERS_FIELDS: u16 = TYPE | EVENT_ID | ACCOUNT_ID | FOLLOWERS | OCCURRED_AT;
/// A follower count of up to 18 digits fits an i64; longer ones are Python's.
const MAX_COUNT_DIGITS: usize = 18;

/// Some only if `service.events.decode_event(key, value, ..)` returns an event of this
/// kind with exactly these field values (a post's topics in order, its sponsored flag, a
/// follower count); None = "let Python decide". Posts and follower counts take the same
/// forms as interactions, with `true`/`false`, a list of 0 to 20 topics of 1 to 64
/// characters, and a count of 0 or digits without a leading zero, at most 18 of them.
pub(crate) fn decode_wire<'a>(
    key: Option<&[u8]>,
    value: &'a [u8],
    now: f64,
    max_event_bytes: usize,
    max_future_skew_s: f64,
) -> Option<WireEvent<'a>> {
    if value.len() > max_event_bytes {
        return None;
    }
    let key = key?;
    let mut cursor = Cursor { buf: value, pos: 0 };
    cursor.skip_whitespace();
    cursor.expect(b'{')?;
    let mut seen = 0u16;
    let mut kind = EventKind::Like;
    let (mut event_id, mut account_id, mut post_id, mut actor_id) = ("", "", "", "");
    let mut sponsored = false;
    let mut topics = [""; MAX_TOPICS];
    let mut topic_count = 0;
    let mut followers = 0i64;
    let mut moment: Option<(WireMoment, i64)> = None;
    loop {
        cursor.skip_whitespace();
        let name = cursor.string()?;
        cursor.skip_whitespace();
        cursor.expect(b':')?;
        cursor.skip_whitespace();
        let field = match name {
            b"type" => {
                kind = match cursor.string()? {
                    b"like" => EventKind::Like,
                    b"comment" => EventKind::Comment,
                    b"share" => EventKind::Share,
                    b"post" => EventKind::Post,
                    b"followers" => EventKind::Followers,
                    _ => return None,
                };
                TYPE
            }
            b"event_id" => {
                event_id = cursor.id()?;
                EVENT_ID
            }
            b"account_id" => {
                account_id = cursor.id()?;
                ACCOUNT_ID
            }
            b"post_id" => {
                post_id = cursor.id()?;
                POST_ID
            }
            b"actor_id" => {
                actor_id = cursor.id()?;
                ACTOR_ID
            }
            b"occurred_at" => {
                moment = Some(parse_moment(cursor.string()?)?);
                OCCURRED_AT
            }
            b"sponsored" => {
                sponsored = cursor.boolean()?;
                SPONSORED
            }
            b"topics" => {
                topic_count = cursor.topics(&mut topics)?;
                TOPICS
            }
            b"followers" => {
                followers = cursor.count()?;
                FOLLOWERS
            }
            _ => return None,
        };
        if seen & field != 0 {
            return None; // a duplicate: the contract takes the last, this decoder none
        }
        seen |= field;
        cursor.skip_whitespace();
        match cursor.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    cursor.skip_whitespace();
    let expected = match kind {
        EventKind::Like | EventKind::Comment | EventKind::Share => INTERACTION_FIELDS,
        EventKind::Post => POST_FIELDS,
        EventKind::Followers => FOLLOWERS_FIELDS,
    };
    if cursor.pos != value.len() || seen != expected {
        return None;
    }
    if key != account_id.as_bytes()
        || !account_id
            .bytes()
            .all(|byte| ACCOUNT_ID_BYTE[usize::from(byte)])
    {
        return None;
    }
    let (moment, micros) = moment?;
    // Exact: |micros| < 2**53 for the years accepted, and one IEEE division is correctly
    // rounded, as Python's int / int is.
    let occurred_at_s = micros as f64 / 1e6;
    if occurred_at_s > now + max_future_skew_s {
        return None; // Python gives the rejection with its detail
    }
    Some(WireEvent {
        kind,
        event_id,
        account_id,
        post_id,
        actor_id,
        sponsored,
        topics,
        topic_count,
        followers,
        occurred_at_s,
        moment,
    })
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.buf.get(self.pos) {
            self.pos += 1;
        }
    }

    fn next(&mut self) -> Option<u8> {
        let byte = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(byte)
    }

    fn expect(&mut self, wanted: u8) -> Option<()> {
        (self.next()? == wanted).then_some(())
    }

    /// A JSON string of printable ASCII without escapes, its contents without the quotes.
    fn string(&mut self) -> Option<&'a [u8]> {
        let rest = self.buf.get(self.pos..)?;
        if rest.first() != Some(&b'"') {
            return None;
        }
        let rest = &rest[1..];
        let length = plain_prefix(rest);
        if rest.get(length) != Some(&b'"') {
            return None; // an escape, a control character or non-ASCII
        }
        self.pos += length + 2;
        Some(&rest[..length])
    }

    /// `true` or `false`.
    fn boolean(&mut self) -> Option<bool> {
        let rest = self.buf.get(self.pos..)?;
        if rest.starts_with(b"true") {
            self.pos += 4;
            Some(true)
        } else if rest.starts_with(b"false") {
            self.pos += 5;
            Some(false)
        } else {
            None
        }
    }

    /// A non-negative integer: `0`, or 1 to MAX_COUNT_DIGITS digits not starting with 0.
    /// What follows is the caller's to check: a fraction, an exponent or a further digit
    /// after a `0` is neither `,` nor `}`.
    fn count(&mut self) -> Option<i64> {
        let rest = self.buf.get(self.pos..)?;
        let length = match rest.first()? {
            b'0' => 1,
            b'1'..=b'9' => rest.iter().take_while(|byte| byte.is_ascii_digit()).count(),
            _ => return None,
        };
        if length > MAX_COUNT_DIGITS {
            return None;
        }
        let mut value = 0i64;
        for &byte in &rest[..length] {
            value = value * 10 + i64::from(byte - b'0');
        }
        self.pos += length;
        Some(value)
    }

    /// A list of 0 to MAX_TOPICS strings of 1 to MAX_TOPIC_BYTES characters; how many.
    fn topics(&mut self, topics: &mut [&'a str; MAX_TOPICS]) -> Option<usize> {
        self.expect(b'[')?;
        self.skip_whitespace();
        if self.buf.get(self.pos) == Some(&b']') {
            self.pos += 1;
            return Some(0);
        }
        let mut count = 0;
        loop {
            let text = self.string()?;
            if text.is_empty() || text.len() > MAX_TOPIC_BYTES || count == MAX_TOPICS {
                return None;
            }
            // SAFETY: `string` returns printable ASCII only, which is UTF-8.
            topics[count] = unsafe { std::str::from_utf8_unchecked(text) };
            count += 1;
            self.skip_whitespace();
            match self.next()? {
                b',' => self.skip_whitespace(),
                b']' => return Some(count),
                _ => return None,
            }
        }
    }

    /// An id: 1 to MAX_ID_BYTES characters.
    fn id(&mut self) -> Option<&'a str> {
        let text = self.string()?;
        if text.is_empty() || text.len() > MAX_ID_BYTES {
            return None;
        }
        // SAFETY: `string` returns printable ASCII only, which is UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(text) })
    }
}

/// The bytes a string may hold as they are: printable ASCII but the quote and backslash.
static PLAIN: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0x20;
    while byte <= 0x7e {
        table[byte] = byte != b'"' as usize && byte != b'\\' as usize;
        byte += 1;
    }
    table
};

/// How many bytes at the start of `text` a string may hold as they are (`PLAIN`): eight at a
/// time, the ids and times being 10 to 40 bytes long.
fn plain_prefix(text: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // The high bit of each byte that is zero (the lowest such byte exactly; a borrow can
    // only mark bytes above it).
    fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGHS
    }
    let mut offset = 0;
    while let Some(chunk) = text.get(offset..offset + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        let special = below_space
            | zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | zero_bytes(word ^ (ONES * 0x7f))
            | (word & HIGHS);
        if special != 0 {
            return offset + (special.trailing_zeros() / 8) as usize;
        }
        offset += 8;
    }
    offset
        + text[offset..]
            .iter()
            .position(|&byte| !PLAIN[usize::from(byte)])
            .unwrap_or(text.len() - offset)
}

/// service/event_contract.py's ACCOUNT_ID_PATTERN, `^[A-Za-z0-9._:@-]+$`, by byte.
static ACCOUNT_ID_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'@' | b'-');
        byte += 1;
    }
    table
};

fn digits(text: &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for &byte in text {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value * 10 + u32::from(byte - b'0');
    }
    Some(value)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// `YYYY-MM-DD(T|t| )HH:MM:SS[.f{1,6}](Z|z|±HH:MM)`, years 1900 to 2199: the moment and
/// its microseconds since the epoch.
fn parse_moment(text: &[u8]) -> Option<(WireMoment, i64)> {
    if text.len() < 20
        || text[4] != b'-'
        || text[7] != b'-'
        || text[13] != b':'
        || text[16] != b':'
        || !matches!(text[10], b'T' | b't' | b' ')
    {
        return None;
    }
    let year = digits(&text[0..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    let hour = digits(&text[11..13])?;
    let minute = digits(&text[14..16])?;
    let second = digits(&text[17..19])?;
    if !(1900..=2199).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut rest = &text[19..];
    let mut microsecond = 0u32;
    if rest.first() == Some(&b'.') {
        let count = rest[1..]
            .iter()
            .take_while(|byte| byte.is_ascii_digit())
            .count();
        if !(1..=6).contains(&count) {
            return None; // past 6 digits msgspec rounds and pydantic truncates
        }
        microsecond = digits(&rest[1..1 + count])? * 10u32.pow(6 - count as u32);
        rest = &rest[1 + count..];
    }
    let offset_minutes = match rest {
        b"Z" | b"z" => None,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let hours = digits(&[*h1, *h2])?;
            let minutes = digits(&[*m1, *m2])?;
            if hours > 23 || minutes > 59 {
                return None;
            }
            let east = (hours * 60 + minutes) as i16;
            match (east, sign) {
                (0, _) => None,
                (_, b'-') => Some(-east),
                _ => Some(east),
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), i64::from(month), i64::from(day));
    let seconds =
        days * 86_400 + i64::from(hour) * 3_600 + i64::from(minute) * 60 + i64::from(second)
            - i64::from(offset_minutes.unwrap_or(0)) * 60;
    let micros = seconds * 1_000_000 + i64::from(microsecond);
    let moment = WireMoment {
        year: year as u16,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        microsecond,
        offset_minutes,
    };
    Some((moment, micros))
}

// ---------------------------------------------------------------- the Python side

/// What `decode_wire` takes from a message, for tests/unit/test_wire_native.py: None, or
/// (type, event_id, account_id, occurred_at_s, post_id, actor_id, sponsored, topics,
/// followers) with None for the fields its type does not have.
#[pyfunction]
#[pyo3(signature = (key, value, now, max_event_bytes, max_future_skew_s, /))]
pub(crate) fn decode_wire_fields<'py>(
    py: Python<'py>,
    key: Option<&[u8]>,
    value: &[u8],
    now: f64,
    max_event_bytes: usize,
    max_future_skew_s: f64,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some(event) = decode_wire(key, value, now, max_event_bytes, max_future_skew_s) else {
        return Ok(None);
    };
    let none = || py.None().into_bound(py);
    let text = |text: &str| -> PyResult<Bound<'py, PyAny>> { Ok(ascii_string(py, text)?.into_any()) };
    let (name, post_id, actor_id, sponsored, topics, followers) = match event.kind {
        EventKind::Like | EventKind::Comment | EventKind::Share => (
            match event.kind {
                EventKind::Like => "like",
                EventKind::Comment => "comment",
                _ => "share",
            },
            text(event.post_id)?,
            text(event.actor_id)?,
            none(),
            none(),
            none(),
        ),
        EventKind::Post => {
            let topics = event.topics().iter().map(|topic| ascii_string(py, topic)).collect::<PyResult<Vec<_>>>()?;
            (
                "post",
                text(event.post_id)?,
                none(),
                PyBool::new(py, event.sponsored).to_owned().into_any(),
                PyTuple::new(py, topics)?.into_any(),
                none(),
            )
        }
        EventKind::Followers => (
            "followers",
            none(),
            none(),
            none(),
            none(),
            event.followers.into_pyobject(py)?.into_any(),
        ),
    };
    let items: [Bound<'py, PyAny>; 9] = [
        PyString::new(py, name).into_any(),
        text(event.event_id)?,
        text(event.account_id)?,
        PyFloat::new(py, event.occurred_at_s).into_any(),
        post_id,
        actor_id,
        sponsored,
        topics,
        followers,
    ];
    Ok(Some(PyTuple::new(py, items)?))
}

/// `decode_event`'s first path for interactions: the Like/Comment/ShareEvent the Python
/// decoders would give, built here, or None (then msgspec's path, then the contract's).
#[pyclass(frozen)]
pub(crate) struct InteractionDecoder {
    like: Py<PyAny>,
    comment: Py<PyAny>,
    share: Py<PyAny>,
    utc: Py<PyTzInfo>,
    /// timezone objects by minutes east of UTC, made once each (as msgspec caches them).
    zones: Py<PyDict>,
}

#[pymethods]
impl InteractionDecoder {
    #[new]
    fn new(
        py: Python<'_>,
        like: Py<PyAny>,
        comment: Py<PyAny>,
        share: Py<PyAny>,
    ) -> PyResult<Self> {
        let utc = PyTzInfo::utc(py)?.to_owned().unbind();
        Ok(Self {
            like,
            comment,
            share,
            utc,
            zones: PyDict::new(py).unbind(),
        })
    }

    /// The event, or None when Python must decide.
    #[pyo3(signature = (key, value, now, max_event_bytes, max_future_skew_s, /))]
    fn decode<'py>(
        &self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        value: &Bound<'py, PyAny>,
        now: &Bound<'py, PyAny>,
        max_event_bytes: &Bound<'py, PyAny>,
        max_future_skew_s: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        // Anything but bytes (a tombstone's None, a bytearray), and limits that do not fit
        // (decode_event never raises), are for Python to decide.
        let (Ok(value), Ok(now), Ok(max_event_bytes), Ok(max_future_skew_s)) = (
            value.cast::<PyBytes>(),
            now.extract::<f64>(),
            max_event_bytes.extract::<usize>(),
            max_future_skew_s.extract::<f64>(),
        ) else {
            return Ok(None);
        };
        let key = key.cast::<PyBytes>().ok().map(|key| key.as_bytes());
        // Posts and follower counts are the fold's; this decoder makes interactions only.
        match decode_wire(key, value.as_bytes(), now, max_event_bytes, max_future_skew_s)
            .filter(|event| !matches!(event.kind, EventKind::Post | EventKind::Followers))
        {
            Some(wire) => Ok(Some(self.event(py, &wire)?)),
            None => Ok(None),
        }
    }
}

impl InteractionDecoder {
    /// The Like/Comment/ShareEvent `decode_event` gives for the message `wire` was decoded
    /// from.
    pub(crate) fn event<'py>(
        &self,
        py: Python<'py>,
        wire: &WireEvent<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let moment = wire.moment;
        let zone = match moment.offset_minutes {
            None => self.utc.bind(py).clone(),
            Some(minutes) => self.zone(py, minutes)?,
        };
        let occurred_at = PyDateTime::new(
            py,
            i32::from(moment.year),
            moment.month,
            moment.day,
            moment.hour,
            moment.minute,
            moment.second,
            moment.microsecond,
            Some(&zone),
        )?;
        let class = match wire.kind {
            EventKind::Like => &self.like,
            EventKind::Comment => &self.comment,
            EventKind::Share => &self.share,
            EventKind::Post | EventKind::Followers => {
                return Err(PyValueError::new_err("not an interaction"));
            }
        };
        class.bind(py).call1((
            ascii_string(py, wire.event_id)?,
            ascii_string(py, wire.account_id)?,
            occurred_at,
            wire.occurred_at_s,
            ascii_string(py, wire.post_id)?,
            ascii_string(py, wire.actor_id)?,
        ))
    }

    fn zone<'py>(&self, py: Python<'py>, minutes: i16) -> PyResult<Bound<'py, PyTzInfo>> {
        let zones = self.zones.bind(py);
        if let Some(zone) = zones.get_item(minutes)? {
            return Ok(zone.cast_into::<PyTzInfo>()?);
        }
        let offset = PyDelta::new(py, 0, i32::from(minutes) * 60, 0, true)?;
        let zone = py
            .import("datetime")?
            .getattr("timezone")?
            .call1((offset,))?
            .cast_into::<PyTzInfo>()?;
        zones.set_item(minutes, &zone)?;
        Ok(zone)
    }
}

/// A str of ASCII text, copied in (`PyString::new` would decode it as UTF-8 first).
pub(crate) fn ascii_string<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    debug_assert!(text.is_ascii());
    // SAFETY: PyUnicode_New(n, 127) makes a compact ASCII str of n bytes to fill; `text`
    // is ASCII (`Cursor::string` lets nothing else through) and exactly n bytes long.
    unsafe {
        let raw = ffi::PyUnicode_New(text.len() as ffi::Py_ssize_t, 127);
        let string = Bound::from_owned_ptr_or_err(py, raw)?;
        std::ptr::copy_nonoverlapping(text.as_ptr(), ffi::PyUnicode_1BYTE_DATA(raw), text.len());
        Ok(string.cast_into_unchecked())
    }
}
