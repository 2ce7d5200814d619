//! The GGUF parser: a validated, zero-copy view over the bytes of a GGUF v2/v3 file.
//!
//! Nothing in the file is trusted. Every count, string length and array length is checked against the
//! bytes that remain *before* anything is allocated or read; tensor shapes are checked for overflow and
//! for a row length that is a whole number of blocks; tensor data must lie inside the file, aligned to
//! `general.alignment`, without overlaps. Any failure is [`Error::Gguf`] with the byte offset where the
//! problem was found. The parser works on a byte slice and knows nothing of files or memory maps.
//!
//! Layout (ggml `docs/gguf.md`): magic `GGUF`, u32 version, u64 tensor count, u64 metadata count, the
//! metadata key/value pairs, the tensor infos (name, n_dims, dims, type, offset), padding to the
//! alignment, then the tensor data. All integers little-endian.

use crate::prelude::*;
use crate::{Error, Result};
use ingot_kernels::QuantType;

/// Largest number of dimensions a ggml tensor has (`GGML_MAX_DIMS`).
pub const MAX_DIMS: usize = 4;
/// Alignment of the data section when `general.alignment` is absent (`GGUF_DEFAULT_ALIGNMENT`).
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The type of a metadata value, with GGUF's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    String,
    Array,
    U64,
    I64,
    F64,
}

impl ValueType {
    /// The type with GGUF id `id`, if there is one.
    pub fn from_id(id: u32) -> Option<ValueType> {
        Some(match id {
            0 => ValueType::U8,
            1 => ValueType::I8,
            2 => ValueType::U16,
            3 => ValueType::I16,
            4 => ValueType::U32,
            5 => ValueType::I32,
            6 => ValueType::F32,
            7 => ValueType::Bool,
            8 => ValueType::String,
            9 => ValueType::Array,
            10 => ValueType::U64,
            11 => ValueType::I64,
            12 => ValueType::F64,
            _ => return None,
        })
    }

    /// GGUF's id for this type.
    pub fn id(self) -> u32 {
        match self {
            ValueType::U8 => 0,
            ValueType::I8 => 1,
            ValueType::U16 => 2,
            ValueType::I16 => 3,
            ValueType::U32 => 4,
            ValueType::I32 => 5,
            ValueType::F32 => 6,
            ValueType::Bool => 7,
            ValueType::String => 8,
            ValueType::Array => 9,
            ValueType::U64 => 10,
            ValueType::I64 => 11,
            ValueType::F64 => 12,
        }
    }

    /// Size in bytes of a fixed-size value; `None` for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            ValueType::U8 | ValueType::I8 | ValueType::Bool => Some(1),
            ValueType::U16 | ValueType::I16 => Some(2),
            ValueType::U32 | ValueType::I32 | ValueType::F32 => Some(4),
            ValueType::U64 | ValueType::I64 | ValueType::F64 => Some(8),
            ValueType::String | ValueType::Array => None,
        }
    }

    /// Lower-case name as GGUF tools print it.
    pub fn name(self) -> &'static str {
        match self {
            ValueType::U8 => "u8",
            ValueType::I8 => "i8",
            ValueType::U16 => "u16",
            ValueType::I16 => "i16",
            ValueType::U32 => "u32",
            ValueType::I32 => "i32",
            ValueType::F32 => "f32",
            ValueType::Bool => "bool",
            ValueType::String => "string",
            ValueType::Array => "array",
            ValueType::U64 => "u64",
            ValueType::I64 => "i64",
            ValueType::F64 => "f64",
        }
    }
}

/// One metadata value, borrowing strings and array bytes from the file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(&'a str),
    Array(Array<'a>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value<'_> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) => ValueType::String,
            Value::Array(_) => ValueType::Array,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
        }
    }

    /// The value as an unsigned integer, when it is an integer that is not negative.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            Value::U8(v) => Some(v.into()),
            Value::U16(v) => Some(v.into()),
            Value::U32(v) => Some(v.into()),
            Value::U64(v) => Some(v),
            Value::I8(v) => u64::try_from(v).ok(),
            Value::I16(v) => u64::try_from(v).ok(),
            Value::I32(v) => u64::try_from(v).ok(),
            Value::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// The value as a float, when it is a float or an integer.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::F32(v) => Some(v.into()),
            Value::F64(v) => Some(v),
            Value::I8(v) => Some(v.into()),
            Value::I16(v) => Some(v.into()),
            Value::I32(v) => Some(v.into()),
            Value::I64(v) => Some(v as f64),
            _ => self.as_u64().map(|v| v as f64),
        }
    }
}

