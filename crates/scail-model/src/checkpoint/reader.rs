//! A checkpoint seen through canonical (Wan-layout) names: SAT fused tensors cut on read,
//! fp8_scaled weights dequantised, community prefixes stripped; also a candle `VarBuilder`.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use super::keys::{sat_to_wan, strip_wan_prefix, SAT_PREFIX};
use super::{RawCheckpoint, Result, TensorMeta, WeightsError};

/// How a canonical (Wan-layout) tensor is obtained from a stored one.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    Direct(String),
    /// Part `index` of `parts` equal chunks along dim 0 of a fused tensor (SAT q/k/v, k/v).
    Chunk {
        name: String,
        index: usize,
        parts: usize,
    },
    /// fp8 weight times its `scale_weight` (scalar or per output channel).
    Fp8Scaled {
        name: String,
        scale: String,
    },
}

/// A checkpoint seen through canonical (Wan-layout) names, whatever its layout on disk.
pub struct Checkpoint {
    raw: RawCheckpoint,
    map: BTreeMap<String, (Source, TensorMeta)>,
    /// Canonical `<layer>.scale_weight` → stored name, for the fp8 weights kept as fp8.
    scales: BTreeMap<String, String>,
    /// The last fused tensor read, so q, k and v cost one read of `query_key_value`.
    fused: Mutex<Option<(String, Tensor)>>,
}

/// Canonical name → where it is stored and what a load returns.
type KeyMap = BTreeMap<String, (Source, TensorMeta)>;

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Self> {
        let raw = RawCheckpoint::open(path)?;
        let is_sat = raw.metas.keys().any(|k| {
            k.starts_with(&format!("{SAT_PREFIX}transformer.layers."))
                || k.starts_with(&format!("{SAT_PREFIX}mixins."))
        });
        let (map, scales) = if is_sat {
            (sat_map(&raw)?, BTreeMap::new())
        } else {
            plain_map(&raw)?
        };
        for (name, (_, meta)) in &map {
            if !matches!(
                meta.dtype,
                DType::F32 | DType::BF16 | DType::F16 | DType::F8E4M3
            ) {
                return Err(WeightsError::InFile {
                    path: path.to_path_buf(),
                    name: name.clone(),
                    msg: format!(
                        "stored as {:?}, which no network here reads (f32, bf16, f16 or \
                         fp8 e4m3 with scales)",
                        meta.dtype
                    ),
                });
            }
        }
        Ok(Self {
            raw,
            map,
            scales,
            fused: Mutex::new(None),
        })
    }

    pub fn path(&self) -> &Path {
        self.raw.path()
    }

    /// Canonical names with shape and the dtype a load returns before conversion.
    pub fn metas(&self) -> impl Iterator<Item = (&String, &TensorMeta)> {
        self.map.iter().map(|(k, (_, m))| (k, m))
    }

    /// Shape and dtype of one canonical tensor.
    pub fn meta(&self, name: &str) -> Option<&TensorMeta> {
        self.map.get(name).map(|(_, m)| m)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.map.get(name).map(|(s, _)| s)
    }

    /// Whether `name` is a canonical tensor, or the `scale_weight` of an fp8 weight (which
    /// [`Checkpoint::load_fp8`] keeps as fp8).
    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name) || self.scales.contains_key(name)
    }

    /// Like [`Checkpoint::load`], but an `fp8_scaled` weight comes as stored (e4m3, its scale
    /// readable as `<layer>.scale_weight`), for layers that widen it at use.
    pub fn load_fp8(&self, name: &str) -> Result<Tensor> {
        match self.map.get(name) {
            Some((Source::Fp8Scaled { name: k, .. }, _)) => self.raw.load(k),
            _ => self.load(name),
        }
    }

    /// One canonical tensor on the CPU (fp8_scaled weights dequantised to f32).
    pub fn load(&self, name: &str) -> Result<Tensor> {
        if let Some(stored) = self.scales.get(name) {
            return self.raw.load(stored);
        }
        let (src, _) = self
            .map
            .get(name)
            .ok_or_else(|| WeightsError::Missing(name.into()))?;
        match src {
            Source::Direct(k) => self.raw.load(k),
            Source::Chunk {
                name: k,
                index,
                parts,
            } => {
                let mut cache = self.fused.lock().unwrap_or_else(|e| e.into_inner());
                let full = match cache.as_ref() {
                    Some((n, t)) if n == k => t.clone(),
                    _ => {
                        let t = self.raw.load(k)?;
                        *cache = Some((k.clone(), t.clone()));
                        t
                    }
                };
                let n = full.dim(0)? / parts;
                Ok(full.narrow(0, index * n, n)?.contiguous()?)
            }
            Source::Fp8Scaled { name: k, scale } => {
                let w = self.raw.load(k)?.to_dtype(DType::F32)?;
                let s = self.raw.load(scale)?.to_dtype(DType::F32)?;
                let s = if s.elem_count() == 1 {
                    s.flatten_all()?.reshape(())?
                } else {
                    // Per output channel: broadcast over the remaining dims.
                    let mut shape = vec![1usize; w.rank()];
                    shape[0] = s.elem_count();
                    s.reshape(shape)?
                };
                Ok(w.broadcast_mul(&s)?)
            }
        }
    }

    /// A `VarBuilder` over this checkpoint (tensors loaded on demand, converted to `dtype`).
    pub fn var_builder(self, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, dev.clone())
    }
}

