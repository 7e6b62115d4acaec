//! The actor side of the audience signal (`ActorActivity` in
//! `service/engine/audience.py`), compiled.
//!
//! The Python class is the specification: the same interactions give the same verdicts,
//! the same per-(bucket, account) counts in the same order, the same statistics, and the
//! same snapshot bytes. The property tests feed both the same streams
//! (tests/unit/test_audience_native.py).
//!
//! Per actor one record of `2 + buckets + month_slots` words in first-seen order: the actor
//! hash, its newest bucket number, a 64-bit account bitmap per bucket slot, then one per
//! month slot (64 bytes with 4 buckets and 2 month slots), plus a 4-byte record number in
//! a hash index. Evicting the oldest actor
//! moves a front mark; expired actors are marked dead; the records are compacted when the
//! dead ones are as many as the live ones, so both cost O(1) amortized.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use hashbrown::HashTable;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::signals::{bucket_start, partition_for, SignalBatches};

const BUSY: u8 = 1;
const FARM_LIKE: u8 = 2;
const DEAD: u64 = 1 << 63; // in a record's newest-bucket word: expired
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;
const V1: u8 = 1;
const V2: u8 = 2;
const V2_RECORD: usize = 20; // actor hash (u64), occurred_at (f64), account index (u32)
const MAX_BUCKET: i64 = u32::MAX as i64; // the newest bucket lives in 32 bits

/// A hasher for keys that are already uniform 64-bit hashes or small integers (actor
/// hashes here, hour numbers in dedupe.rs): one folded multiplication, instead of
/// SipHash's rounds.
#[derive(Default)]
pub(crate) struct FoldHasher(u64);

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.write_u64(*byte as u64);
        }
    }

    fn write_u64(&mut self, value: u64) {
        let product = ((self.0 ^ value) as u128) * (FIBONACCI as u128);
        self.0 = (product as u64) ^ ((product >> 64) as u64);
    }

    fn write_i64(&mut self, value: i64) {
        self.write_u64(value as u64);
    }
}

type Fold = BuildHasherDefault<FoldHasher>;

fn spread(actor: u64) -> u64 {
    let mut hasher = FoldHasher::default();
    hasher.write_u64(actor);
    hasher.finish()
}

/// Actor hash -> its record number. The table holds only the numbers and compares keys in
/// the records themselves: ~10 bytes an actor, where a map of (hash, number) pairs took ~35.
#[derive(Default)]
struct ActorIndex {
    table: HashTable<u32>,
}

impl ActorIndex {
    fn len(&self) -> usize {
        self.table.len()
    }

    fn find(&self, words: &[u64], stride: usize, actor: u64) -> Option<usize> {
        self.table
            .find(spread(actor), |&record| words[record as usize * stride] == actor)
            .map(|&record| record as usize)
    }

    /// Indexes a record (already in `words`) whose actor is not indexed yet.
    fn insert(&mut self, words: &[u64], stride: usize, record: usize) {
        self.table.insert_unique(spread(words[record * stride]), record as u32, |&other| {
            spread(words[other as usize * stride])
        });
    }

    fn remove(&mut self, words: &[u64], stride: usize, actor: u64) {
        if let Ok(entry) =
            self.table.find_entry(spread(actor), |&record| words[record as usize * stride] == actor)
        {
            entry.remove();
        }
    }
}

// ---------------------------------------------------------------- the account bit

const fn crc32_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut n = 0;
    while n < 256 {
        let mut crc = n as u32;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 != 0 { 0xEDB8_8320 ^ (crc >> 1) } else { crc >> 1 };
            k += 1;
        }
        table[n] = crc;
        n += 1;
    }
    table
}

static CRC32: [u32; 256] = crc32_table();

