//! The packed-account codec of `service/engine/packing.py`, compiled.
//!
//! `packing.pack_reference` and `packing.unpack_reference` are the specification: the
//! same account packs to the same bytes (a fixed header, then what `msgpack.packb` writes
//! for the account's fields) and unpacks to an equal account. The Python objects are
//! instances of their own classes (passed to `Codec`): while a class has exactly the slots
//! the codec knows, their fields are read and written at their offsets and instances are
//! allocated without `__init__`; a class that gains a field is built through its
//! `__init__`, so the field is there after unpacking too (`Layout`). The tests compare
//! both directions against the reference on generated accounts
//! (tests/unit/test_packing_native.py); the figures are in docs/benchmarks.md, "The cliff
//! past the hot set, session 6".
//!
//! The actor side of the audience signal (`audience.ActorActivity`'s core) is in
//! actors.rs, the dedupe memory (`dedupe.EventIds`' core) in dedupe.rs, the decoder of
//! one interaction message in wire.rs, and the batch fold of a partition's records
//! (`Engine.fold_records`) in fold.rs.

// The extension's own allocations (a packed account read and written per event, the
// batches' tables) go to mimalloc: glibc's malloc and free were ~7% of the wide fold
// (docs/benchmarks.md, "Session 15"). Counted, so that tests and benches can still tell
// what the compiled cores hold (`allocated_bytes`), as glibc's mallinfo did.
struct CountedMimalloc;

static ALLOCATED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe impl std::alloc::GlobalAlloc for CountedMimalloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        let at = mimalloc::MiMalloc.alloc(layout);
        if !at.is_null() {
            ALLOCATED.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        at
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        let at = mimalloc::MiMalloc.alloc_zeroed(layout);
        if !at.is_null() {
            ALLOCATED.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        at
    }

    unsafe fn dealloc(&self, at: *mut u8, layout: std::alloc::Layout) {
        mimalloc::MiMalloc.dealloc(at, layout);
        ALLOCATED.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
    }

    unsafe fn realloc(&self, at: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let moved = mimalloc::MiMalloc.realloc(at, layout, new_size);
        if !moved.is_null() {
            ALLOCATED.fetch_add(new_size, std::sync::atomic::Ordering::Relaxed);
            ALLOCATED.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        }
        moved
    }
}

#[global_allocator]
static GLOBAL: CountedMimalloc = CountedMimalloc;

/// Bytes the extension's Rust code holds allocated now (as requested, before the
/// allocator's rounding).
#[pyfunction]
fn allocated_bytes() -> usize {
    ALLOCATED.load(std::sync::atomic::Ordering::Relaxed)
}


mod actors;
mod fold;
mod wire;
mod dedupe;
mod signals;
mod packed;
mod patch;
mod records;
mod batch_builder;
mod routes;
mod scoring;
mod table;

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::exceptions::{PyAttributeError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
};

/// store.ACTIVITY_SHARDS - 1: an account's activity shard is its id's CRC-32 masked.
pub(crate) const ACTIVITY_SHARD_MASK: u32 = 63;

/// partition (u32), version (u64), settled_from (f64), last_event_at (f64),
/// first_bucket (i64), last_bucket (i64): struct "<IQddqq".
const HEADER_SIZE: usize = 44;
const NO_FIRST_BUCKET: i64 = 1 << 62;
const NO_LAST_BUCKET: i64 = -(1 << 62);
const POST_FIELDS: usize = 10;

// ---------------------------------------------------------------- msgpack, writing

/// What `msgpack.packb` writes for `value` (use_bin_type, doubles, no strict types),
/// for the types an account holds.
fn write_value(out: &mut Vec<u8>, value: &Bound<'_, PyAny>) -> PyResult<()> {
    if value.is_none() {
        out.push(0xc0);
    } else if let Ok(flag) = value.cast::<PyBool>() {
        out.push(if flag.is_true() { 0xc3 } else { 0xc2 });
    } else if let Ok(number) = value.cast::<PyInt>() {
        write_int(out, number)?;
    } else if let Ok(number) = value.cast::<PyFloat>() {
        out.push(0xcb);
        out.extend_from_slice(&number.value().to_be_bytes());
    } else if let Ok(text) = value.cast::<PyString>() {
        write_str(out, text.to_str()?);
    } else if let Ok(bytes) = value.cast::<PyBytes>() {
        write_bin(out, bytes.as_bytes());
    } else if let Ok(bytes) = value.cast::<PyByteArray>() {
        write_bin(out, &bytes.to_vec());
    } else if let Ok(list) = value.cast::<PyList>() {
        write_array_header(out, list.len());
        for item in list.iter() {
            write_value(out, &item)?;
        }
    } else if let Ok(tuple) = value.cast::<PyTuple>() {
        write_array_header(out, tuple.len());
        for item in tuple.iter() {
            write_value(out, &item)?;
        }
    } else if let Ok(dict) = value.cast::<PyDict>() {
        write_map_header(out, dict.len());
        for (key, item) in dict.iter() {
            write_value(out, &key)?;
            write_value(out, &item)?;
        }
    } else {
        return Err(PyTypeError::new_err(format!(
            "can not serialize {:?} object",
            value.get_type().name()?.to_string()
        )));
    }
    Ok(())
}

fn write_int(out: &mut Vec<u8>, number: &Bound<'_, PyInt>) -> PyResult<()> {
    // Without an exception for values past i64 (half of all actor hashes): creating one
    // costs more than the rest of the value's packing.
    let mut overflow: std::os::raw::c_int = 0;
    let signed = unsafe { ffi::PyLong_AsLongLongAndOverflow(number.as_ptr(), &mut overflow) };
    if overflow == 0 {
        if signed == -1 {
            if let Some(error) = PyErr::take(number.py()) {
                return Err(error);
            }
        }
        if signed >= 0 {
            write_unsigned(out, signed as u64);
        } else {
            write_negative(out, signed);
        }
        return Ok(());
    }
    match number.extract::<u64>() {
        Ok(unsigned) if overflow > 0 => {
            write_unsigned(out, unsigned);
            Ok(())
        }
        _ => Err(PyOverflowError::new_err("Integer value out of range")),
    }
}

