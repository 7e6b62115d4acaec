//! The dedupe memory of one partition (`EventIds` in `service/engine/dedupe.py`),
//! compiled.
//!
//! `dedupe.EventIdsReference` is the specification: the same calls give the same
//! answers, the same counts, the same journal and the same exported bytes, in the same
//! orders (hours in first-insertion order, as a Python dict keeps them). The property
//! tests drive both with the same random calls (tests/unit/test_dedupe_native.py).
//!
//! Layout, as in the reference: an id is its 64-bit xxh3 hash; one hour's hashes are
//! sorted shards of at most `shard_ids`, picked by the hash's top bits through a directory
//! (extendible hashing: a shard that overflows splits in two by its next bit, and the
//! directory doubles when a shard spans a single entry). Shards grow by a sixteenth, as
//! Python's arrays do, so memory stays near 8 bytes an id plus the shard headers.
//!
//! The fold (fold.rs) reaches `add_hashed`, `floor_hour` and `count` through
//! `EventIds.core` without going back to Python.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use crate::actors::FoldHasher;

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use xxhash_rust::xxh3::xxh3_64;

const PAIRS_PER_COLLISION: f64 = 18_446_744_073_709_551_616.0; // 2**64
/// A map entry, the hour's own fields, its place in the order: for `nbytes`.
const HOUR_BYTES: usize = std::mem::size_of::<(i64, Hour)>() + 16;
/// What glibc's malloc adds to a shard's allocation (its size word, rounded to 16).
const MALLOC_OVERHEAD: usize = 16;

// The hour numbers as keys: small integers an attacker does not choose freely (their
// range is the horizon), hashed by one multiplication rather than SipHash's rounds.
type Hours = HashMap<i64, Hour, BuildHasherDefault<FoldHasher>>;

/// `xxh3_64` of the id's UTF-8 bytes: `dedupe.event_id_hash`.
pub(crate) fn event_id_hash(event_id: &str) -> u64 {
    xxh3_64(event_id.as_bytes())
}

/// Where `hashed` falls in a directory of `64 - shift` bits (`hashed >> shift` in Python,
/// where a shift of 64 gives 0).
#[inline]
fn slot_of(hashed: u64, shift: u32) -> usize {
    hashed.checked_shr(shift).unwrap_or(0) as usize
}

/// One shard: sorted hashes, all in [lo, lo + 2**bits) (the slots it spans).
struct Shard {
    values: Vec<u64>,
    lo: u64,
    bits: u32,
}

impl Shard {
    /// Where `hashed` is or would go, as `binary_search` says it. Hashes are uniform, so
    /// its place is guessed from its offset in the shard's range and then walked to
    /// (a few values away, the same cache line mostly): one or two lines of a shard read
    /// where a binary search reads five or six, which counts when the shard is not in
    /// cache (ids in crawler order, re-sends of old hours).
    #[inline]
    fn position(&self, hashed: u64) -> Result<usize, usize> {
        let values = &self.values;
        let length = values.len();
        if length < 16 {
            return values.binary_search(&hashed);
        }
        let offset = hashed.saturating_sub(self.lo) as u128;
        let mut index = (((offset * length as u128) >> self.bits) as usize).min(length - 1);
        if values[index] < hashed {
            index += 1;
            while index < length && values[index] < hashed {
                index += 1;
            }
        } else {
            while index > 0 && values[index - 1] >= hashed {
                index -= 1;
            }
        }
        if index < length && values[index] == hashed {
            Ok(index)
        } else {
            Err(index)
        }
    }

    fn insert(&mut self, index: usize, hashed: u64) {
        let values = &mut self.values;
        if values.len() == values.capacity() {
            // Python's array growth: a sixteenth more (a doubling would leave up to half
            // of a shard empty, ~4 bytes an id).
            let length = values.len() + 1;
            values.reserve_exact((length >> 4) + if length < 8 { 3 } else { 7 });
        }
        values.insert(index, hashed);
    }
}

/// One hour's hashes.
struct Hour {
    shards: Vec<Shard>,
    directory: Vec<u32>, // slot -> shard; a shard spans an aligned block of slots
    shift: u32,          // 64 - depth
    count: u64,
    /// Hashes added since the last drain (journaling on): the changelog's next record.
    added: Vec<u64>,
}

impl Hour {
    fn empty() -> Hour {
        Hour {
            shards: vec![Shard {
                values: Vec::new(),
                lo: 0,
                bits: 64,
            }],
            directory: vec![0],
            shift: 64,
            count: 0,
            added: Vec::new(),
        }
    }

