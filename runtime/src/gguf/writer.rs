//! Builds GGUF v3 files: metadata in insertion order, tensors laid out at the alignment.
//!
//! [`GgufWriter`] holds everything in memory and returns the whole file (tests use it to make small and
//! deliberately broken files). [`GgufStreamWriter`] is for files larger than memory (the converter):
//! tensors are *declared* up front (name, dims, type: enough to know every size and offset), the
//! header is written at once, and each tensor's bytes are then streamed in declaration order.

use super::reader::DEFAULT_ALIGNMENT;
use super::{Value, ValueType};
use ingot_kernels::QuantType;

/// An owned metadata value for writing.
#[derive(Clone, Debug, PartialEq)]
pub enum OwnedValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    U64(u64),
    I64(i64),
    F64(f64),
    /// An array of scalars or strings, all of the same type (not checked; the writer trusts its caller).
    Array(Vec<OwnedValue>),
}

impl OwnedValue {
    fn value_type(&self) -> ValueType {
        match self {
            OwnedValue::U8(_) => ValueType::U8,
            OwnedValue::I8(_) => ValueType::I8,
            OwnedValue::U16(_) => ValueType::U16,
            OwnedValue::I16(_) => ValueType::I16,
            OwnedValue::U32(_) => ValueType::U32,
            OwnedValue::I32(_) => ValueType::I32,
            OwnedValue::F32(_) => ValueType::F32,
            OwnedValue::Bool(_) => ValueType::Bool,
            OwnedValue::String(_) => ValueType::String,
            OwnedValue::Array(_) => ValueType::Array,
            OwnedValue::U64(_) => ValueType::U64,
            OwnedValue::I64(_) => ValueType::I64,
            OwnedValue::F64(_) => ValueType::F64,
        }
    }

    fn write_payload(&self, out: &mut Vec<u8>) {
        match self {
            OwnedValue::U8(v) => out.push(*v),
            OwnedValue::I8(v) => out.push(*v as u8),
            OwnedValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::Bool(v) => out.push(u8::from(*v)),
            OwnedValue::String(s) => write_str(out, s),
            OwnedValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            OwnedValue::Array(items) => {
                let elem = items
                    .first()
                    .map_or(ValueType::U32, OwnedValue::value_type)
                    .id();
                out.extend_from_slice(&elem.to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    it.write_payload(out);
                }
            }
        }
    }
}

impl From<Value<'_>> for OwnedValue {
    fn from(v: Value<'_>) -> Self {
        match v {
            Value::U8(x) => OwnedValue::U8(x),
            Value::I8(x) => OwnedValue::I8(x),
            Value::U16(x) => OwnedValue::U16(x),
            Value::I16(x) => OwnedValue::I16(x),
            Value::U32(x) => OwnedValue::U32(x),
            Value::I32(x) => OwnedValue::I32(x),
            Value::F32(x) => OwnedValue::F32(x),
            Value::Bool(x) => OwnedValue::Bool(x),
            Value::String(s) => OwnedValue::String(s.to_string()),
            Value::Array(a) => OwnedValue::Array(a.iter().map(OwnedValue::from).collect()),
            Value::U64(x) => OwnedValue::U64(x),
            Value::I64(x) => OwnedValue::I64(x),
            Value::F64(x) => OwnedValue::F64(x),
        }
    }
}

/// The value of `general.alignment` in `metadata` when it is a usable u32, else the default.
fn alignment_of(metadata: &[(String, OwnedValue)]) -> u64 {
    match metadata
        .iter()
        .find(|(k, _)| k == super::keys::GENERAL_ALIGNMENT)
    {
        Some((_, OwnedValue::U32(a))) if *a != 0 && a.is_power_of_two() => u64::from(*a),
        _ => DEFAULT_ALIGNMENT,
    }
}

/// Magic, version, counts, metadata and tensor infos, padded to `align`: everything before the data
/// section. `tensors` yields (name, dims, type, data bytes); offsets are laid out at `align`.
fn header<'t>(
    metadata: &[(String, OwnedValue)],
    tensors: impl ExactSizeIterator<Item = (&'t str, &'t [u64], QuantType, u64)>,
    align: u64,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(b"GGUF");
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        write_str(&mut out, k);
        out.extend_from_slice(&v.value_type().id().to_le_bytes());
        v.write_payload(&mut out);
    }
    let mut offset = 0u64;
    for (name, dims, ty, size) in tensors {
        write_str(&mut out, name);
        out.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in dims {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&ty.ggml_id().to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        offset = (offset + size).next_multiple_of(align);
    }
    out.resize((out.len() as u64).next_multiple_of(align) as usize, 0);
    out
}

