//! One checkpoint file as stored: PyTorch zip (`.pth`/`.pt`) or safetensors, opened without
//! reading tensor data.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};

use super::{io_err, Result, WeightsError};

/// Shape and dtype of a stored tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorMeta {
    pub shape: Vec<usize>,
    pub dtype: DType,
}

enum Store {
    Pth(candle_core::pickle::PthTensors),
    Safetensors(candle_core::safetensors::MmapedSafetensors),
}

/// One checkpoint file, opened without reading tensor data.
pub struct RawCheckpoint {
    path: PathBuf,
    store: Store,
    pub(crate) metas: BTreeMap<String, TensorMeta>,
}

impl RawCheckpoint {
    /// Opens a `.pth`/`.pt` (PyTorch zip) or safetensors file, by content. For a PyTorch file
    /// whose top level holds `module` (SAT), the state dict under it is used.
    pub fn open(path: &Path) -> Result<Self> {
        let mut magic = [0u8; 2];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(io_err(path))?;
            f.read_exact(&mut magic).map_err(io_err(path))?;
        }
        let (store, metas) = if &magic == b"PK" {
            open_pth(path)?
        } else {
            open_safetensors(path)?
        };
        Ok(Self {
            path: path.to_path_buf(),
            store,
            metas,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn metas(&self) -> &BTreeMap<String, TensorMeta> {
        &self.metas
    }

    /// Reads one tensor in its stored dtype onto the CPU.
    pub fn load(&self, name: &str) -> Result<Tensor> {
        let read = |source| WeightsError::Read {
            path: self.path.clone(),
            source,
        };
        match &self.store {
            Store::Pth(p) => p
                .get(name)
                .map_err(read)?
                .ok_or_else(|| WeightsError::Missing(name.into())),
            Store::Safetensors(s) => s.load(name, &Device::Cpu).map_err(read),
        }
    }
}

type Metas = BTreeMap<String, TensorMeta>;

/// A PyTorch zip: the top-level state dict, else the one under `module` (SAT).
fn open_pth(path: &Path) -> Result<(Store, Metas)> {
    let read = |source| WeightsError::Read {
        path: path.to_path_buf(),
        source,
    };
    let flat = candle_core::pickle::PthTensors::new(path, None).map_err(|e| {
        // A PyTorch zip's directory sits at its end: a cut-off file loses it first.
        if matches!(e, candle_core::Error::Zip(_)) {
            let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            WeightsError::Corrupt {
                path: path.to_path_buf(),
                msg: format!("not a complete PyTorch zip ({size} bytes; truncated?): {e}"),
            }
        } else {
            read(e)
        }
    })?;
    let pth = if flat.tensor_infos().is_empty() {
        candle_core::pickle::PthTensors::new(path, Some("module")).map_err(read)?
    } else {
        flat
    };
    let metas = pth
        .tensor_infos()
        .iter()
        .map(|(k, v)| {
            let meta = TensorMeta {
                shape: v.layout.dims().to_vec(),
                dtype: v.dtype,
            };
            (k.clone(), meta)
        })
        .collect();
    Ok((Store::Pth(pth), metas))
}

/// A safetensors file, memory-mapped.
fn open_safetensors(path: &Path) -> Result<(Store, Metas)> {
    // SAFETY: mapped read-only; checkpoints must not change while open.
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }
        .map_err(|_| safetensors_problem(path))?;
    let mut metas = BTreeMap::new();
    for (k, v) in st.tensors() {
        let dtype = DType::try_from(v.dtype()).map_err(|e| WeightsError::Tensor {
            name: k.clone(),
            msg: format!("unsupported dtype: {e}"),
        })?;
        let meta = TensorMeta {
            shape: v.shape().to_vec(),
            dtype,
        };
        metas.insert(k, meta);
    }
    Ok((Store::Safetensors(st), metas))
}

/// Why a file that failed to open as safetensors is not one: a tensor that runs past the end
/// of the file (named), a header that does not fit, or not safetensors at all.
fn safetensors_problem(path: &Path) -> WeightsError {
    let corrupt = |msg: String| WeightsError::Corrupt {
        path: path.to_path_buf(),
        msg,
    };
    use std::io::Read;
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let Ok(mut f) = std::fs::File::open(path) else {
        return WeightsError::UnknownFormat {
            path: path.to_path_buf(),
        };
    };
    let mut len = [0u8; 8];
    if f.read_exact(&mut len).is_err() {
        return corrupt(format!("{size} bytes: too short for a safetensors header"));
    }
    let n = u64::from_le_bytes(len);
    // A header is JSON of at most 100 MB (the format's own limit).
    if n == 0 || n > 100_000_000 {
        return WeightsError::UnknownFormat {
            path: path.to_path_buf(),
        };
    }
    if 8 + n > size {
        return corrupt(format!(
            "the header needs {n} bytes but the file has {size} (truncated?)"
        ));
    }
    let mut h = vec![0u8; n as usize];
    let header = f
        .read_exact(&mut h)
        .ok()
        .and_then(|_| serde_json::from_slice::<serde_json::Value>(&h).ok());
    let Some(serde_json::Value::Object(header)) = header else {
        return WeightsError::UnknownFormat {
            path: path.to_path_buf(),
        };
    };
    let data = size.saturating_sub(8 + n);
    for (name, v) in &header {
        let end = v["data_offsets"][1].as_u64().unwrap_or(0);
        if end > data {
            return WeightsError::InFile {
                path: path.to_path_buf(),
                name: name.clone(),
                msg: format!(
                    "its data ends at byte {end} of the data section, which has {data} \
                     (the file is truncated)"
                ),
            };
        }
    }
    corrupt("the header does not describe the data (not a valid safetensors file)".into())
}
