//! The account store (service/engine/store.py's `AccountStore`) owned by compiled code:
//! `CompiledAccountStore` is this table with a few methods in Python.
//!
//! Why: on the wide ingest workload nearly every event is folded into a packed account,
//! and the Python store reached that account through five dict operations on cold memory
//! (its shard's lookup, delete and insert, the changed dict's lookup and insert), a new
//! id string and a new bytes object per event: a third of the fold's time. Here one
//! probe of a hash index (xxh3 of the id's bytes, as the event carries them) finds a slot
//! that holds the packed bytes (a new object per fold, the old one freed), the folds
//! since the checkpoint, and the links of the account's place in its shard's activity
//! order and in the hot set's order of use.
//!
//! Every order is the reference's: the same 64 shards by crc32 of the id, each least
//! recently active first; the hot set least recently used first; the changed accounts in
//! the order they first changed since the drain. A removed account keeps its slot (and
//! its place in the changed list) until the drain writes its tombstone, so that an id
//! removed and added again within one checkpoint is drained once, as the reference's
//! dict does. tests/unit/test_store_native.py holds both stores to the same answers.

use hashbrown::HashTable;
use pyo3::exceptions::{PyKeyError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::intern;
use xxhash_rust::xxh3::xxh3_64;

use crate::actors::crc32;
use crate::ACTIVITY_SHARD_MASK;

const NIL: u32 = u32::MAX;
const SHARDS: usize = (ACTIVITY_SHARD_MASK + 1) as usize;
/// store.EVICTION_BATCH and store.BATCHED_HOT_SETS.
const EVICTION_BATCH: usize = 16;
const BATCHED_HOT_SETS: usize = 64 * EVICTION_BATCH;
/// Where a packed account's header keeps its version (store._PACKED_VERSION_AT).
const PACKED_VERSION_AT: usize = 4;

pub(crate) enum Held {
    /// Immutable, so that a checkpoint, a snapshot or a query hands out the object
    /// itself; a fold replaces it.
    Packed(Py<PyBytes>),
    Hot(Py<PyAny>),
    /// Removed since the last drain: its tombstone is due.
    Gone,
}

/// Ids up to this long are kept in the slot too, so that a lookup compares them there
/// instead of reading the id string's object (a cold read per event, ~5 % of the wide
/// fold); longer ones are compared through the string.
const INLINE_ID: usize = 16;

/// One cache line.
#[repr(align(64))]
pub(crate) struct Slot {
    /// The id's first bytes (all of them up to INLINE_ID), and its length (u16::MAX for
    /// any longer).
    inline: [u8; INLINE_ID],
    id_len: u16,
    id: Py<PyString>,
    pub(crate) held: Held,
    /// Activity order within its shard.
    prev: u32,
    next: u32,
    /// The hot set's order of use (while hot).
    use_prev: u32,
    use_next: u32,
    /// Events and signals since the last drain.
    folds: u32,
    changed: bool,
    shard: u8,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    /// The index's hash of the id (read again when the index grows, and on release).
    fn hash(&self, py: Python<'_>) -> u64 {
        xxh3_64(self.id.bind(py).to_str().map(str::as_bytes).unwrap_or_default())
    }

    fn is(&self, py: Python<'_>, id: &[u8]) -> bool {
        if self.id_len != stored_length(id) {
            return false;
        }
        let inline = id.len().min(INLINE_ID);
        if self.inline[..inline] != id[..inline] {
            return false;
        }
        id.len() <= INLINE_ID
            || self.id.bind(py).to_str().map(|own| own.as_bytes() == id).unwrap_or(false)
    }
}

#[derive(Clone, Copy)]
struct Ends {
    first: u32,
    last: u32,
}

const EMPTY: Ends = Ends { first: NIL, last: NIL };

#[pyclass(module = "engagement_native", subclass)]
pub(crate) struct AccountTable {
    slots: Slots,
    free: Vec<u32>,
    /// By bits of the id's hash that hashbrown uses for neither bucket nor tag.
    index: Vec<HashTable<u32>>,
    shards: [Ends; SHARDS],
    hot_order: Ends,
    hot_len: usize,
    count: usize,
    changed: Vec<u32>,
    #[pyo3(get, set)]
    hot_capacity: usize,
    #[pyo3(get, set)]
    packed_fold_max_bytes: usize,
    #[pyo3(get)]
    unpacks: u64,
    #[pyo3(get)]
    packed_folds: u64,
    #[pyo3(get)]
    packed_out: u64,
    pack: Py<PyAny>,
    pack_many: Py<PyAny>,
    unpack: Py<PyAny>,
    /// An event's packed account written here, then copied into its slot.
    scratch: Vec<u8>,
}

/// The index and the slots grow in parts, so that no growth copies or rehashes all of a
/// million accounts at once (tens to hundreds of ms holding the event loop; the Python
/// store splits its dicts in 64 shards for the same reason).
const INDEX_SHARDS: usize = 256;
const CHUNK_BITS: usize = 12;
const CHUNK: usize = 1 << CHUNK_BITS;

fn index_shard(hash: u64) -> usize {
    // hashbrown places by the low bits and tags with the top 7.
    ((hash >> 32) as usize) & (INDEX_SHARDS - 1)
}

/// The slots, in chunks of CHUNK that never move.
#[derive(Default)]
struct Slots {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

impl Slots {
    /// Its place.
    fn push(&mut self, slot: Slot) -> u32 {
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(slot);
        }
        self.len += 1;
        (self.len - 1) as u32
    }
}

impl std::ops::Index<usize> for Slots {
    type Output = Slot;

    fn index(&self, at: usize) -> &Slot {
        &self.chunks[at >> CHUNK_BITS][at & (CHUNK - 1)]
    }
}

impl std::ops::IndexMut<usize> for Slots {
    fn index_mut(&mut self, at: usize) -> &mut Slot {
        &mut self.chunks[at >> CHUNK_BITS][at & (CHUNK - 1)]
    }
}

fn stored_length(id: &[u8]) -> u16 {
    u16::try_from(id.len()).unwrap_or(u16::MAX)
}

fn shard_of(id: &[u8]) -> usize {
    (crc32(id) & ACTIVITY_SHARD_MASK) as usize
}

/// What an event or signal finds for an account id, for the compiled folds.
pub(crate) enum Found {
    Absent,
    Packed(u32),
    Hot(u32),
}

impl AccountTable {
    /// The slot of `id` (live or gone).
    fn find(&self, py: Python<'_>, hash: u64, id: &[u8]) -> Option<u32> {
        let slots = &self.slots;
        self.index[index_shard(hash)].find(hash, |&at| slots[at as usize].is(py, id)).copied()
    }

    fn find_live(&self, py: Python<'_>, id: &[u8]) -> Option<u32> {
        self.find(py, xxh3_64(id), id).filter(|&at| !matches!(self.slots[at as usize].held, Held::Gone))
    }

    pub(crate) fn lookup(&self, py: Python<'_>, id: &[u8]) -> Found {
        match self.find_live(py, id) {
            None => Found::Absent,
            Some(at) => match self.slots[at as usize].held {
                Held::Packed(_) => Found::Packed(at),
                _ => Found::Hot(at),
            },
        }
    }

    fn new_slot(&mut self, py: Python<'_>, id: Bound<'_, PyString>, hash: u64, held: Held) -> u32 {
        let raw = id.to_str().map(str::as_bytes).unwrap_or_default();
        let shard = shard_of(raw) as u8;
        let mut inline = [0u8; INLINE_ID];
        let kept = raw.len().min(INLINE_ID);
        inline[..kept].copy_from_slice(&raw[..kept]);
        let slot = Slot {
            inline,
            id_len: stored_length(raw),
            id: id.unbind(),
            held,
            prev: NIL,
            next: NIL,
            use_prev: NIL,
            use_next: NIL,
            folds: 0,
            changed: false,
            shard,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => self.slots.push(slot),
        };
        let slots = &self.slots;
        self.index[index_shard(hash)].insert_unique(hash, at, |&other| slots[other as usize].hash(py));
        at
    }

    /// Drops a slot whose tombstone is written (or never due).
    fn release(&mut self, py: Python<'_>, at: u32) {
        let hash = self.slots[at as usize].hash(py);
        if let Ok(entry) = self.index[index_shard(hash)].find_entry(hash, |&other| other == at) {
            entry.remove();
        }
        self.slots[at as usize].held = Held::Gone;
        self.free.push(at);
    }

    fn link_last(&mut self, at: u32) {
        let shard = self.slots[at as usize].shard as usize;
        let last = self.shards[shard].last;
        {
            let slot = &mut self.slots[at as usize];
            slot.prev = last;
            slot.next = NIL;
        }
        if last == NIL {
            self.shards[shard].first = at;
        } else {
            self.slots[last as usize].next = at;
        }
        self.shards[shard].last = at;
    }

    fn unlink(&mut self, at: u32) {
        let (shard, prev, next) = {
            let slot = &self.slots[at as usize];
            (slot.shard as usize, slot.prev, slot.next)
        };
        if prev == NIL {
            self.shards[shard].first = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            self.shards[shard].last = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }

    /// Now the most recently active of its shard.
    pub(crate) fn activity(&mut self, at: u32) {
        let shard = self.slots[at as usize].shard as usize;
        if self.shards[shard].last != at {
            self.unlink(at);
            self.link_last(at);
        }
    }

    fn use_link_last(&mut self, at: u32) {
        let last = self.hot_order.last;
        {
            let slot = &mut self.slots[at as usize];
            slot.use_prev = last;
            slot.use_next = NIL;
        }
        if last == NIL {
            self.hot_order.first = at;
        } else {
            self.slots[last as usize].use_next = at;
        }
        self.hot_order.last = at;
        self.hot_len += 1;
    }

    fn use_unlink(&mut self, at: u32) {
        let (prev, next) = {
            let slot = &self.slots[at as usize];
            (slot.use_prev, slot.use_next)
        };
        if prev == NIL {
            self.hot_order.first = next;
        } else {
            self.slots[prev as usize].use_next = next;
        }
        if next == NIL {
            self.hot_order.last = prev;
        } else {
            self.slots[next as usize].use_prev = prev;
        }
        self.hot_len -= 1;
    }

    /// Now the most recently used of the hot set.
    pub(crate) fn used(&mut self, at: u32) {
        if self.hot_order.last != at {
            self.use_unlink(at);
            self.use_link_last(at);
        }
    }

    fn mark_changed_at(&mut self, at: u32) {
        let slot = &mut self.slots[at as usize];
        if !slot.changed {
            slot.changed = true;
            self.changed.push(at);
        }
    }

    /// One more event or signal since the last checkpoint: how many.
    pub(crate) fn count_fold(&mut self, at: u32) -> u32 {
        self.mark_changed_at(at);
        let slot = &mut self.slots[at as usize];
        slot.folds = slot.folds.saturating_add(1);
        slot.folds
    }

    /// Whether one more fold into the packed account at `at` stays within its
    /// allowance (`AccountStore._for_change`).
    pub(crate) fn packed_fold_within(&self, py: Python<'_>, at: u32) -> bool {
        let slot = &self.slots[at as usize];
        match &slot.held {
            Held::Packed(bytes) => {
                (slot.folds as usize + 1).saturating_mul(bytes.as_bytes(py).len()) <= self.packed_fold_max_bytes
            }
            _ => false,
        }
    }

    pub(crate) fn packed_bytes<'a>(&'a self, py: Python<'a>, at: u32) -> &'a [u8] {
        match &self.slots[at as usize].held {
            Held::Packed(bytes) => bytes.as_bytes(py),
            _ => &[],
        }
    }

    /// The buffer a packed fold writes into; handed back by `store_packed_fold` or
    /// `give_back_scratch`.
    pub(crate) fn scratch(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.scratch)
    }

    pub(crate) fn give_back_scratch(&mut self, scratch: Vec<u8>) {
        self.scratch = scratch;
    }

    /// A packed fold's result (written into the table's scratch buffer) into the slot:
    /// the fold counted, the slot's bytes object replaced by a new one.
    pub(crate) fn store_packed_fold(&mut self, py: Python<'_>, at: u32, written: Vec<u8>) {
        self.count_fold(at);
        self.packed_folds += 1;
        self.slots[at as usize].held = Held::Packed(PyBytes::new(py, &written).unbind());
        self.scratch = written;
    }

    pub(crate) fn hot_account<'py>(&self, py: Python<'py>, at: u32) -> Option<Bound<'py, PyAny>> {
        match &self.slots[at as usize].held {
            Held::Hot(account) => Some(account.bind(py).clone()),
            _ => None,
        }
    }

    fn id_of<'py>(&self, py: Python<'py>, at: u32) -> Bound<'py, PyString> {
        self.slots[at as usize].id.bind(py).clone()
    }

    fn bytes_of<'py>(&self, py: Python<'py>, at: u32) -> Option<Bound<'py, PyBytes>> {
        match &self.slots[at as usize].held {
            Held::Packed(bytes) => Some(bytes.bind(py).clone()),
            _ => None,
        }
    }

    /// The slot of `id`, created (gone, unlinked) if there is none.
    fn slot_for(&mut self, py: Python<'_>, id: &Bound<'_, PyString>) -> PyResult<u32> {
        let raw = id.to_str()?.as_bytes();
        let hash = xxh3_64(raw);
        Ok(match self.find(py, hash, raw) {
            Some(at) => at,
            None => self.new_slot(py, id.clone(), hash, Held::Gone),
        })
    }

    /// Removed: its tombstone is due at the next drain.
    fn remove_at(&mut self, at: u32) {
        let was_hot = matches!(self.slots[at as usize].held, Held::Hot(_));
        self.unlink(at);
        if was_hot {
            self.use_unlink(at);
        }
        self.slots[at as usize].held = Held::Gone;
        self.count -= 1;
        self.mark_changed_at(at);
    }

    fn promote<'py>(&mut self, py: Python<'py>, at: u32) -> PyResult<Bound<'py, PyAny>> {
        let id = self.id_of(py, at);
        let packed = self.bytes_of(py, at).ok_or_else(|| PyTypeError::new_err("not packed"))?;
        let account = self.unpack.bind(py).call1((id, packed))?;
        self.unpacks += 1;
        self.slots[at as usize].held = Held::Hot(account.clone().unbind());
        self.use_link_last(at);
        self.keep_hot_bounded(py)?;
        Ok(account)
    }

    fn keep_hot_bounded(&mut self, py: Python<'_>) -> PyResult<()> {
        let most = self.hot_capacity;
        if self.hot_len <= most {
            return Ok(());
        }
        let mut leaving = self.hot_len - most;
        if most >= BATCHED_HOT_SETS {
            leaving += EVICTION_BATCH - 1;
        }
        let mut places = Vec::with_capacity(leaving);
        let accounts = PyList::empty(py);
        for _ in 0..leaving {
            let at = self.hot_order.first;
            if at == NIL {
                break;
            }
            self.use_unlink(at);
            if let Held::Hot(account) = &self.slots[at as usize].held {
                accounts.append(account.bind(py))?;
            }
            places.push(at);
        }
        self.packed_out += places.len() as u64;
        let packed = self.pack_many.bind(py).call1((accounts,))?;
        for (at, bytes) in places.into_iter().zip(packed.try_iter()?) {
            let bytes = bytes?.cast_into::<PyBytes>()?;
            self.slots[at as usize].held = Held::Packed(bytes.unbind());
        }
        Ok(())
    }

    /// `_for_change` once the fold is counted: the account, and whether it stays packed.
    fn for_change_at<'py>(&mut self, py: Python<'py>, at: u32, folds: u32) -> PyResult<(Bound<'py, PyAny>, bool)> {
        if let Some(account) = self.hot_account(py, at) {
            self.used(at);
            return Ok((account, false));
        }
        let size = self.packed_bytes(py, at).len();
        if (folds as usize).saturating_mul(size) > self.packed_fold_max_bytes {
            return Ok((self.promote(py, at)?, false));
        }
        let id = self.id_of(py, at);
        let packed = self.bytes_of(py, at).ok_or_else(|| PyTypeError::new_err("not packed"))?;
        let account = self.unpack.bind(py).call1((id, packed))?; // corrupt bytes raise here, uncounted
        self.packed_folds += 1;
        Ok((account, true))
    }

    fn version_of(&self, py: Python<'_>, at: u32) -> PyResult<u64> {
        match &self.slots[at as usize].held {
            Held::Packed(bytes) => {
                let field = bytes
                    .as_bytes(py)
                    .get(PACKED_VERSION_AT..PACKED_VERSION_AT + 8)
                    .ok_or_else(|| PyTypeError::new_err("a packed account without its header"))?;
                Ok(u64::from_le_bytes(field.try_into().unwrap_or_default()))
            }
            Held::Hot(account) => account.bind(py).getattr(intern!(py, "version"))?.extract(),
            Held::Gone => Ok(0),
        }
    }

    fn ids_from(&self, py: Python<'_>, first: u32, next: impl Fn(&Slot) -> u32) -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        let mut at = first;
        while at != NIL {
            let slot = &self.slots[at as usize];
            out.append(slot.id.bind(py))?;
            at = next(slot);
        }
        Ok(out.unbind())
    }
}