fn write_unsigned(out: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        out.push(value as u8);
    } else if value <= 0xff {
        out.push(0xcc);
        out.push(value as u8);
    } else if value <= 0xffff {
        out.push(0xcd);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= 0xffff_ffff {
        out.push(0xce);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(0xcf);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

fn write_negative(out: &mut Vec<u8>, value: i64) {
    if value >= -32 {
        out.push(value as i8 as u8);
    } else if value >= -128 {
        out.push(0xd0);
        out.push(value as i8 as u8);
    } else if value >= -32_768 {
        out.push(0xd1);
        out.extend_from_slice(&(value as i16).to_be_bytes());
    } else if value >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(value as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

fn write_str(out: &mut Vec<u8>, text: &str) {
    let length = text.len();
    if length < 32 {
        out.push(0xa0 | length as u8);
    } else if length <= 0xff {
        out.push(0xd9);
        out.push(length as u8);
    } else if length <= 0xffff {
        out.push(0xda);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

fn write_bin(out: &mut Vec<u8>, bytes: &[u8]) {
    let length = bytes.len();
    if length <= 0xff {
        out.push(0xc4);
        out.push(length as u8);
    } else if length <= 0xffff {
        out.push(0xc5);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0xc6);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    }
    out.extend_from_slice(bytes);
}

fn write_array_header(out: &mut Vec<u8>, length: usize) {
    if length < 16 {
        out.push(0x90 | length as u8);
    } else if length <= 0xffff {
        out.push(0xdc);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    }
}

fn write_map_header(out: &mut Vec<u8>, length: usize) {
    if length < 16 {
        out.push(0x80 | length as u8);
    } else if length <= 0xffff {
        out.push(0xde);
        out.extend_from_slice(&(length as u16).to_be_bytes());
    } else {
        out.push(0xdf);
        out.extend_from_slice(&(length as u32).to_be_bytes());
    }
}

/// A dict as the flat [key, value, key, value, ...] array that `packing._flatten` makes.
fn write_flat_dict(out: &mut Vec<u8>, dict: &Bound<'_, PyDict>) -> PyResult<()> {
    write_array_header(out, 2 * dict.len());
    for (key, value) in dict.iter() {
        write_value(out, &key)?;
        write_value(out, &value)?;
    }
    Ok(())
}

// ---------------------------------------------------------------- msgpack, reading

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated() -> PyErr {
    PyValueError::new_err("packed account is truncated")
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> PyResult<&'a [u8]> {
        let end = self.pos.checked_add(count).ok_or_else(truncated)?;
        let slice = self.buf.get(self.pos..end).ok_or_else(truncated)?;
        self.pos = end;
        Ok(slice)
    }

    fn byte(&mut self) -> PyResult<u8> {
        Ok(self.take(1)?[0])
    }

    fn be<const N: usize>(&mut self) -> PyResult<[u8; N]> {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(self.take(N)?);
        Ok(bytes)
    }

    fn peek_nil(&self) -> bool {
        self.buf.get(self.pos) == Some(&0xc0)
    }

    /// The length of the array that starts here.
    fn array_len(&mut self) -> PyResult<usize> {
        let marker = self.byte()?;
        match marker {
            0x90..=0x9f => Ok((marker & 0x0f) as usize),
            0xdc => Ok(u16::from_be_bytes(self.be()?) as usize),
            0xdd => Ok(u32::from_be_bytes(self.be()?) as usize),
            _ => Err(PyValueError::new_err("packed account: an array was expected")),
        }
    }

    /// Any value, as `msgpack.unpackb(..., use_list=True)` gives it.
    fn value<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let marker = self.byte()?;
        Ok(match marker {
            0x00..=0x7f => (marker as i64).into_pyobject(py)?.into_any(),
            0xe0..=0xff => (marker as i8 as i64).into_pyobject(py)?.into_any(),
            0xc0 => py.None().into_bound(py),
            0xc2 => PyBool::new(py, false).to_owned().into_any(),
            0xc3 => PyBool::new(py, true).to_owned().into_any(),
            0xcc => (self.byte()? as u64).into_pyobject(py)?.into_any(),
            0xcd => (u16::from_be_bytes(self.be()?) as u64).into_pyobject(py)?.into_any(),
            0xce => (u32::from_be_bytes(self.be()?) as u64).into_pyobject(py)?.into_any(),
            0xcf => u64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            0xd0 => (self.byte()? as i8 as i64).into_pyobject(py)?.into_any(),
            0xd1 => (i16::from_be_bytes(self.be()?) as i64).into_pyobject(py)?.into_any(),
            0xd2 => (i32::from_be_bytes(self.be()?) as i64).into_pyobject(py)?.into_any(),
            0xd3 => i64::from_be_bytes(self.be()?).into_pyobject(py)?.into_any(),
            0xca => PyFloat::new(py, f32::from_be_bytes(self.be()?) as f64).into_any(),
            0xcb => PyFloat::new(py, f64::from_be_bytes(self.be()?)).into_any(),
            0xa0..=0xbf => self.text(py, (marker & 0x1f) as usize)?,
            0xd9 => {
                let length = self.byte()? as usize;
                self.text(py, length)?
            }
            0xda => {
                let length = u16::from_be_bytes(self.be()?) as usize;
                self.text(py, length)?
            }
            0xdb => {
                let length = u32::from_be_bytes(self.be()?) as usize;
                self.text(py, length)?
            }
            0xc4 => {
                let length = self.byte()? as usize;
                PyBytes::new(py, self.take(length)?).into_any()
            }
            0xc5 => {
                let length = u16::from_be_bytes(self.be()?) as usize;
                PyBytes::new(py, self.take(length)?).into_any()
            }
            0xc6 => {
                let length = u32::from_be_bytes(self.be()?) as usize;
                PyBytes::new(py, self.take(length)?).into_any()
            }
            0x90..=0x9f => self.list(py, (marker & 0x0f) as usize)?,
            0xdc => {
                let length = u16::from_be_bytes(self.be()?) as usize;
                self.list(py, length)?
            }
            0xdd => {
                let length = u32::from_be_bytes(self.be()?) as usize;
                self.list(py, length)?
            }
            0x80..=0x8f => self.map(py, (marker & 0x0f) as usize)?,
            0xde => {
                let length = u16::from_be_bytes(self.be()?) as usize;
                self.map(py, length)?
            }
            0xdf => {
                let length = u32::from_be_bytes(self.be()?) as usize;
                self.map(py, length)?
            }
            _ => {
                return Err(PyValueError::new_err(format!(
                    "packed account: unexpected msgpack marker {marker:#04x}"
                )))
            }
        })
    }

    fn text<'py>(&mut self, py: Python<'py>, length: usize) -> PyResult<Bound<'py, PyAny>> {
        let bytes = self.take(length)?;
        let text = std::str::from_utf8(bytes)
            .map_err(|_| PyValueError::new_err("packed account: a string is not UTF-8"))?;
        Ok(PyString::new(py, text).into_any())
    }

    fn list<'py>(&mut self, py: Python<'py>, length: usize) -> PyResult<Bound<'py, PyAny>> {
        let list = self.sized_list(py, length)?;
        for index in 0..length {
            set_list_item(&list, index, self.value(py)?);
        }
        Ok(list.into_any())
    }

    /// A list of `length` unset items for `set_list_item` to fill: one allocation of its
    /// item array instead of the growth steps of appending. Every item takes at least a
    /// byte, so a damaged length past the bytes left is refused before allocating.
    fn sized_list<'py>(&self, py: Python<'py>, length: usize) -> PyResult<Bound<'py, PyList>> {
        if length > self.buf.len() - self.pos {
            return Err(truncated());
        }
        let length = ffi::Py_ssize_t::try_from(length).map_err(|_| truncated())?;
        // An unset item is NULL, which the list's traversal and deallocation skip, so an
        // error half-way leaves nothing unsound behind.
        let raw = unsafe { ffi::PyList_New(length) };
        Ok(unsafe { Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyList>() })
    }

    fn map<'py>(&mut self, py: Python<'py>, length: usize) -> PyResult<Bound<'py, PyAny>> {
        let dict = PyDict::new(py);
        for _ in 0..length {
            let key = self.value(py)?;
            let value = self.value(py)?;
            dict.set_item(key, value)?;
        }
        Ok(dict.into_any())
    }

    /// A flat [key, value, ...] array as a dict (`packing._unflatten`).
    fn flat_dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let length = self.array_len()?;
        if length % 2 != 0 {
            return Err(PyValueError::new_err("packed account: a counter without its count"));
        }
        // Sized for its entries at once: a sketch's ~14-32 counters would otherwise grow
        // it twice or three times (the same final size, the same order).
        let dict = presized_dict(py, length / 2)?;
        for _ in 0..length / 2 {
            let key = self.value(py)?;
            let value = self.value(py)?;
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }
}