fn write_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// A tensor to write: name, ggml-order dims, type and its raw bytes.
#[derive(Clone, Debug)]
struct PendingTensor {
    name: String,
    dims: Vec<u64>,
    ty: QuantType,
    data: Vec<u8>,
}

/// Collects metadata and tensors, then [`GgufWriter::to_bytes`] lays out a GGUF v3 file.
#[derive(Clone, Debug, Default)]
pub struct GgufWriter {
    metadata: Vec<(String, OwnedValue)>,
    tensors: Vec<PendingTensor>,
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets `key` (replacing an earlier value of the same key).
    pub fn set(&mut self, key: &str, value: OwnedValue) -> &mut Self {
        match self.metadata.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.metadata.push((key.to_string(), value)),
        }
        self
    }

    /// Adds a tensor; `dims` in ggml order (row length first); `data` must hold exactly the tensor's bytes.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: QuantType,
        data: Vec<u8>,
    ) -> &mut Self {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            data,
        });
        self
    }

    fn alignment(&self) -> u64 {
        alignment_of(&self.metadata)
    }

    /// The complete file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let align = self.alignment() as usize;
        let infos = self.tensors.iter().map(|t| {
            (
                t.name.as_str(),
                t.dims.as_slice(),
                t.ty,
                t.data.len() as u64,
            )
        });
        let mut out = header(&self.metadata, infos, align as u64);
        let data_start = out.len();
        let mut offset = 0usize;
        for t in &self.tensors {
            out.resize(data_start + offset, 0);
            out.extend_from_slice(&t.data);
            offset = (offset + t.data.len()).next_multiple_of(align);
        }
        out
    }
}

/// A tensor declared to a [`GgufStreamWriter`]: its bytes follow later.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorDecl {
    pub name: String,
    /// ggml order: row length first.
    pub dims: Vec<u64>,
    pub ty: QuantType,
}

impl TensorDecl {
    /// Bytes of the tensor's data, or `None` when the row length is not a whole number of blocks or
    /// the size overflows.
    pub fn n_bytes(&self) -> Option<u64> {
        let (&row, rest) = self.dims.split_first()?;
        let row_bytes = self.ty.row_bytes(usize::try_from(row).ok()?)? as u64;
        rest.iter()
            .try_fold(row_bytes, |acc, &d| acc.checked_mul(d))
    }
}

/// Writes a GGUF v3 file to `W` without holding tensor data: the header goes out in
/// [`GgufStreamWriter::new`], then [`GgufStreamWriter::write`] appends the declared tensors' bytes in
/// order (any number of calls per tensor; alignment padding between tensors is inserted here), and
/// [`GgufStreamWriter::finish`] checks that every declared byte arrived.
#[derive(Debug)]
pub struct GgufStreamWriter<W: std::io::Write> {
    out: W,
    align: u64,
    /// Byte size of each declared tensor, in order.
    sizes: Vec<u64>,
    /// Index of the tensor being written and the bytes of it written so far.
    current: usize,
    written: u64,
}