    /// Shards cut from sorted, distinct hashes, about half full (room to grow).
    fn from_sorted(values: &[u64], shard_ids: usize) -> Hour {
        let mut depth = 0u32;
        while values.len() >> depth > shard_ids / 2 {
            depth += 1;
        }
        let shift = 64 - depth;
        let slots = 1usize << depth;
        let mut shards = Vec::with_capacity(slots);
        let mut start = 0;
        for slot in 1..slots {
            let bound = (slot as u64) << shift;
            let cut = start + values[start..].partition_point(|&value| value < bound);
            shards.push(Shard {
                values: values[start..cut].to_vec(),
                lo: ((slot - 1) as u64) << shift,
                bits: shift,
            });
            start = cut;
        }
        shards.push(Shard {
            values: values[start..].to_vec(),
            lo: ((slots - 1) as u64).checked_shl(shift).unwrap_or(0),
            bits: shift,
        });
        Hour {
            shards,
            directory: (0..slots as u32).collect(),
            shift,
            count: values.len() as u64,
            added: Vec::new(),
        }
    }

    #[inline]
    fn contains(&self, hashed: u64) -> bool {
        let shard = &self.shards[self.directory[slot_of(hashed, self.shift)] as usize];
        shard.position(hashed).is_ok()
    }

    /// Inserts the hash; false if it was there.
    #[inline]
    fn insert(&mut self, hashed: u64, shard_ids: usize) -> bool {
        let slot = slot_of(hashed, self.shift);
        let shard = &mut self.shards[self.directory[slot] as usize];
        let index = match shard.position(hashed) {
            Ok(_) => return false,
            Err(index) => index,
        };
        shard.insert(index, hashed);
        self.count += 1;
        if shard.values.len() > shard_ids {
            self.split(slot);
        }
        true
    }

    fn split(&mut self, slot: usize) {
        let shard = self.directory[slot];
        let mut slot = slot;
        let mut span = 1; // directory entries the shard spans: an aligned block
        while span < self.directory.len() {
            let base = slot & !(2 * span - 1);
            if self.directory[base] == shard && self.directory[base + 2 * span - 1] == shard {
                span *= 2;
            } else {
                break;
            }
        }
        if span == 1 {
            self.directory = self
                .directory
                .iter()
                .flat_map(|&entry| [entry, entry])
                .collect();
            self.shift -= 1;
            slot *= 2;
            span = 2;
        }
        let base = slot & !(span - 1);
        let half = span / 2;
        let bound = ((base + half) as u64) << self.shift;
        let bits = self.shift + half.trailing_zeros(); // each half's range
        let lower = &mut self.shards[shard as usize];
        let cut = lower.values.partition_point(|&value| value < bound);
        let upper = Shard {
            values: lower.values[cut..].to_vec(),
            lo: bound,
            bits,
        };
        lower.values.truncate(cut);
        lower.values.shrink_to_fit();
        lower.bits = bits;
        let upper_index = self.shards.len() as u32;
        self.shards.push(upper);
        for entry in &mut self.directory[base + half..base + span] {
            *entry = upper_index;
        }
    }

    /// The hashes in order: the shards in directory order.
    fn sorted_values(&self) -> Vec<u64> {
        let mut values = Vec::with_capacity(self.count as usize);
        let mut previous = u32::MAX;
        for &shard in &self.directory {
            if shard != previous {
                values.extend_from_slice(&self.shards[shard as usize].values);
                previous = shard;
            }
        }
        values
    }

    fn pairs(&self) -> f64 {
        (self.count * self.count.saturating_sub(1)) as f64 / 2.0
    }

    fn nbytes(&self) -> usize {
        let shards: usize = self
            .shards
            .iter()
            .map(|shard| {
                8 * shard.values.capacity()
                    + if shard.values.capacity() > 0 {
                        MALLOC_OVERHEAD
                    } else {
                        0
                    }
            })
            .sum();
        shards
            + std::mem::size_of::<Shard>() * self.shards.capacity()
            + 4 * self.directory.capacity()
            + 8 * self.added.capacity()
            + HOUR_BYTES
    }
}

fn to_bytes<'py>(py: Python<'py>, values: &[u64]) -> Bound<'py, PyBytes> {
    PyBytes::new_with(py, values.len() * 8, |out| {
        for (chunk, value) in out.chunks_exact_mut(8).zip(values) {
            chunk.copy_from_slice(&value.to_le_bytes());
        }
        Ok(())
    })
    .expect("allocating bytes")
}