/// A metadata array: its element type, length and the (already validated) bytes of its elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Array<'a> {
    pub elem: ValueType,
    pub len: usize,
    bytes: &'a [u8],
}

impl<'a> Array<'a> {
    /// Iterates over the elements. Nested arrays are rejected at parse time, so elements are scalars
    /// or strings.
    pub fn iter(&self) -> impl Iterator<Item = Value<'a>> + 'a {
        let mut cur = Cursor {
            buf: self.bytes,
            pos: 0,
            base: 0,
        };
        let elem = self.elem;
        (0..self.len).map(move |_| {
            // The bytes were walked with the same reader during parsing, so this cannot fail.
            cur.value(elem).expect("array validated at parse time")
        })
    }

    /// The elements as strings, when this is an array of strings.
    pub fn strings(&self) -> Option<impl Iterator<Item = &'a str> + 'a> {
        (self.elem == ValueType::String).then(|| {
            self.iter().map(|v| match v {
                Value::String(s) => s,
                _ => unreachable!("element type checked"),
            })
        })
    }
}

/// Description of one tensor and a view of its bytes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TensorInfo<'a> {
    pub name: &'a str,
    /// ggml order: `dims[0]` is the row length (contiguous), unused dimensions are 1.
    pub dims: [u64; MAX_DIMS],
    pub n_dims: usize,
    pub ty: QuantType,
    /// Offset of the data relative to the start of the data section.
    pub offset: u64,
    /// The tensor's bytes inside the file.
    pub data: &'a [u8],
}

impl TensorInfo<'_> {
    /// Number of elements.
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// Number of rows (all dimensions but the first).
    pub fn n_rows(&self) -> u64 {
        self.dims[1..].iter().product()
    }

    /// Shape as a slice of `n_dims` dimensions.
    pub fn shape(&self) -> &[u64] {
        &self.dims[..self.n_dims]
    }
}

/// A parsed GGUF file.
#[derive(Clone, Debug)]
pub struct Gguf<'a> {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    metadata: Vec<(&'a str, Value<'a>)>,
    tensors: Vec<TensorInfo<'a>>,
}

/// Reads values from the file, tracking the absolute offset for error messages.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Absolute offset of `buf[0]` in the file.
    base: u64,
}