impl<W: std::io::Write> GgufStreamWriter<W> {
    /// Writes the header (metadata, tensor infos, padding) for `tensors` to `out`. The alignment is
    /// `general.alignment` from `metadata` when set, else [`DEFAULT_ALIGNMENT`]. Fails with
    /// `InvalidInput` for a tensor whose size cannot be computed.
    pub fn new(
        mut out: W,
        metadata: &[(String, OwnedValue)],
        tensors: &[TensorDecl],
    ) -> std::io::Result<Self> {
        let align = alignment_of(metadata);
        let sizes = tensors
            .iter()
            .map(|t| {
                t.n_bytes().ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "tensor `{}`: dims {:?} are not whole {} blocks",
                            t.name, t.dims, t.ty
                        ),
                    )
                })
            })
            .collect::<std::io::Result<Vec<u64>>>()?;
        let infos = tensors
            .iter()
            .zip(&sizes)
            .map(|(t, &n)| (t.name.as_str(), t.dims.as_slice(), t.ty, n));
        out.write_all(&header(metadata, infos, align))?;
        let mut w = GgufStreamWriter {
            out,
            align,
            sizes,
            current: 0,
            written: 0,
        };
        w.skip_empty();
        Ok(w)
    }

    /// Moves past tensors that are complete (pads after each one but the last).
    fn skip_empty(&mut self) {
        while self.current < self.sizes.len() && self.written == self.sizes[self.current] {
            self.current += 1;
            self.written = 0;
        }
    }

    /// Index of the tensor the next bytes belong to (`== declared count` when all are complete).
    pub fn current_tensor(&self) -> usize {
        self.current
    }

    /// Appends `bytes` to the current tensor's data, moving on to the next tensor (after padding)
    /// when one is complete. Fails with `InvalidInput` if `bytes` runs past the current tensor's end:
    /// a tensor's data is never split across calls that cross tensors.
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        let Some(&size) = self.sizes.get(self.current) else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "all declared tensors are already written",
            ));
        };
        if self.written + bytes.len() as u64 > size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "tensor {} is {size} bytes; {} more would overrun it by {}",
                    self.current,
                    bytes.len(),
                    self.written + bytes.len() as u64 - size
                ),
            ));
        }
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        if self.written == size {
            if self.current + 1 < self.sizes.len() {
                let pad = size.next_multiple_of(self.align) - size;
                self.out.write_all(&vec![0u8; pad as usize])?;
            }
            self.current += 1;
            self.written = 0;
            self.skip_empty();
        }
        Ok(())
    }

    /// Checks that every declared tensor was written in full and returns the sink (not flushed).
    pub fn finish(self) -> std::io::Result<W> {
        if self.current < self.sizes.len() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "tensor {} of {} is incomplete ({} of {} bytes written)",
                    self.current,
                    self.sizes.len(),
                    self.written,
                    self.sizes[self.current]
                ),
            ));
        }
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (GgufWriter, Vec<TensorDecl>, Vec<Vec<u8>>) {
        let mut w = GgufWriter::new();
        w.set("general.architecture", OwnedValue::String("llama".into()))
            .set(super::super::keys::GENERAL_ALIGNMENT, OwnedValue::U32(64));
        let decls = vec![
            TensorDecl {
                name: "a".into(),
                dims: vec![3],
                ty: QuantType::F32,
            },
            TensorDecl {
                name: "b".into(),
                dims: vec![64, 3],
                ty: QuantType::Q4_0,
            },
            TensorDecl {
                name: "c".into(),
                dims: vec![5, 1],
                ty: QuantType::F16,
            },
        ];
        let data: Vec<Vec<u8>> = decls
            .iter()
            .enumerate()
            .map(|(i, d)| vec![i as u8 + 1; d.n_bytes().unwrap() as usize])
            .collect();
        for (d, b) in decls.iter().zip(&data) {
            w.add_tensor(&d.name, &d.dims, d.ty, b.clone());
        }
        (w, decls, data)
    }

    #[test]
    fn streamed_file_equals_in_memory_file() {
        let (w, decls, data) = sample();
        let mut s = GgufStreamWriter::new(Vec::new(), &w.metadata, &decls).unwrap();
        for (i, b) in data.iter().enumerate() {
            assert_eq!(s.current_tensor(), i);
            // Uneven pieces: the writer only sees a byte stream per tensor.
            let (x, y) = b.split_at(b.len() / 3);
            s.write(x).unwrap();
            s.write(y).unwrap();
        }
        let bytes = s.finish().unwrap();
        assert_eq!(bytes, w.to_bytes());
        let g = super::super::Gguf::parse(&bytes).unwrap();
        assert_eq!(g.alignment, 64);
        assert_eq!(g.tensor("b").unwrap().data, &data[1][..]);
    }

    #[test]
    fn stream_rejects_overrun_and_incomplete_data() {
        let (w, decls, data) = sample();
        let mut s = GgufStreamWriter::new(Vec::new(), &w.metadata, &decls).unwrap();
        let mut too_long = data[0].clone();
        too_long.push(0);
        assert!(s.write(&too_long).is_err());
        s.write(&data[0]).unwrap();
        assert!(s.finish().is_err());
        let bad = [TensorDecl {
            name: "x".into(),
            dims: vec![33],
            ty: QuantType::Q8_0,
        }];
        assert!(GgufStreamWriter::new(Vec::new(), &[], &bad).is_err());
    }
}
