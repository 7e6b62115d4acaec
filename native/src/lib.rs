//! The packed-account codec of `service/engine/packing.py`, compiled.
//!
//! `packing.pack_reference` and `packing.unpack_reference` are the specification: the
//! same account packs to the same bytes (a fixed header, then what `msgpack.packb` writes
//! for the account's fields) and unpacks to an equal account. The Python objects are built
//! through their own classes (passed to `Codec`), so a field that `Account`, `Post` or
//! `ActorSketch` gains in `__init__` is there after unpacking too. The tests compare both
//! directions against the reference on generated accounts
//! (tests/unit/test_packing_native.py).
//!
//! The actor side of the audience signal (`audience.ActorActivity`'s core) is in
//! actors.rs.

mod actors;

use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple, PyType,
};

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
        let list = PyList::empty(py);
        for _ in 0..length {
            list.append(self.value(py)?)?;
        }
        Ok(list.into_any())
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
        let dict = PyDict::new(py);
        for _ in 0..length / 2 {
            let key = self.value(py)?;
            let value = self.value(py)?;
            dict.set_item(key, value)?;
        }
        Ok(dict)
    }
}

// ---------------------------------------------------------------- the codec

/// Packs and unpacks accounts as `packing.pack_reference` and `packing.unpack_reference`
/// do, building objects through the classes it was given.
#[pyclass(frozen)]
struct Codec {
    account: Py<PyAny>,
    post: Py<PyAny>,
    sketch: Py<PyAny>,
    shared_topics: Py<PyAny>,
    // Whether the classes have exactly the slots this codec sets: then an instance is
    // allocated without running its `__init__` (~0.5 us each in Python) and every slot is
    // set here. A class with other slots (a field added since) is built through its
    // `__init__` instead, so nothing is left unset.
    bare_post: bool,
    bare_sketch: bool,
}

const POST_SLOTS: [&str; 9] = [
    "comments", "early", "first_seen_at", "likes", "pending", "posted_at", "shares",
    "sponsored", "topics",
];
const SKETCH_SLOTS: [&str; 8] = [
    "_at_floor", "_floor", "bucket", "counts", "errors", "interactions", "registers", "rhythm",
];

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

/// An instance of `class` with every slot unset, as `object.__new__(class)` makes it.
fn allocate<'py>(class: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = class.py();
    unsafe {
        let raw = ffi::PyType_GenericAlloc(class.as_ptr().cast::<ffi::PyTypeObject>(), 0);
        Bound::from_owned_ptr_or_err(py, raw)
    }
}

/// Python's `min(a, b)`: `a` unless `b < a` (so a NaN keeps its place as Python's does).
fn python_min(current: f64, candidate: f64) -> f64 {
    if candidate < current {
        candidate
    } else {
        current
    }
}

#[pymethods]
impl Codec {
    #[new]
    fn new(
        account: Py<PyAny>,
        post: Py<PyAny>,
        sketch: Py<PyAny>,
        shared_topics: Py<PyAny>,
    ) -> PyResult<Self> {
        let (bare_post, bare_sketch) = Python::attach(|py| -> PyResult<(bool, bool)> {
            Ok((
                has_exactly_slots(post.bind(py), &POST_SLOTS)?,
                has_exactly_slots(sketch.bind(py), &SKETCH_SLOTS)?,
            ))
        })?;
        Ok(Codec { account, post, sketch, shared_topics, bare_post, bare_sketch })
    }

    /// Whether posts and sketches are built without their `__init__` (see `Codec`).
    #[getter]
    fn builds_bare(&self) -> (bool, bool) {
        (self.bare_post, self.bare_sketch)
    }

    fn pack<'py>(&self, account: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
        let py = account.py();
        let mut out: Vec<u8> = Vec::with_capacity(512);
        out.resize(HEADER_SIZE, 0);
        let posts = account.getattr(intern!(py, "posts"))?;
        let posts = posts.cast::<PyDict>()?;
        let followers = account.getattr(intern!(py, "followers"))?;
        let followers = followers.cast::<PyList>()?;
        let actors = account.getattr(intern!(py, "actors"))?;
        let actors = actors.cast::<PyList>()?;
        let audience = account.getattr(intern!(py, "audience"))?;
        let has_audience = !audience.is_none() && audience.is_truthy()?;
        write_array_header(&mut out, if has_audience { 4 } else { 3 });