/// `zlib.crc32`: once per distinct account of a batch here, and the store's activity shard
/// of an account (`crc32(id) & 63`) in fold.rs; a table is enough.
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc = CRC32[((crc ^ *byte as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// `audience.account_bit`: the top 6 bits of a Fibonacci multiple of the id's CRC-32.
fn account_bit(account_id: &[u8]) -> u32 {
    ((crc32(account_id) as u64).wrapping_mul(FIBONACCI) >> 58) as u32
}

/// Python's `float // float` (floor division as `float_floor_div` computes it), so an
/// interaction falls in the same bucket as in the reference to the last bit.
fn python_floor_div(value: f64, divisor: f64) -> f64 {
    let rest = value % divisor;
    let mut quotient = (value - rest) / divisor;
    if rest != 0.0 && (divisor < 0.0) != (rest < 0.0) {
        quotient -= 1.0;
    }
    if quotient != 0.0 {
        let floor = quotient.floor();
        if quotient - floor > 0.5 {
            floor + 1.0
        } else {
            floor
        }
    } else {
        0.0f64.copysign(value / divisor)
    }
}

// ---------------------------------------------------------------- parsed batches

struct Batch<'a> {
    ids: Vec<&'a [u8]>,
    records: Vec<(u64, i64, u32)>, // actor, bucket, account index
}

fn corrupt(what: &str) -> PyErr {
    PyValueError::new_err(format!("interaction batch: {what}"))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, count: usize) -> PyResult<&'a [u8]> {
        let end = self.pos.checked_add(count).ok_or_else(|| corrupt("truncated"))?;
        let slice = self.data.get(self.pos..end).ok_or_else(|| corrupt("truncated"))?;
        self.pos = end;
        Ok(slice)
    }

    fn le<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }
}

fn utf8(bytes: &[u8]) -> PyResult<&str> {
    std::str::from_utf8(bytes).map_err(|_| corrupt("an account id is not UTF-8"))
}

// ---------------------------------------------------------------- the actors

/// Counts of one (bucket, account) of a batch: interactions, busy, farm-like.
struct Counts {
    rank: u32, // of the bucket, in first-seen order
    index: u32,
    counts: [u64; 3],
}

/// Per-actor distinct accounts over a sliding period, as `ActorActivity` keeps them.
#[pyclass(module = "engagement_native")]
pub struct NativeActors {
    bucket_s: f64,
    buckets: usize,
    busy_bits: i64,
    farm_bits: i64,
    max_actors: usize,
    rotating_accounts: i64,
    rotating_active_slots: i64,
    month_bits: i64,
    month_slots: usize,
    month_span: i64,
    month_turnover: i64,
    stride: usize,
    words: Vec<u64>,
    front: usize, // records before it were evicted
    dead: usize,  // expired records at or after `front`
    index: ActorIndex,
    too_old: u64,
    evicted: u64,
}

impl NativeActors {
    fn records(&self) -> usize {
        self.words.len() / self.stride
    }

    fn evict_oldest(&mut self) {
        let stride = self.stride;
        while self.front < self.records() {
            let at = self.front * stride;
            self.front += 1;
            if self.words[at + 1] & DEAD != 0 {
                self.dead -= 1;
                continue;
            }
            self.index.remove(&self.words, stride, self.words[at]);
            self.evicted += 1;
            break;
        }
        self.compact_if_sparse();
    }

    /// Moves the live records to the start once the gone ones are as many: each record is
    /// moved O(1) times on average, and memory stays within twice the live records.
    fn compact_if_sparse(&mut self) {
        let gone = self.front + self.dead;
        if gone < 1024 || gone < self.index.len() {
            return;
        }
        let stride = self.stride;
        let mut to = 0;
        for from in self.front..self.records() {
            let at = from * stride;
            if self.words[at + 1] & DEAD != 0 {
                continue;
            }
            if to != from {
                self.words.copy_within(at..at + stride, to * stride);
            }
            to += 1;
        }
        self.words.truncate(to * stride);
        self.index.table.clear();
        for record in 0..to {
            self.index.insert(&self.words, stride, record);
        }
        self.words.shrink_to(2 * to * stride);
        self.front = 0;
        self.dead = 0;
    }

