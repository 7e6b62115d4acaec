//! The audience signals' two ends, compiled: the actor side's messages of the signal
//! topic packed as the signals are judged (`SignalBatches`, filled by
//! `NativeActors.observe_routed` in actors.rs), and the account side's fold of such a
//! message (`SignalFold`, `Engine.fold_signals` in service/engine/engine.py).
//!
//! The Python path is the specification: `routing.partition_for` of each signal's
//! account and `audience.pack_signals` of each target partition's signals give the same
//! bytes in the same order; `Engine.apply_audience` (with `Account.record_audience`) per
//! signal gives the same accounts, the same engine counters and statistics, the same
//! changed set and order of use in the store. A packed account within its allowance of
//! packed folds (`AccountStore.for_change`) takes the signal in its bytes (packed.rs); one
//! past it (the store makes it hot), in a layout only the Python reads, or not an exact
//! `Account` goes to `Engine.apply_audience` for that one signal; a message that does not
//! read goes to the Python path whole (which raises). tests/unit/test_signals_native.py
//! compares both ways.

use std::collections::HashMap;

use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64_with_seed;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyFloat, PyList, PyString};

use crate::fold::python_floor_div;
use crate::table::{AccountTable, Found};
use crate::packed::PackedAccount;
use crate::patch;
use crate::{account_slot, Layout, ACCOUNT_SLOTS};

const VERSION: u8 = 1;
const HEADER: usize = 5; // version (u8), signals (u32)
const SIGNAL: usize = 22; // bucket_start (i64), 3 counts (u32), account id bytes (u16)