impl<'a> Cursor<'a> {
    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn err(&self, what: impl Into<String>) -> Error {
        Error::Gguf {
            offset: self.offset(),
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "{what} needs {n} bytes but only {} remain (file truncated?)",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array::<4>(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array::<8>(what).map(u64::from_le_bytes)
    }

    /// A length-prefixed string (u64 length, then UTF-8 bytes), length checked against the file first.
    fn string(&mut self, what: &str) -> Result<&'a str> {
        let at = self.offset();
        let len = self.u64(what)?;
        if len > self.remaining() as u64 {
            return Err(Error::Gguf {
                offset: at,
                what: format!(
                    "{what}: string length {len} exceeds the {} bytes left in the file",
                    self.remaining()
                ),
            });
        }
        let bytes = self.take(len as usize, what)?;
        core::str::from_utf8(bytes).map_err(|e| Error::Gguf {
            offset: at,
            what: format!("{what}: string is not valid UTF-8 ({e})"),
        })
    }

    fn value(&mut self, ty: ValueType) -> Result<Value<'a>> {
        Ok(match ty {
            ValueType::U8 => Value::U8(self.array::<1>("u8 value")?[0]),
            ValueType::I8 => Value::I8(self.array::<1>("i8 value")?[0] as i8),
            ValueType::U16 => Value::U16(u16::from_le_bytes(self.array("u16 value")?)),
            ValueType::I16 => Value::I16(i16::from_le_bytes(self.array("i16 value")?)),
            ValueType::U32 => Value::U32(self.u32("u32 value")?),
            ValueType::I32 => Value::I32(i32::from_le_bytes(self.array("i32 value")?)),
            ValueType::F32 => Value::F32(f32::from_le_bytes(self.array("f32 value")?)),
            ValueType::Bool => {
                let at = self.offset();
                match self.array::<1>("bool value")?[0] {
                    0 => Value::Bool(false),
                    1 => Value::Bool(true),
                    b => {
                        return Err(Error::Gguf {
                            offset: at,
                            what: format!("bool value is {b}, not 0 or 1"),
                        })
                    }
                }
            }
            ValueType::String => Value::String(self.string("string value")?),
            ValueType::U64 => Value::U64(self.u64("u64 value")?),
            ValueType::I64 => Value::I64(i64::from_le_bytes(self.array("i64 value")?)),
            ValueType::F64 => Value::F64(f64::from_le_bytes(self.array("f64 value")?)),
            ValueType::Array => {
                let at = self.offset();
                let elem_id = self.u32("array element type")?;
                let elem = ValueType::from_id(elem_id).ok_or_else(|| Error::Gguf {
                    offset: at,
                    what: format!("unknown array element type {elem_id}"),
                })?;
                if elem == ValueType::Array {
                    return Err(Error::Gguf {
                        offset: at,
                        what: "nested arrays are not supported".into(),
                    });
                }
                let len_at = self.offset();
                let len = self.u64("array length")?;
                // Every element takes at least one byte (strings at least eight), so a length larger than
                // the bytes left is a lie; reject it before walking.
                let min_size = elem.fixed_size().unwrap_or(8) as u64;
                if len
                    .checked_mul(min_size)
                    .is_none_or(|need| need > self.remaining() as u64)
                {
                    return Err(Error::Gguf {
                        offset: len_at,
                        what: format!(
                            "array of {len} {} elements does not fit in the {} bytes left in the file",
                            elem.name(),
                            self.remaining()
                        ),
                    });
                }
                let start = self.pos;
                match elem.fixed_size() {
                    Some(size) => {
                        self.take(len as usize * size, "array data")?;
                        if elem == ValueType::Bool {
                            if let Some(i) = self.buf[start..self.pos].iter().position(|&b| b > 1) {
                                return Err(Error::Gguf {
                                    offset: self.base + (start + i) as u64,
                                    what: "bool array element is not 0 or 1".into(),
                                });
                            }
                        }
                    }
                    None => {
                        for _ in 0..len {
                            self.string("array string element")?;
                        }
                    }
                }
                Value::Array(Array {
                    elem,
                    len: len as usize,
                    bytes: &self.buf[start..self.pos],
                })
            }
        })
    }
}