    /// `ActorActivity._observe`: records one interaction and returns its verdict.
    fn observe_one(&mut self, actor: u64, bit: u32, bucket: i64) -> u8 {
        let stride = self.stride;
        let slots = self.buckets as i64;
        let record = match self.index.find(&self.words, stride, actor) {
            Some(record) => record,
            None => {
                if self.index.len() >= self.max_actors {
                    self.evict_oldest();
                }
                let record = self.records();
                self.words.push(actor);
                self.words.push(bucket as u64);
                self.words.extend(std::iter::repeat_n(0, self.buckets + self.month_slots));
                self.index.insert(&self.words, stride, record);
                record
            }
        };
        let (span, months) = (self.month_span, self.month_slots as i64);
        let month_at = 1 + self.buckets; // the month bitmaps follow the period's
        let state = &mut self.words[record * stride + 1..(record + 1) * stride];
        let mut newest = state[0] as i64;
        if bucket > newest {
            if bucket - newest >= slots {
                state[1..month_at].fill(0);
            } else {
                for stale in newest + 1..=bucket {
                    state[1 + (stale % slots) as usize] = 0;
                }
            }
            let (old_month, new_month) = (newest / span, bucket / span);
            for stale in (old_month + 1).max(new_month - months + 1)..=new_month {
                state[month_at + (stale % months) as usize] = 0;
            }
            state[0] = bucket as u64;
            newest = bucket;
        }
        if bucket > newest - slots {
            state[1 + (bucket % slots) as usize] |= 1u64 << bit;
        } else {
            self.too_old += 1;
        }
        let month = bucket / span;
        if month > newest / span - months {
            state[month_at + (month % months) as usize] |= 1u64 << bit;
        }
        let month_union = state[month_at..].iter().fold(0u64, |union, slot| union | slot);
        let bitmaps = &state[1..month_at];
        let mut union = bitmaps[0];
        let mut returned = 0u64;
        let mut active_slots = (bitmaps[0] != 0) as i64;
        for &slot in &bitmaps[1..] {
            active_slots += (slot != 0) as i64;
            returned |= union & slot;
            union |= slot;
        }
        let bits = union.count_ones() as i64;
        let month_bits = month_union.count_ones() as i64;
        let busy = bits >= self.busy_bits
            || (month_bits >= self.month_bits && month_bits >= self.month_turnover * bits);
        let mut verdict = if busy { BUSY } else { 0 };
        if bits >= self.farm_bits {
            return verdict | FARM_LIKE;
        }
        let once = bits - returned.count_ones() as i64;
        if active_slots >= self.rotating_active_slots
            && once >= self.rotating_accounts
            && 4 * once >= 3 * bits
        {
            verdict |= FARM_LIKE;
        }
        verdict
    }

    /// The bucket number of a time; a batch with a time that has none (NaN, infinite) is
    /// refused before anything of it is recorded.
    fn bucket_of(&self, occurred_at: f64) -> PyResult<i64> {
        let bucket = python_floor_div(occurred_at, self.bucket_s);
        if !bucket.is_finite() || bucket.abs() >= 9.0e18 {
            return Err(corrupt(&format!("occurred_at {occurred_at} is out of range")));
        }
        Ok(bucket as i64)
    }

    /// `observe_one` for a bucket the state can hold (the newest bucket lives in 32 bits,
    /// as in the reference): an interaction before 1970 (valid in the event contract, and
    /// counted while its partition's stream time is as old) counts as too old and judges
    /// its actor ordinary, where the reference would keep a negative state.
    fn judge_one(&mut self, actor: u64, bit: u32, bucket: i64) -> u8 {
        if (0..=MAX_BUCKET).contains(&bucket) {
            self.observe_one(actor, bit, bucket)
        } else {
            self.too_old += 1;
            0
        }
    }

