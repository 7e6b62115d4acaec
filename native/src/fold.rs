//! The engine's per-event path, compiled: a partition's Kafka records folded in a loop
//! (`Engine.fold_records` in service/engine/engine.py).
//!
//! For each record in order it does what the consumer's Python loop does for a like,
//! comment, share, post or follower count: `decode_event` (wire.rs), `Engine.apply` (the
//! horizon, the dedupe memory, stream time, the lag statistics, the account activated in
//! the store as `AccountStore.activate` does, `Account.touch`, then
//! `Account.record_interaction` with `ActorSketch.add`, `Account.record_post` or
//! `Account.record_followers`), the outcome count and, for an interaction,
//! `PartitionState.route_interaction`, on the same Python objects (their slots read and
//! written in place, as the codec in lib.rs does). A record that `decode_wire` leaves to
//! Python (invalid messages, unusual forms) goes to the `otherwise` callback in its
//! place. The rarer steps are the Python methods, called from here: an account not hot
//! (`Engine._account_for`), a post past the account's cap or an interaction's new post
//! (`Account._new_post`), a new sketch bucket, a follower count out of order or one that
//! thins the history (`Account.record_followers`), the dedupe memory over its cap
//! (`Engine._forget_oldest_event_ids`). The Python engine is the reference;
//! tests/unit/test_native_fold.py folds random streams both ways and compares the states
//! byte for byte.

use std::time::{Duration, Instant};

use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};

use crate::dedupe::{event_id_hash, EventIdsCore};
use crate::packed::{PackedAccount, Settings as PackedSettings};
use crate::patch::{self, Interaction};
use crate::records::FetchedRecords;
use crate::routes::InteractionBatch;
use crate::table::{AccountTable, Found};
use crate::wire::{decode_wire, EventKind, WireEvent};
use crate::{
    account_slot, allocate, post_slot, sketch_slot, Layout, ACCOUNT_SLOTS, POST_SLOTS, SKETCH_SLOTS,
};

const DEDUPE_BUCKET_S: f64 = 3_600.0;
const RHYTHM_BINS: i64 = 8;
const RHYTHM_BIN_S: f64 = 86_400.0 / RHYTHM_BINS as f64;
const HEAVY_HITTER_CAPACITY: usize = 32;
const MAX_PENDING_TIMES: usize = 256;
/// account.FOLLOWER_HISTORY_LIMIT
const FOLLOWER_HISTORY_LIMIT: usize = 64;
const HLL_PRECISION: u32 = 8;
const REMAINING_BITS: u32 = 64 - HLL_PRECISION;
/// engine.EVENT_LAG_BUCKETS_S
const EVENT_LAG_BUCKETS_S: [f64; 10] = [
    1.0,
    60.0,
    600.0,
    3_600.0,
    6.0 * 3_600.0,
    86_400.0,
    3.0 * 86_400.0,
    7.0 * 86_400.0,
    14.0 * 86_400.0,
    30.0 * 86_400.0,
];
const LAG_BUCKETS: usize = EVENT_LAG_BUCKETS_S.len() + 1;
/// How often the loop looks at the clock (the consumer's YIELD_CHECK_RECORDS).
const YIELD_CHECK_RECORDS: usize = 32;

// Outcomes as `Fold.fold` counts them: index kind * 3 + outcome, the kinds like,
// comment, share, post, followers (engine.FOLD_OUTCOMES).
const KINDS: usize = 5;
const COUNTED: usize = 0;
const DUPLICATE: usize = 1;
const LATE: usize = 2;

/// Python's `a // b` for floats (`float_floor_div`), which is not always `floor(a / b)`:
/// where `a / b` rounds up to a whole number, Python's is one less.
#[inline]
pub(crate) fn python_floor_div(vx: f64, wx: f64) -> f64 {
    let remainder = vx % wx; // C's fmod
    let mut div = (vx - remainder) / wx;
    if remainder != 0.0 && (wx < 0.0) != (remainder < 0.0) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floored = div.floor();
        if div - floored > 0.5 {
            floored += 1.0;
        }
        floored
    } else {
        0.0f64.copysign(vx / wx)
    }
}

/// `int(a // b)` for the finite, moderate values of event times. The quotient's rounding
/// error is far below 1e-6 there, so a quotient that far from a whole number has the
/// floor Python gives; nearer, Python's own steps decide (fmod is the costly one).
#[inline]
fn floor_index(vx: f64, wx: f64) -> i64 {
    let quotient = vx / wx;
    let floored = quotient.floor();
    let fraction = quotient - floored;
    if quotient.abs() < 1e12 && fraction > 1e-6 && fraction < 1.0 - 1e-6 {
        return floored as i64;
    }
    python_floor_div(vx, wx) as i64
}