impl<'a> Gguf<'a> {
    /// Parses and validates a whole GGUF file held in `bytes`.
    pub fn parse(bytes: &'a [u8]) -> Result<Gguf<'a>> {
        let mut cur = Cursor {
            buf: bytes,
            pos: 0,
            base: 0,
        };
        let magic = cur.array::<4>("magic")?;
        if &magic != b"GGUF" {
            return Err(Error::Gguf {
                offset: 0,
                what: format!("bad magic {magic:02x?}: not a GGUF file"),
            });
        }
        let version = cur.u32("version")?;
        if version != 2 && version != 3 {
            let what = if version.swap_bytes() == 3 || version.swap_bytes() == 2 {
                "big-endian GGUF files are not supported".to_string()
            } else {
                format!("unsupported GGUF version {version} (supported: 2, 3)")
            };
            return Err(Error::Gguf { offset: 4, what });
        }
        let n_tensors_at = cur.offset();
        let n_tensors = cur.u64("tensor count")?;
        let n_kv_at = cur.offset();
        let n_kv = cur.u64("metadata count")?;
        // Smallest encodings: a key/value pair is a u64 key length, a u32 type and a one-byte value; a
        // tensor info is a u64 name length, u32 n_dims, one u64 dim, u32 type and u64 offset.
        if n_kv > (cur.remaining() / 13) as u64 {
            return Err(Error::Gguf {
                offset: n_kv_at,
                what: format!(
                    "metadata count {n_kv} cannot fit in the {} bytes left",
                    cur.remaining()
                ),
            });
        }
        if n_tensors > (cur.remaining() / 32) as u64 {
            return Err(Error::Gguf {
                offset: n_tensors_at,
                what: format!(
                    "tensor count {n_tensors} cannot fit in the {} bytes left",
                    cur.remaining()
                ),
            });
        }

        let mut metadata: Vec<(&'a str, Value<'a>)> = Vec::with_capacity(n_kv as usize);
        for _ in 0..n_kv {
            let key_at = cur.offset();
            let key = cur.string("metadata key")?;
            if metadata.iter().any(|(k, _)| *k == key) {
                return Err(Error::Gguf {
                    offset: key_at,
                    what: format!("duplicate metadata key `{key}`"),
                });
            }
            let ty_at = cur.offset();
            let ty_id = cur.u32("metadata value type")?;
            let ty = ValueType::from_id(ty_id).ok_or_else(|| Error::Gguf {
                offset: ty_at,
                what: format!("unknown metadata value type {ty_id} for key `{key}`"),
            })?;
            let value = cur.value(ty)?;
            metadata.push((key, value));
        }

        let mut alignment = DEFAULT_ALIGNMENT;
        if let Some((_, v)) = metadata
            .iter()
            .find(|(k, _)| *k == super::keys::GENERAL_ALIGNMENT)
        {
            alignment = match *v {
                Value::U32(a) if a != 0 && a.is_power_of_two() => a.into(),
                other => {
                    return Err(Error::Gguf {
                        offset: 0,
                        what: format!(
                            "general.alignment must be a non-zero power of two u32, got {other:?}"
                        ),
                    })
                }
            };
        }

        let mut tensors: Vec<TensorInfo<'a>> = Vec::with_capacity(n_tensors as usize);
        // Byte size of each tensor, until the data section's position is known.
        let mut sizes: Vec<u64> = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let info_at = cur.offset();
            let name = cur.string("tensor name")?;
            if tensors.iter().any(|t| t.name == name) {
                return Err(Error::Gguf {
                    offset: info_at,
                    what: format!("duplicate tensor name `{name}`"),
                });
            }
            let nd_at = cur.offset();
            let n_dims = cur.u32("tensor n_dims")? as usize;
            if n_dims == 0 || n_dims > MAX_DIMS {
                return Err(Error::Gguf {
                    offset: nd_at,
                    what: format!(
                        "tensor `{name}` has {n_dims} dimensions (allowed 1..={MAX_DIMS})"
                    ),
                });
            }
            let mut dims = [1u64; MAX_DIMS];
            let dims_at = cur.offset();
            for d in dims.iter_mut().take(n_dims) {
                *d = cur.u64("tensor dimension")?;
            }
            let bad_dims = |what: String| Error::Gguf {
                offset: dims_at,
                what,
            };
            if let Some(d) = dims.iter().find(|&&d| d == 0 || d > i64::MAX as u64) {
                return Err(bad_dims(format!("tensor `{name}` has dimension {d}")));
            }
            let n_elements = dims
                .iter()
                .try_fold(1u64, |acc, &d| {
                    acc.checked_mul(d).filter(|&n| n <= i64::MAX as u64)
                })
                .ok_or_else(|| {
                    bad_dims(format!(
                        "tensor `{name}` dimensions {:?} overflow",
                        &dims[..n_dims]
                    ))
                })?;
            let ty_at = cur.offset();
            let ty_id = cur.u32("tensor type")?;
            let ty = QuantType::from_ggml_id(ty_id).ok_or_else(|| Error::Gguf {
                offset: ty_at,
                what: format!("tensor `{name}` has unknown or unsupported type id {ty_id}"),
            })?;
            let block = ty.block_elems() as u64;
            if dims[0] % block != 0 {
                return Err(bad_dims(format!(
                    "tensor `{name}`: row length {} is not a multiple of the {} block size {block}",
                    dims[0],
                    ty.name()
                )));
            }
            let offset_at = cur.offset();
            let offset = cur.u64("tensor data offset")?;
            if offset % alignment != 0 {
                return Err(Error::Gguf {
                    offset: offset_at,
                    what: format!("tensor `{name}` data offset {offset} is not a multiple of the alignment {alignment}"),
                });
            }
            // Size in bytes: rows of `dims[0]` elements; n_elements <= i64::MAX so the row count fits.
            let size = ty
                .row_bytes(usize::try_from(dims[0]).map_err(|_| bad_dims("row too long".into()))?)
                .and_then(|rb| (rb as u64).checked_mul(n_elements / dims[0]))
                .ok_or_else(|| bad_dims(format!("tensor `{name}` byte size overflows")))?;
            tensors.push(TensorInfo {
                name,
                dims,
                n_dims,
                ty,
                offset,
                data: &[],
            });
            sizes.push(size);
        }

        let header_end = cur.offset();
        let data_offset = header_end
            .checked_next_multiple_of(alignment)
            .ok_or_else(|| Error::Gguf {
                offset: header_end,
                what: "data offset overflows".into(),
            })?;
        let file_len = bytes.len() as u64;
        if n_tensors > 0 && data_offset > file_len {
            return Err(Error::Gguf {
                offset: header_end,
                what: format!("data section would start at {data_offset}, past the end of the {file_len}-byte file"),
            });
        }
        for (t, &size) in tensors.iter_mut().zip(&sizes) {
            let start = data_offset.checked_add(t.offset);
            let end = start.and_then(|s| s.checked_add(size));
            match (start, end) {
                (Some(s), Some(e)) if e <= file_len => t.data = &bytes[s as usize..e as usize],
                _ => {
                    return Err(Error::Gguf {
                        offset: data_offset.saturating_add(t.offset),
                        what: format!(
                            "tensor `{}` data ({size} bytes at data offset {}) extends past the end of the {file_len}-byte file",
                            t.name, t.offset
                        ),
                    })
                }
            }
        }
        let mut order: Vec<usize> = (0..tensors.len()).collect();
        order.sort_by_key(|&i| tensors[i].offset);
        for w in order.windows(2) {
            let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
            if a.offset + a.data.len() as u64 > b.offset {
                return Err(Error::Gguf {
                    offset: data_offset + b.offset,
                    what: format!("tensor `{}` overlaps tensor `{}`", b.name, a.name),
                });
            }
        }
        Ok(Gguf {
            version,
            alignment,
            data_offset,
            metadata,
            tensors,
        })
    }

