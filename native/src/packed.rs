//! An event folded into an account that is packed (`packing.py`'s layout), without building
//! the account's Python objects: the bytes are read into plain Rust values, changed as
//! `Account.touch`, `record_interaction` (with `ActorSketch.add`), `record_post` and
//! `record_followers` change the objects, and written back as `Codec.pack` would write
//! the changed account.
//!
//! The store folds an event this way when the account is packed and its events since the
//! last checkpoint, this one included, times its size stay within `PACKED_FOLD_MAX_BYTES`
//! (`AccountStore.activate`): unpacking it into ~40 objects and packing another account
//! out to make room cost ~8 us on the wide workload's accounts, this ~2.7 us for a
//! 1.2 KiB account (~2 us per KiB, `python -m bench.packed_fold`). The Python
//! reference does the same through `unpack`, the account's methods and `pack`;
//! tests/unit/test_native_fold.py compares the two byte for byte. Bytes this reader does
//! not know (an older layout, a type the Python objects may hold but the fold never
//! writes) make `PackedAccount::read` give up, and the caller takes the Python way.
//! Most interactions and audience signals do not come here: patch.rs rewrites only the
//! parts they change, and sends the rest (a new post or bucket, bytes in another form)
//! here.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::patch::Interaction;
use crate::{
    python_min, write_array_header, write_bin, write_negative, write_str, write_unsigned, Reader,
    HEADER_SIZE, NO_FIRST_BUCKET, NO_LAST_BUCKET, POST_FIELDS,
};

pub(crate) const HEAVY_HITTER_CAPACITY: usize = 32;
pub(crate) const HLL_REGISTERS: usize = 256;
const REMAINING_BITS: u32 = 64 - 8;
pub(crate) const RHYTHM_BINS: usize = 8;
const MAX_PENDING_TIMES: usize = 256;
const FOLLOWER_HISTORY_LIMIT: usize = 64;
/// Where a post's counters keep the interactions within the burst window.
const EARLY: usize = 3;


struct Post<'a> {
    id: &'a str,
    posted_at: Option<f64>,
    first_seen_at: f64,
    sponsored: bool,
    topics: Vec<&'a str>,
    /// Likes, comments, shares, and the interactions within the burst window.
    counters: [i64; 4],
    pending: Option<Vec<f64>>,
}

impl Post<'_> {
    fn anchor_time(&self) -> f64 {
        self.posted_at.unwrap_or(self.first_seen_at)
    }
}

/// A sketch's counters or their errors, in place instead of on the heap: at most
/// HEAVY_HITTER_CAPACITY pairs, as `ActorSketch.add` keeps them (a counter past that
/// replaces one, and only a counter's actor has an error).
#[derive(Clone, Copy)]
pub(crate) struct Pairs {
    len: usize,
    items: [(u64, i64); HEAVY_HITTER_CAPACITY],
}

impl Pairs {
    const EMPTY: Pairs = Pairs { len: 0, items: [(0, 0); HEAVY_HITTER_CAPACITY] };