        // Posts, ten fields each, and the oldest anchor time among them.
        let mut settled_from = f64::INFINITY;
        let mut first_anchor = true;
        write_array_header(&mut out, POST_FIELDS * posts.len());
        for (post_id, post) in posts.iter() {
            let posted_at = post.getattr(intern!(py, "posted_at"))?;
            let first_seen_at = post.getattr(intern!(py, "first_seen_at"))?;
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
            write_value(&mut out, &post.getattr(intern!(py, "sponsored"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "topics"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "likes"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "comments"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "shares"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "early"))?)?;
            write_value(&mut out, &post.getattr(intern!(py, "pending"))?)?;
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
        let last_event_at: f64 = account.getattr(intern!(py, "last_event_at"))?.extract()?;
        settled_from = python_min(settled_from, last_event_at);

        // Actor sketches, in bucket order.
        let (mut first_bucket, mut last_bucket) = (NO_FIRST_BUCKET, NO_LAST_BUCKET);
        write_array_header(&mut out, actors.len());
        for (index, sketch) in actors.iter().enumerate() {
            let bucket = sketch.getattr(intern!(py, "bucket"))?;
            if index == 0 {
                first_bucket = bucket.extract()?;
            }
            if index + 1 == actors.len() {
                last_bucket = bucket.extract()?;
            }
            write_array_header(&mut out, 6);
            write_value(&mut out, &bucket)?;
            write_value(&mut out, &sketch.getattr(intern!(py, "interactions"))?)?;
            write_flat_dict(&mut out, sketch.getattr(intern!(py, "counts"))?.cast::<PyDict>()?)?;
            let errors = sketch.getattr(intern!(py, "errors"))?;
            if errors.is_none() || !errors.is_truthy()? {
                out.push(0xc0);
            } else {
                write_flat_dict(&mut out, errors.cast::<PyDict>()?)?;
            }
            let registers = sketch.getattr(intern!(py, "registers"))?;
            if registers.is_none() {
                out.push(0xc0);
            } else if let Ok(registers) = registers.cast::<PyByteArray>() {
                write_bin(&mut out, &registers.to_vec());
            } else {
                write_bin(&mut out, registers.cast::<PyBytes>()?.as_bytes());
            }
            write_value(&mut out, &sketch.getattr(intern!(py, "rhythm"))?)?;
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

        let partition: u32 = account
            .getattr(intern!(py, "partition"))?
            .extract()
            .map_err(|_| PyValueError::new_err("partition out of range for the header"))?;
        let version: u64 = account
            .getattr(intern!(py, "version"))?
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
        let fields = reader.array_len()?;
        if !(3..=4).contains(&fields) {
            return Err(PyValueError::new_err("packed account: 3 or 4 fields expected"));
        }

        let account = self.account.bind(py).call1((account_id, partition))?;
        account.setattr(intern!(py, "version"), version)?;
        account.setattr(intern!(py, "last_event_at"), last_event_at)?;

        let posts_field = reader.array_len()?;
        if posts_field % POST_FIELDS != 0 {
            return Err(PyValueError::new_err("packed account: a post is incomplete"));
        }
        let posts = account.getattr(intern!(py, "posts"))?;
        let posts = posts.cast::<PyDict>()?;
        let post_class = self.post.bind(py);
        let shared_topics = self.shared_topics.bind(py);
        for _ in 0..posts_field / POST_FIELDS {
            let post_id = reader.value(py)?;
            let posted_at = reader.value(py)?;
            let first_seen_at = reader.value(py)?;
            let sponsored = reader.value(py)?;
            let topic_count = reader.array_len()?;
            let mut topics = Vec::with_capacity(topic_count);
            for _ in 0..topic_count {
                topics.push(reader.value(py)?);
            }
            let topics = shared_topics.call1((PyTuple::new(py, topics)?,))?;
            let post = if self.bare_post {
                let post = allocate(post_class)?;
                post.setattr(intern!(py, "first_seen_at"), first_seen_at)?;
                post
            } else {
                post_class.call1((first_seen_at,))?
            };
            post.setattr(intern!(py, "posted_at"), posted_at)?;
            post.setattr(intern!(py, "sponsored"), sponsored)?;
            post.setattr(intern!(py, "topics"), topics)?;
            post.setattr(intern!(py, "likes"), reader.value(py)?)?;
            post.setattr(intern!(py, "comments"), reader.value(py)?)?;
            post.setattr(intern!(py, "shares"), reader.value(py)?)?;
            post.setattr(intern!(py, "early"), reader.value(py)?)?;
            post.setattr(intern!(py, "pending"), reader.value(py)?)?;
            posts.set_item(post_id, post)?;
        }

        let follower_fields = reader.array_len()?;
        if follower_fields % 2 != 0 {
            return Err(PyValueError::new_err("packed account: a follower count without time"));
        }
        let followers = PyList::empty(py);
        for _ in 0..follower_fields / 2 {
            let moment = reader.value(py)?;
            let count = reader.value(py)?;
            followers.append(PyTuple::new(py, [moment, count])?)?;
        }
        account.setattr(intern!(py, "followers"), followers)?;

        let sketch_count = reader.array_len()?;
        let actors = account.getattr(intern!(py, "actors"))?;
        let actors = actors.cast::<PyList>()?;
        let sketch_class = self.sketch.bind(py);
        for _ in 0..sketch_count {
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
            let sketch = if self.bare_sketch && sketch_fields == 6 {
                let sketch = allocate(sketch_class)?;
                sketch.setattr(intern!(py, "bucket"), bucket)?;
                sketch.setattr(intern!(py, "_at_floor"), py.None())?;
                sketch.setattr(intern!(py, "_floor"), 0)?;
                sketch
            } else {
                sketch_class.call1((bucket,))?
            };
            if sketch_fields == 6 {
                // Absent in accounts packed before the time-of-day profile.
                sketch.setattr(intern!(py, "rhythm"), reader.value(py)?)?;
            }
            sketch.setattr(intern!(py, "interactions"), interactions)?;
            sketch.setattr(intern!(py, "counts"), counts)?;
            sketch.setattr(intern!(py, "errors"), errors)?;
            if registers.is_none() {
                sketch.setattr(intern!(py, "registers"), registers)?;
            } else {
                let registers = registers.cast::<PyBytes>()?;
                sketch.setattr(
                    intern!(py, "registers"),
                    PyByteArray::new(py, registers.as_bytes()),
                )?;
            }
            actors.append(sketch)?;
        }

        if fields == 4 {
            account.setattr(intern!(py, "audience"), reader.value(py)?)?;
        }
        if reader.pos != reader.buf.len() {
            return Err(PyValueError::new_err("packed account: extra data after its fields"));
        }
        Ok(account)
    }
}

#[pymodule]
fn engagement_native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<Codec>()?;
    module.add_class::<actors::NativeActors>()?;
    Ok(())
}