    /// All metadata pairs in file order.
    pub fn metadata(&self) -> &[(&'a str, Value<'a>)] {
        &self.metadata
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<Value<'a>> {
        self.metadata
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    /// All tensors in file order.
    pub fn tensors(&self) -> &[TensorInfo<'a>] {
        &self.tensors
    }

    /// The tensor called `name`, if present.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo<'a>> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// A string value; `Ok(None)` when absent, an error when present with another type.
    pub fn get_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(wrong_type(key, "string", &v)),
        }
    }

    /// An unsigned integer value of any integer type.
    pub fn get_u64(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| wrong_type(key, "non-negative integer", &v)),
        }
    }

    /// A float value (integers are accepted too).
    pub fn get_f32(&self, key: &str) -> Result<Option<f32>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(|x| Some(x as f32))
                .ok_or_else(|| wrong_type(key, "number", &v)),
        }
    }

    /// A boolean value.
    pub fn get_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(wrong_type(key, "bool", &v)),
        }
    }

    /// An array value.
    pub fn get_array(&self, key: &str) -> Result<Option<Array<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(a)) => Ok(Some(a)),
            Some(v) => Err(wrong_type(key, "array", &v)),
        }
    }

    /// Total bytes of tensor data.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().map(|t| t.data.len() as u64).sum()
    }
}

fn wrong_type(key: &str, want: &str, got: &Value<'_>) -> Error {
    Error::BadMetadata {
        key: key.into(),
        what: format!("expected {want}, found {}", got.value_type().name()),
    }
}