// ---------------------------------------------------------------- reaching the fields

// The slots of `Account`, `Post` and `ActorSketch`, sorted; the modules below name their
// indices.
const ACCOUNT_SLOTS: [&str; 8] = [
    "account_id", "actors", "audience", "followers", "last_event_at", "partition", "posts",
    "version",
];
const POST_SLOTS: [&str; 9] = [
    "comments", "early", "first_seen_at", "likes", "pending", "posted_at", "shares",
    "sponsored", "topics",
];
const SKETCH_SLOTS: [&str; 8] = [
    "_at_floor", "_floor", "bucket", "counts", "errors", "interactions", "registers", "rhythm",
];

mod account_slot {
    pub const ACCOUNT_ID: usize = 0;
    pub const ACTORS: usize = 1;
    pub const AUDIENCE: usize = 2;
    pub const FOLLOWERS: usize = 3;
    pub const LAST_EVENT_AT: usize = 4;
    pub const PARTITION: usize = 5;
    pub const POSTS: usize = 6;
    pub const VERSION: usize = 7;
}

mod post_slot {
    pub const COMMENTS: usize = 0;
    pub const EARLY: usize = 1;
    pub const FIRST_SEEN_AT: usize = 2;
    pub const LIKES: usize = 3;
    pub const PENDING: usize = 4;
    pub const POSTED_AT: usize = 5;
    pub const SHARES: usize = 6;
    pub const SPONSORED: usize = 7;
    pub const TOPICS: usize = 8;
}

mod sketch_slot {
    pub const AT_FLOOR: usize = 0;
    pub const FLOOR: usize = 1;
    pub const BUCKET: usize = 2;
    pub const COUNTS: usize = 3;
    pub const ERRORS: usize = 4;
    pub const INTERACTIONS: usize = 5;
    pub const REGISTERS: usize = 6;
    pub const RHYTHM: usize = 7;
}

/// How the codec reaches the fields of one class. If the class has exactly the slots the
/// codec knows (its own, plain object slots, on `object`), their offsets in the instance
/// are read once from the slots' member descriptors, and the fields are read and written
/// there, as `PyMember_GetOne` and `PyMember_SetOne` do, without an attribute lookup
/// (first in session 5's profile of the codec), and instances are allocated without their
/// `__init__` (every slot is then set by the codec). Otherwise (a field added since) it
/// goes through `getattr`, `setattr` and `__init__`, so that nothing is left unset.
struct Layout {
    class: Py<PyAny>,
    names: Vec<Py<PyString>>,
    offsets: Option<Vec<isize>>,
}

/// A field's place in an instance.
#[inline]
unsafe fn slot_at(object: *mut ffi::PyObject, offset: isize) -> *mut *mut ffi::PyObject {
    object.cast::<u8>().offset(offset).cast::<*mut ffi::PyObject>()
}

impl Layout {
    fn new(class: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<Self> {
        let py = class.py();
        let offsets =
            if has_exactly_slots(class, names)? { member_offsets(class, names)? } else { None };
        Ok(Layout {
            class: class.clone().unbind(),
            names: names.iter().map(|name| PyString::intern(py, name).unbind()).collect(),
            offsets,
        })
    }

    fn direct(&self) -> bool {
        self.offsets.is_some()
    }

    /// The offsets, if `object` is an instance of exactly this class and they are known
    /// (a subclass may have a layout of its own).
    #[inline]
    fn offsets_for(&self, object: &Bound<'_, PyAny>) -> Option<&[isize]> {
        match &self.offsets {
            Some(offsets)
                if unsafe { ffi::Py_TYPE(object.as_ptr()) }.cast::<ffi::PyObject>()
                    == self.class.as_ptr() =>
            {
                Some(offsets)
            }
            _ => None,
        }
    }

    #[inline]
    fn get<'py>(
        &self,
        object: &Bound<'py, PyAny>,
        offsets: Option<&[isize]>,
        field: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = object.py();
        match offsets {
            Some(offsets) => {
                let value = unsafe { *slot_at(object.as_ptr(), offsets[field]) };
                if value.is_null() {
                    return Err(PyAttributeError::new_err(format!(
                        "'{}' is not set",
                        self.names[field].bind(py)
                    )));
                }
                Ok(unsafe { Bound::from_borrowed_ptr(py, value) })
            }
            None => object.getattr(self.names[field].bind(py)),
        }
    }

    #[inline]
    fn set<'py>(
        &self,
        object: &Bound<'py, PyAny>,
        offsets: Option<&[isize]>,
        field: usize,
        value: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        match offsets {
            Some(offsets) => {
                unsafe {
                    let slot = slot_at(object.as_ptr(), offsets[field]);
                    let old = std::mem::replace(&mut *slot, value.into_ptr());
                    if !old.is_null() {
                        ffi::Py_DECREF(old);
                    }
                }
                Ok(())
            }
            None => object.setattr(self.names[field].bind(object.py()), value),
        }
    }
}

fn has_exactly_slots(class: &Bound<'_, PyAny>, expected: &[&str]) -> PyResult<bool> {
    let Ok(class) = class.cast::<PyType>() else { return Ok(false) };
    let Ok(slots) = class.getattr("__slots__") else { return Ok(false) };
    let mut names: Vec<String> = Vec::new();
    for name in slots.try_iter()? {
        names.push(name?.extract()?);
    }
    names.sort();
    let mut wanted: Vec<String> = expected.iter().map(|name| name.to_string()).collect();
    wanted.sort();
    // Only the class's own slots: a base class with slots of its own would be missed.
    let base_is_object = class.getattr("__base__")?.is(&class.py().get_type::<PyAny>());
    Ok(names == wanted && base_is_object)
}

