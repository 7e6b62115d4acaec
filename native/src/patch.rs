//! An interaction or an audience signal folded into a packed account by rewriting only
//! what it changes: the header, and the post's counters (and pending times) and the
//! actor bucket's sketch, or the audience. The bytes around them are copied as they are.
//!
//! `PackedAccount` (packed.rs) reads a whole account into Rust values and writes it all
//! again, ~11 heap allocations and every value decoded and encoded; on the wide
//! workload's accounts that was about a quarter of the compiled fold. Here the account is
//! only scanned: every value is checked where it lies, without being kept. A copy gives
//! the bytes `PackedAccount::write_into` would write only if they are in the form the
//! writer gives (each integer, string and array header in its shortest form, as
//! msgpack and `packing.py` write them), so the scan checks that too; anything else
//! (another form, a new post, a new bucket, a value the reader refuses) returns None and
//! the caller takes `PackedAccount`'s way, which handles every case. The two agree byte
//! for byte: tests/unit/test_native_fold.py compares both with the Python reference.

use std::ops::Range;

use crate::packed::{
    add_audience, count_on_post, write_int, Settings, Sketch, HEAVY_HITTER_CAPACITY, HLL_REGISTERS,
    RHYTHM_BINS,
};
use crate::{
    python_min, write_array_header, Reader, HEADER_SIZE, NO_FIRST_BUCKET, NO_LAST_BUCKET,
    POST_FIELDS,
};

/// An interaction as `PackedAccount::record_interaction` takes it.
pub(crate) struct Interaction<'a> {
    /// 0 like, 1 comment, 2 share.
    pub kind: usize,
    pub post_id: &'a str,
    pub occurred_at: f64,
    pub actor: u64,
    pub actor_bucket: i64,
    pub rhythm_bin: usize,
}

/// Where the interaction's post is, and what of it the interaction changes.
struct PostAt {
    /// The offset of its counters, the first field it changes.
    counters_at: usize,
    counters: [i64; 4],
    posted_at: Option<f64>,
    /// The offset of its pending times' floats, and how many (None: nil).
    pending_at: usize,
    pending: Option<usize>,
    end: usize,
}

/// What a scan of a packed account found: what the header is written from, and where
/// the parts a fold changes lie.
struct Layout {
    partition: u32,
    last_event_at: f64,
    /// `write_into`'s settled_from before the last event's time is taken in.
    settled_from: f64,
    /// The first and last buckets of the sketches (NO_FIRST_BUCKET, NO_LAST_BUCKET if
    /// none), and of the audience.
    sketch_buckets: (i64, i64),
    audience_buckets: Option<(i64, i64)>,
    /// The first post with the id asked for.
    post: Option<PostAt>,
    /// The last sketch of the bucket asked for.
    sketch: Option<Range<usize>>,
    /// Where the audience starts (the end if there is none), and its values.
    audience_at: usize,
    audience: Option<Range<usize>>,
}