    pub(crate) fn as_slice(&self) -> &[(u64, i64)] {
        &self.items[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [(u64, i64)] {
        &mut self.items[..self.len]
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// False if full: bytes that hold more than a sketch can.
    #[must_use]
    fn push(&mut self, pair: (u64, i64)) -> bool {
        let Some(slot) = self.items.get_mut(self.len) else { return false };
        *slot = pair;
        self.len += 1;
        true
    }

    fn remove(&mut self, index: usize) -> (u64, i64) {
        let pair = self.items[index];
        self.items.copy_within(index + 1..self.len, index);
        self.len -= 1;
        pair
    }
}

pub(crate) struct Sketch {
    bucket: i64,
    interactions: i64,
    counts: Pairs,
    errors: Option<Pairs>,
    registers: Option<Vec<u8>>,
    rhythm: [i64; RHYTHM_BINS],
}

impl Sketch {
    fn new(bucket: i64) -> Self {
        Sketch {
            bucket,
            interactions: 0,
            counts: Pairs::EMPTY,
            errors: None,
            registers: None,
            rhythm: [0; RHYTHM_BINS],
        }
    }

    /// ActorSketch.add: exact while it has room, then Space-Saving and HyperLogLog. The
    /// victim is the first actor (in the counters' order) with the smallest count, which
    /// is what `ActorSketch._first_at_floor` finds. False if the errors have no room,
    /// which a sketch `add` made never lacks.
    #[must_use]
    fn add(&mut self, actor: u64) -> bool {
        self.interactions += 1;
        if let Some(entry) = self.counts.as_mut_slice().iter_mut().find(|(known, _)| *known == actor) {
            entry.1 += 1;
            return true;
        }
        if self.counts.len < HEAVY_HITTER_CAPACITY {
            if let Some(registers) = &mut self.registers {
                hll_add(registers, actor);
            }
            return self.counts.push((actor, 1));
        }
        let registers = self.registers.get_or_insert_with(|| {
            let mut fresh = vec![0u8; HLL_REGISTERS];
            for (known, _) in self.counts.as_slice() {
                hll_add(&mut fresh, *known);
            }
            fresh
        });
        hll_add(registers, actor);
        let counts = self.counts.as_slice();
        let mut victim = 0;
        for (index, (_, count)) in counts.iter().enumerate() {
            if *count < counts[victim].1 {
                victim = index;
            }
        }
        let (victim_actor, floor) = self.counts.remove(victim);
        let errors = self.errors.get_or_insert(Pairs::EMPTY);
        if let Some(position) = errors.as_slice().iter().position(|(known, _)| *known == victim_actor) {
            errors.remove(position);
        }
        self.counts.push((actor, floor + 1)) && errors.push((actor, floor))
    }

    /// One `[bucket, interactions, counts, errors, registers, rhythm]` entry of the
    /// packed sketches.
    pub(crate) fn read(reader: &mut Reader<'_>) -> PyResult<Sketch> {
        if reader.array_len()? != 6 {
            return Err(unknown("a sketch without time-of-day counters"));
        }
        let bucket = reader.int()?;
        let interactions = reader.int()?;
        let counts = reader.pairs()?;
        let errors = if reader.nil() { None } else { Some(reader.pairs()?) };
        let registers = if reader.nil() {
            None
        } else {
            let registers = reader.bin()?;
            if registers.len() != HLL_REGISTERS {
                return Err(unknown("an unexpected length"));
            }
            Some(registers.to_vec())
        };
        if reader.array_len()? != RHYTHM_BINS {
            return Err(unknown("an unexpected length"));
        }
        let mut rhythm = [0i64; RHYTHM_BINS];
        for bin in &mut rhythm {
            *bin = reader.int()?;
        }
        Ok(Sketch { bucket, interactions, counts, errors, registers, rhythm })
    }

    /// The interaction of `actor` in time-of-day bin `rhythm_bin`; false as `add`.
    #[must_use]
    pub(crate) fn record(&mut self, actor: u64, rhythm_bin: usize) -> bool {
        self.rhythm[rhythm_bin] += 1;
        self.add(actor)
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        write_array_header(out, 6);
        write_int(out, self.bucket);
        write_int(out, self.interactions);
        write_pairs(out, self.counts.as_slice());
        match &self.errors {
            Some(errors) if !errors.is_empty() => write_pairs(out, errors.as_slice()),
            _ => out.push(0xc0),
        }
        match &self.registers {
            None => out.push(0xc0),
            Some(registers) => write_bin(out, registers),
        }
        write_array_header(out, RHYTHM_BINS);
        for count in self.rhythm {
            write_int(out, count);
        }
    }
}

/// The post's part of `Account.record_interaction` (`kind` 0 like, 1 comment, 2 share):
/// its kind counted, and counted as early if the post's time is known; true if instead
/// `occurred_at` joins the post's pending times, of which it has `pending` (None: no list).
pub(crate) fn count_on_post(
    counters: &mut [i64; 4],
    kind: usize,
    posted_at: Option<f64>,
    pending: Option<usize>,
    occurred_at: f64,
    settings: &Settings,
) -> bool {
    counters[kind.min(2)] += 1;
    match posted_at {
        None => pending.unwrap_or(0) < MAX_PENDING_TIMES,
        Some(posted_at) => {
            if occurred_at - posted_at <= settings.burst_window_s {
                counters[EARLY] += 1;
            }
            false
        }
    }
}

/// `Account.record_audience` on the flat [bucket, interactions, busy, farm_like, ...]
/// list in bucket order: a bucket's counts added to, or inserted in its place.
pub(crate) fn add_audience(audience: &mut Vec<i64>, bucket: i64, counts: [u32; 3]) {
    let mut at = 0;
    for start in (0..audience.len() / 4).rev().map(|group| group * 4) {
        if audience[start] == bucket {
            for (offset, added) in counts.iter().enumerate() {
                audience[start + 1 + offset] += *added as i64;
            }
            return;
        }
        if audience[start] < bucket {
            at = start + 4;
            break;
        }
    }
    let entry = [bucket, counts[0] as i64, counts[1] as i64, counts[2] as i64];
    audience.splice(at..at, entry);
}

/// `sketches.hll_add`.
fn hll_add(registers: &mut [u8], hashed: u64) {
    let index = (hashed >> REMAINING_BITS) as usize;
    let remaining = hashed & ((1u64 << REMAINING_BITS) - 1);
    let rank = (REMAINING_BITS - (64 - remaining.leading_zeros()) + 1) as u8;
    if let Some(register) = registers.get_mut(index) {
        if rank > *register {
            *register = rank;
        }
    }
}

/// What an event needs besides the account: the engine's settings.
pub(crate) struct Settings {
    pub burst_window_s: f64,
    pub max_posts: i64,
}

pub(crate) struct PackedAccount<'a> {
    /// The header's: an audience signal leaves it, an event sets it.
    pub(crate) partition: u32,
    last_event_at: f64,
    posts: Vec<Post<'a>>,
    followers: Vec<(f64, i64)>,
    actors: Vec<Sketch>,
    audience: Option<Vec<i64>>,
}

impl<'a> PackedAccount<'a> {
    /// The account in `packed`, or None if the bytes are not what this reader knows.
    pub(crate) fn read(packed: &'a [u8]) -> Option<Self> {
        Self::parse(packed).ok()
    }

    fn parse(packed: &'a [u8]) -> PyResult<Self> {
        let mut reader = Reader { buf: packed, pos: 0 };
        let partition = u32::from_le_bytes(reader.be()?);
        reader.take(16)?; // version and settled_from: written afresh
        let last_event_at = f64::from_le_bytes(reader.be()?);
        reader.take(HEADER_SIZE - reader.pos)?; // the buckets: likewise
        let fields = reader.array_len()?;
        if fields != 3 && fields != 4 {
            return Err(unknown("an unexpected length"));
        }
        let post_values = reader.array_len()?;
        if post_values % POST_FIELDS != 0 {
            return Err(unknown("an unexpected length"));
        }
        let mut posts = Vec::with_capacity(reader.bounded(post_values / POST_FIELDS));
        for _ in 0..post_values / POST_FIELDS {
            let id = reader.str()?;
            let posted_at = if reader.nil() { None } else { Some(reader.float()?) };
            let first_seen_at = reader.float()?;
            let sponsored = reader.boolean()?;
            // Read and written again (not copied): the reference writes each string in
            // its shortest form whatever form the bytes held.
            let count = reader.array_len()?;
            let mut topics = Vec::with_capacity(reader.bounded(count));
            for _ in 0..count {
                topics.push(reader.str()?);
            }
            let counters = [reader.int()?, reader.int()?, reader.int()?, reader.int()?];
            let pending = if reader.nil() {
                None
            } else {
                let length = reader.array_len()?;
                let mut times = Vec::with_capacity(reader.bounded(length));
                for _ in 0..length {
                    times.push(reader.float()?);
                }
                Some(times)
            };
            posts.push(Post {
                id, posted_at, first_seen_at, sponsored, topics, counters,
                pending,
            });
        }
        let follower_values = reader.array_len()?;
        if follower_values % 2 != 0 {
            return Err(unknown("an unexpected length"));
        }
        let mut followers = Vec::with_capacity(reader.bounded(follower_values / 2));
        for _ in 0..follower_values / 2 {
            followers.push((reader.float()?, reader.int()?));
        }
        let sketches = reader.array_len()?;
        let mut actors = Vec::with_capacity(reader.bounded(sketches));
        for _ in 0..sketches {
            actors.push(Sketch::read(&mut reader)?);
        }
        let audience = if fields == 4 {
            let length = reader.array_len()?;
            if length % 4 != 0 {
                return Err(unknown("an unexpected length"));
            }
            let mut signals = Vec::with_capacity(reader.bounded(length));
            for _ in 0..length {
                signals.push(reader.int()?);
            }
            Some(signals)
        } else {
            None
        };
        if reader.pos != packed.len() {
            return Err(unknown("bytes after the account"));
        }
        Ok(PackedAccount { partition, last_event_at, posts, followers, actors, audience })
    }

    /// Account.touch.
    pub(crate) fn touch(&mut self, occurred_at: f64) {
        if occurred_at > self.last_event_at {
            self.last_event_at = occurred_at;
        }
    }

    /// Account.record_interaction. False if the sketch cannot hold it (`Sketch.add`).
    #[must_use]
    pub(crate) fn record_interaction(
        &mut self,
        settings: &Settings,
        event: &Interaction<'a>,
    ) -> bool {
        let occurred_at = event.occurred_at;
        let index = match self.posts.iter().position(|post| post.id == event.post_id) {
            Some(index) => index,
            None => self.new_post(event.post_id, occurred_at, settings.max_posts),
        };
        let post = &mut self.posts[index];
        let pending = post.pending.as_ref().map(Vec::len);
        if count_on_post(&mut post.counters, event.kind, post.posted_at, pending, occurred_at, settings) {
            post.pending.get_or_insert_with(Vec::new).push(occurred_at);
        }
        let actor_bucket = event.actor_bucket;
        let sketch = match self.actors.iter().rposition(|sketch| sketch.bucket == actor_bucket) {
            Some(index) => index,
            None => {
                // Appended, then sorted by bucket (stably): after every smaller bucket.
                let index = self.actors.partition_point(|sketch| sketch.bucket <= actor_bucket);
                self.actors.insert(index, Sketch::new(actor_bucket));
                index
            }
        };
        self.actors[sketch].record(event.actor, event.rhythm_bin)
    }

    /// Account.record_post.
    pub(crate) fn record_post(
        &mut self,
        settings: &Settings,
        post_id: &'a str,
        occurred_at: f64,
        sponsored: bool,
        topics: &[&'a str],
    ) {
        let index = match self.posts.iter().position(|post| post.id == post_id) {
            Some(index) => index,
            None => self.new_post(post_id, occurred_at, settings.max_posts),
        };
        let post = &mut self.posts[index];
        if post.posted_at.is_some() {
            return; // the same post announced twice under different event ids: the first stays
        }
        post.posted_at = Some(occurred_at);
        post.sponsored = sponsored;
        post.topics = topics.to_vec();
        if let Some(pending) = post.pending.take() {
            if !pending.is_empty() {
                let burst = settings.burst_window_s;
                post.counters[EARLY] =
                    pending.iter().filter(|seen| **seen - occurred_at <= burst).count() as i64;
            }
        }
    }

    /// Account.record_followers.
    pub(crate) fn record_followers(&mut self, occurred_at: f64, followers: i64) {
        let history = &mut self.followers;
        let entry = (occurred_at, followers);
        // Tuples compared as Python does: by time, then by count.
        let not_after = |known: &(f64, i64)| {
            known.0 < entry.0 || (known.0 == entry.0 && known.1 <= entry.1)
        };
        match history.last() {
            Some(last) if !not_after(last) => {
                let index = history.partition_point(not_after); // bisect.insort (right)
                history.insert(index, entry);
            }
            _ => history.push(entry),
        }
        if history.len() > FOLLOWER_HISTORY_LIMIT {
            // del history[1 : len // 2 : 2]
            let end = history.len() / 2;
            let mut index = 0;
            history.retain(|_| {
                let dropped = index >= 1 && index < end && (index - 1) % 2 == 0;
                index += 1;
                !dropped
            });
        }
    }

    /// Account.record_audience: the flat [bucket, interactions, busy, farm_like, ...]
    /// list in bucket order, a bucket's counts added to, or inserted in its place.
    pub(crate) fn record_audience(&mut self, bucket: i64, counts: [u32; 3]) {
        add_audience(self.audience.get_or_insert_with(Vec::new), bucket, counts);
    }

    /// Account._new_post: the oldest post goes at the cap.
    fn new_post(&mut self, post_id: &'a str, occurred_at: f64, max_posts: i64) -> usize {
        if self.posts.len() as i64 >= max_posts && !self.posts.is_empty() {
            let mut oldest = 0;
            for (index, post) in self.posts.iter().enumerate() {
                if post.anchor_time() < self.posts[oldest].anchor_time() {
                    oldest = index;
                }
            }
            self.posts.remove(oldest);
        }
        self.posts.push(Post {
            id: post_id,
            posted_at: None,
            first_seen_at: occurred_at,
            sponsored: false,
            topics: Vec::new(),
            counters: [0; 4],
            pending: None,
        });
        self.posts.len() - 1
    }

    /// The packed form, as `Codec.pack` writes the account (`partition` and `version`
    /// into the header), into `buffer`, whose bytes it replaces (a buffer kept between
    /// events).
    pub(crate) fn write_into(&self, buffer: &mut Vec<u8>, partition: u32, version: u64) {
        let mut out = buffer;
        out.clear();
        out.resize(HEADER_SIZE, 0);
        let audience = self.audience.as_ref().filter(|signals| !signals.is_empty());
        write_array_header(&mut out, if audience.is_some() { 4 } else { 3 });
        let mut settled_from = f64::INFINITY;
        write_array_header(&mut out, POST_FIELDS * self.posts.len());
        for (index, post) in self.posts.iter().enumerate() {
            settled_from = if index == 0 {
                post.anchor_time()
            } else {
                python_min(settled_from, post.anchor_time())
            };
            write_str(&mut out, post.id);
            match post.posted_at {
                None => out.push(0xc0),
                Some(moment) => write_float(&mut out, moment),
            }
            write_float(&mut out, post.first_seen_at);
            out.push(if post.sponsored { 0xc3 } else { 0xc2 });
            write_array_header(&mut out, post.topics.len());
            for topic in &post.topics {
                write_str(&mut out, topic);
            }
            for number in post.counters {
                write_int(&mut out, number);
            }
            match &post.pending {
                None => out.push(0xc0),
                Some(times) => {
                    write_array_header(&mut out, times.len());
                    for moment in times {
                        write_float(&mut out, *moment);
                    }
                }
            }
        }
        write_array_header(&mut out, 2 * self.followers.len());
        for (moment, count) in &self.followers {
            write_float(&mut out, *moment);
            write_int(&mut out, *count);
        }
        if self.followers.len() > 1 {
            settled_from = python_min(settled_from, self.followers[1].0);
        }
        settled_from = python_min(settled_from, self.last_event_at);
        let (mut first_bucket, mut last_bucket) = match (self.actors.first(), self.actors.last()) {
            (Some(first), Some(last)) => (first.bucket, last.bucket),
            _ => (NO_FIRST_BUCKET, NO_LAST_BUCKET),
        };
        write_array_header(&mut out, self.actors.len());
        for sketch in &self.actors {
            sketch.write(out);
        }
        if let Some(signals) = audience {
            first_bucket = first_bucket.min(signals[0]);
            last_bucket = last_bucket.max(signals[signals.len().saturating_sub(4)]);
            write_array_header(&mut out, signals.len());
            for value in signals {
                write_int(&mut out, *value);
            }
        }
        out[0..4].copy_from_slice(&partition.to_le_bytes());
        out[4..12].copy_from_slice(&version.to_le_bytes());
        out[12..20].copy_from_slice(&settled_from.to_le_bytes());
        out[20..28].copy_from_slice(&self.last_event_at.to_le_bytes());
        out[28..36].copy_from_slice(&first_bucket.to_le_bytes());
        out[36..44].copy_from_slice(&last_bucket.to_le_bytes());
    }
}

fn write_float(out: &mut Vec<u8>, value: f64) {
    out.push(0xcb);
    out.extend_from_slice(&value.to_be_bytes());
}

pub(crate) fn write_int(out: &mut Vec<u8>, value: i64) {
    if value >= 0 {
        write_unsigned(out, value as u64);
    } else {
        write_negative(out, value);
    }
}

/// A dict of actor hashes as the flat [key, value, ...] array `packing._flatten` makes.
fn write_pairs(out: &mut Vec<u8>, pairs: &[(u64, i64)]) {
    write_array_header(out, 2 * pairs.len());
    for (key, value) in pairs {
        write_unsigned(out, *key);
        write_int(out, *value);
    }
}

fn unknown(what: &str) -> PyErr {
    PyValueError::new_err(format!("packed account: {what}"))
}

/// What the packed fold reads besides `Reader`'s arrays: the scalar types an account's
/// fields hold, and nothing else (an error sends the account the Python way).
impl<'a> Reader<'a> {
    /// A capacity for `count` values read from here: at most one per byte left, so that
    /// a corrupt length fails the read instead of asking for gigabytes.
    fn bounded(&self, count: usize) -> usize {
        count.min(self.buf.len().saturating_sub(self.pos))
    }

    fn nil(&mut self) -> bool {
        let nil = self.peek_nil();
        if nil {
            self.pos += 1;
        }
        nil
    }

    fn str(&mut self) -> PyResult<&'a str> {
        let length = match self.byte()? {
            marker @ 0xa0..=0xbf => (marker & 0x1f) as usize,
            0xd9 => self.byte()? as usize,
            0xda => u16::from_be_bytes(self.be()?) as usize,
            0xdb => u32::from_be_bytes(self.be()?) as usize,
            _ => return Err(unknown("a string was expected")),
        };
        std::str::from_utf8(self.take(length)?).map_err(|_| unknown("a string is not UTF-8"))
    }

    fn bin(&mut self) -> PyResult<&'a [u8]> {
        let length = match self.byte()? {
            0xc4 => self.byte()? as usize,
            0xc5 => u16::from_be_bytes(self.be()?) as usize,
            0xc6 => u32::from_be_bytes(self.be()?) as usize,
            _ => return Err(unknown("bytes were expected")),
        };
        self.take(length)
    }

    fn boolean(&mut self) -> PyResult<bool> {
        match self.byte()? {
            0xc2 => Ok(false),
            0xc3 => Ok(true),
            _ => Err(unknown("a bool was expected")),
        }
    }

    /// A float64 only: the fields that hold times hold Python floats.
    fn float(&mut self) -> PyResult<f64> {
        match self.byte()? {
            0xcb => Ok(f64::from_be_bytes(self.be()?)),
            _ => Err(unknown("a float was expected")),
        }
    }

    /// Any integer, as u64 if it is not negative (actor hashes use all 64 bits).
    fn integer(&mut self) -> PyResult<(bool, u64)> {
        let marker = self.byte()?;
        let unsigned = |value: u64| Ok((false, value));
        let signed = |value: i64| Ok((value < 0, value as u64));
        match marker {
            0x00..=0x7f => unsigned(marker as u64),
            0xe0..=0xff => signed(marker as i8 as i64),
            0xcc => unsigned(self.byte()? as u64),
            0xcd => unsigned(u16::from_be_bytes(self.be()?) as u64),
            0xce => unsigned(u32::from_be_bytes(self.be()?) as u64),
            0xcf => unsigned(u64::from_be_bytes(self.be()?)),
            0xd0 => signed(self.byte()? as i8 as i64),
            0xd1 => signed(i16::from_be_bytes(self.be()?) as i64),
            0xd2 => signed(i32::from_be_bytes(self.be()?) as i64),
            0xd3 => signed(i64::from_be_bytes(self.be()?)),
            _ => Err(unknown("an integer was expected")),
        }
    }

    fn int(&mut self) -> PyResult<i64> {
        match self.integer()? {
            (true, value) => Ok(value as i64),
            (false, value) => i64::try_from(value).map_err(|_| unknown("an integer past i64")),
        }
    }

    fn pairs(&mut self) -> PyResult<Pairs> {
        let length = self.array_len()?;
        if length % 2 != 0 {
            return Err(unknown("an odd flat dict"));
        }
        let mut pairs = Pairs::EMPTY;
        for _ in 0..length / 2 {
            let (negative, key) = self.integer()?;
            if negative {
                return Err(unknown("a negative actor hash"));
            }
            if !pairs.push((key, self.int()?)) {
                return Err(unknown("more counters than a sketch holds"));
            }
        }
        Ok(pairs)
    }
}