/// Where each named slot sits in an instance of `class`, if each is a plain, writable
/// object slot of that class (`Py_T_OBJECT_EX`: unset reads raise AttributeError).
fn member_offsets(class: &Bound<'_, PyAny>, names: &[&str]) -> PyResult<Option<Vec<isize>>> {
    let namespace = class.getattr("__dict__")?;
    let mut offsets = Vec::with_capacity(names.len());
    for name in names {
        let descriptor = namespace.get_item(name)?;
        let raw = descriptor.as_ptr();
        unsafe {
            if ffi::Py_TYPE(raw) != std::ptr::addr_of_mut!(ffi::PyMemberDescr_Type) {
                return Ok(None);
            }
            let descriptor = raw.cast::<ffi::PyMemberDescrObject>();
            if (*descriptor).d_common.d_type.cast::<ffi::PyObject>() != class.as_ptr() {
                return Ok(None);
            }
            // pyo3-ffi declares the field as a PyGetSetDef pointer; CPython's is a
            // PyMemberDef pointer.
            let member = (*descriptor).d_member.cast::<ffi::PyMemberDef>();
            if (*member).type_code != ffi::Py_T_OBJECT_EX
                || (*member).flags & ffi::Py_READONLY != 0
            {
                return Ok(None);
            }
            offsets.push((*member).offset);
        }
    }
    Ok(Some(offsets))
}

/// An instance of `class` with every slot unset, as `object.__new__(class)` makes it.
fn allocate<'py>(class: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = class.py();
    unsafe {
        let raw = ffi::PyType_GenericAlloc(class.as_ptr().cast::<ffi::PyTypeObject>(), 0);
        Bound::from_owned_ptr_or_err(py, raw)
    }
}

/// Takes a container out of the cyclic garbage collector's lists (see `Codec`).
#[inline]
fn untrack(object: &Bound<'_, PyAny>) {
    let raw = object.as_ptr();
    unsafe {
        if ffi::PyType_IS_GC(ffi::Py_TYPE(raw)) != 0 && ffi::PyObject_GC_IsTracked(raw) != 0 {
            ffi::PyObject_GC_UnTrack(raw.cast());
        }
    }
}

/// Sets item `index` of a list from `Reader::sized_list` (in range, not set before).
#[inline]
fn set_list_item(list: &Bound<'_, PyList>, index: usize, value: Bound<'_, PyAny>) {
    debug_assert!(index < list.len());
    unsafe { ffi::PyList_SET_ITEM(list.as_ptr(), index as ffi::Py_ssize_t, value.into_ptr()) };
}

