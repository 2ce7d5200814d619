//! GGUF in, GGUF out: requantizes an existing model file tensor by tensor.
//!
//! The input is memory-mapped and parsed by the runtime's validating reader; every tensor's type is
//! chosen by the [`Policy`] *before* the output file is created, so a refused requantization leaves
//! nothing behind. The header (all metadata, with `general.file_type` and
//! `general.quantization_version` set, then the tensor table) is written first by
//! [`GgufStreamWriter`]; tensor data follows in input order, converted in batches of rows
//! ([`crate::quantize`]) or copied from the mapping when the type does not change. Each batch's (or
//! copied chunk's) mapped pages are released once written ([`GgufFile::release`], `madvise
//! DONTNEED`), so memory use is the metadata plus one batch per thread, never a whole tensor, the
//! input file or the output file (`tests/convert_memory.rs` measures it).

use crate::error::io;
use crate::output::AtomicFile;
use crate::policy::{self, Policy, Reason};
use crate::quantize::write_converted;
use crate::{Error, Result};
use ingot_kernels::QuantType;
use ingot_runtime::gguf::keys::{GENERAL_FILE_TYPE, GENERAL_QUANTIZATION_VERSION};
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::{Gguf, GgufFile, GgufStreamWriter, TensorDecl};
use std::path::Path;

/// Bytes of a tensor copied unchanged between two releases of the input's pages.
const COPY_CHUNK: usize = 16 << 20;

/// How to convert.
#[derive(Clone, Debug)]
pub struct Options {
    pub policy: Policy,
    /// Threads for quantization (at least 1).
    pub threads: usize,
}

/// What happens to one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorPlan {
    pub name: String,
    /// ggml order, row length first.
    pub dims: Vec<u64>,
    pub from: QuantType,
    pub to: QuantType,
    pub reason: Reason,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl TensorPlan {
    /// Whether the bytes are copied unchanged.
    pub fn is_copy(&self) -> bool {
        self.from == self.to
    }

    /// The output header entry of this tensor.
    pub fn decl(&self) -> TensorDecl {
        TensorDecl {
            name: self.name.clone(),
            dims: self.dims.clone(),
            ty: self.to,
        }
    }
}

/// Reported before each tensor is written.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// 0-based index and total count.
    pub index: usize,
    pub count: usize,
    pub tensor: &'a TensorPlan,
}

/// The outcome of a conversion.
#[derive(Clone, Debug)]
pub struct Summary {
    pub tensors: Vec<TensorPlan>,
    /// Sizes of the input and output files in bytes.
    pub file_bytes_in: u64,
    pub file_bytes_out: u64,
    /// `general.file_type` written.
    pub file_type: u32,
}

impl Summary {
    /// Total elements of all tensors.
    pub fn n_elements(&self) -> u64 {
        self.tensors
            .iter()
            .map(|t| t.dims.iter().product::<u64>())
            .sum()
    }

    /// Tensor bytes of the output.
    pub fn tensor_bytes_out(&self) -> u64 {
        self.tensors.iter().map(|t| t.bytes_out).sum()
    }
}

/// Chooses every tensor's type. Errors (a refused requantization) before anything is written.
pub fn plan(gguf: &Gguf<'_>, policy: &Policy) -> Result<Vec<TensorPlan>> {
    let policy = policy.for_model(gguf.tensors().iter().map(|t| (t.name, t.shape())));
    gguf.tensors()
        .iter()
        .map(|t| {
            let dims = t.shape().to_vec();
            let (to, reason) = policy.choose(t.name, &dims, t.ty)?;
            let decl = TensorDecl {
                name: t.name.to_string(),
                dims: dims.clone(),
                ty: to,
            };
            let bytes_out = decl.n_bytes().ok_or_else(|| Error::Tensor {
                name: t.name.to_string(),
                what: format!("size of {dims:?} as {to} overflows"),
            })?;
            Ok(TensorPlan {
                name: decl.name,
                dims,
                from: t.ty,
                to,
                reason,
                bytes_in: t.data.len() as u64,
                bytes_out,
            })
        })
        .collect()
}

/// The output metadata: the input's pairs in order, with `general.file_type` (llama.cpp's
/// `LLAMA_FTYPE_*` of the target) and `general.quantization_version` set, as `llama_model_quantize`
/// does (`gguf_set_kv` then `gguf_set_val_u32` for both keys).
pub fn metadata(gguf: &Gguf<'_>, policy: &Policy) -> Result<(Vec<(String, OwnedValue)>, u32)> {
    let file_type = policy.file_type().ok_or_else(|| Error::UnsupportedType {
        name: policy.target.name().into(),
        what: "not a file type".into(),
    })?;
    let mut meta: Vec<(String, OwnedValue)> = gguf
        .metadata()
        .iter()
        .map(|(k, v)| (k.to_string(), OwnedValue::from(*v)))
        .collect();
    for (key, value) in [
        (GENERAL_FILE_TYPE, file_type),
        (GENERAL_QUANTIZATION_VERSION, policy::QUANTIZATION_VERSION),
    ] {
        match meta.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = OwnedValue::U32(value),
            None => meta.push((key.to_string(), OwnedValue::U32(value))),
        }
    }
    Ok((meta, file_type))
}

/// Converts the GGUF file `input` to `output` (written atomically; see [`crate::output`]).
pub fn convert_gguf(
    input: &Path,
    output: &Path,
    opts: &Options,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Summary> {
    let file = GgufFile::open(input)?;
    let gguf = file.parse()?;
    let tensors = plan(&gguf, &opts.policy)?;
    let (meta, file_type) = metadata(&gguf, &opts.policy)?;
    let decls: Vec<TensorDecl> = tensors.iter().map(TensorPlan::decl).collect();

    let mut out = AtomicFile::create(output)?;
    let tmp = out.temp_path().to_path_buf();
    let mut w = GgufStreamWriter::new(&mut out, &meta, &decls).map_err(|e| io(&tmp, e))?;
    let mut buf = Vec::new();
    for (i, (plan, info)) in tensors.iter().zip(gguf.tensors()).enumerate() {
        progress(Progress {
            index: i,
            count: tensors.len(),
            tensor: plan,
        });
        if plan.is_copy() {
            for part in info.data.chunks(COPY_CHUNK) {
                w.write(part).map_err(|e| io(&tmp, e))?;
                file.release(part);
            }
            continue;
        }
        let n = plan.dims[0] as usize;
        write_converted(
            &mut w,
            plan,
            plan.from,
            n,
            info.data,
            opts.threads,
            &mut buf,
            &tmp,
            &|part| {
                file.release(part);
            },
        )?;
    }
    w.finish().map_err(|e| io(&tmp, e))?;
    out.commit()?;
    let size = |p: &Path| std::fs::metadata(p).map(|m| m.len()).map_err(|e| io(p, e));
    Ok(Summary {
        tensors,
        file_bytes_in: size(input)?,
        file_bytes_out: size(output)?,
        file_type,
    })
}