/// Kafka's default partitioner's hash (`aiokafka.partitioner.murmur2`, Java's
/// `Utils.murmur2`).
pub(crate) fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes(chunk.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// `routing.partition_for`: the partition Kafka's default partitioner gives the key.
pub(crate) fn partition_for(account_id: &[u8], partitions: u32) -> u32 {
    (murmur2(account_id) & 0x7fff_ffff) % partitions
}

/// `int(bucket * bucket_s)` of a signal's bucket number, as the reference's
/// `AudienceSignal.bucket_start` goes into `pack_signals`; None where `pack_signals`
/// could not pack it (outside a signed 64-bit number).
pub(crate) fn bucket_start(bucket: i64, bucket_s: f64) -> Option<i64> {
    let start = bucket as f64 * bucket_s;
    // 2**63 is exact as a float; truncation towards zero, as int() does.
    if (-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&start) {
        Some(start as i64)
    } else {
        None
    }
}

/// One target partition's message being built: its signals' records.
struct Batch {
    target: u32,
    count: u32,
    body: Vec<u8>,
}

/// Signals bound for the signal topic's partitions since the last checkpoint, packed as
/// they come: per target partition (in first-seen order) the records of
/// `pack_signals`, its header added when the message is taken. A signal for an account
/// and bucket that already has a record adds its counts to it (`RoutedSignals.add`).
#[pyclass(module = "engagement_native")]
#[derive(Default)]
pub struct SignalBatches {
    batches: Vec<Batch>,
    positions: HashMap<u32, usize>,
    /// Where each (target, bucket, account) has its record, found by the xxh3 of the
    /// three: the newest record of the key, should an overflowing count have begun one.
    records: HashTable<Record>,
    signals: usize,
}

/// A record's place: its batch and where it starts in the batch's body.
#[derive(Clone, Copy)]
struct Record {
    hash: u64,
    batch: u32,
    at: u32,
}

/// A record's bytes: bucket_start (i64), three counts (u32), id length (u16), the id.
const COUNTS_AT: usize = 8;
const ID_AT: usize = 8 + 12 + 2;

/// The hash of a record's key: the id's, seeded with its bucket and target.
fn record_key(target: u32, bucket_start: i64, account_id: &[u8]) -> u64 {
    xxh3_64_with_seed(account_id, (bucket_start as u64).rotate_left(32) ^ u64::from(target))
}

/// Adds `counts` to the three of a record's counts at `at`, unless one would pass u32.
fn add_counts(counts_at: &mut [u8], counts: [u32; 3]) -> bool {
    let mut sums = [0u32; 3];
    for (index, sum) in sums.iter_mut().enumerate() {
        let before = u32::from_le_bytes(counts_at[4 * index..4 * index + 4].try_into().expect("4 bytes"));
        match before.checked_add(counts[index]) {
            Some(total) => *sum = total,
            None => return false,
        }
    }
    for (index, sum) in sums.iter().enumerate() {
        counts_at[4 * index..4 * index + 4].copy_from_slice(&sum.to_le_bytes());
    }
    true
}

impl SignalBatches {
    /// One signal for `target`: added into the record of its account and bucket, or the
    /// record `pack_signals` writes for it.
    pub(crate) fn add(&mut self, target: u32, bucket_start: i64, counts: [u32; 3], account_id: &[u8]) {
        let hash = record_key(target, bucket_start, account_id);
        let batches = &mut self.batches;
        let found = self.records.find(hash, |record| {
            let batch = &batches[record.batch as usize];
            let body = &batch.body[record.at as usize..];
            record.hash == hash
                && batch.target == target
                && body[..8] == bucket_start.to_le_bytes()
                && u16::from_le_bytes([body[ID_AT - 2], body[ID_AT - 1]]) as usize == account_id.len()
                && &body[ID_AT..ID_AT + account_id.len()] == account_id
        }).copied();
        if let Some(record) = found {
            let at = record.at as usize + COUNTS_AT;
            if add_counts(&mut batches[record.batch as usize].body[at..at + 12], counts) {
                return;
            }
        }
        let position = *self.positions.entry(target).or_insert_with(|| {
            self.batches.push(Batch { target, count: 0, body: Vec::new() });
            self.batches.len() - 1
        });
        let batch = &mut self.batches[position];
        let record = Record { hash, batch: position as u32, at: batch.body.len() as u32 };
        let body = &mut batch.body;
        body.extend_from_slice(&bucket_start.to_le_bytes());
        for count in counts {
            body.extend_from_slice(&count.to_le_bytes());
        }
        body.extend_from_slice(&(account_id.len() as u16).to_le_bytes());
        body.extend_from_slice(account_id);
        batch.count += 1;
        self.signals += 1;
        match found {
            // A count past u32 began a new record: later signals of the key go to it.
            Some(old) => {
                if let Ok(mut entry) =
                    self.records.find_entry(hash, |known| known.batch == old.batch && known.at == old.at)
                {
                    *entry.get_mut() = record;
                }
            }
            None => {
                self.records.insert_unique(hash, record, |known| known.hash);
            }
        }
    }
}

#[pymethods]
impl SignalBatches {
    #[new]
    fn new() -> Self {
        SignalBatches::default()
    }

    /// One signal, as `observe_routed` adds them (`RoutedSignals.add`'s counterpart).
    #[pyo3(name = "add", signature = (target, bucket_start, interactions, busy, farm_like, account_id, /))]
    fn py_add(&mut self, target: u32, bucket_start: i64, interactions: u32, busy: u32, farm_like: u32, account_id: &str) {
        self.add(target, bucket_start, [interactions, busy, farm_like], account_id.as_bytes());
    }

    /// Signals gathered since the messages were last taken.
    fn __len__(&self) -> usize {
        self.signals
    }

    /// (target partition, message) per target, in first-seen order, and empty again.
    fn take<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let batches = std::mem::take(&mut self.batches);
        self.positions.clear();
        self.records.clear();
        self.signals = 0;
        let mut messages = Vec::with_capacity(batches.len());
        for batch in batches {
            let message = PyBytes::new_with(py, HEADER + batch.body.len(), |out| {
                out[0] = VERSION;
                out[1..HEADER].copy_from_slice(&batch.count.to_le_bytes());
                out[HEADER..].copy_from_slice(&batch.body);
                Ok(())
            })?;
            messages.push((batch.target, message));
        }
        PyList::new(py, messages)
    }
}

/// One signal of a message, as read.
struct Signal<'a> {
    bucket_start: i64,
    counts: [u32; 3],
    account_id: &'a str,
}

/// `unpack_signals`, without objects; None where the reference would raise (another
/// version, a record cut short, an id that is not UTF-8). Bytes after the last record are
/// ignored, as `struct.unpack_from` does.
fn read_signals(data: &[u8]) -> Option<Vec<Signal<'_>>> {
    if data.len() < HEADER || data[0] != VERSION {
        return None;
    }
    let count = u32::from_le_bytes(data[1..HEADER].try_into().unwrap()) as usize;
    let mut signals = Vec::with_capacity(count.min(data.len() / SIGNAL));
    let mut at = HEADER;
    for _ in 0..count {
        let record = data.get(at..at + SIGNAL)?;
        let word = |start: usize| u32::from_le_bytes(record[start..start + 4].try_into().unwrap());
        let length = u16::from_le_bytes(record[20..22].try_into().unwrap()) as usize;
        at += SIGNAL;
        // A short id reads short in the reference (a slice), then decodes.
        let raw = &data[at.min(data.len())..(at + length).min(data.len())];
        at += length;
        signals.push(Signal {
            bucket_start: i64::from_le_bytes(record[0..8].try_into().unwrap()),
            counts: [word(8), word(12), word(16)],
            account_id: std::str::from_utf8(raw).ok()?,
        });
    }
    Some(signals)
}