/// A str of the id's bytes: ASCII (all that the decoder accepts) without UTF-8 decoding.
#[inline]
fn id_string<'py>(py: Python<'py>, text: &str) -> PyResult<Bound<'py, PyString>> {
    if !text.is_ascii() {
        return Ok(PyString::new(py, text));
    }
    crate::wire::ascii_string(py, text)
}

/// `sketches.actor_hash`: blake2b with an 8-byte digest, read little-endian. blake2b_simd
/// rather than RustCrypto's blake2: 150 against 180 ns for an id like "fan-123456".
pub(crate) fn actor_hash(actor_id: &str) -> u64 {
    let digest = blake2b_simd::Params::new().hash_length(8).hash(actor_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(digest.as_bytes());
    u64::from_le_bytes(bytes)
}

/// `sketches.hll_add` on a bytearray of 256 registers.
fn hll_add(registers: &Bound<'_, PyByteArray>, hashed: u64) {
    let index = (hashed >> REMAINING_BITS) as usize;
    let remaining = hashed & ((1u64 << REMAINING_BITS) - 1);
    let bit_length = 64 - remaining.leading_zeros();
    let rank = (REMAINING_BITS - bit_length + 1) as u8;
    // No Python code runs while the slice is held.
    let bytes = unsafe { registers.as_bytes_mut() };
    if let Some(register) = bytes.get_mut(index) {
        if rank > *register {
            *register = rank;
        }
    }
}

/// The engine-wide numbers the loop keeps in locals: read from the Python objects when
/// a call starts, written back when it ends and around every call into Python code that
/// may read or change them.
struct Scalars {
    changes: i64,
    event_ids: i64,
    stream_time: f64,
    floor_hour: i64,
    late_after_forgetting: i64, // added since the last flush
    lag_counts: [i64; LAG_BUCKETS], // likewise
    lag_sum: f64,
    /// Whether anything above changed since the last load or flush.
    dirty: bool,
}

/// The objects of one call.
struct Context<'py> {
    engine: Bound<'py, PyAny>,
    stats: Bound<'py, PyAny>,
    clock: Bound<'py, PyAny>,
    event_ids: Bound<'py, PyAny>,
    /// The compiled dedupe memory behind `event_ids` (EventIds.core), unless the
    /// reference serves.
    core: Option<Bound<'py, EventIdsCore>>,
    /// The engine's store (`CompiledAccountStore`).
    accounts: Bound<'py, AccountTable>,
    routes: Bound<'py, PyDict>,
    partition: Bound<'py, PyAny>,
    /// The partition as a packed account's header holds it.
    partition_number: u32,
}

impl<'py> Context<'py> {
    fn load(&self) -> PyResult<Scalars> {
        let py = self.engine.py();
        Ok(Scalars {
            changes: self.engine.getattr(intern!(py, "changes"))?.extract()?,
            event_ids: self.engine.getattr(intern!(py, "_event_ids"))?.extract()?,
            stream_time: self.clock.getattr(intern!(py, "stream_time"))?.extract()?,
            floor_hour: match &self.core {
                Some(core) => core.borrow().floor_hour(),
                None => self.event_ids.getattr(intern!(py, "floor_hour"))?.extract()?,
            },
            late_after_forgetting: 0,
            lag_counts: [0; LAG_BUCKETS],
            lag_sum: self.stats.getattr(intern!(py, "event_lag_sum_s"))?.extract()?,
            dirty: false,
        })
    }

    fn flush(&self, scalars: &mut Scalars) -> PyResult<()> {
        if !scalars.dirty {
            return Ok(());
        }
        scalars.dirty = false;
        let py = self.engine.py();
        self.engine.setattr(intern!(py, "changes"), scalars.changes)?;
        self.engine.setattr(intern!(py, "_event_ids"), scalars.event_ids)?;
        self.clock.setattr(intern!(py, "stream_time"), scalars.stream_time)?;
        if scalars.late_after_forgetting != 0 {
            let name = intern!(py, "late_after_forgetting");
            let before: i64 = self.stats.getattr(name)?.extract()?;
            self.stats.setattr(name, before + scalars.late_after_forgetting)?;
            scalars.late_after_forgetting = 0;
        }
        let counts = self.stats.getattr(intern!(py, "event_lag_counts"))?;
        let counts = counts.cast::<PyList>()?;
        for (index, added) in scalars.lag_counts.iter_mut().enumerate() {
            if *added != 0 {
                let before: i64 = counts.get_item(index)?.extract()?;
                counts.set_item(index, before + *added)?;
                *added = 0;
            }
        }
        self.stats.setattr(intern!(py, "event_lag_sum_s"), scalars.lag_sum)?;
        Ok(())
    }
}