/// An empty dict with room for `entries` without growing.
fn presized_dict(py: Python<'_>, entries: usize) -> PyResult<Bound<'_, PyDict>> {
    let entries = ffi::Py_ssize_t::try_from(entries)
        .map_err(|_| PyValueError::new_err("packed account: too many entries"))?;
    let raw = unsafe { ffi::_PyDict_NewPresized(entries) };
    Ok(unsafe { Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyDict>() })
}

/// Asks the CPU to bring an object's first cache line in, without waiting for it.
#[inline(always)]
fn prefetch(object: *mut ffi::PyObject) {
    #[cfg(target_arch = "x86_64")]
    unsafe {
        // A prefetch never faults, whatever the address.
        std::arch::x86_64::_mm_prefetch(object.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = object;
}

/// How many levels `prefetch_level` has.
const PREFETCH_LEVELS: usize = 7;

/// The cache lines of a dict's keys table that `PyDict_Next` reads first: its header and
/// index, then the entries (a sketch's 32 counters take ~13 lines; the rest come in while
/// the first are read).
const DICT_TABLE_LINES: usize = 8;

/// Asks for a dict's table, if `dict` is exactly a dict.
#[inline(always)]
unsafe fn prefetch_dict_table(dict: *mut ffi::PyObject) {
    if dict.is_null() || ffi::PyDict_CheckExact(dict) == 0 {
        return;
    }
    let keys = (*dict.cast::<ffi::PyDictObject>()).ma_keys.cast::<u8>();
    if keys.is_null() {
        return;
    }
    for line in 0..DICT_TABLE_LINES {
        // A prefetch never faults: lines past the table's end are only wasted requests.
        prefetch(keys.wrapping_add(64 * line).cast());
    }
}

/// Asks for a list's item array, if `list` is exactly a list.
#[inline(always)]
unsafe fn prefetch_list_items(list: *mut ffi::PyObject) {
    if !list.is_null() && ffi::PyList_CheckExact(list) != 0 {
        prefetch((*list.cast::<ffi::PyListObject>()).ob_item.cast());
    }
}

/// Each item of `list` (exactly a list) in turn.
#[inline(always)]
unsafe fn list_items(list: *mut ffi::PyObject) -> impl Iterator<Item = *mut ffi::PyObject> {
    let length = if !list.is_null() && ffi::PyList_CheckExact(list) != 0 {
        ffi::PyList_GET_SIZE(list)
    } else {
        0
    };
    (0..length).map(move |index| ffi::PyList_GET_ITEM(list, index))
}

/// Each (key, value) of `dict` (exactly a dict) in turn.
#[inline(always)]
unsafe fn dict_items(dict: *mut ffi::PyObject, mut each: impl FnMut(*mut ffi::PyObject, *mut ffi::PyObject)) {
    if dict.is_null() || ffi::PyDict_CheckExact(dict) == 0 {
        return;
    }
    let (mut position, mut key, mut value) =
        (0 as ffi::Py_ssize_t, std::ptr::null_mut(), std::ptr::null_mut());
    while ffi::PyDict_Next(dict, &mut position, &mut key, &mut value) != 0 {
        each(key, value);
    }
}

/// One level of what packing `account` reads (see `Codec::prefetch_accounts`). The
/// account and its posts and sketches are read through their slots only when they are
/// exactly the codec's classes (`classes`: account, post, sketch).
unsafe fn prefetch_level(
    level: usize,
    account: *mut ffi::PyObject,
    classes: (*mut ffi::PyObject, *mut ffi::PyObject, *mut ffi::PyObject),
    account_offsets: &[isize],
    post_offsets: &[isize],
    sketch_offsets: &[isize],
) {
    let (account_class, post_class, sketch_class) = classes;
    if level == 0 {
        prefetch(account);
        return;
    }
    if ffi::Py_TYPE(account).cast::<ffi::PyObject>() != account_class {
        return;
    }
    let posts = *slot_at(account, account_offsets[account_slot::POSTS]);
    let followers = *slot_at(account, account_offsets[account_slot::FOLLOWERS]);
    let actors = *slot_at(account, account_offsets[account_slot::ACTORS]);
    let is_post = |object: *mut ffi::PyObject| ffi::Py_TYPE(object).cast::<ffi::PyObject>() == post_class;
    let is_sketch = |object: *mut ffi::PyObject| ffi::Py_TYPE(object).cast::<ffi::PyObject>() == sketch_class;
    match level {
        1 => {
            for object in [posts, followers, actors] {
                if !object.is_null() {
                    prefetch(object);
                }
            }
        }
        2 => {
            prefetch_dict_table(posts);
            prefetch_list_items(followers);
            prefetch_list_items(actors);
        }
        3 => {
            dict_items(posts, |key, value| {
                prefetch(key);
                prefetch(value);
            });
            list_items(followers).for_each(prefetch);
            list_items(actors).for_each(prefetch);
        }
        4 => {
            dict_items(posts, |_, post| {
                if is_post(post) {
                    for field in [post_slot::POSTED_AT, post_slot::FIRST_SEEN_AT, post_slot::TOPICS] {
                        let value = *slot_at(post, post_offsets[field]);
                        if !value.is_null() {
                            prefetch(value);
                        }
                    }
                }
            });
            for entry in list_items(followers) {
                if ffi::PyTuple_CheckExact(entry) != 0 && ffi::PyTuple_GET_SIZE(entry) == 2 {
                    prefetch(ffi::PyTuple_GET_ITEM(entry, 0));
                    prefetch(ffi::PyTuple_GET_ITEM(entry, 1));
                }
            }
            for sketch in list_items(actors) {
                if is_sketch(sketch) {
                    for field in [sketch_slot::COUNTS, sketch_slot::RHYTHM, sketch_slot::REGISTERS] {
                        let value = *slot_at(sketch, sketch_offsets[field]);
                        if !value.is_null() {
                            prefetch(value);
                        }
                    }
                }
            }
        }
        5 => {
            for sketch in list_items(actors) {
                if is_sketch(sketch) {
                    prefetch_dict_table(*slot_at(sketch, sketch_offsets[sketch_slot::COUNTS]));
                    prefetch_list_items(*slot_at(sketch, sketch_offsets[sketch_slot::RHYTHM]));
                }
            }
        }
        _ => {
            for sketch in list_items(actors) {
                if is_sketch(sketch) {
                    dict_items(*slot_at(sketch, sketch_offsets[sketch_slot::COUNTS]), |key, value| {
                        prefetch(key);
                        prefetch(value);
                    });
                    list_items(*slot_at(sketch, sketch_offsets[sketch_slot::RHYTHM]))
                        .for_each(prefetch);
                }
            }
        }
    }
}

impl Reader<'_> {
    /// Moves past one value without building it.
    fn skip(&mut self) -> PyResult<()> {
        let marker = self.byte()?;
        let (bytes, items) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, 0),
            0xcc | 0xd0 => (1, 0),
            0xcd | 0xd1 => (2, 0),
            0xce | 0xd2 | 0xca => (4, 0),
            0xcf | 0xd3 | 0xcb => (8, 0),
            0xa0..=0xbf => ((marker & 0x1f) as usize, 0),
            0xd9 | 0xc4 => (self.byte()? as usize, 0),
            0xda | 0xc5 => (u16::from_be_bytes(self.be()?) as usize, 0),
            0xdb | 0xc6 => (u32::from_be_bytes(self.be()?) as usize, 0),
            0x90..=0x9f => (0, (marker & 0x0f) as usize),
            0xdc => (0, u16::from_be_bytes(self.be()?) as usize),
            0xdd => (0, u32::from_be_bytes(self.be()?) as usize),
            0x80..=0x8f => (0, 2 * (marker & 0x0f) as usize),
            0xde => (0, 2 * u16::from_be_bytes(self.be()?) as usize),
            0xdf => (0, 2 * u32::from_be_bytes(self.be()?) as usize),
            _ => {
                return Err(PyValueError::new_err(format!(
                    "packed account: unexpected msgpack marker {marker:#04x}"
                )))
            }
        };
        self.take(bytes)?;
        for _ in 0..items {
            self.skip()?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the codec

/// The topic tuples unpacked so far, by their packed bytes: most posts carry one of a few,
/// and the tuple is then neither decoded nor passed to `shared_topics` again. Bounded
/// like `account.SHARED_TOPIC_TUPLES`; past it, topics are decoded each time.
const TOPIC_CACHE_ENTRIES: usize = 4_096;

/// Packs and unpacks accounts as `packing.pack_reference` and `packing.unpack_reference`
/// do, building objects through the classes it was given.
///
/// With `untrack` (the default) the containers an unpack builds (the account, its posts,
/// sketches, lists, dicts and tuples) are taken out of the cyclic garbage collector's
/// lists: otherwise the next young collection walks all of them once, for every account
/// unpacked. The collector is there for reference cycles, and an account holds none (its
/// fields hold numbers, strings, bytes and containers of those, and its own posts and
/// sketches, which refer to nothing back); reference counting frees it as before. A
/// container that the engine creates later (a new post) is tracked as usual, and a dict
/// that receives one is tracked again by CPython. (Were a cycle ever made through an
/// untracked object, it would not be collected: memory kept, never memory corrupted.)
///
/// With `prefetch` (the default) packing first asks for the account's objects level by
/// level (`prefetch_account`). Both options exist so that the benches can set each
/// against its absence in one run (bench/codec.py).
#[pyclass(frozen)]
struct Codec {
    account: Layout,
    post: Layout,
    sketch: Layout,
    shared_topics: Py<PyAny>,
    untrack: bool,
    prefetches: bool,
    topics: Mutex<HashMap<Vec<u8>, Py<PyAny>>>,
}

/// Python's `min(a, b)`: `a` unless `b < a` (so a NaN keeps its place as Python's does).
fn python_min(current: f64, candidate: f64) -> f64 {
    if candidate < current {
        candidate
    } else {
        current
    }
}

/// Python's `max(a, b)`: `a` unless `b > a`.
fn python_max(current: f64, candidate: f64) -> f64 {
    if candidate > current {
        candidate
    } else {
        current
    }
}

impl Codec {
    /// Asks for the objects that packing an account reads, one level of the account at a
    /// time: its posts, ids, follower entries and sketches, then their fields, then the
    /// sketches' actor ids. The account leaving the hot set is the one used longest ago,
    /// so most of its ~40 objects are out of the CPU's caches; read one after another, each
    /// read waits for the memory in turn, while requests made together overlap. Only for
    /// the classes whose slots it reaches directly; it reads pointers, runs no Python code.
    fn prefetch_account(
        &self,
        posts: &Bound<'_, PyDict>,
        followers: &Bound<'_, PyList>,
        actors: &Bound<'_, PyList>,
    ) {
        let (Some(post_offsets), Some(sketch_offsets)) = (&self.post.offsets, &self.sketch.offsets)
        else {
            return;
        };
        let post_class = self.post.class.as_ptr();
        let sketch_class = self.sketch.class.as_ptr();
        unsafe {
            let (mut position, mut key, mut value) =
                (0 as ffi::Py_ssize_t, std::ptr::null_mut(), std::ptr::null_mut());
            while ffi::PyDict_Next(posts.as_ptr(), &mut position, &mut key, &mut value) != 0 {
                prefetch(key);
                prefetch(value);
            }
            for index in 0..ffi::PyList_GET_SIZE(followers.as_ptr()) {
                prefetch(ffi::PyList_GET_ITEM(followers.as_ptr(), index));
            }
            let sketches = ffi::PyList_GET_SIZE(actors.as_ptr());
            for index in 0..sketches {
                prefetch(ffi::PyList_GET_ITEM(actors.as_ptr(), index));
            }
            position = 0;
            while ffi::PyDict_Next(posts.as_ptr(), &mut position, &mut key, &mut value) != 0 {
                if ffi::Py_TYPE(value).cast::<ffi::PyObject>() == post_class {
                    prefetch(*slot_at(value, post_offsets[post_slot::POSTED_AT]));
                    prefetch(*slot_at(value, post_offsets[post_slot::FIRST_SEEN_AT]));
                }
            }
            for index in 0..ffi::PyList_GET_SIZE(followers.as_ptr()) {
                let entry = ffi::PyList_GET_ITEM(followers.as_ptr(), index);
                if ffi::PyTuple_CheckExact(entry) != 0 && ffi::PyTuple_GET_SIZE(entry) == 2 {
                    prefetch(ffi::PyTuple_GET_ITEM(entry, 0));
                    prefetch(ffi::PyTuple_GET_ITEM(entry, 1));
                }
            }
            for index in 0..sketches {
                let sketch = ffi::PyList_GET_ITEM(actors.as_ptr(), index);
                if ffi::Py_TYPE(sketch).cast::<ffi::PyObject>() == sketch_class {
                    prefetch(*slot_at(sketch, sketch_offsets[sketch_slot::COUNTS]));
                    prefetch(*slot_at(sketch, sketch_offsets[sketch_slot::RHYTHM]));
                }
            }
            for index in 0..sketches {
                let sketch = ffi::PyList_GET_ITEM(actors.as_ptr(), index);
                if ffi::Py_TYPE(sketch).cast::<ffi::PyObject>() != sketch_class {
                    continue;
                }
                let counts = *slot_at(sketch, sketch_offsets[sketch_slot::COUNTS]);
                if counts.is_null() || ffi::PyDict_CheckExact(counts) == 0 {
                    continue;
                }
                position = 0;
                while ffi::PyDict_Next(counts, &mut position, &mut key, &mut value) != 0 {
                    prefetch(key);
                }
            }
        }
    }

    /// `prefetch_account` for several accounts at once: each level asked for across all of
    /// them before the next (the account, its posts dict and lists, their tables, their
    /// items, the posts' and sketches' fields, the counters' tables, their keys). A level
    /// reads pointers that the level before asked for, so it waits for memory once per
    /// level for the whole batch instead of once per level per account. Pointers only,
    /// exact types checked before any internals are read, no Python code run.
    fn prefetch_accounts(&self, accounts: &[*mut ffi::PyObject]) {
        let (Some(account_offsets), Some(post_offsets), Some(sketch_offsets)) =
            (&self.account.offsets, &self.post.offsets, &self.sketch.offsets)
        else {
            return;
        };
        let classes = (
            self.account.class.as_ptr(),
            self.post.class.as_ptr(),
            self.sketch.class.as_ptr(),
        );
        for level in 0..PREFETCH_LEVELS {
            for &account in accounts {
                unsafe {
                    prefetch_level(level, account, classes, account_offsets, post_offsets,
                                   sketch_offsets);
                }
            }
        }
    }

    /// `pack`, with or without `prefetch_account` first.
    fn pack_one<'py>(&self, account: &Bound<'py, PyAny>, prefetch: bool) -> PyResult<Bound<'py, PyBytes>> {
        let py = account.py();
        let mut out: Vec<u8> = Vec::with_capacity(512);
        out.resize(HEADER_SIZE, 0);
        let fields = self.account.offsets_for(account);
        let posts = self.account.get(account, fields, account_slot::POSTS)?;
        let posts = posts.cast::<PyDict>()?;
        let followers = self.account.get(account, fields, account_slot::FOLLOWERS)?;
        let followers = followers.cast::<PyList>()?;
        let actors = self.account.get(account, fields, account_slot::ACTORS)?;
        let actors = actors.cast::<PyList>()?;
        let audience = self.account.get(account, fields, account_slot::AUDIENCE)?;
        let has_audience = !audience.is_none() && audience.is_truthy()?;
        if prefetch && fields.is_some() {
            self.prefetch_account(posts, followers, actors);
        }
        write_array_header(&mut out, if has_audience { 4 } else { 3 });

        // Posts, ten fields each, and the oldest anchor time among them.
        let mut settled_from = f64::INFINITY;
        let mut first_anchor = true;
        write_array_header(&mut out, POST_FIELDS * posts.len());
        let layout = &self.post;
        for (post_id, post) in posts.iter() {
            let fields = layout.offsets_for(&post);
            let posted_at = layout.get(&post, fields, post_slot::POSTED_AT)?;
            let first_seen_at = layout.get(&post, fields, post_slot::FIRST_SEEN_AT)?;
            let anchor: f64 = if posted_at.is_none() {
                first_seen_at.extract()?
            } else {
                posted_at.extract()?
            };
            if first_anchor {
                settled_from = anchor;
                first_anchor = false;
            } else {
                settled_from = python_min(settled_from, anchor);
            }
            write_value(&mut out, &post_id)?;
            write_value(&mut out, &posted_at)?;
            write_value(&mut out, &first_seen_at)?;
            for field in [
                post_slot::SPONSORED,
                post_slot::TOPICS,
                post_slot::LIKES,
                post_slot::COMMENTS,
                post_slot::SHARES,
                post_slot::EARLY,
                post_slot::PENDING,
            ] {
                write_value(&mut out, &layout.get(&post, fields, field)?)?;
            }
        }

        // Follower history, flat: time, count, time, count, ...
        write_array_header(&mut out, 2 * followers.len());
        for entry in followers.iter() {
            let entry = entry.cast::<PyTuple>()?;
            if entry.len() != 2 {
                return Err(PyValueError::new_err("a follower entry is not (time, count)"));
            }
            write_value(&mut out, &entry.get_item(0)?)?;
            write_value(&mut out, &entry.get_item(1)?)?;
        }
        if followers.len() > 1 {
            // Expiry trims the history once its second observation leaves the horizon.
            let second: f64 = followers.get_item(1)?.cast::<PyTuple>()?.get_item(0)?.extract()?;
            settled_from = python_min(settled_from, second);
        }
        let last_event_at: f64 =
            self.account.get(account, fields, account_slot::LAST_EVENT_AT)?.extract()?;
        settled_from = python_min(settled_from, last_event_at);

        // Actor sketches, in bucket order.
        let (mut first_bucket, mut last_bucket) = (NO_FIRST_BUCKET, NO_LAST_BUCKET);
        write_array_header(&mut out, actors.len());
        let layout = &self.sketch;
        for (index, sketch) in actors.iter().enumerate() {
            let fields = layout.offsets_for(&sketch);
            let bucket = layout.get(&sketch, fields, sketch_slot::BUCKET)?;
            if index == 0 {
                first_bucket = bucket.extract()?;
            }
            if index + 1 == actors.len() {
                last_bucket = bucket.extract()?;
            }
            write_array_header(&mut out, 6);
            write_value(&mut out, &bucket)?;
            write_value(&mut out, &layout.get(&sketch, fields, sketch_slot::INTERACTIONS)?)?;
            write_flat_dict(
                &mut out,
                layout.get(&sketch, fields, sketch_slot::COUNTS)?.cast::<PyDict>()?,
            )?;
            let errors = layout.get(&sketch, fields, sketch_slot::ERRORS)?;
            if errors.is_none() || !errors.is_truthy()? {
                out.push(0xc0);
            } else {
                write_flat_dict(&mut out, errors.cast::<PyDict>()?)?;
            }
            let registers = layout.get(&sketch, fields, sketch_slot::REGISTERS)?;
            if registers.is_none() {
                out.push(0xc0);
            } else if let Ok(registers) = registers.cast::<PyByteArray>() {
                write_bin(&mut out, &registers.to_vec());
            } else {
                write_bin(&mut out, registers.cast::<PyBytes>()?.as_bytes());
            }
            write_value(&mut out, &layout.get(&sketch, fields, sketch_slot::RHYTHM)?)?;
        }

        if has_audience {
            let signals = audience.cast::<PyList>()?;
            let first: i64 = signals.get_item(0)?.extract()?;
            let length = signals.len();
            if length < 4 {
                return Err(PyValueError::new_err("audience signals come in fours"));
            }
            let last: i64 = signals.get_item(length - 4)?.extract()?;
            first_bucket = first_bucket.min(first);
            last_bucket = last_bucket.max(last);
            write_value(&mut out, &audience)?;
        }

        let partition: u32 = self
            .account
            .get(account, fields, account_slot::PARTITION)?
            .extract()
            .map_err(|_| PyValueError::new_err("partition out of range for the header"))?;
        let version: u64 = self
            .account
            .get(account, fields, account_slot::VERSION)?
            .extract()
            .map_err(|_| PyValueError::new_err("version out of range for the header"))?;
        out[0..4].copy_from_slice(&partition.to_le_bytes());
        out[4..12].copy_from_slice(&version.to_le_bytes());
        out[12..20].copy_from_slice(&settled_from.to_le_bytes());
        out[20..28].copy_from_slice(&last_event_at.to_le_bytes());
        out[28..36].copy_from_slice(&first_bucket.to_le_bytes());
        out[36..44].copy_from_slice(&last_bucket.to_le_bytes());
        Ok(PyBytes::new(py, &out))
    }

    #[inline]
    fn untracked(&self, object: &Bound<'_, PyAny>) {
        if self.untrack {
            untrack(object);
        }
    }

    /// A post's topics: the shared tuple for these bytes, decoded and shared once.
    fn read_topics<'py>(&self, py: Python<'py>, reader: &mut Reader<'_>) -> PyResult<Bound<'py, PyAny>> {
        let start = reader.pos;
        let count = reader.array_len()?;
        let items = reader.pos;
        for _ in 0..count {
            reader.skip()?;
        }
        let key = &reader.buf[start..reader.pos];
        if let Some(shared) = self.topics.lock().unwrap().get(key) {
            return Ok(shared.bind(py).clone());
        }
        let mut decoder = Reader { buf: &reader.buf[..reader.pos], pos: items };
        let mut topics = Vec::with_capacity(count);
        for _ in 0..count {
            topics.push(decoder.value(py)?);
        }
        // Python code runs here: no lock is held across it.
        let shared = self.shared_topics.bind(py).call1((PyTuple::new(py, topics)?,))?;
        let mut cache = self.topics.lock().unwrap();
        if cache.len() < TOPIC_CACHE_ENTRIES {
            cache.insert(key.to_vec(), shared.clone().unbind());
        }
        Ok(shared)
    }
}

#[pymethods]
impl Codec {
    #[new]
    #[pyo3(signature = (account, post, sketch, shared_topics, /, *, untrack = true, prefetch = true))]
    fn new(
        account: &Bound<'_, PyAny>,
        post: &Bound<'_, PyAny>,
        sketch: &Bound<'_, PyAny>,
        shared_topics: Py<PyAny>,
        untrack: bool,
        prefetch: bool,
    ) -> PyResult<Self> {
        Ok(Codec {
            account: Layout::new(account, &ACCOUNT_SLOTS)?,
            post: Layout::new(post, &POST_SLOTS)?,
            sketch: Layout::new(sketch, &SKETCH_SLOTS)?,
            shared_topics,
            untrack,
            prefetches: prefetch,
            topics: Mutex::new(HashMap::new()),
        })
    }

    /// Whether accounts, posts and sketches are built without their `__init__` and their
    /// slots reached directly (see `Layout`).
    #[getter]
    fn builds_bare(&self) -> (bool, bool, bool) {
        (self.account.direct(), self.post.direct(), self.sketch.direct())
    }

    fn pack<'py>(&self, account: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        self.pack_one(account, self.prefetches)
    }

    /// Each account packed, as `pack` does, in order. The accounts' objects are asked for
    /// level by level across all of them first (`prefetch_accounts`): accounts leaving the
    /// hot set together are all out of the CPU's caches, and a batch overlaps the waits
    /// that one account alone has to take one level after another.
    fn pack_many<'py>(&self, accounts: &Bound<'py, PyList>) -> PyResult<Bound<'py, PyList>> {
        let py = accounts.py();
        if self.prefetches {
            // Borrowed: the list holds them for the whole call and runs no Python code.
            let pointers: Vec<*mut ffi::PyObject> =
                accounts.iter().map(|account| account.as_ptr()).collect();
            self.prefetch_accounts(&pointers);
        }
        let packed = PyList::empty(py);
        for account in accounts.iter() {
            packed.append(self.pack_one(&account, false)?)?;
        }
        Ok(packed)
    }

    fn unpack<'py>(
        &self,
        py: Python<'py>,
        account_id: &Bound<'py, PyString>,
        packed: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        if packed.len() < HEADER_SIZE {
            return Err(truncated());
        }
        let partition = u32::from_le_bytes(packed[0..4].try_into().unwrap());
        let version = u64::from_le_bytes(packed[4..12].try_into().unwrap());
        let last_event_at = f64::from_le_bytes(packed[20..28].try_into().unwrap());
        let mut reader = Reader { buf: &packed[HEADER_SIZE..], pos: 0 };
        let field_count = reader.array_len()?;
        if !(3..=4).contains(&field_count) {
            return Err(PyValueError::new_err("packed account: 3 or 4 fields expected"));
        }

        let posts_field = reader.array_len()?;
        if posts_field % POST_FIELDS != 0 {
            return Err(PyValueError::new_err("packed account: a post is incomplete"));
        }
        let posts = presized_dict(py, posts_field / POST_FIELDS)?;
        let layout = &self.post;
        let post_class = layout.class.bind(py);
        for _ in 0..posts_field / POST_FIELDS {
            let post_id = reader.value(py)?;
            let posted_at_from = reader.pos;
            let posted_at = reader.value(py)?;
            let posted_at_bytes = &reader.buf[posted_at_from..reader.pos];
            // A post usually arrives before its interactions, so it was first seen when
            // it was posted: then one float object serves both (the same bits, and a
            // float is immutable), two fewer objects to build and free.
            let first_seen_at = if posted_at_bytes.len() == 9
                && reader.buf.get(reader.pos..reader.pos + 9) == Some(posted_at_bytes)
            {
                reader.pos += 9;
                posted_at.clone()
            } else {
                reader.value(py)?
            };
            let sponsored = reader.value(py)?;
            let topics = self.read_topics(py, &mut reader)?;
            let post = if layout.direct() {
                allocate(post_class)?
            } else {
                post_class.call1((first_seen_at.clone(),))?
            };
            let fields = layout.offsets_for(&post);
            layout.set(&post, fields, post_slot::FIRST_SEEN_AT, first_seen_at)?;
            layout.set(&post, fields, post_slot::POSTED_AT, posted_at)?;
            layout.set(&post, fields, post_slot::SPONSORED, sponsored)?;
            layout.set(&post, fields, post_slot::TOPICS, topics)?;
            layout.set(&post, fields, post_slot::LIKES, reader.value(py)?)?;
            layout.set(&post, fields, post_slot::COMMENTS, reader.value(py)?)?;
            layout.set(&post, fields, post_slot::SHARES, reader.value(py)?)?;
            layout.set(&post, fields, post_slot::EARLY, reader.value(py)?)?;
            let pending = reader.value(py)?;
            self.untracked(&pending);
            layout.set(&post, fields, post_slot::PENDING, pending)?;
            self.untracked(&post);
            posts.set_item(post_id, post)?;
        }
        self.untracked(&posts);

        let follower_fields = reader.array_len()?;
        if follower_fields % 2 != 0 {
            return Err(PyValueError::new_err("packed account: a follower count without time"));
        }
        let followers = reader.sized_list(py, follower_fields / 2)?;
        for index in 0..follower_fields / 2 {
            let moment = reader.value(py)?;
            let count = reader.value(py)?;
            let entry = PyTuple::new(py, [moment, count])?;
            self.untracked(&entry);
            set_list_item(&followers, index, entry.into_any());
        }
        self.untracked(&followers);

        let sketch_count = reader.array_len()?;
        let actors = reader.sized_list(py, sketch_count)?;
        let layout = &self.sketch;
        let sketch_class = layout.class.bind(py);
        for index in 0..sketch_count {
            let sketch_fields = reader.array_len()?;
            if !(5..=6).contains(&sketch_fields) {
                return Err(PyValueError::new_err("packed account: a sketch has 5 or 6 fields"));
            }
            let bucket = reader.value(py)?;
            let interactions = reader.value(py)?;
            let counts = reader.flat_dict(py)?;
            let errors = if reader.peek_nil() {
                reader.pos += 1;
                py.None().into_bound(py)
            } else {
                reader.flat_dict(py)?.into_any()
            };
            let registers = reader.value(py)?;
            // An old sketch (5 fields, no time-of-day counters) takes `__init__`'s.
            let sketch = if layout.direct() && sketch_fields == 6 {
                let sketch = allocate(sketch_class)?;
                let fields = layout.offsets_for(&sketch);
                layout.set(&sketch, fields, sketch_slot::AT_FLOOR, py.None().into_bound(py))?;
                layout.set(&sketch, fields, sketch_slot::FLOOR, 0i64.into_pyobject(py)?.into_any())?;
                layout.set(&sketch, fields, sketch_slot::BUCKET, bucket)?;
                sketch
            } else {
                sketch_class.call1((bucket,))?
            };
            let fields = layout.offsets_for(&sketch);
            if sketch_fields == 6 {
                // Absent in accounts packed before the time-of-day profile.
                let rhythm = reader.value(py)?;
                self.untracked(&rhythm);
                layout.set(&sketch, fields, sketch_slot::RHYTHM, rhythm)?;
            }
            layout.set(&sketch, fields, sketch_slot::INTERACTIONS, interactions)?;
            self.untracked(&counts);
            layout.set(&sketch, fields, sketch_slot::COUNTS, counts.into_any())?;
            self.untracked(&errors);
            layout.set(&sketch, fields, sketch_slot::ERRORS, errors)?;
            let registers = if registers.is_none() {
                registers
            } else {
                PyByteArray::new(py, registers.cast::<PyBytes>()?.as_bytes()).into_any()
            };
            layout.set(&sketch, fields, sketch_slot::REGISTERS, registers)?;
            self.untracked(&sketch);
            set_list_item(&actors, index, sketch);
        }
        self.untracked(&actors);

        let audience = if field_count == 4 {
            let audience = reader.value(py)?;
            self.untracked(&audience);
            audience
        } else {
            py.None().into_bound(py)
        };
        if reader.pos != reader.buf.len() {
            return Err(PyValueError::new_err("packed account: extra data after its fields"));
        }

        let layout = &self.account;
        let account_class = layout.class.bind(py);
        let account = if layout.direct() {
            let account = allocate(account_class)?;
            let fields = layout.offsets_for(&account);
            layout.set(&account, fields, account_slot::ACCOUNT_ID, account_id.clone().into_any())?;
            layout.set(
                &account,
                fields,
                account_slot::PARTITION,
                partition.into_pyobject(py)?.into_any(),
            )?;
            account
        } else {
            account_class.call1((account_id, partition))?
        };
        let fields = layout.offsets_for(&account);
        layout.set(&account, fields, account_slot::VERSION, version.into_pyobject(py)?.into_any())?;
        layout.set(
            &account,
            fields,
            account_slot::LAST_EVENT_AT,
            PyFloat::new(py, last_event_at).into_any(),
        )?;
        layout.set(&account, fields, account_slot::POSTS, posts.into_any())?;
        layout.set(&account, fields, account_slot::FOLLOWERS, followers.into_any())?;
        layout.set(&account, fields, account_slot::ACTORS, actors.into_any())?;
        if field_count == 4 || layout.direct() {
            layout.set(&account, fields, account_slot::AUDIENCE, audience)?;
        }
        self.untracked(&account);
        Ok(account)
    }
}