fn from_bytes(data: &[u8]) -> PyResult<Vec<u64>> {
    if !data.len().is_multiple_of(8) {
        return Err(PyValueError::new_err(
            "bytes length not a multiple of item size",
        ));
    }
    Ok(data
        .chunks_exact(8)
        .map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes")))
        .collect())
}

/// What `dedupe.EventIds` holds: the remembered ids of one partition, by hour.
#[pyclass(module = "engagement_native")]
pub(crate) struct EventIdsCore {
    shard_ids: usize,
    hours: Hours,
    /// The hours in first-insertion order (a Python dict's): `export`'s order.
    order: Vec<i64>,
    count: u64,
    floor_hour: i64,
    retired_pairs: f64,
    /// Journaling on: the hours with hashes in their `added`, in the order they got their
    /// first one since the last drain (`drain_added`'s order), and the hours let go.
    journal: Option<Vec<i64>>,
    retired: Option<Vec<i64>>,
}

// The fold's API (fold.rs), without Python.
impl EventIdsCore {
    /// `EventIds.add` after the hash: false if the id was remembered already; journals
    /// the hash when journaling is on. Does not look at `floor_hour` (the caller does).
    #[inline]
    pub(crate) fn add_hashed(&mut self, hour: i64, hashed: u64) -> bool {
        let shard_ids = self.shard_ids;
        let ids = match self.hours.get_mut(&hour) {
            Some(ids) => ids,
            None => {
                self.order.push(hour);
                self.hours.entry(hour).or_insert_with(Hour::empty)
            }
        };
        if !ids.insert(hashed, shard_ids) {
            return false;
        }
        self.count += 1;
        if let Some(journal) = &mut self.journal {
            if ids.added.is_empty() {
                journal.push(hour);
            }
            ids.added.push(hashed);
        }
        true
    }

    #[inline]
    pub(crate) fn floor_hour(&self) -> i64 {
        self.floor_hour
    }

    #[inline]
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    fn retire(&mut self, hour: i64) -> u64 {
        let Some(ids) = self.hours.remove(&hour) else {
            return 0;
        };
        self.order.retain(|&known| known != hour);
        self.count -= ids.count;
        self.retired_pairs += ids.pairs();
        if let Some(journal) = &mut self.journal {
            if !ids.added.is_empty() {
                journal.retain(|&known| known != hour);
            }
        }
        if let Some(retired) = &mut self.retired {
            retired.push(hour);
        }
        ids.count
    }

    fn oldest(&self) -> Option<i64> {
        self.order.iter().copied().min()
    }

    /// Replaces an hour's hashes, keeping its place in the order and its journal.
    fn set_hour(&mut self, hour: i64, values: &[u64]) -> u64 {
        let mut rebuilt = Hour::from_sorted(values, self.shard_ids);
        match self.hours.get_mut(&hour) {
            Some(ids) => {
                let old = ids.count;
                rebuilt.added = std::mem::take(&mut ids.added);
                *ids = rebuilt;
                old
            }
            None => {
                self.order.push(hour);
                self.hours.insert(hour, rebuilt);
                0
            }
        }
    }
}

#[pymethods]
impl EventIdsCore {
    #[new]
    #[pyo3(signature = (track_changes, shard_ids, /))]
    fn new(track_changes: bool, shard_ids: usize) -> PyResult<Self> {
        if shard_ids == 0 {
            return Err(PyValueError::new_err("shard_ids must be positive"));
        }
        Ok(EventIdsCore {
            shard_ids,
            hours: Hours::default(),
            order: Vec::new(),
            count: 0,
            floor_hour: -(1i64 << 62),
            retired_pairs: 0.0,
            journal: track_changes.then(Vec::new),
            retired: track_changes.then(Vec::new),
        })
    }

    fn __len__(&self) -> usize {
        self.count as usize
    }

    #[getter(count)]
    fn py_count(&self) -> u64 {
        self.count()
    }

    #[getter(floor_hour)]
    fn py_floor_hour(&self) -> i64 {
        self.floor_hour()
    }

    #[setter(floor_hour)]
    fn set_floor_hour(&mut self, hour: i64) {
        self.floor_hour = hour;
    }