#[pymethods]
impl AccountTable {
    #[new]
    #[pyo3(signature = (hot_capacity, pack, pack_many, unpack, packed_fold_max_bytes, /))]
    fn new(hot_capacity: usize, pack: Py<PyAny>, pack_many: Py<PyAny>, unpack: Py<PyAny>,
           packed_fold_max_bytes: usize) -> Self {
        AccountTable {
            slots: Slots::default(),
            free: Vec::new(),
            index: (0..INDEX_SHARDS).map(|_| HashTable::new()).collect(),
            shards: [EMPTY; SHARDS],
            hot_order: EMPTY,
            hot_len: 0,
            count: 0,
            changed: Vec::new(),
            hot_capacity,
            packed_fold_max_bytes,
            unpacks: 0,
            packed_folds: 0,
            packed_out: 0,
            pack,
            pack_many,
            unpack,
            scratch: Vec::with_capacity(1024),
        }
    }

    fn __len__(&self) -> usize {
        self.count
    }

    #[getter]
    fn hot(&self) -> usize {
        self.hot_len
    }

    /// The ids of one shard, least recently active first.
    fn shard_ids(&self, py: Python<'_>, shard: usize) -> PyResult<Py<PyList>> {
        let first = self.shards.get(shard).map_or(NIL, |ends| ends.first);
        self.ids_from(py, first, |slot| slot.next)
    }