    fn parse_v2<'a>(&self, data: &'a [u8]) -> PyResult<Batch<'a>> {
        let mut cursor = Cursor { data, pos: 1 };
        let count = u32::from_le_bytes(cursor.le()?) as usize;
        let accounts = u32::from_le_bytes(cursor.le()?) as usize;
        let mut ids = Vec::with_capacity(accounts.min(data.len()));
        for _ in 0..accounts {
            let length = u16::from_le_bytes(cursor.le()?) as usize;
            let id = cursor.take(length)?;
            utf8(id)?;
            ids.push(id);
        }
        let body = cursor.take(count.checked_mul(V2_RECORD).ok_or_else(|| corrupt("too long"))?)?;
        let mut records = Vec::with_capacity(count);
        for record in body.chunks_exact(V2_RECORD) {
            let actor = u64::from_le_bytes(record[0..8].try_into().unwrap());
            let occurred_at = f64::from_le_bytes(record[8..16].try_into().unwrap());
            let index = u32::from_le_bytes(record[16..20].try_into().unwrap());
            if index as usize >= accounts {
                return Err(corrupt("an account index is out of range"));
            }
            records.push((actor, self.bucket_of(occurred_at)?, index));
        }
        Ok(Batch { ids, records })
    }

    /// Version 1: an account id per record; numbered here in first-seen order, as
    /// `read_interactions` does.
    fn parse_v1<'a>(&self, data: &'a [u8]) -> PyResult<Batch<'a>> {
        let mut cursor = Cursor { data, pos: 1 };
        let count = u32::from_le_bytes(cursor.le()?) as usize;
        let mut ids: Vec<&[u8]> = Vec::new();
        let mut numbers: HashMap<&[u8], u32> = HashMap::new();
        let mut records = Vec::with_capacity(count.min(data.len()));
        for _ in 0..count {
            let actor = u64::from_le_bytes(cursor.le()?);
            let occurred_at = f64::from_le_bytes(cursor.le()?);
            let length = u16::from_le_bytes(cursor.le()?) as usize;
            let id = cursor.take(length)?;
            let index = match numbers.get(id) {
                Some(&index) => index,
                None => {
                    utf8(id)?;
                    let index = ids.len() as u32;
                    ids.push(id);
                    numbers.insert(id, index);
                    index
                }
            };
            records.push((actor, self.bucket_of(occurred_at)?, index));
        }
        Ok(Batch { ids, records })
    }

    /// A packed batch of either version.
    fn parse<'a>(&self, data: &'a [u8]) -> PyResult<Batch<'a>> {
        match data.first() {
            Some(&V2) => self.parse_v2(data),
            Some(&V1) => self.parse_v1(data),
            Some(&version) => Err(PyValueError::new_err(format!(
                "interaction batch of unknown version {version}"
            ))),
            None => Err(PyValueError::new_err("interaction batch of unknown version 0")),
        }
    }

    /// Judges a parsed batch; its counts per (bucket, account) in the reference's order:
    /// buckets as first seen, accounts as first seen within their bucket.
    fn judge(&mut self, batch: &Batch<'_>) -> (Vec<i64>, Vec<Counts>) {
        let accounts = batch.ids.len();
        let mut buckets: Vec<i64> = Vec::new();
        let mut ranks: HashMap<i64, u32, Fold> = HashMap::default();
        // (bucket rank, account) -> its counts: a dense table for each of the first few
        // buckets (a batch spans one or two), a hash map past them.
        const DENSE: usize = 4;
        let mut dense: Vec<Vec<u32>> = Vec::new();
        let mut sparse: HashMap<u64, u32, Fold> = HashMap::default();
        let mut counts: Vec<Counts> = Vec::new();
        let mut bits: Vec<u32> = batch.ids.iter().map(|id| account_bit(id)).collect();
        bits.shrink_to_fit();
        let (mut last_bucket, mut last_rank) = (i64::MIN, 0u32);
        for &(actor, bucket, index) in &batch.records {
            let verdict = self.judge_one(actor, bits[index as usize], bucket);
            if bucket != last_bucket {
                last_rank = *ranks.entry(bucket).or_insert_with(|| {
                    buckets.push(bucket);
                    (buckets.len() - 1) as u32
                });
                last_bucket = bucket;
                if (last_rank as usize) < DENSE && dense.len() <= last_rank as usize {
                    dense.push(vec![u32::MAX; accounts]);
                }
            }
            let slot = if (last_rank as usize) < DENSE {
                &mut dense[last_rank as usize][index as usize]
            } else {
                sparse.entry(((last_rank as u64) << 32) | index as u64).or_insert(u32::MAX)
            };
            if *slot == u32::MAX {
                *slot = counts.len() as u32;
                counts.push(Counts { rank: last_rank, index, counts: [0; 3] });
            }
            let entry = &mut counts[*slot as usize].counts;
            entry[0] += 1;
            entry[1] += (verdict & BUSY) as u64;
            entry[2] += (verdict >> 1) as u64;
        }
        if buckets.len() > 1 {
            counts.sort_by_key(|entry| entry.rank); // stable: accounts stay in order
        }
        (buckets, counts)
    }
}