/// The account in `packed`, scanned for the post `post_id` and the sketch of `bucket`;
/// None if its bytes are not all in `write_into`'s form.
fn scan(packed: &[u8], post_id: &str, bucket: Option<i64>) -> Option<Layout> {
    let mut scan = Scan(Reader { buf: packed, pos: 0 });
    let header = scan.0.take(HEADER_SIZE).ok()?;
    let partition = u32::from_le_bytes(header[0..4].try_into().ok()?);
    let last_event_at = f64::from_le_bytes(header[20..28].try_into().ok()?);
    let fields = scan.array()?;
    if fields != 3 && fields != 4 {
        return None;
    }

    let post_values = scan.array()?;
    if post_values % POST_FIELDS != 0 {
        return None;
    }
    let mut settled_from = f64::INFINITY;
    let mut post = None;
    for index in 0..post_values / POST_FIELDS {
        let id = scan.str()?;
        let posted_at = if scan.nil() { None } else { Some(scan.float()?) };
        let first_seen_at = scan.float()?;
        scan.boolean()?;
        for _ in 0..scan.array()? {
            scan.str()?;
        }
        let counters_at = scan.0.pos;
        let counters = [scan.int()?, scan.int()?, scan.int()?, scan.int()?];
        let (pending_at, pending) = if scan.nil() {
            (scan.0.pos, None)
        } else {
            let length = scan.array()?;
            let at = scan.0.pos;
            for _ in 0..length {
                scan.float()?;
            }
            (at, Some(length))
        };
        let anchor = posted_at.unwrap_or(first_seen_at);
        settled_from = if index == 0 { anchor } else { python_min(settled_from, anchor) };
        if post.is_none() && id == post_id {
            post = Some(PostAt { counters_at, counters, posted_at, pending_at, pending, end: scan.0.pos });
        }
    }

    let follower_values = scan.array()?;
    if follower_values % 2 != 0 {
        return None;
    }
    for index in 0..follower_values / 2 {
        let moment = scan.float()?;
        scan.int()?;
        if index == 1 {
            settled_from = python_min(settled_from, moment);
        }
    }

    let sketches = scan.array()?;
    let mut sketch_buckets = (NO_FIRST_BUCKET, NO_LAST_BUCKET);
    let mut sketch = None;
    for index in 0..sketches {
        let start = scan.0.pos;
        let found = scan.sketch()?;
        if index == 0 {
            sketch_buckets.0 = found;
        }
        sketch_buckets.1 = found;
        if Some(found) == bucket {
            sketch = Some(start..scan.0.pos); // the last, as `rposition`
        }
    }

    let audience_at = scan.0.pos;
    let (mut audience, mut audience_buckets) = (None, None);
    if fields == 4 {
        let length = scan.array()?;
        if length == 0 || length % 4 != 0 {
            return None; // `write_into` leaves an empty audience out
        }
        let values = scan.0.pos;
        let (mut first, mut last) = (0, 0);
        for index in 0..length {
            let value = scan.int()?;
            if index == 0 {
                first = value;
            }
            if index == length - 4 {
                last = value;
            }
        }
        audience = Some(values..scan.0.pos);
        audience_buckets = Some((first, last));
    }
    if scan.0.pos != packed.len() {
        return None;
    }
    Some(Layout {
        partition, last_event_at, settled_from, sketch_buckets, audience_buckets, post, sketch,
        audience_at, audience,
    })
}

/// The header `write_into` writes, over the first HEADER_SIZE bytes of `out`: the
/// buckets those of the sketches, widened by the audience's if it has any.
fn write_header(out: &mut [u8], partition: u32, version: u64, settled_from: f64, last_event_at: f64,
                (mut first_bucket, mut last_bucket): (i64, i64), audience: Option<(i64, i64)>) {
    if let Some((first, last)) = audience {
        first_bucket = first_bucket.min(first);
        last_bucket = last_bucket.max(last);
    }
    out[0..4].copy_from_slice(&partition.to_le_bytes());
    out[4..12].copy_from_slice(&version.to_le_bytes());
    out[12..20].copy_from_slice(&python_min(settled_from, last_event_at).to_le_bytes());
    out[20..28].copy_from_slice(&last_event_at.to_le_bytes());
    out[28..36].copy_from_slice(&first_bucket.to_le_bytes());
    out[36..44].copy_from_slice(&last_bucket.to_le_bytes());
}