/// SAT keys through the official conversion; fused tensors become chunks of it.
fn sat_map(raw: &RawCheckpoint) -> Result<KeyMap> {
    let mut map = KeyMap::new();
    for (k, meta) in &raw.metas {
        for (name, index, parts) in sat_to_wan(k)? {
            let mut shape = meta.shape.clone();
            let src = if parts > 1 {
                shape[0] /= parts;
                Source::Chunk {
                    name: k.clone(),
                    index,
                    parts,
                }
            } else {
                Source::Direct(k.clone())
            };
            let meta = TensorMeta {
                shape,
                dtype: meta.dtype,
            };
            map.insert(name, (src, meta));
        }
    }
    Ok(map)
}

/// Wan-layout keys as stored. Community repacks carry a `model.diffusion_model.` /
/// `diffusion_model.` prefix, and fp8_scaled files a `scale_weight` per weight and a
/// `scaled_fp8` marker: prefixes are stripped, scales and markers hidden behind their weights.
/// In a file with the marker every fp8 weight must have a scale of one value or one per output
/// channel; anything else is refused here, naming the tensor, before any weight is read.
fn plain_map(raw: &RawCheckpoint) -> Result<(KeyMap, BTreeMap<String, String>)> {
    let bad = |name: &str, msg: String| WeightsError::InFile {
        path: raw.path().to_path_buf(),
        name: name.to_string(),
        msg,
    };
    let marked = raw
        .metas
        .keys()
        .any(|k| strip_wan_prefix(k) == "scaled_fp8");
    let mut map = KeyMap::new();
    let mut scales = BTreeMap::new();
    for (k, meta) in &raw.metas {
        let name = strip_wan_prefix(k);
        if name == "scaled_fp8" || name.ends_with(".scale_weight") || name.ends_with(".scale_input")
        {
            continue;
        }
        let layer = k.strip_suffix(".weight").unwrap_or(k);
        let scale = format!("{layer}.scale_weight");
        let entry = match raw.metas.get(&scale) {
            Some(sm) if meta.dtype == DType::F8E4M3 => {
                let n: usize = sm.shape.iter().product();
                if n != 1 && Some(&n) != meta.shape.first() {
                    return Err(bad(
                        &scale,
                        format!(
                            "shape {:?} does not fit `{k}` {:?}: expected one value or one per \
                             output channel",
                            sm.shape, meta.shape
                        ),
                    ));
                }
                let canonical = name.strip_suffix(".weight").unwrap_or(name);
                scales.insert(format!("{canonical}.scale_weight"), scale.clone());
                let src = Source::Fp8Scaled {
                    name: k.clone(),
                    scale,
                };
                // Dequantised by `load`; kept as fp8 by `load_fp8`.
                let meta = TensorMeta {
                    shape: meta.shape.clone(),
                    dtype: DType::F32,
                };
                (src, meta)
            }
            None if marked && meta.dtype == DType::F8E4M3 => {
                return Err(bad(
                    k,
                    format!(
                        "fp8 weight without its `{scale}` in a `scaled_fp8` checkpoint (the \
                         file is incomplete or not an fp8_scaled export)"
                    ),
                ));
            }
            _ => (Source::Direct(k.clone()), meta.clone()),
        };
        map.insert(name.to_string(), entry);
    }
    Ok((map, scales))
}

/// candle's `SimpleBackend` for a reader with `load(&self, name)` and `load_fp8` (errors
/// displayable) and a presence check; a request for fp8 gets an fp8_scaled weight as stored: the plain checkpoint reader and the LoRA-fusing one share this.
macro_rules! simple_backend {
    ($t:ty, |$this:ident, $name:ident| $contains:expr) => {
        impl candle_nn::var_builder::SimpleBackend for $t {
            fn get(
                &self,
                s: candle_core::Shape,
                name: &str,
                _: candle_nn::Init,
                dtype: candle_core::DType,
                dev: &candle_core::Device,
            ) -> candle_core::Result<candle_core::Tensor> {
                let t = self.get_unchecked(name, dtype, dev)?;
                if t.shape() != &s {
                    candle_core::bail!(
                        "shape mismatch for {name}: stored {:?}, expected {:?}",
                        t.dims(),
                        s.dims()
                    )
                }
                Ok(t)
            }

            fn get_unchecked(
                &self,
                name: &str,
                dtype: candle_core::DType,
                dev: &candle_core::Device,
            ) -> candle_core::Result<candle_core::Tensor> {
                let t = if dtype == candle_core::DType::F8E4M3 {
                    self.load_fp8(name)
                } else {
                    self.load(name)
                }
                .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                t.to_dtype(dtype)?.to_device(dev)
            }

            fn contains_tensor(&self, $name: &str) -> bool {
                let $this = self;
                $contains
            }
        }
    };
}
pub(crate) use simple_backend;

simple_backend!(Checkpoint, |this, name| this.contains(name));
