//! `InteractionBatch` (service/engine/audience.py), compiled: the interactions one
//! checkpoint re-keys to one partition of the repartition topic, kept in the bytes of
//! the batch's version 2 as they arrive.
//!
//! The Python class keeps each distinct account id's place in a dict, and the batch
//! fold (fold.rs) reached it for every interaction: with 50,000 accounts active per
//! second, a lookup of a cold id plus a new int object for its place cost ~0.6 us per
//! event, a tenth of the wide ingest workload's. Here the ids are written once into the
//! batch's id table and found through a hash index of their places (xxh3 of the bytes,
//! the hash kept in the index so that growing it reads no id again). The Python class
//! stays the reference: tests/unit/test_interaction_batch.py and the fold's property
//! tests hold both to the same bytes.

use hashbrown::HashTable;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use xxhash_rust::xxh3::xxh3_64;

/// audience._INTERACTIONS_V2 and the sizes of `_BATCH_V2` and `_RECORD`.
const VERSION: u8 = 2;
const HEADER: usize = 9;
const RECORD: usize = 20;

#[derive(Clone, Copy)]
struct Place {
    hash: u64,
    /// Where the id's length prefix starts in `ids`.
    start: u32,
    /// Its index in the table, which the records refer to.
    index: u32,
}

#[pyclass(module = "engagement_native")]
#[derive(Default)]
pub(crate) struct InteractionBatch {
    /// The distinct account ids in the order they came, as the table holds them: each a
    /// 2-byte little-endian length and its UTF-8 bytes.
    ids: Vec<u8>,
    places: HashTable<Place>,
    /// actor hash (u64), occurred_at (f64), the account's index (u32), little-endian.
    records: Vec<u8>,
    #[pyo3(get)]
    count: u64,
}

impl InteractionBatch {
    /// `add`, for an id already in UTF-8.
    pub(crate) fn add_id(&mut self, actor: u64, account_id: &str, occurred_at: f64) -> PyResult<()> {
        let raw = account_id.as_bytes();
        let hash = xxh3_64(raw);
        let ids = &self.ids;
        let index = match self.places.find(hash, |place| place.hash == hash && id_at(ids, place.start) == raw) {
            Some(place) => place.index,
            None => {
                let length = u16::try_from(raw.len())
                    .map_err(|_| PyValueError::new_err("an account id longer than 65,535 bytes"))?;
                let index = self.places.len() as u32;
                let start = self.ids.len() as u32;
                self.ids.extend_from_slice(&length.to_le_bytes());
                self.ids.extend_from_slice(raw);
                self.places.insert_unique(hash, Place { hash, start, index }, |place| place.hash);
                index
            }
        };
        self.records.extend_from_slice(&actor.to_le_bytes());
        self.records.extend_from_slice(&occurred_at.to_le_bytes());
        self.records.extend_from_slice(&index.to_le_bytes());
        self.count += 1;
        Ok(())
    }
}

fn id_at(ids: &[u8], start: u32) -> &[u8] {
    let start = start as usize;
    let length = u16::from_le_bytes([ids[start], ids[start + 1]]) as usize;
    &ids[start + 2..start + 2 + length]
}

#[pymethods]
impl InteractionBatch {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// One counted interaction re-keyed by its actor's hash.
    fn add(&mut self, actor: u64, account_id: &str, occurred_at: f64) -> PyResult<()> {
        self.add_id(actor, account_id, occurred_at)
    }

    /// The batch as one message of the repartition topic (version 2).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let records = u32::try_from(self.count).map_err(|_| PyValueError::new_err("too many interactions"))?;
        let accounts = self.places.len() as u32;
        let size = HEADER + self.ids.len() + self.records.len();
        debug_assert_eq!(self.records.len(), RECORD * self.count as usize);
        PyBytes::new_with(py, size, |out| {
            out[0] = VERSION;
            out[1..5].copy_from_slice(&records.to_le_bytes());
            out[5..9].copy_from_slice(&accounts.to_le_bytes());
            out[HEADER..HEADER + self.ids.len()].copy_from_slice(&self.ids);
            out[HEADER + self.ids.len()..].copy_from_slice(&self.records);
            Ok(())
        })
    }
}