/// `packed` with the interaction folded in, written into `out` (its bytes replaced) as
/// `PackedAccount` would write it; None (`out` undefined) if it takes `PackedAccount`'s way.
pub(crate) fn fold_interaction(
    packed: &[u8],
    event: &Interaction<'_>,
    settings: &Settings,
    partition: u32,
    version: u64,
    out: &mut Vec<u8>,
) -> Option<()> {
    let layout = scan(packed, event.post_id, Some(event.actor_bucket))?;
    let post = layout.post?; // a new post: PackedAccount's way
    let sketch_span = layout.sketch?; // a new bucket: likewise
    let mut sketch = Sketch::read(&mut Reader { buf: &packed[..sketch_span.end], pos: sketch_span.start }).ok()?;
    if !sketch.record(event.actor, event.rhythm_bin) {
        return None;
    }
    let mut counters = post.counters;
    let pends = count_on_post(&mut counters, event.kind, post.posted_at, post.pending, event.occurred_at, settings);
    let last_event_at = if event.occurred_at > layout.last_event_at { event.occurred_at } else { layout.last_event_at };

    // Copied up to the post's counters, the counters and pending times written, copied
    // up to the sketch, the sketch written, the rest copied.
    out.clear();
    out.reserve(packed.len() + 32);
    out.extend_from_slice(&packed[..post.counters_at]);
    for number in counters {
        write_int(out, number);
    }
    let pending_floats = &packed[post.pending_at..post.end];
    match (post.pending, pends) {
        (None, false) => out.push(0xc0),
        (Some(length), false) => {
            write_array_header(out, length);
            out.extend_from_slice(pending_floats);
        }
        (length, true) => {
            write_array_header(out, length.unwrap_or(0) + 1);
            out.extend_from_slice(pending_floats);
            out.push(0xcb);
            out.extend_from_slice(&event.occurred_at.to_be_bytes());
        }
    }
    out.extend_from_slice(&packed[post.end..sketch_span.start]);
    sketch.write(out);
    out.extend_from_slice(&packed[sketch_span.end..]);
    write_header(out, partition, version, layout.settled_from, last_event_at, layout.sketch_buckets,
                 layout.audience_buckets);
    Some(())
}

/// `packed` with an audience signal's counts for `bucket` added (`PackedAccount::
/// record_audience`), written into `out` as `fold_interaction` writes; its partition kept.
pub(crate) fn fold_audience(packed: &[u8], bucket: i64, counts: [u32; 3], version: u64, out: &mut Vec<u8>) -> Option<()> {
    let layout = scan(packed, "", None)?;
    let mut audience = layout.audience.map_or_else(Vec::new, |span| read_ints(&packed[span]));
    add_audience(&mut audience, bucket, counts);
    out.clear();
    out.reserve(packed.len() + 32);
    out.extend_from_slice(&packed[..HEADER_SIZE]);
    write_array_header(out, 4);
    out.extend_from_slice(&packed[HEADER_SIZE + 1..layout.audience_at]);
    write_array_header(out, audience.len());
    for value in &audience {
        write_int(out, *value);
    }
    let buckets = (audience[0], audience[audience.len() - 4]); // not empty: one was added
    write_header(out, layout.partition, version, layout.settled_from, layout.last_event_at,
                 layout.sketch_buckets, Some(buckets));
    Some(())
}

/// The integers of a span `scan` has checked.
fn read_ints(span: &[u8]) -> Vec<i64> {
    let mut scan = Scan(Reader { buf: span, pos: 0 });
    std::iter::from_fn(|| scan.int()).collect()
}

/// Reads msgpack values in the form `write_into` writes them, and nothing else: each
/// integer, string and array header in its shortest form, floats as float64.
struct Scan<'a>(Reader<'a>);

impl<'a> Scan<'a> {
    #[inline]
    fn byte(&mut self) -> Option<u8> {
        self.0.byte().ok()
    }