#[pymethods]
impl NativeActors {
    #[new]
    #[allow(clippy::too_many_arguments)]
    fn new(
        bucket_s: f64,
        buckets: usize,
        busy_bits: i64,
        farm_bits: i64,
        max_actors: usize,
        rotating_accounts: i64,
        rotating_active_slots: i64,
        month_bits: i64,
        month_slots: usize,
        month_span: i64,
        month_turnover: i64,
    ) -> PyResult<Self> {
        if buckets == 0 || bucket_s.is_nan() || bucket_s <= 0.0 {
            return Err(PyValueError::new_err("buckets and bucket_s must be positive"));
        }
        if month_slots == 0 || month_span <= 0 {
            return Err(PyValueError::new_err("month_slots and month_span must be positive"));
        }
        // Record numbers are 4 bytes, and the records up to twice the live actors.
        if max_actors == 0 || max_actors > (u32::MAX / 4) as usize {
            return Err(PyValueError::new_err("max_actors must be between 1 and 2**30"));
        }
        Ok(NativeActors {
            bucket_s,
            buckets,
            busy_bits,
            farm_bits,
            max_actors,
            rotating_accounts,
            rotating_active_slots,
            month_bits,
            month_slots,
            month_span,
            month_turnover,
            stride: 2 + buckets + month_slots,
            words: Vec::new(),
            front: 0,
            dead: 0,
            index: ActorIndex::default(),
            too_old: 0,
            evicted: 0,
        })
    }

    fn __len__(&self) -> usize {
        self.index.len()
    }

    /// (too old, evicted actors) since the last call: the caller adds them to its stats.
    fn take_counts(&mut self) -> (u64, u64) {
        let counts = (self.too_old, self.evicted);
        self.too_old = 0;
        self.evicted = 0;
        counts
    }

    /// One interaction; its verdict (BUSY | FARM_LIKE bits).
    fn observe(&mut self, actor: u64, bit: u32, occurred_at: f64) -> PyResult<u8> {
        if bit >= 64 {
            return Err(PyValueError::new_err("an account bit is below 64"));
        }
        let bucket = self.bucket_of(occurred_at)?;
        Ok(self.judge_one(actor, bit, bucket))
    }