/// mimalloc's `mi_option_purge_delay` (mimalloc.h; libmimalloc-sys names no constant
/// for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

#[pymodule]
fn engagement_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    // Memory freed stays with the allocator instead of going back to the system 10 ms
    // later: a checkpoint's batches are built again each second, and faulting their
    // pages back in (the kernel zeroing them) was 7.5 % of the wide fold; 0.94x its time
    // without (docs/benchmarks.md, "Session 15"). What stays is the peak of the
    // extension's own allocations.
    // SAFETY: sets a process-wide option; mimalloc reads options on each use.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) };
    module.add_class::<Codec>()?;
    module.add_class::<actors::NativeActors>()?;
    module.add_class::<fold::Fold>()?;
    module.add_class::<records::FetchedRecords>()?;
    module.add_class::<records::FetchedRecord>()?;
    module.add_class::<batch_builder::RecordBatchBuilder>()?;
    module.add_class::<routes::InteractionBatch>()?;
    module.add_function(wrap_pyfunction!(scoring::credibility_numbers, module)?)?;
    module.add_function(wrap_pyfunction!(scoring::scoring_constants, module)?)?;
    module.add_class::<wire::InteractionDecoder>()?;
    module.add_function(wrap_pyfunction!(wire::decode_wire_fields, module)?)?;
    module.add_class::<dedupe::EventIdsCore>()?;
    module.add_class::<signals::SignalBatches>()?;
    module.add_class::<signals::SignalFold>()?;
    module.add_function(wrap_pyfunction!(signals::py_partition_for, module)?)?;
    module.add_class::<table::AccountTable>()?;
    module.add_function(wrap_pyfunction!(allocated_bytes, module)?)?;
    Ok(())
}
