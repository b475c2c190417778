//! `scail weights convert`: any supported folder to canonical safetensors, tensor by tensor.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};

use super::layout::{
    find_tokenizer, locate, CLIP_PTH, CLIP_ST, DIT_SAT, DIT_ST, T5_PTH, T5_ST, TOKENIZER_JSON,
    VAE_PTH, VAE_ST,
};
use super::{io_err, Checkpoint, Result, Source, WeightsError};

/// Streams tensors into a safetensors file: the header is computed from shapes first, then
/// each tensor is fetched, converted and appended, so at most one tensor is in memory.
pub fn write_safetensors_streaming(
    path: &Path,
    tensors: &[(String, Vec<usize>, DType)],
    mut fetch: impl FnMut(&str) -> Result<Tensor>,
) -> Result<()> {
    let st_dtype = |d: DType| match d {
        DType::F32 => "F32",
        DType::F16 => "F16",
        DType::BF16 => "BF16",
        DType::F64 => "F64",
        DType::U8 => "U8",
        DType::I64 => "I64",
        DType::U32 => "U32",
        DType::F8E4M3 => "F8_E4M3",
        _ => "F32",
    };
    let mut header = serde_json::Map::new();
    let mut off = 0usize;
    for (n, shape, dt) in tensors {
        let len = shape.iter().product::<usize>() * dt.size_in_bytes();
        header.insert(
            n.clone(),
            serde_json::json!({"dtype": st_dtype(*dt), "shape": shape, "data_offsets": [off, off + len]}),
        );
        off += len;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).map_err(io_err(p))?;
    }
    let tmp = path.with_extension("safetensors.partial");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&tmp).map_err(io_err(&tmp))?);
    f.write_all(&(h.len() as u64).to_le_bytes())
        .map_err(io_err(&tmp))?;
    f.write_all(&h).map_err(io_err(&tmp))?;
    for (n, shape, dt) in tensors {
        let t = fetch(n)?.to_dtype(*dt)?;
        if t.dims() != shape.as_slice() {
            return Err(WeightsError::Tensor {
                name: n.clone(),
                msg: format!("shape {:?}, header says {shape:?}", t.dims()),
            });
        }
        let bytes = tensor_bytes(&t)?;
        f.write_all(&bytes).map_err(io_err(&tmp))?;
    }
    f.flush().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

pub(crate) fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
    let t = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => t
            .to_vec1::<f32>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::BF16 => t
            .to_vec1::<half::bf16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        DType::F16 => t
            .to_vec1::<half::f16>()?
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        other => {
            return Err(WeightsError::Tensor {
                name: "?".into(),
                msg: format!("cannot write {other:?}"),
            })
        }
    })
}

/// What [`convert`] wrote.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub files: Vec<(PathBuf, usize)>,
}

/// `scail weights convert`: every component found in `src` (official layout, or fp16 /
/// fp8_scaled safetensors under the canonical names) to canonical safetensors in `dst`,
/// streaming tensor by tensor. The DiT, umT5 and CLIP are stored in bf16; the VAE stays in f32
/// (the reference runs it in f32 and it is small).
pub fn convert(src: &Path, dst: &Path) -> Result<ConvertReport> {
    let mut files = Vec::new();
    for (component, official, canonical) in [
        ("dit", DIT_SAT, DIT_ST),
        ("vae", VAE_PTH, VAE_ST),
        ("t5", T5_PTH, T5_ST),
        ("clip", CLIP_PTH, CLIP_ST),
    ] {
        let Some(path) = locate(src, official, canonical) else {
            return Err(WeightsError::ComponentMissing {
                component,
                dir: src.to_path_buf(),
                looked: format!("{official}, {canonical}"),
            });
        };
        let ck = Checkpoint::open(&path)?;
        let dtype = if component == "vae" {
            DType::F32
        } else {
            DType::BF16
        };
        let mut list: Vec<(String, Vec<usize>, DType)> = ck
            .metas()
            .map(|(n, m)| (n.clone(), m.shape.clone(), dtype))
            .collect();
        // Parts cut from one fused SAT tensor (q/k/v, k/v) go one after the other, so each
        // fused tensor is read once.
        let key = |n: &str| match ck.source(n) {
            Some(Source::Chunk { name, index, .. }) => (name.clone(), *index),
            Some(Source::Direct(k)) | Some(Source::Fp8Scaled { name: k, .. }) => (k.clone(), 0),
            None => (n.to_string(), 0),
        };
        list.sort_by_cached_key(|(n, _, _)| key(n));
        let out = dst.join(canonical);
        write_safetensors_streaming(&out, &list, |n| ck.load(n))?;
        files.push((out, list.len()));
    }
    if let Some(tok) = find_tokenizer(src) {
        let out = dst.join(TOKENIZER_JSON);
        std::fs::copy(&tok, &out).map_err(io_err(&out))?;
        files.push((out, 0));
    }
    Ok(ConvertReport { files })
}