    #[inline]
    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.0.be().ok()
    }

    #[inline]
    fn nil(&mut self) -> bool {
        let nil = self.0.peek_nil();
        if nil {
            self.0.pos += 1;
        }
        nil
    }

    #[inline]
    fn array(&mut self) -> Option<usize> {
        match self.byte()? {
            marker @ 0x90..=0x9f => Some((marker & 0x0f) as usize),
            0xdc => Some(u16::from_be_bytes(self.be()?) as usize).filter(|length| *length >= 16),
            0xdd => Some(u32::from_be_bytes(self.be()?) as usize).filter(|length| *length > 0xffff),
            _ => None,
        }
    }

    #[inline]
    fn str(&mut self) -> Option<&'a str> {
        let length = match self.byte()? {
            marker @ 0xa0..=0xbf => (marker & 0x1f) as usize,
            0xd9 => Some(self.byte()? as usize).filter(|length| *length >= 32)?,
            0xda => Some(u16::from_be_bytes(self.be()?) as usize).filter(|length| *length > 0xff)?,
            0xdb => Some(u32::from_be_bytes(self.be()?) as usize).filter(|length| *length > 0xffff)?,
            _ => return None,
        };
        std::str::from_utf8(self.0.take(length).ok()?).ok()
    }

    #[inline]
    fn float(&mut self) -> Option<f64> {
        match self.byte()? {
            0xcb => Some(f64::from_be_bytes(self.be()?)),
            _ => None,
        }
    }

    #[inline]
    fn boolean(&mut self) -> Option<bool> {
        match self.byte()? {
            0xc2 => Some(false),
            0xc3 => Some(true),
            _ => None,
        }
    }

    /// An integer as `write_int` writes it: unsigned forms for what is not negative,
    /// signed ones below, each the shortest for its value.
    #[inline]
    fn int(&mut self) -> Option<i64> {
        let marker = self.byte()?;
        match marker {
            0x00..=0x7f => Some(marker as i64),
            0xe0..=0xff => Some(marker as i8 as i64),
            0xcc => Some(self.byte()? as i64).filter(|value| *value > 0x7f),
            0xcd => Some(u16::from_be_bytes(self.be()?) as i64).filter(|value| *value > 0xff),
            0xce => Some(u32::from_be_bytes(self.be()?) as i64).filter(|value| *value > 0xffff),
            0xcf => i64::try_from(u64::from_be_bytes(self.be()?)).ok().filter(|value| *value > 0xffff_ffff),
            0xd0 => Some(self.byte()? as i8 as i64).filter(|value| *value < -32),
            0xd1 => Some(i16::from_be_bytes(self.be()?) as i64).filter(|value| *value < -128),
            0xd2 => Some(i32::from_be_bytes(self.be()?) as i64).filter(|value| *value < -32_768),
            0xd3 => Some(i64::from_be_bytes(self.be()?)).filter(|value| *value < -2_147_483_648),
            _ => None,
        }
    }

    /// An actor hash: `write_unsigned`'s forms, all 64 bits.
    #[inline]
    fn hash(&mut self) -> Option<()> {
        let marker = self.byte()?;
        let fits = match marker {
            0x00..=0x7f => true,
            0xcc => self.byte()? > 0x7f,
            0xcd => u16::from_be_bytes(self.be()?) > 0xff,
            0xce => u32::from_be_bytes(self.be()?) > 0xffff,
            0xcf => u64::from_be_bytes(self.be()?) > 0xffff_ffff,
            _ => false,
        };
        fits.then_some(())
    }

    /// A flat [actor, count, ...] dict of a sketch, not empty if `nonempty`.
    #[inline]
    fn pairs(&mut self, nonempty: bool) -> Option<()> {
        let length = self.array()?;
        if length % 2 != 0 || length > 2 * HEAVY_HITTER_CAPACITY || (nonempty && length == 0) {
            return None;
        }
        for _ in 0..length / 2 {
            self.hash()?;
            self.int()?;
        }
        Some(())
    }

    /// One sketch as `Sketch::write` writes it; its bucket.
    #[inline]
    fn sketch(&mut self) -> Option<i64> {
        if self.array()? != 6 {
            return None;
        }
        let bucket = self.int()?;
        self.int()?;
        self.pairs(false)?;
        if !self.nil() {
            self.pairs(true)?; // `write` leaves empty errors out
        }
        if !self.nil() {
            if self.byte()? != 0xc5 || u16::from_be_bytes(self.be()?) as usize != HLL_REGISTERS {
                return None;
            }
            self.0.take(HLL_REGISTERS).ok()?;
        }
        if self.array()? != RHYTHM_BINS {
            return None;
        }
        for _ in 0..RHYTHM_BINS {
            self.int()?;
        }
        Some(bucket)
    }
}
