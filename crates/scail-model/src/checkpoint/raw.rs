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
    let flat = candle_core::pickle::PthTensors::new(path, None).map_err(read)?;
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
    let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(|_| {
        WeightsError::UnknownFormat {
            path: path.to_path_buf(),
        }
    })?;
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