/// A str of an id: ASCII without UTF-8 decoding.
fn id_string<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    if text.is_ascii() {
        crate::wire::ascii_string(py, text)
    } else {
        Ok(PyString::new(py, text))
    }
}

/// What the loop adds to the engine's numbers, written back at the end and before every
/// call into Python.
#[derive(Default)]
struct Pending {
    changes: i64,
    matched: i64,
    unmatched: i64,
}

/// The account side's fold of a signal message for one engine (`Engine.fold_signals`).
#[pyclass(frozen)]
pub(crate) struct SignalFold {
    account: Layout,
    signal: Py<PyAny>,
    actor_bucket_s: f64,
}

#[pymethods]
impl SignalFold {
    #[new]
    #[pyo3(signature = (account, signal, actor_bucket_s, /))]
    fn new(account: &Bound<'_, PyAny>, signal: &Bound<'_, PyAny>, actor_bucket_s: f64) -> PyResult<Self> {
        Ok(SignalFold {
            account: Layout::new(account, &ACCOUNT_SLOTS)?,
            signal: signal.clone().unbind(),
            actor_bucket_s,
        })
    }

    /// `Engine.apply_audience` for each signal of `message`, in order; how many signals
    /// it held, or None if it does not read (nothing is applied then).
    #[pyo3(signature = (engine, accounts, message, /))]
    fn fold<'py>(
        &self,
        py: Python<'py>,
        engine: &Bound<'py, PyAny>,
        accounts: &Bound<'py, PyAny>,
        message: &[u8],
    ) -> PyResult<Option<usize>> {
        let Some(signals) = read_signals(message) else { return Ok(None) };
        let stats = engine.getattr(intern!(py, "stats"))?;
        let table = accounts.cast::<AccountTable>()?;
        let account_class = self.account.class.bind(py);
        let mut changes: i64 = engine.getattr(intern!(py, "changes"))?.extract()?;
        let mut pending = Pending::default();
        let outcome = (|| -> PyResult<()> {
            for signal in &signals {
                let bucket = python_floor_div(signal.bucket_start as f64, self.actor_bucket_s);
                let found = table.borrow().lookup(py, signal.account_id.as_bytes());
                let fits = bucket.abs() < 9.0e18;
                match found {
                    Found::Absent => pending.unmatched += 1,
                    Found::Hot(at) if fits => {
                        let mut store = table.borrow_mut();
                        let Some(account) = store.hot_account(py, at).filter(|held| held.get_type().is(account_class)) else {
                            drop(store);
                            self.apply_in_python(engine, &stats, &mut changes, &mut pending, signal)?;
                            continue;
                        };
                        // AccountStore.for_change of a hot account: now the most recently used.
                        store.count_fold(at);
                        store.used(at);
                        drop(store);
                        pending.matched += 1;
                        self.record_audience(&account, bucket as i64, signal.counts)?;
                        changes += 1;
                        pending.changes += 1;
                        let fields = self.account.offsets_for(&account);
                        self.account.set(&account, fields, account_slot::VERSION, changes.into_pyobject(py)?.into_any())?;
                    }
                    Found::Packed(at) if fits && table.borrow().packed_fold_within(py, at) => {
                        // AccountStore.for_change of a packed account within its allowance:
                        // the signal folded into its bytes, left in its place.
                        let mut store = table.borrow_mut();
                        let mut written = store.scratch();
                        let packed = store.packed_bytes(py, at);
                        let version = changes as u64 + 1;
                        // Its audience rewritten, the rest copied (patch.rs); else read whole.
                        let folded = patch::fold_audience(packed, bucket as i64, signal.counts, version, &mut written).is_some()
                            || PackedAccount::read(packed).is_some_and(|mut account| {
                                account.record_audience(bucket as i64, signal.counts);
                                account.write_into(&mut written, account.partition, version);
                                true
                            });
                        if !folded {
                            store.give_back_scratch(written);
                            drop(store);
                            // In a layout only the Python reads.
                            self.apply_in_python(engine, &stats, &mut changes, &mut pending, signal)?;
                            continue;
                        }
                        changes += 1;
                        store.store_packed_fold(py, at, written);
                        pending.matched += 1;
                        pending.changes += 1;
                    }
                    // Made hot by the store (past its allowance), or a bucket out of range.
                    _ => self.apply_in_python(engine, &stats, &mut changes, &mut pending, signal)?,
                }
            }
            Ok(())
        })();
        // Written back whatever happened: what was applied stays applied.
        let flushed = flush(engine, &stats, changes, &mut pending);
        outcome?;
        flushed?;
        Ok(Some(signals.len()))
    }
}