/// The batch fold of one engine (`Engine.fold_records`): its configuration and how it
/// reaches the fields of the engine's classes.
#[pyclass(frozen)]
pub(crate) struct Fold {
    account: Layout,
    post: Layout,
    sketch: Layout,
    horizon_s: f64,
    actor_bucket_s: f64,
    burst_window_s: f64,
    max_posts: i64,
    max_event_ids: i64,
    /// account.shared_topics
    shared_topics: Py<PyAny>,
}

enum Step {
    Folded,
    /// Python decides this record.
    Stop,
}

#[pymethods]
impl Fold {
    #[new]
    #[pyo3(signature = (account, post, sketch, horizon_s, actor_bucket_s,
                        burst_window_s, max_posts, max_event_ids, shared_topics, /))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        account: &Bound<'_, PyAny>,
        post: &Bound<'_, PyAny>,
        sketch: &Bound<'_, PyAny>,
        horizon_s: f64,
        actor_bucket_s: f64,
        burst_window_s: f64,
        max_posts: i64,
        max_event_ids: i64,
        shared_topics: Py<PyAny>,
    ) -> PyResult<Self> {
        Ok(Fold {
            account: Layout::new(account, &ACCOUNT_SLOTS)?,
            post: Layout::new(post, &POST_SLOTS)?,
            sketch: Layout::new(sketch, &SKETCH_SLOTS)?,
            horizon_s,
            actor_bucket_s,
            burst_window_s,
            max_posts,
            max_event_ids,
            shared_topics,
        })
    }

    /// Folds `records[start:]` until the end or (checked every YIELD_CHECK_RECORDS
    /// records) `budget_s` of time spent; returns the index of the first record not
    /// folded. A record it does not fold alone goes to `otherwise` (Python's fold of one
    /// record), with the engine's numbers written back before and read again after.
    /// Outcomes are added to `outcomes` (kind * 3 + counted/duplicate/late).
    #[pyo3(signature = (engine, clock, accounts, records, start, partition, routes,
                        partitions, now, max_event_bytes, max_future_skew_s, budget_s,
                        outcomes, otherwise, /))]
    #[allow(clippy::too_many_arguments)]
    fn fold<'py>(
        &self,
        py: Python<'py>,
        engine: &Bound<'py, PyAny>,
        clock: &Bound<'py, PyAny>,
        accounts: &Bound<'py, PyAny>,
        records: &Bound<'py, PyAny>,
        start: usize,
        partition: &Bound<'py, PyAny>,
        routes: &Bound<'py, PyDict>,
        partitions: u64,
        now: f64,
        max_event_bytes: usize,
        max_future_skew_s: f64,
        budget_s: f64,
        outcomes: &Bound<'py, PyList>,
        otherwise: &Bound<'py, PyAny>,
    ) -> PyResult<usize> {
        let event_ids = clock.getattr(intern!(py, "event_ids"))?;
        let core = event_ids.getattr(intern!(py, "core"))?.cast_into::<EventIdsCore>().ok();
        let context = Context {
            engine: engine.clone(),
            stats: engine.getattr(intern!(py, "stats"))?,
            clock: clock.clone(),
            event_ids,
            core,
            accounts: accounts.cast::<AccountTable>()?.clone(),
            routes: routes.clone(),
            partition: partition.clone(),
            partition_number: partition.extract()?,
        };
        let mut scalars = context.load()?;
        let mut counts = [0i64; KINDS * 3];
        let started = Instant::now();
        let budget = Duration::from_secs_f64(budget_s.max(0.0));
        // A fetch read in place (records.rs), or a sequence of records with `key` and
        // `value`.
        let fetched = records.cast::<FetchedRecords>().ok().map(|fetched| fetched.get());
        let total = match &fetched {
            Some(fetched) => fetched.len(),
            None => records.len()?,
        };
        let mut index = start;
        let outcome = (|| -> PyResult<()> {
            while index < total {
                if (index - start) % YIELD_CHECK_RECORDS == YIELD_CHECK_RECORDS - 1
                    && started.elapsed() > budget
                {
                    return Ok(());
                }
                let step = match &fetched {
                    Some(fetched) => {
                        let (key, value) = fetched.key_value(py, index);
                        match value {
                            Some(value) => self.fold_one(
                                &context, &mut scalars, &mut counts, key, value,
                                partitions, now, max_event_bytes, max_future_skew_s,
                            )?,
                            None => Step::Stop,
                        }
                    }
                    None => {
                        let record = records.get_item(index)?;
                        match key_value(&record)? {
                            Some((key, value)) => self.fold_one(
                                &context, &mut scalars, &mut counts,
                                key.as_ref().map(|key| key.as_bytes()), value.as_bytes(),
                                partitions, now, max_event_bytes, max_future_skew_s,
                            )?,
                            None => Step::Stop,
                        }
                    }
                };
                if let Step::Stop = step {
                    context.flush(&mut scalars)?;
                    match &fetched {
                        Some(fetched) => otherwise.call1((fetched.record(py, index)?,))?,
                        None => otherwise.call1((records.get_item(index)?,))?,
                    };
                    scalars = context.load()?;
                }
                index += 1;
            }
            Ok(())
        })();
        // Written back whatever happened: what was folded stays folded.
        let flushed = context.flush(&mut scalars);
        for (slot, added) in counts.iter().enumerate() {
            if *added != 0 {
                let before: i64 = outcomes.get_item(slot)?.extract()?;
                outcomes.set_item(slot, before + *added)?;
            }
        }
        outcome?;
        flushed?;
        Ok(index)
    }
}