    /// The hot set's ids, least recently used first.
    fn hot_ids(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        self.ids_from(py, self.hot_order.first, |slot| slot.use_next)
    }

    /// One shard's accounts packed, least recently active first (`AccountStore.packed`).
    fn shard_packed<'py>(&self, py: Python<'py>, shard: usize) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        let mut at = self.shards.get(shard).map_or(NIL, |ends| ends.first);
        while at != NIL {
            let slot = &self.slots[at as usize];
            let packed = match &slot.held {
                Held::Packed(bytes) => bytes.bind(py).clone().into_any(),
                Held::Hot(account) => self.pack.bind(py).call1((account.bind(py),))?,
                Held::Gone => py.None().into_bound(py),
            };
            out.append(PyTuple::new(py, [slot.id.bind(py).clone().into_any(), packed])?)?;
            at = slot.next;
        }
        Ok(out)
    }

    /// The account for reading (an `Account`, or None): it becomes the most recently used.
    fn get<'py>(&mut self, py: Python<'py>, account_id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.lookup(py, account_id.as_bytes()) {
            Found::Absent => Ok(None),
            Found::Hot(at) => {
                self.used(at);
                Ok(self.hot_account(py, at))
            }
            Found::Packed(at) => self.promote(py, at).map(Some),
        }
    }

    /// The account as held, without changing any order: an `Account`, bytes, or None.
    fn held<'py>(&self, py: Python<'py>, account_id: &str) -> Option<Bound<'py, PyAny>> {
        let at = self.find_live(py, account_id.as_bytes())?;
        match &self.slots[at as usize].held {
            Held::Packed(bytes) => Some(bytes.bind(py).clone().into_any()),
            Held::Hot(account) => Some(account.bind(py).clone()),
            Held::Gone => None,
        }
    }

    fn activate<'py>(&mut self, py: Python<'py>, account_id: &str) -> PyResult<Option<(Bound<'py, PyAny>, bool)>> {
        let Some(at) = self.find_live(py, account_id.as_bytes()) else { return Ok(None) };
        let folds = self.count_fold(at);
        self.activity(at);
        self.for_change_at(py, at, folds).map(Some)
    }

    fn for_change<'py>(&mut self, py: Python<'py>, account_id: &str) -> PyResult<Option<(Bound<'py, PyAny>, bool)>> {
        let Some(at) = self.find_live(py, account_id.as_bytes()) else { return Ok(None) };
        let folds = self.count_fold(at);
        self.for_change_at(py, at, folds).map(Some)
    }

    /// An account that `activate` left packed, packed again in its place.
    fn put_back(&mut self, py: Python<'_>, account: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = account.getattr(intern!(py, "account_id"))?.cast_into::<PyString>()?;
        let at = self
            .find_live(py, id.to_str()?.as_bytes())
            .ok_or_else(|| PyKeyError::new_err(id.clone().unbind()))?;
        let packed = self.pack.bind(py).call1((account,))?.cast_into::<PyBytes>()?;
        if let Held::Hot(_) = self.slots[at as usize].held {
            self.use_unlink(at);
        }
        self.slots[at as usize].held = Held::Packed(packed.unbind());
        Ok(())
    }

    /// A new account, for its first event.
    fn add(&mut self, py: Python<'_>, account: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = account.getattr(intern!(py, "account_id"))?.cast_into::<PyString>()?;
        let at = self.slot_for(py, &id)?;
        self.count_fold(at);
        match self.slots[at as usize].held {
            Held::Gone => {
                self.count += 1;
                self.link_last(at);
                self.use_link_last(at);
            }
            Held::Packed(_) => self.use_link_last(at),
            Held::Hot(_) => {}
        }
        self.slots[at as usize].held = Held::Hot(account.clone().unbind());
        self.keep_hot_bounded(py)
    }

    fn evict_least_active(&mut self, py: Python<'_>) -> PyResult<()> {
        let mut oldest: Option<(u64, usize, u32)> = None;
        for (shard, ends) in self.shards.iter().enumerate() {
            if ends.first == NIL {
                continue;
            }
            let candidate = (self.version_of(py, ends.first)?, shard, ends.first);
            if oldest.is_none_or(|best| (candidate.0, candidate.1) < (best.0, best.1)) {
                oldest = Some(candidate);
            }
        }
        if let Some((_, _, at)) = oldest {
            self.remove_at(at);
        }
        Ok(())
    }

    /// Removed (expiry): its tombstone is due at the next drain.
    fn remove(&mut self, py: Python<'_>, account_id: &str) -> bool {
        match self.find_live(py, account_id.as_bytes()) {
            Some(at) => {
                self.remove_at(at);
                true
            }
            None => false,
        }
    }

    /// A packed account's bytes replaced in its place (expiry of part of it).
    fn replace_packed(&mut self, py: Python<'_>, account_id: &str, packed: Bound<'_, PyBytes>) -> PyResult<()> {
        let at = self
            .find_live(py, account_id.as_bytes())
            .ok_or_else(|| PyKeyError::new_err(account_id.to_owned()))?;
        if let Held::Hot(_) = self.slots[at as usize].held {
            self.use_unlink(at);
        }
        self.slots[at as usize].held = Held::Packed(packed.unbind());
        Ok(())
    }

    /// Packed accounts of a snapshot, each appended to its shard (or replacing itself).
    fn restore(&mut self, py: Python<'_>, packed: &Bound<'_, PyAny>) -> PyResult<()> {
        for item in packed.try_iter()? {
            let item = item?;
            let (id, held): (Bound<'_, PyString>, Bound<'_, PyBytes>) = item.extract()?;
            let at = self.slot_for(py, &id)?;
            match self.slots[at as usize].held {
                Held::Gone => {
                    self.count += 1;
                    self.link_last(at);
                }
                Held::Hot(_) => self.use_unlink(at),
                Held::Packed(_) => {}
            }
            self.slots[at as usize].held = Held::Packed(held.unbind());
        }
        Ok(())
    }

    /// `AccountStore.drain_packed`.
    fn drain_packed<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let changed = std::mem::take(&mut self.changed);
        let drained = PyList::empty(py);
        let mut hot_places = Vec::new();
        let hot_accounts = PyList::empty(py);
        for &at in &changed {
            let slot = &self.slots[at as usize];
            let id = slot.id.bind(py).clone().into_any();
            match &slot.held {
                Held::Gone => drained.append(PyTuple::new(py, [id, py.None().into_bound(py)])?)?,
                Held::Packed(bytes) => drained.append(PyTuple::new(py, [id, bytes.bind(py).clone().into_any()])?)?,
                Held::Hot(account) => {
                    hot_places.push(at);
                    hot_accounts.append(account.bind(py))?;
                }
            }
        }
        let most = self.packed_fold_max_bytes;
        for (start, places) in (0..).step_by(EVICTION_BATCH).zip(hot_places.chunks(EVICTION_BATCH)) {
            let accounts = hot_accounts.get_slice(start, start + places.len());
            let packed = self.pack_many.bind(py).call1((accounts,))?;
            for (&at, bytes) in places.iter().zip(packed.try_iter()?) {
                let bytes = bytes?.cast_into::<PyBytes>()?;
                // As many folds packed would have stayed packed: left packed.
                if (self.slots[at as usize].folds as usize).saturating_mul(bytes.as_bytes().len()) <= most {
                    self.use_unlink(at);
                    self.slots[at as usize].held = Held::Packed(bytes.clone().unbind());
                }
                drained.append(PyTuple::new(py, [self.id_of(py, at).into_any(), bytes.into_any()])?)?;
            }
        }
        self.forget_changes(py, &changed);
        Ok(drained)
    }

    /// The changed accounts with their folds since the last drain, in the order they
    /// first changed, and none marked changed any more.
    fn drain_changed<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let changed = std::mem::take(&mut self.changed);
        let out = self.changed_folds_of(py, &changed)?;
        self.forget_changes(py, &changed);
        Ok(out)
    }

    /// None marked changed any more, without saying which were (a standby, a restore).
    fn discard_changes(&mut self, py: Python<'_>) {
        let changed = std::mem::take(&mut self.changed);
        self.forget_changes(py, &changed);
    }

    /// `{id: folds}` of the accounts changed since the last drain (a copy).
    fn changed_folds<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.changed_folds_of(py, &self.changed)
    }

    /// The ids `drain_changed` would give, in the same order (no dict: a checkpoint with
    /// discovery on reads them).
    fn changed_ids(&self, py: Python<'_>) -> PyResult<Py<PyList>> {
        let out = PyList::empty(py);
        for &at in &self.changed {
            out.append(self.slots[at as usize].id.bind(py))?;
        }
        Ok(out.unbind())
    }

    fn changed_count(&self) -> usize {
        self.changed.len()
    }

    /// Written again at the next checkpoint (a checkpoint that failed).
    fn mark_changed(&mut self, py: Python<'_>, account_id: &Bound<'_, PyString>) -> PyResult<()> {
        let at = self.slot_for(py, account_id)?;
        self.mark_changed_at(at);
        Ok(())
    }

    fn packed_one<'py>(&self, py: Python<'py>, account_id: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(at) = self.find_live(py, account_id.as_bytes()) else { return Ok(None) };
        match &self.slots[at as usize].held {
            Held::Packed(bytes) => Ok(Some(bytes.bind(py).clone().into_any())),
            Held::Hot(account) => self.pack.bind(py).call1((account.bind(py),)).map(Some),
            Held::Gone => Ok(None),
        }
    }

    /// Restore of one changelog record: the newest state of an account, or its removal.
    #[pyo3(signature = (account_id, packed, /))]
    fn put_packed(&mut self, py: Python<'_>, account_id: &Bound<'_, PyString>, packed: Option<Bound<'_, PyBytes>>) -> PyResult<()> {
        let raw = account_id.to_str()?.as_bytes();
        let found = self.find(py, xxh3_64(raw), raw);
        if let Some(at) = found {
            if !matches!(self.slots[at as usize].held, Held::Gone) {
                if let Held::Hot(_) = self.slots[at as usize].held {
                    self.use_unlink(at);
                }
                self.unlink(at);
                self.count -= 1;
                self.slots[at as usize].held = Held::Gone;
            }
        }
        match packed {
            Some(packed) => {
                let at = match found {
                    Some(at) => at,
                    None => self.slot_for(py, account_id)?,
                };
                self.slots[at as usize].held = Held::Packed(packed.unbind());
                self.link_last(at);
                self.count += 1;
            }
            None => {
                if let Some(at) = found {
                    if !self.slots[at as usize].changed {
                        self.release(py, at);
                    }
                }
            }
        }
        Ok(())
    }
}

impl AccountTable {
    fn changed_folds_of<'py>(&self, py: Python<'py>, changed: &[u32]) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for &at in changed {
            let slot = &self.slots[at as usize];
            out.set_item(slot.id.bind(py), slot.folds)?;
        }
        Ok(out)
    }

    fn forget_changes(&mut self, py: Python<'_>, changed: &[u32]) {
        for &at in changed {
            let slot = &mut self.slots[at as usize];
            slot.changed = false;
            slot.folds = 0;
            if matches!(slot.held, Held::Gone) {
                self.release(py, at);
            }
        }
    }
}