impl SignalFold {
    /// `Engine.apply_audience` of one signal, in Python, with the loop's numbers written
    /// back before and read again after.
    fn apply_in_python<'py>(
        &self,
        engine: &Bound<'py, PyAny>,
        stats: &Bound<'py, PyAny>,
        changes: &mut i64,
        pending: &mut Pending,
        signal: &Signal<'_>,
    ) -> PyResult<()> {
        let py = engine.py();
        flush(engine, stats, *changes, pending)?;
        let object = self.signal.bind(py).call1((
            id_string(py, signal.account_id)?,
            PyFloat::new(py, signal.bucket_start as f64),
            signal.counts[0],
            signal.counts[1],
            signal.counts[2],
        ))?;
        engine.call_method1(intern!(py, "apply_audience"), (object,))?;
        *changes = engine.getattr(intern!(py, "changes"))?.extract()?;
        Ok(())
    }
}

/// The loop's additions to the engine's numbers, into the Python objects.
fn flush(
    engine: &Bound<'_, PyAny>,
    stats: &Bound<'_, PyAny>,
    changes: i64,
    pending: &mut Pending,
) -> PyResult<()> {
    let py = engine.py();
    if pending.changes != 0 {
        engine.setattr(intern!(py, "changes"), changes)?;
    }
    for (name, added) in [
        (intern!(py, "audience_signals"), pending.matched),
        (intern!(py, "audience_signals_unmatched"), pending.unmatched),
    ] {
        if added != 0 {
            let before: i64 = stats.getattr(name)?.extract()?;
            stats.setattr(name, before + added)?;
        }
    }
    *pending = Pending::default();
    Ok(())
}

impl SignalFold {
    /// `Account.record_audience`: the flat [bucket, interactions, busy, farm_like, ...]
    /// list in bucket order, a bucket's counts added to, or inserted in its place.
    fn record_audience(&self, account: &Bound<'_, PyAny>, bucket: i64, counts: [u32; 3]) -> PyResult<()> {
        let py = account.py();
        let layout = &self.account;
        let fields = layout.offsets_for(account);
        let audience = layout.get(account, fields, account_slot::AUDIENCE)?;
        let audience = if audience.is_none() {
            let list = PyList::empty(py);
            layout.set(account, fields, account_slot::AUDIENCE, list.clone().into_any())?;
            list
        } else {
            audience.cast_into::<PyList>()?
        };
        let mut start = audience.len() as isize - 4;
        while start >= 0 {
            let at = start as usize;
            let known: i64 = audience.get_item(at)?.extract()?;
            if known == bucket {
                for (offset, added) in counts.iter().enumerate() {
                    let before: i64 = audience.get_item(at + 1 + offset)?.extract()?;
                    audience.set_item(at + 1 + offset, before + *added as i64)?;
                }
                return Ok(());
            }
            if known < bucket {
                return insert_bucket(&audience, at + 4, bucket, counts);
            }
            start -= 4;
        }
        insert_bucket(&audience, 0, bucket, counts)
    }
}

fn insert_bucket(audience: &Bound<'_, PyList>, at: usize, bucket: i64, counts: [u32; 3]) -> PyResult<()> {
    audience.insert(at, bucket)?;
    for (offset, count) in counts.iter().enumerate() {
        audience.insert(at + 1 + offset, *count)?;
    }
    Ok(())
}

/// For tests of the partitioner: `routing.partition_for`.
#[pyfunction]
#[pyo3(name = "partition_for")]
pub(crate) fn py_partition_for(account_id: &str, partitions: u32) -> PyResult<u32> {
    if partitions == 0 {
        return Err(PyValueError::new_err("partitions must be positive"));
    }
    Ok(partition_for(account_id.as_bytes(), partitions))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_is_kafkas() {
        // aiokafka.partitioner.murmur2 of the same bytes: every tail length.
        let cases: [(&[u8], u32); 7] = [
            (b"", 0x106e_08d9),
            (b"a", 0xa2d0_b27c),
            (b"ab", 0x12d8_262a),
            (b"abc", 0x1c94_221b),
            (b"abcd", 0xb11a_b5f4),
            (b"acc-12345", 0x10d7_633f),
            ("\u{fc}-\u{f1}".as_bytes(), 0xea91_e2da),
        ];
        for (data, expected) in cases {
            assert_eq!(murmur2(data), expected);
        }
    }

    #[test]
    fn bucket_starts_that_pack() {
        assert_eq!(bucket_start(3, 172_800.0), Some(518_400));
        assert_eq!(bucket_start(-1, 0.75), Some(0));
        assert_eq!(bucket_start(i64::MAX / 2, 172_800.0), None);
    }
}