/// A listed record's key (bytes or None) and value (bytes); None for any other form,
/// which Python decides (a tombstone goes to the dead-letter topic).
#[allow(clippy::type_complexity)]
fn key_value<'py>(record: &Bound<'py, PyAny>
) -> PyResult<Option<(Option<Bound<'py, PyBytes>>, Bound<'py, PyBytes>)>> {
    let py = record.py();
    let Ok(value) = record.getattr(intern!(py, "value"))?.cast_into::<PyBytes>() else {
        return Ok(None);
    };
    let key = record.getattr(intern!(py, "key"))?;
    if key.is_none() {
        return Ok(Some((None, value)));
    }
    Ok(key.cast_into::<PyBytes>().ok().map(|key| (Some(key), value)))
}

impl Fold {
    #[allow(clippy::too_many_arguments)]
    fn fold_one<'py>(
        &self,
        context: &Context<'py>,
        scalars: &mut Scalars,
        counts: &mut [i64; KINDS * 3],
        key: Option<&[u8]>,
        value: &[u8],
        partitions: u64,
        now: f64,
        max_event_bytes: usize,
        max_future_skew_s: f64,
    ) -> PyResult<Step> {
        let py = context.engine.py();
        let Some(wire) = decode_wire(key, value, now, max_event_bytes, max_future_skew_s) else {
            return Ok(Step::Stop);
        };
        let kind = match wire.kind {
            EventKind::Like => 0,
            EventKind::Comment => 1,
            EventKind::Share => 2,
            EventKind::Post => 3,
            EventKind::Followers => 4,
        };
        let occurred_at = wire.occurred_at_s;
        scalars.dirty = true;

        // Engine.apply
        if occurred_at < scalars.stream_time - self.horizon_s {
            counts[kind * 3 + LATE] += 1;
            return Ok(Step::Folded);
        }
        let hour = floor_index(occurred_at, DEDUPE_BUCKET_S);
        if hour < scalars.floor_hour {
            scalars.late_after_forgetting += 1;
            counts[kind * 3 + LATE] += 1;
            return Ok(Step::Folded);
        }
        if !self.remember(context, hour, wire.event_id)? {
            counts[kind * 3 + DUPLICATE] += 1;
            return Ok(Step::Folded);
        }
        scalars.event_ids += 1;
        if scalars.event_ids > self.max_event_ids {
            context.flush(scalars)?;
            context.engine.call_method1(intern!(py, "_forget_oldest_event_ids"), (hour,))?;
            *scalars = context.load()?;
            scalars.dirty = true;
        }
        if occurred_at > scalars.stream_time {
            scalars.stream_time = occurred_at;
        }
        let lag = scalars.stream_time - occurred_at;
        if lag < EVENT_LAG_BUCKETS_S[0] {
            scalars.lag_counts[0] += 1;
        } else {
            // bisect_left
            let bucket = EVENT_LAG_BUCKETS_S.partition_point(|bound| *bound < lag);
            scalars.lag_counts[bucket] += 1;
        }
        scalars.lag_sum += lag;

        let actor = match wire.kind {
            EventKind::Like | EventKind::Comment | EventKind::Share => Some(actor_hash(wire.actor_id)),
            EventKind::Post | EventKind::Followers => None,
        };
        let found = context.accounts.borrow().lookup(py, wire.account_id.as_bytes());
        if let Found::Packed(at) = found {
            // AccountStore.activate of a packed account within its allowance: the event
            // folded into its bytes, a new object in the same slot.
            let mut table = context.accounts.borrow_mut();
            if table.packed_fold_within(py, at) {
                let mut written = table.scratch();
                let version = scalars.changes + 1;
                if self.fold_packed(table.packed_bytes(py, at), &wire, kind, actor, version, context.partition_number, &mut written) {
                    scalars.changes = version;
                    table.store_packed_fold(py, at, written);
                    table.activity(at);
                    drop(table);
                    counts[kind * 3 + COUNTED] += 1;
                    if let Some(actor) = actor {
                        self.route(context, actor % partitions, actor, wire.account_id, occurred_at)?;
                    }
                    return Ok(Step::Folded);
                }
                table.give_back_scratch(written);
            }
        }
        let (account, stays_packed) = self.activate(context, scalars, found, wire.account_id)?;
        scalars.changes += 1;
        let layout = &self.account;
        let fields = layout.offsets_for(&account);
        // Account.touch
        layout.set(&account, fields, account_slot::VERSION, scalars.changes.into_pyobject(py)?.into_any())?;
        let last_event_at: f64 = layout.get(&account, fields, account_slot::LAST_EVENT_AT)?.extract()?;
        if occurred_at > last_event_at {
            layout.set(&account, fields, account_slot::LAST_EVENT_AT, PyFloat::new(py, occurred_at).into_any())?;
        }
        counts[kind * 3 + COUNTED] += 1;
        match (wire.kind, actor) {
            (EventKind::Post, _) => {
                let post_id = id_string(py, wire.post_id)?;
                self.record_post(&account, fields, &post_id, occurred_at, wire.sponsored, wire.topics())?;
            }
            (EventKind::Followers, _) => {
                self.record_followers(&account, fields, occurred_at, wire.followers)?;
            }
            (_, Some(actor)) => {
                let actor_object = actor.into_pyobject(py)?.into_any();
                let post_id = id_string(py, wire.post_id)?;
                self.record_interaction(&account, fields, kind, &post_id, occurred_at, &actor_object, actor)?;
            }
            (_, None) => unreachable!("an interaction has its actor's hash"),
        }
        if stays_packed {
            context.accounts.call_method1(intern!(py, "put_back"), (&account,))?;
        }
        if let Some(actor) = actor {
            // PartitionState.route_interaction
            self.route(context, actor % partitions, actor, wire.account_id, occurred_at)?;
        }
        Ok(Step::Folded)
    }

    /// The event folded into a packed account's bytes (packed.rs), or None if they are
    /// not in the layout the compiled fold knows.
    fn fold_packed(
        &self,
        packed: &[u8],
        wire: &WireEvent<'_>,
        kind: usize,
        actor: Option<u64>,
        version: i64,
        partition: u32,
        written: &mut Vec<u8>,
    ) -> bool {
        let Ok(version) = u64::try_from(version) else { return false };
        let occurred_at = wire.occurred_at_s;
        let settings = PackedSettings { burst_window_s: self.burst_window_s, max_posts: self.max_posts };
        let interaction = actor.map(|actor| Interaction {
            kind,
            post_id: wire.post_id,
            occurred_at,
            actor,
            actor_bucket: floor_index(occurred_at, self.actor_bucket_s),
            rhythm_bin: floor_index(occurred_at, RHYTHM_BIN_S).rem_euclid(RHYTHM_BINS) as usize,
        });
        if let Some(interaction) = &interaction {
            // Most events: an interaction on a known post and bucket, rewritten in place.
            if patch::fold_interaction(packed, interaction, &settings, partition, version, written).is_some() {
                return true;
            }
        }
        let Some(mut account) = PackedAccount::read(packed) else { return false };
        account.touch(occurred_at);
        match (wire.kind, interaction) {
            (EventKind::Post, _) => {
                account.record_post(&settings, wire.post_id, occurred_at, wire.sponsored, wire.topics());
            }
            (EventKind::Followers, _) => account.record_followers(occurred_at, wire.followers),
            (_, Some(interaction)) => {
                if !account.record_interaction(&settings, &interaction) {
                    return false;
                }
            }
            (_, None) => return false,
        }
        account.write_into(written, partition, version);
        true
    }

    /// EventIds.add.
    fn remember(&self, context: &Context<'_>, hour: i64, event_id: &str) -> PyResult<bool> {
        if let Some(core) = &context.core {
            return Ok(core.borrow_mut().add_hashed(hour, event_id_hash(event_id)));
        }
        let py = context.engine.py();
        context
            .event_ids
            .call_method1(intern!(py, "add"), (hour, event_id))?
            .extract()
    }

    /// Engine._account_for: AccountStore.activate for a hot account, else the Python.
    /// Returns the account and whether it stays packed (`AccountStore.put_back` once the
    /// event is folded).
    fn activate<'py>(
        &self,
        context: &Context<'py>,
        scalars: &mut Scalars,
        found: Found,
        account_id: &str,
    ) -> PyResult<(Bound<'py, PyAny>, bool)> {
        let py = context.engine.py();
        if let Found::Hot(at) = found {
            let mut table = context.accounts.borrow_mut();
            if let Some(held) = table.hot_account(py, at).filter(|held| held.get_type().is(self.account.class.bind(py))) {
                table.count_fold(at);
                table.activity(at); // now the most recently active of its shard
                table.used(at);
                drop(table);
                let fields = self.account.offsets_for(&held);
                self.account.set(&held, fields, account_slot::PARTITION, context.partition.clone())?;
                return Ok((held, false));
            }
        }
        let account_id = id_string(py, account_id)?;
        // Packed or new: unpacked, or created (and another account evicted at the cap).
        context.flush(scalars)?;
        let (account, stays_packed): (Bound<'py, PyAny>, bool) = context
            .engine
            .call_method1(intern!(py, "_account_for"), (&account_id, &context.partition))?
            .extract()?;
        *scalars = context.load()?;
        scalars.dirty = true;
        Ok((account, stays_packed))
    }

    /// Account.record_post: a post new to a hot account with room for it, or one that
    /// interactions arrived for first, here; a post past the cap through Python's
    /// `_new_post` (it evicts the oldest).
    fn record_post<'py>(
        &self,
        account: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        post_id: &Bound<'py, PyString>,
        occurred_at: f64,
        sponsored: bool,
        topics: &[&str],
    ) -> PyResult<()> {
        let py = account.py();
        let layout = &self.post;
        let posts = self.account.get(account, fields, account_slot::POSTS)?;
        let posts = posts.cast::<PyDict>()?;
        let moment = PyFloat::new(py, occurred_at).into_any();
        let post = match posts.get_item(post_id)? {
            Some(post) => {
                if !layout.get(&post, layout.offsets_for(&post), post_slot::POSTED_AT)?.is_none() {
                    return Ok(()); // announced twice under different event ids: the first stays
                }
                post
            }
            None if layout.direct() && (posts.len() as i64) < self.max_posts => {
                // Post(occurred_at), its slots set here.
                let post = allocate(layout.class.bind(py))?;
                let post_fields = layout.offsets_for(&post);
                let zero = 0i64.into_pyobject(py)?.into_any();
                layout.set(&post, post_fields, post_slot::FIRST_SEEN_AT, moment.clone())?;
                for counter in [post_slot::LIKES, post_slot::COMMENTS, post_slot::SHARES, post_slot::EARLY] {
                    layout.set(&post, post_fields, counter, zero.clone())?;
                }
                layout.set(&post, post_fields, post_slot::PENDING, py.None().into_bound(py))?;
                posts.set_item(post_id, &post)?;
                post
            }
            None => account.call_method1(
                intern!(py, "_new_post"),
                (post_id, occurred_at, self.max_posts),
            )?,
        };
        let post_fields = layout.offsets_for(&post);
        layout.set(&post, post_fields, post_slot::POSTED_AT, moment)?;
        layout.set(&post, post_fields, post_slot::SPONSORED, PyBool::new(py, sponsored).to_owned().into_any())?;
        let topics = PyTuple::new(py, topics.iter().map(|topic| id_string(py, topic)).collect::<PyResult<Vec<_>>>()?)?;
        layout.set(&post, post_fields, post_slot::TOPICS, self.shared_topics.bind(py).call1((topics,))?)?;
        let pending = layout.get(&post, post_fields, post_slot::PENDING)?;
        if !pending.is_none() {
            let pending = pending.cast::<PyList>()?;
            if !pending.is_empty() {
                let mut early = 0i64;
                for seen in pending.iter() {
                    if seen.extract::<f64>()? - occurred_at <= self.burst_window_s {
                        early += 1;
                    }
                }
                layout.set(&post, post_fields, post_slot::EARLY, early.into_pyobject(py)?.into_any())?;
            }
            layout.set(&post, post_fields, post_slot::PENDING, py.None().into_bound(py))?;
        }
        Ok(())
    }

    /// Account.record_followers: a count appended in order to a history with room, here;
    /// one out of order, or one that makes the history thin its oldest half, Python's.
    fn record_followers<'py>(
        &self,
        account: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        occurred_at: f64,
        followers: i64,
    ) -> PyResult<()> {
        let py = account.py();
        let history = self.account.get(account, fields, account_slot::FOLLOWERS)?;
        let history = history.cast::<PyList>()?;
        let length = history.len();
        // (occurred_at, followers) >= history[-1], as tuples compare.
        let in_order = length == 0
            || match history.get_item(length - 1)?.extract::<(f64, i64)>() {
                Ok((last_at, last_count)) => {
                    occurred_at > last_at || (occurred_at == last_at && followers >= last_count)
                }
                Err(_) => false, // not a pair of a float and a 64-bit count: Python's
            };
        if in_order && length < FOLLOWER_HISTORY_LIMIT {
            let entry = PyTuple::new(
                py,
                [PyFloat::new(py, occurred_at).into_any(), followers.into_pyobject(py)?.into_any()],
            )?;
            return history.append(entry);
        }
        account.call_method1(intern!(py, "record_followers"), (occurred_at, followers))?;
        Ok(())
    }

    /// Account.record_interaction; the common case here, the rest in Python.
    fn record_interaction<'py>(
        &self,
        account: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        kind: usize,
        post_id: &Bound<'py, PyString>,
        occurred_at: f64,
        actor: &Bound<'py, PyAny>,
        hashed: u64,
    ) -> PyResult<()> {
        let py = account.py();
        let bucket = floor_index(occurred_at, self.actor_bucket_s);
        let posts = self.account.get(account, fields, account_slot::POSTS)?;
        let post = match posts.cast::<PyDict>()?.get_item(post_id)? {
            Some(post) => post,
            // A new post (and the oldest one evicted at the cap): Python's.
            None => account.call_method1(
                intern!(py, "_new_post"),
                (post_id, occurred_at, self.max_posts),
            )?,
        };

        let layout = &self.post;
        let post_fields = layout.offsets_for(&post);
        let counter = [post_slot::LIKES, post_slot::COMMENTS, post_slot::SHARES][kind];
        increment(layout, &post, post_fields, counter)?;
        let posted_at = layout.get(&post, post_fields, post_slot::POSTED_AT)?;
        if posted_at.is_none() {
            let pending = layout.get(&post, post_fields, post_slot::PENDING)?;
            let pending = if pending.is_none() {
                let list = PyList::empty(py);
                layout.set(&post, post_fields, post_slot::PENDING, list.clone().into_any())?;
                list
            } else {
                pending.cast_into::<PyList>()?
            };
            if pending.len() < MAX_PENDING_TIMES {
                pending.append(occurred_at)?;
            }
        } else {
            let posted_at: f64 = posted_at.extract()?;
            if occurred_at - posted_at <= self.burst_window_s {
                increment(layout, &post, post_fields, post_slot::EARLY)?;
            }
        }

        let sketch = match self.sketch_for(account, fields, bucket)? {
            Some(sketch) => sketch,
            // A new bucket: Python's (a sketch inserted in bucket order).
            None => account.call_method1(intern!(py, "_sketch_for"), (bucket,))?,
        };
        let layout = &self.sketch;
        let sketch_fields = layout.offsets_for(&sketch);
        self.sketch_add(&sketch, sketch_fields, actor, hashed)?;
        let rhythm = layout.get(&sketch, sketch_fields, sketch_slot::RHYTHM)?;
        let rhythm = rhythm.cast::<PyList>()?;
        let bin = floor_index(occurred_at, RHYTHM_BIN_S).rem_euclid(RHYTHM_BINS) as usize;
        let before: i64 = rhythm.get_item(bin)?.extract()?;
        rhythm.set_item(bin, before + 1)?;
        Ok(())
    }

    /// ActorSketch.add: exact while it has room, then Space-Saving and HyperLogLog.
    fn sketch_add<'py>(
        &self,
        sketch: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        actor: &Bound<'py, PyAny>,
        hashed: u64,
    ) -> PyResult<()> {
        let py = sketch.py();
        let layout = &self.sketch;
        increment(layout, sketch, fields, sketch_slot::INTERACTIONS)?;
        let counts = layout.get(sketch, fields, sketch_slot::COUNTS)?;
        let counts = counts.cast::<PyDict>()?;
        if let Some(seen) = counts.get_item(actor)? {
            let seen: i64 = seen.extract()?;
            return counts.set_item(actor, seen + 1);
        }
        let registers = layout.get(sketch, fields, sketch_slot::REGISTERS)?;
        if counts.len() < HEAVY_HITTER_CAPACITY {
            counts.set_item(actor, 1)?;
            if !registers.is_none() {
                hll_add(registers.cast::<PyByteArray>()?, hashed);
            }
            return Ok(());
        }
        let registers = if registers.is_none() {
            let fresh = PyByteArray::new(py, &[0u8; 1 << HLL_PRECISION]);
            for known in counts.keys().iter() {
                hll_add(&fresh, known.extract()?);
            }
            layout.set(sketch, fields, sketch_slot::REGISTERS, fresh.clone().into_any())?;
            fresh
        } else {
            registers.cast_into::<PyByteArray>()?
        };
        hll_add(&registers, hashed);
        let errors = layout.get(sketch, fields, sketch_slot::ERRORS)?;
        let errors = if errors.is_none() {
            let fresh = PyDict::new(py);
            layout.set(sketch, fields, sketch_slot::ERRORS, fresh.clone().into_any())?;
            fresh
        } else {
            errors.cast_into::<PyDict>()?
        };
        let victim = self.first_at_floor(sketch, fields, counts)?;
        let floor: i64 = counts.get_item(&victim)?.expect("the victim is counted").extract()?;
        counts.del_item(&victim)?;
        if errors.contains(&victim)? {
            errors.del_item(&victim)?;
        }
        counts.set_item(actor, floor + 1)?;
        errors.set_item(actor, floor)?;
        Ok(())
    }

    /// ActorSketch._first_at_floor: the first actor (in the order of `counts`) with the
    /// smallest count, from the list of those at the floor, rebuilt when used up.
    fn first_at_floor<'py>(
        &self,
        sketch: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        counts: &Bound<'py, PyDict>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = sketch.py();
        let layout = &self.sketch;
        let at_floor = layout.get(sketch, fields, sketch_slot::AT_FLOOR)?;
        let at_floor = if at_floor.is_none() {
            let fresh = PyList::empty(py);
            layout.set(sketch, fields, sketch_slot::AT_FLOOR, fresh.clone().into_any())?;
            fresh
        } else {
            at_floor.cast_into::<PyList>()?
        };
        let floor: i64 = layout.get(sketch, fields, sketch_slot::FLOOR)?.extract()?;
        while !at_floor.is_empty() {
            let last = at_floor.len() - 1;
            let candidate = at_floor.get_item(last)?;
            at_floor.del_item(last)?;
            if let Some(count) = counts.get_item(&candidate)? {
                if count.extract::<i64>()? == floor {
                    return Ok(candidate);
                }
            }
        }
        let mut floor = i64::MAX;
        for count in counts.values().iter() {
            floor = floor.min(count.extract()?);
        }
        layout.set(sketch, fields, sketch_slot::FLOOR, floor.into_pyobject(py)?.into_any())?;
        // Those at the floor, reversed: the first one is popped first.
        let mut found = Vec::new();
        for (actor, count) in counts.iter() {
            if count.extract::<i64>()? == floor {
                found.push(actor);
            }
        }
        for actor in found.into_iter().rev() {
            at_floor.append(actor)?;
        }
        let last = at_floor.len() - 1;
        let victim = at_floor.get_item(last)?;
        at_floor.del_item(last)?;
        Ok(victim)
    }

    /// Account._sketch_for without creating one: the newest sketch of the bucket.
    fn sketch_for<'py>(
        &self,
        account: &Bound<'py, PyAny>,
        fields: Option<&[isize]>,
        bucket: i64,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let actors = self.account.get(account, fields, account_slot::ACTORS)?;
        let actors = actors.cast::<PyList>()?;
        for position in (0..actors.len()).rev() {
            let sketch = actors.get_item(position)?;
            let sketch_fields = self.sketch.offsets_for(&sketch);
            let known: i64 = self.sketch.get(&sketch, sketch_fields, sketch_slot::BUCKET)?.extract()?;
            if known == bucket {
                return Ok(Some(sketch));
            }
        }
        Ok(None)
    }

    /// InteractionBatch.add on the batch of the actor's repartition partition: the
    /// compiled batch (routes.rs) unless Python's code put another one there.
    fn route(&self, context: &Context<'_>, target: u64, actor: u64, account_id: &str, occurred_at: f64) -> PyResult<()> {
        let py = context.engine.py();
        match context.routes.get_item(target)? {
            Some(batch) => match batch.cast::<InteractionBatch>() {
                Ok(compiled) => compiled.borrow_mut().add_id(actor, account_id, occurred_at),
                Err(_) => batch.call_method1(intern!(py, "add"), (actor, account_id, occurred_at)).map(drop),
            },
            None => {
                let mut batch = InteractionBatch::default();
                batch.add_id(actor, account_id, occurred_at)?;
                context.routes.set_item(target, Bound::new(py, batch)?)
            }
        }
    }
}

/// `object.field += 1` for an int field.
#[inline]
fn increment(layout: &Layout, object: &Bound<'_, PyAny>, fields: Option<&[isize]>, field: usize) -> PyResult<()> {
    let before: i64 = layout.get(object, fields, field)?.extract()?;
    layout.set(object, fields, field, (before + 1).into_pyobject(object.py())?.into_any())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crate::actors::crc32(b"hello"), 0x3610_a686);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn floor_div_is_pythons() {
        assert_eq!(python_floor_div(7.0, 2.0), 3.0);
        assert_eq!(python_floor_div(-7.0, 2.0), -4.0);
        assert_eq!(python_floor_div(1_700_000_000.5, 3_600.0), 472_222.0);
    }
}