    #[getter]
    fn has_added(&self) -> bool {
        self.journal
            .as_ref()
            .is_some_and(|journal| !journal.is_empty())
    }

    #[getter]
    fn hours(&self) -> Vec<i64> {
        let mut hours = self.order.clone();
        hours.sort_unstable();
        hours
    }

    fn add(&mut self, hour: i64, event_id: &str) -> bool {
        self.add_hashed(hour, event_id_hash(event_id))
    }

    #[pyo3(name = "add_hashed")]
    fn py_add_hashed(&mut self, hour: i64, hashed: u64) -> bool {
        self.add_hashed(hour, hashed)
    }

    fn contains(&self, hour: i64, event_id: &str) -> bool {
        self.hours
            .get(&hour)
            .is_some_and(|ids| ids.contains(event_id_hash(event_id)))
    }

    fn ids_in(&self, hour: i64) -> u64 {
        self.hours.get(&hour).map_or(0, |ids| ids.count)
    }

    fn oldest_hour(&self) -> Option<i64> {
        self.oldest()
    }

    fn expired_hours(&self, first_live_hour: i64) -> Vec<i64> {
        let mut hours: Vec<i64> = self
            .order
            .iter()
            .copied()
            .filter(|&hour| hour < first_live_hour)
            .collect();
        hours.sort_unstable();
        hours
    }

    fn retire_before(&mut self, first_live_hour: i64) -> u64 {
        let mut gone = 0;
        for hour in self.expired_hours(first_live_hour) {
            gone += self.retire(hour);
        }
        if first_live_hour > self.floor_hour {
            self.floor_hour = first_live_hour;
        }
        gone
    }

    fn forget_oldest(&mut self, before_hour: i64) -> u64 {
        match self.oldest() {
            Some(oldest) if oldest < before_hour => {
                self.floor_hour = oldest + 1;
                self.retire(oldest)
            }
            _ => 0,
        }
    }

    fn expected_false_duplicates(&self) -> f64 {
        let mut live = 0.0;
        for hour in &self.order {
            live += self.hours[hour].pairs();
        }
        (self.retired_pairs + live) / PAIRS_PER_COLLISION
    }

    fn nbytes(&self) -> usize {
        self.hours.values().map(Hour::nbytes).sum::<usize>() + 8 * self.order.capacity()
    }

    fn export<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let exported = PyDict::new(py);
        for hour in &self.order {
            exported.set_item(hour, to_bytes(py, &self.hours[hour].sorted_values()))?;
        }
        Ok(exported)
    }

    fn restore(&mut self, hour: i64, data: &[u8]) -> PyResult<()> {
        let values = from_bytes(data)?;
        let old = self.set_hour(hour, &values);
        self.count = self.count + values.len() as u64 - old;
        Ok(())
    }

    fn drain_added<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let Some(journal) = &mut self.journal else {
            return Err(PyRuntimeError::new_err(
                "this dedupe memory does not track changes",
            ));
        };
        let drained = PyDict::new(py);
        for hour in std::mem::take(journal) {
            let ids = self.hours.get_mut(&hour).expect("a journaled hour is held");
            drained.set_item(hour, to_bytes(py, &std::mem::take(&mut ids.added)))?;
        }
        Ok(drained)
    }

    fn drain_retired(&mut self) -> PyResult<Vec<i64>> {
        match &mut self.retired {
            Some(retired) => Ok(std::mem::take(retired)),
            None => Err(PyRuntimeError::new_err(
                "this dedupe memory does not track changes",
            )),
        }
    }

    fn merge(&mut self, hour: i64, data: &[u8]) -> PyResult<u64> {
        if hour < self.floor_hour {
            return Ok(0);
        }
        let incoming = from_bytes(data)?;
        let shard_ids = self.shard_ids;
        let new = match self.hours.get_mut(&hour) {
            Some(ids) if incoming.len() as u64 * 8 <= ids.count => {
                let mut new = 0;
                for hashed in incoming {
                    new += ids.insert(hashed, shard_ids) as u64;
                }
                new
            }
            _ => {
                // Many at once: one sort of the union costs less than inserts one by one.
                let mut values = self
                    .hours
                    .get(&hour)
                    .map_or_else(Vec::new, Hour::sorted_values);
                let known = values.len() as u64;
                values.extend_from_slice(&incoming);
                values.sort_unstable();
                values.dedup();
                self.set_hour(hour, &values);
                values.len() as u64 - known
            }
        };
        self.count += new;
        Ok(new)
    }
}