    /// A packed batch (version 1 or 2): its rows (account id, bucket number,
    /// interactions, busy, farm-like) and the number of interactions judged. Nothing is
    /// recorded from a batch that does not read.
    fn observe_packed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Bound<'py, PyList>, usize)> {
        let batch = self.parse(data)?;
        let (buckets, counts) = self.judge(&batch);
        let mut names: Vec<Option<Bound<'py, PyString>>> = vec![None; batch.ids.len()];
        let mut rows = Vec::with_capacity(counts.len());
        for entry in &counts {
            let name = names[entry.index as usize]
                .get_or_insert_with(|| {
                    // Checked as UTF-8 when parsed.
                    PyString::new(py, std::str::from_utf8(batch.ids[entry.index as usize]).unwrap())
                })
                .clone();
            let [n, busy, farm] = entry.counts;
            rows.push((name, buckets[entry.rank as usize], n, busy, farm).into_pyobject(py)?);
        }
        Ok((PyList::new(py, rows)?, batch.records.len()))
    }

    /// `observe_packed` of a batch whose signals were produced before (a restore or a
    /// standby replaying the repartition topic): the activity only, no rows. The number
    /// of interactions judged.
    fn replay_packed(&mut self, data: &[u8]) -> PyResult<usize> {
        let batch = self.parse(data)?;
        let bits: Vec<u32> = batch.ids.iter().map(|id| account_bit(id)).collect();
        for &(actor, bucket, index) in &batch.records {
            self.judge_one(actor, bits[index as usize], bucket);
        }
        Ok(batch.records.len())
    }

    /// `observe_packed`, with each signal packed into `out`'s message for its account's
    /// partition of the signal topic (`routing.partition_for` over `partitions`) instead
    /// of returned: no Python object per signal. The number of interactions judged.
    /// Nothing is recorded from a batch that does not read, or whose signals would not
    /// pack (a bucket start past 64 bits, which the reference's checkpoint refuses).
    fn observe_routed(
        &mut self,
        data: &[u8],
        partitions: u32,
        out: &Bound<'_, SignalBatches>,
    ) -> PyResult<usize> {
        if partitions == 0 {
            return Err(PyValueError::new_err("partitions must be positive"));
        }
        let batch = self.parse(data)?;
        for &(_, bucket, _) in &batch.records {
            if bucket_start(bucket, self.bucket_s).is_none() {
                return Err(corrupt(&format!("bucket {bucket} starts past 64 bits")));
            }
        }
        let (buckets, counts) = self.judge(&batch);
        // Each distinct account's partition once.
        let mut targets: Vec<u32> = vec![u32::MAX; batch.ids.len()];
        let mut out = out.borrow_mut();
        for entry in &counts {
            let index = entry.index as usize;
            let account_id = batch.ids[index];
            if targets[index] == u32::MAX {
                targets[index] = partition_for(account_id, partitions);
            }
            let start = bucket_start(buckets[entry.rank as usize], self.bucket_s)
                .expect("checked above");
            // At most the batch's records (a u32) each.
            let [n, busy, farm] = entry.counts.map(|count| count as u32);
            out.add(targets[index], start, [n, busy, farm], account_id);
        }
        Ok(batch.records.len())
    }

    /// The union of the actor's bitmaps over its period (0 if unknown).
    fn union(&self, actor: u64) -> u64 {
        match self.index.find(&self.words, self.stride, actor) {
            None => 0,
            Some(record) => {
                let at = record * self.stride;
                self.words[at + 2..at + 2 + self.buckets].iter().fold(0, |union, slot| union | slot)
            }
        }
    }

    /// The union of the actor's month bitmaps (0 if unknown).
    fn month_union(&self, actor: u64) -> u64 {
        match self.index.find(&self.words, self.stride, actor) {
            None => 0,
            Some(record) => {
                let at = record * self.stride + 2 + self.buckets;
                self.words[at..at + self.month_slots].iter().fold(0, |union, slot| union | slot)
            }
        }
    }

    /// Forgets actors whose newest bucket is before `first_live`; returns how many.
    fn expire(&mut self, first_live: i64) -> usize {
        let stride = self.stride;
        let mut expired = 0;
        for record in self.front..self.records() {
            let at = record * stride;
            let newest = self.words[at + 1];
            if newest & DEAD == 0 && (newest as i64) < first_live {
                self.words[at + 1] |= DEAD;
                self.index.remove(&self.words, stride, self.words[at]);
                expired += 1;
            }
        }
        self.dead += expired;
        self.compact_if_sparse();
        expired
    }

    /// The actor records of a snapshot, in first-seen order: per actor its hash (8 bytes)
    /// and its state as the reference's int writes it (newest bucket in 4 bytes, then a
    /// bitmap of 8 bytes per slot, then per month slot, little-endian).
    fn snapshot_records<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        let record = 12 + 8 * (self.buckets + self.month_slots);
        let mut out = Vec::with_capacity(record * self.index.len());
        for number in self.front..self.records() {
            let words = &self.words[number * self.stride..(number + 1) * self.stride];
            if words[1] & DEAD != 0 {
                continue;
            }
            out.extend_from_slice(&words[0].to_le_bytes());
            out.extend_from_slice(&(words[1] as u32).to_le_bytes());
            for slot in &words[2..] {
                out.extend_from_slice(&slot.to_le_bytes());
            }
        }
        PyBytes::new(py, &out)
    }

    /// Replaces the actors with a snapshot's records (`snapshot_records`' layout).
    fn restore_records(&mut self, body: &[u8]) -> PyResult<()> {
        let record = 12 + 8 * (self.buckets + self.month_slots);
        if !body.len().is_multiple_of(record) {
            return Err(PyValueError::new_err("actor snapshot: a record is incomplete"));
        }
        let count = body.len() / record;
        self.words = Vec::with_capacity(count * self.stride);
        self.index = ActorIndex { table: HashTable::with_capacity(count) };
        self.front = 0;
        self.dead = 0;
        for raw in body.chunks_exact(record) {
            let actor = u64::from_le_bytes(raw[0..8].try_into().unwrap());
            let mut state = Vec::with_capacity(self.stride - 1);
            state.push(u32::from_le_bytes(raw[8..12].try_into().unwrap()) as u64);
            for slot in raw[12..].chunks_exact(8) {
                state.push(u64::from_le_bytes(slot.try_into().unwrap()));
            }
            match self.index.find(&self.words, self.stride, actor) {
                // Twice in one snapshot: the later state, in the first place (a dict's).
                Some(number) => {
                    let at = number * self.stride;
                    self.words[at + 1..at + self.stride].copy_from_slice(&state);
                }
                None => {
                    let record = self.records();
                    self.words.push(actor);
                    self.words.extend_from_slice(&state);
                    self.index.insert(&self.words, self.stride, record);
                }
            }
        }
        Ok(())
    }
}
