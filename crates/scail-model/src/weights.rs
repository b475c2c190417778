//! Checkpoints as published: the official `.pth` files (VAE, umT5, CLIP), the SAT-layout DiT
//! checkpoint with the official key conversion, Wan-layout safetensors (fp32/bf16/fp16) and the
//! community `fp8_scaled` safetensors (dequantised with their scales at load). Large files are
//! read tensor by tensor (PyTorch zips entry by entry, safetensors memory-mapped), never whole.
//!
//! Also the `scail weights` operations: [`verify`], [`convert`], [`init_random`].

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;

use crate::clip::ClipVisionConfig;
use crate::dit::DitConfig;
use crate::pth::{write_pth, Nesting, PthEntry};
use crate::t5::T5Config;
use crate::vae::VaeConfig;

/// The DiT in SAT layout, as published.
pub const DIT_SAT: &str = "model/1/fsdp2_rank_0000_checkpoint.pt";
/// SAT checkpoint pointer next to the iteration folder.
pub const DIT_SAT_LATEST: &str = "model/latest";
pub const VAE_PTH: &str = "Wan2.1_VAE.pth";
pub const T5_PTH: &str = "umt5-xxl/models_t5_umt5-xxl-enc-bf16.pth";
pub const T5_TOKENIZER: &str = "umt5-xxl/tokenizer.json";
pub const CLIP_PTH: &str = "models_clip_open-clip-xlm-roberta-large-vit-huge-14-onlyvisual.pth";
/// Canonical (converted) file names.
pub const DIT_ST: &str = "dit.safetensors";
pub const VAE_ST: &str = "vae.safetensors";
pub const T5_ST: &str = "t5.safetensors";
pub const CLIP_ST: &str = "clip.safetensors";
/// Where the tokenizer goes in a canonical folder.
pub const TOKENIZER_JSON: &str = "tokenizer.json";

/// The official repository of the published weights.
pub const OFFICIAL_REPO: &str = "zai-org/SCAIL-2";

/// What `scail weights fetch` takes from [`OFFICIAL_REPO`]: the files inference needs, the
/// optional LoRAs left out (an entry ending in `/` stands for everything under it).
pub fn fetch_include() -> Vec<String> {
    [DIT_SAT, DIT_SAT_LATEST, VAE_PTH, "umt5-xxl/", CLIP_PTH]
        .map(String::from)
        .to_vec()
}

const SAT_PREFIX: &str = "model.diffusion_model.";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: candle_core::Error,
    },
    #[error("{path}: not a PyTorch zip or safetensors file")]
    UnknownFormat { path: PathBuf },
    #[error("unknown SAT checkpoint key `{0}`")]
    UnknownSatKey(String),
    #[error("tensor `{0}` not found in the checkpoint")]
    Missing(String),
    #[error("`{name}`: {msg}")]
    Tensor { name: String, msg: String },
    #[error("no {component} weights in {dir} (looked for {looked})")]
    ComponentMissing {
        component: &'static str,
        dir: PathBuf,
        looked: String,
    },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, WeightsError>;

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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
    metas: BTreeMap<String, TensorMeta>,
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
        let read = |source| WeightsError::Read {
            path: path.to_path_buf(),
            source,
        };
        if &magic == b"PK" {
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
                    (
                        k.clone(),
                        TensorMeta {
                            shape: v.layout.dims().to_vec(),
                            dtype: v.dtype,
                        },
                    )
                })
                .collect();
            Ok(Self {
                path: path.to_path_buf(),
                store: Store::Pth(pth),
                metas,
            })
        } else {
            let st = unsafe { candle_core::safetensors::MmapedSafetensors::new(path) }.map_err(
                |_| WeightsError::UnknownFormat {
                    path: path.to_path_buf(),
                },
            )?;
            let mut metas = BTreeMap::new();
            for (k, v) in st.tensors() {
                let dtype = DType::try_from(v.dtype()).map_err(|e| WeightsError::Tensor {
                    name: k.clone(),
                    msg: format!("unsupported dtype: {e}"),
                })?;
                metas.insert(
                    k,
                    TensorMeta {
                        shape: v.shape().to_vec(),
                        dtype,
                    },
                );
            }
            Ok(Self {
                path: path.to_path_buf(),
                store: Store::Safetensors(st),
                metas,
            })
        }
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

/// The canonical name(s) of one SAT key (the official `convert.py` mapping), with how each is
/// cut from the stored tensor.
pub fn sat_to_wan(key: &str) -> Result<Vec<(String, usize, usize)>> {
    let bad = || WeightsError::UnknownSatKey(key.to_string());
    let k = key.strip_prefix(SAT_PREFIX).ok_or_else(bad)?;
    let parts: Vec<&str> = k.split('.').collect();
    let one = |s: String| Ok(vec![(s, 0, 1)]);
    match parts.as_slice() {
        ["mixins", "adaln_layer", "adaLN_modulations", i] => one(format!("blocks.{i}.modulation")),
        ["mixins", "adaln_layer", list, i, suffix] => {
            let target = match *list {
                "query_layernorm_list" => "self_attn.norm_q",
                "key_layernorm_list" => "self_attn.norm_k",
                "cross_query_layernorm_list" => "cross_attn.norm_q",
                "cross_key_layernorm_list" => "cross_attn.norm_k",
                "clip_feature_key_layernorm_list" => "cross_attn.norm_k_img",
                "clip_feature_key_value_list" => {
                    return Ok(vec![
                        (format!("blocks.{i}.cross_attn.k_img.{suffix}"), 0, 2),
                        (format!("blocks.{i}.cross_attn.v_img.{suffix}"), 1, 2),
                    ])
                }
                _ => return Err(bad()),
            };
            one(format!("blocks.{i}.{target}.{suffix}"))
        }
        ["mixins", "final_layer", "adaLN_modulation"] => one("head.modulation".into()),
        ["mixins", "final_layer", "linear", s] => one(format!("head.head.{s}")),
        ["mixins", "patch_embed", proj, s] => {
            let t = match *proj {
                "proj" => "patch_embedding",
                "proj_pose" => "patch_embedding_pose",
                "proj_mask" => "patch_embedding_mask",
                _ => return Err(bad()),
            };
            one(format!("{t}.{s}"))
        }
        ["transformer", "layers", i, "attention", "dense", s] => {
            one(format!("blocks.{i}.self_attn.o.{s}"))
        }
        ["transformer", "layers", i, "attention", "query_key_value", s] => Ok(["q", "k", "v"]
            .iter()
            .enumerate()
            .map(|(j, n)| (format!("blocks.{i}.self_attn.{n}.{s}"), j, 3))
            .collect()),
        ["transformer", "layers", i, "cross_attention", "dense", s] => {
            one(format!("blocks.{i}.cross_attn.o.{s}"))
        }
        ["transformer", "layers", i, "cross_attention", "query", s] => {
            one(format!("blocks.{i}.cross_attn.q.{s}"))
        }
        ["transformer", "layers", i, "cross_attention", "key_value", s] => Ok(vec![
            (format!("blocks.{i}.cross_attn.k.{s}"), 0, 2),
            (format!("blocks.{i}.cross_attn.v.{s}"), 1, 2),
        ]),
        ["transformer", "layers", i, "post_cross_attention_layernorm", s] => {
            one(format!("blocks.{i}.norm3.{s}"))
        }
        ["transformer", "layers", i, "mlp", "dense_h_to_4h", s] => {
            one(format!("blocks.{i}.ffn.0.{s}"))
        }
        ["transformer", "layers", i, "mlp", "dense_4h_to_h", s] => {
            one(format!("blocks.{i}.ffn.2.{s}"))
        }
        ["time_embed", a, s] => one(format!("time_embedding.{a}.{s}")),
        ["adaln_projection", a, s] => one(format!("time_projection.{a}.{s}")),
        ["text_embedding", a, s] => one(format!("text_embedding.{a}.{s}")),
        ["clip_proj", "proj", a, s] => one(format!("img_emb.proj.{a}.{s}")),
        _ => Err(bad()),
    }
}

/// Inverse of [`sat_to_wan`] for writing SAT files: SAT key → canonical parts fused in order.
fn wan_to_sat(canonical: &[(String, Vec<usize>)]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (name, _) in canonical {
        let p: Vec<&str> = name.split('.').collect();
        let sat = |s: &str| format!("{SAT_PREFIX}{s}");
        let entry: (String, Vec<String>) = match p.as_slice() {
            ["blocks", i, "modulation"] => (
                sat(&format!("mixins.adaln_layer.adaLN_modulations.{i}")),
                vec![name.clone()],
            ),
            ["blocks", i, a, n, s] if ["q", "k", "v"].contains(n) && *a == "self_attn" => (
                sat(&format!(
                    "transformer.layers.{i}.attention.query_key_value.{s}"
                )),
                ["q", "k", "v"]
                    .iter()
                    .map(|x| format!("blocks.{i}.self_attn.{x}.{s}"))
                    .collect(),
            ),
            ["blocks", i, "self_attn", "o", s] => (
                sat(&format!("transformer.layers.{i}.attention.dense.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "cross_attn", "q", s] => (
                sat(&format!("transformer.layers.{i}.cross_attention.query.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "cross_attn", n, s] if *n == "k" || *n == "v" => (
                sat(&format!(
                    "transformer.layers.{i}.cross_attention.key_value.{s}"
                )),
                vec![
                    format!("blocks.{i}.cross_attn.k.{s}"),
                    format!("blocks.{i}.cross_attn.v.{s}"),
                ],
            ),
            ["blocks", i, "cross_attn", n, s] if *n == "k_img" || *n == "v_img" => (
                sat(&format!(
                    "mixins.adaln_layer.clip_feature_key_value_list.{i}.{s}"
                )),
                vec![
                    format!("blocks.{i}.cross_attn.k_img.{s}"),
                    format!("blocks.{i}.cross_attn.v_img.{s}"),
                ],
            ),
            ["blocks", i, "cross_attn", "o", s] => (
                sat(&format!("transformer.layers.{i}.cross_attention.dense.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, a, n, s] if n.starts_with("norm_") => {
                let list = match (*a, *n) {
                    ("self_attn", "norm_q") => "query_layernorm_list",
                    ("self_attn", "norm_k") => "key_layernorm_list",
                    ("cross_attn", "norm_q") => "cross_query_layernorm_list",
                    ("cross_attn", "norm_k") => "cross_key_layernorm_list",
                    _ => "clip_feature_key_layernorm_list",
                };
                (
                    sat(&format!("mixins.adaln_layer.{list}.{i}.{s}")),
                    vec![name.clone()],
                )
            }
            ["blocks", i, "norm3", s] => (
                sat(&format!(
                    "transformer.layers.{i}.post_cross_attention_layernorm.{s}"
                )),
                vec![name.clone()],
            ),
            ["blocks", i, "ffn", "0", s] => (
                sat(&format!("transformer.layers.{i}.mlp.dense_h_to_4h.{s}")),
                vec![name.clone()],
            ),
            ["blocks", i, "ffn", "2", s] => (
                sat(&format!("transformer.layers.{i}.mlp.dense_4h_to_h.{s}")),
                vec![name.clone()],
            ),
            ["head", "modulation"] => (
                sat("mixins.final_layer.adaLN_modulation"),
                vec![name.clone()],
            ),
            ["head", "head", s] => (
                sat(&format!("mixins.final_layer.linear.{s}")),
                vec![name.clone()],
            ),
            [pe, s] if pe.starts_with("patch_embedding") => {
                let proj = match *pe {
                    "patch_embedding" => "proj",
                    "patch_embedding_pose" => "proj_pose",
                    _ => "proj_mask",
                };
                (
                    sat(&format!("mixins.patch_embed.{proj}.{s}")),
                    vec![name.clone()],
                )
            }
            ["time_embedding", a, s] => (sat(&format!("time_embed.{a}.{s}")), vec![name.clone()]),
            ["time_projection", a, s] => (
                sat(&format!("adaln_projection.{a}.{s}")),
                vec![name.clone()],
            ),
            ["text_embedding", a, s] => {
                (sat(&format!("text_embedding.{a}.{s}")), vec![name.clone()])
            }
            ["img_emb", "proj", a, s] => {
                (sat(&format!("clip_proj.proj.{a}.{s}")), vec![name.clone()])
            }
            _ => continue,
        };
        if seen.insert(entry.0.clone()) {
            out.push(entry);
        }
    }
    out
}

/// A checkpoint seen through canonical (Wan-layout) names, whatever its layout on disk.
pub struct Checkpoint {
    raw: RawCheckpoint,
    map: BTreeMap<String, (Source, TensorMeta)>,
    /// The last fused tensor read, so q, k and v cost one read of `query_key_value`.
    fused: Mutex<Option<(String, Tensor)>>,
}

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Self> {
        let raw = RawCheckpoint::open(path)?;
        let mut map = BTreeMap::new();
        let is_sat = raw.metas.keys().any(|k| {
            k.starts_with(&format!("{SAT_PREFIX}transformer.layers."))
                || k.starts_with(&format!("{SAT_PREFIX}mixins."))
        });
        for (k, meta) in &raw.metas {
            if is_sat {
                for (name, index, parts) in sat_to_wan(k)? {
                    let mut shape = meta.shape.clone();
                    if parts > 1 {
                        shape[0] /= parts;
                    }
                    let src = if parts > 1 {
                        Source::Chunk {
                            name: k.clone(),
                            index,
                            parts,
                        }
                    } else {
                        Source::Direct(k.clone())
                    };
                    map.insert(
                        name,
                        (
                            src,
                            TensorMeta {
                                shape,
                                dtype: meta.dtype,
                            },
                        ),
                    );
                }
                continue;
            }
            // Community repacks carry a `model.diffusion_model.` / `diffusion_model.` prefix,
            // and fp8_scaled files a `scale_weight` per weight and a `scaled_fp8` marker.
            let name = k
                .strip_prefix(SAT_PREFIX)
                .or_else(|| k.strip_prefix("diffusion_model."))
                .unwrap_or(k);
            if name == "scaled_fp8"
                || name.ends_with(".scale_weight")
                || name.ends_with(".scale_input")
            {
                continue;
            }
            let src = if meta.dtype == DType::F8E4M3 {
                let scale = format!("{}.scale_weight", k.strip_suffix(".weight").unwrap_or(k));
                if raw.metas.contains_key(&scale) {
                    Source::Fp8Scaled {
                        name: k.clone(),
                        scale,
                    }
                } else {
                    Source::Direct(k.clone())
                }
            } else {
                Source::Direct(k.clone())
            };
            let dtype = if matches!(src, Source::Fp8Scaled { .. }) {
                DType::F32
            } else {
                meta.dtype
            };
            map.insert(
                name.to_string(),
                (
                    src,
                    TensorMeta {
                        shape: meta.shape.clone(),
                        dtype,
                    },
                ),
            );
        }
        Ok(Self {
            raw,
            map,
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

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.map.get(name).map(|(s, _)| s)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// One canonical tensor on the CPU (fp8_scaled weights dequantised to f32).
    pub fn load(&self, name: &str) -> Result<Tensor> {
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

impl SimpleBackend for Checkpoint {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
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

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> candle_core::Result<Tensor> {
        let t = self
            .load(name)
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        t.to_dtype(dtype)?.to_device(dev)
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.contains(name)
    }
}

/// Model sizes of a weights folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSize {
    /// Small random models for tests and smoke runs (same structure, narrow widths).
    Tiny,
    /// The published SCAIL-2 14B with its encoders.
    FourteenB,
}

impl std::str::FromStr for ModelSize {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "tiny" => Ok(Self::Tiny),
            "14b" | "14B" => Ok(Self::FourteenB),
            o => Err(format!("unknown config `{o}` (tiny or 14b)")),
        }
    }
}

/// (component, official file, stored dtype, canonical keys with shapes).
type ComponentSpec = (&'static str, &'static str, DType, Vec<(String, Vec<usize>)>);

/// The configurations of every component for a model size.
#[derive(Debug, Clone)]
pub struct Contract {
    pub size: ModelSize,
    pub dit: DitConfig,
    pub vae: VaeConfig,
    pub t5: T5Config,
    pub clip: ClipVisionConfig,
}

impl Contract {
    pub fn new(size: ModelSize) -> Self {
        match size {
            ModelSize::FourteenB => Self {
                size,
                dit: DitConfig::fourteen_b(),
                vae: VaeConfig::wan21(),
                t5: T5Config::umt5_xxl(),
                clip: ClipVisionConfig::vit_h_14(),
            },
            ModelSize::Tiny => {
                let t5 = T5Config {
                    vocab_size: 384,
                    dim: 32,
                    dim_attn: 32,
                    dim_ffn: 64,
                    num_heads: 2,
                    num_layers: 2,
                    ..T5Config::umt5_xxl()
                };
                Self {
                    size,
                    dit: DitConfig {
                        text_len: 512,
                        dim: 128,
                        ffn_dim: 256,
                        freq_dim: 32,
                        text_dim: t5.dim,
                        num_heads: 4,
                        num_layers: 2,
                        ..DitConfig::fourteen_b()
                    },
                    vae: VaeConfig::with_dim(8),
                    t5,
                    // The DiT's CLIP projection is 1280 wide whatever the config, so the tiny
                    // tower keeps the real width with 2 blocks (1 of which runs).
                    clip: ClipVisionConfig {
                        layers: 2,
                        ..ClipVisionConfig::vit_h_14()
                    },
                }
            }
        }
    }

    /// (component, official file, stored dtype, canonical keys with shapes).
    fn components(&self) -> Vec<ComponentSpec> {
        vec![
            ("dit", DIT_SAT, DType::F32, self.dit.weight_shapes()),
            ("vae", VAE_PTH, DType::F32, self.vae.expected_keys()),
            ("t5", T5_PTH, DType::BF16, self.t5.expected_keys()),
            ("clip", CLIP_PTH, DType::F16, self.clip.expected_keys()),
        ]
    }
}

/// One row of [`VerifyReport`].
#[derive(Debug, Clone)]
pub struct ComponentReport {
    pub component: &'static str,
    pub file: Option<PathBuf>,
    pub expected_tensors: usize,
    pub found_tensors: usize,
    pub expected_params: u64,
    pub found_params: u64,
    /// Stored dtypes with tensor counts.
    pub dtypes: BTreeMap<String, usize>,
    pub missing: Vec<String>,
    pub unexpected: Vec<String>,
    /// (name, expected shape, stored shape).
    pub wrong_shape: Vec<(String, Vec<usize>, Vec<usize>)>,
    pub error: Option<String>,
}

impl ComponentReport {
    pub fn ok(&self) -> bool {
        self.error.is_none()
            && self.missing.is_empty()
            && self.unexpected.is_empty()
            && self.wrong_shape.is_empty()
    }
}

/// `scail weights verify`: every component's key contract.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    pub size: ModelSize,
    pub components: Vec<ComponentReport>,
    pub tokenizer: Option<PathBuf>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.tokenizer.is_some() && self.components.iter().all(|c| c.ok())
    }
}

impl fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "contract: {:?}", self.size)?;
        writeln!(
            f,
            "{:<6} {:>9} {:>9} {:>16} {:>16}  {:<22} {:<6} file",
            "part", "tensors", "expected", "params", "expected", "dtypes", "status"
        )?;
        for c in &self.components {
            let dt = c
                .dtypes
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(",");
            writeln!(
                f,
                "{:<6} {:>9} {:>9} {:>16} {:>16}  {:<22} {:<6} {}",
                c.component,
                c.found_tensors,
                c.expected_tensors,
                c.found_params,
                c.expected_params,
                dt,
                if c.ok() { "ok" } else { "FAIL" },
                c.file
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|| "-".into())
            )?;
            if let Some(e) = &c.error {
                writeln!(f, "    error: {e}")?;
            }
            for m in c.missing.iter().take(5) {
                writeln!(f, "    missing: {m}")?;
            }
            for m in c.unexpected.iter().take(5) {
                writeln!(f, "    unexpected: {m}")?;
            }
            for (n, e, g) in c.wrong_shape.iter().take(5) {
                writeln!(f, "    shape: {n} expected {e:?} stored {g:?}")?;
            }
        }
        writeln!(
            f,
            "tokenizer: {}",
            self.tokenizer
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "MISSING".into())
        )?;
        write!(f, "overall: {}", if self.ok() { "ok" } else { "FAIL" })
    }
}

/// Official file of a component, else its canonical one.
fn locate(dir: &Path, official: &str, canonical: &str) -> Option<PathBuf> {
    [official, canonical]
        .iter()
        .map(|p| dir.join(p))
        .find(|p| p.is_file())
}

fn canonical_name(component: &str) -> &'static str {
    match component {
        "dit" => DIT_ST,
        "vae" => VAE_ST,
        "t5" => T5_ST,
        _ => CLIP_ST,
    }
}

/// The tokenizer of a folder: the official `umt5-xxl/` folder or a canonical folder's root.
pub fn find_tokenizer(dir: &Path) -> Option<PathBuf> {
    [
        T5_TOKENIZER,
        "google/umt5-xxl/tokenizer.json",
        "umt5-xxl/tokenizer/tokenizer.json",
        TOKENIZER_JSON,
    ]
    .iter()
    .map(|p| dir.join(p))
    .find(|p| p.is_file())
}

/// Checks every component of `dir` (official or canonical layout) against the contract of the
/// size its DiT has (tiny or 14B), without reading tensor data.
pub fn verify(dir: &Path) -> Result<VerifyReport> {
    // Pick the contract from the DiT's width.
    let mut size = ModelSize::FourteenB;
    if let Some(p) = locate(dir, DIT_SAT, DIT_ST) {
        if let Ok(ck) = Checkpoint::open(&p) {
            let tiny = Contract::new(ModelSize::Tiny);
            if ck
                .metas()
                .any(|(n, m)| n == "patch_embedding.bias" && m.shape == vec![tiny.dit.dim])
            {
                size = ModelSize::Tiny;
            }
        }
    }
    verify_with(dir, &Contract::new(size))
}

/// [`verify`] against a given contract.
pub fn verify_with(dir: &Path, contract: &Contract) -> Result<VerifyReport> {
    let mut components = Vec::new();
    for (component, official, _, expected) in contract.components() {
        let expected_params: u64 = expected
            .iter()
            .map(|(_, s)| s.iter().product::<usize>() as u64)
            .sum();
        let mut rep = ComponentReport {
            component,
            file: None,
            expected_tensors: expected.len(),
            found_tensors: 0,
            expected_params,
            found_params: 0,
            dtypes: BTreeMap::new(),
            missing: vec![],
            unexpected: vec![],
            wrong_shape: vec![],
            error: None,
        };
        match locate(dir, official, canonical_name(component)) {
            None => {
                rep.error = Some(format!(
                    "not found ({official} or {})",
                    canonical_name(component)
                ))
            }
            Some(p) => {
                rep.file = Some(p.clone());
                match Checkpoint::open(&p) {
                    Err(e) => rep.error = Some(e.to_string()),
                    Ok(ck) => {
                        let want: BTreeMap<&str, &Vec<usize>> =
                            expected.iter().map(|(n, s)| (n.as_str(), s)).collect();
                        for (name, meta) in ck.metas() {
                            rep.found_tensors += 1;
                            rep.found_params += meta.shape.iter().product::<usize>() as u64;
                            let stored = match ck.source(name) {
                                Some(Source::Fp8Scaled { .. }) => "f8e4m3+scale".to_string(),
                                _ => format!("{:?}", meta.dtype).to_lowercase(),
                            };
                            *rep.dtypes.entry(stored).or_default() += 1;
                            match want.get(name.as_str()) {
                                None => rep.unexpected.push(name.clone()),
                                Some(s) if **s != meta.shape => rep.wrong_shape.push((
                                    name.clone(),
                                    (*s).clone(),
                                    meta.shape.clone(),
                                )),
                                _ => {}
                            }
                        }
                        for (n, _) in &expected {
                            if !ck.contains(n) {
                                rep.missing.push(n.clone());
                            }
                        }
                    }
                }
            }
        }
        components.push(rep);
    }
    Ok(VerifyReport {
        size: contract.size,
        components,
        tokenizer: find_tokenizer(dir),
    })
}

/// What [`init_random`] wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub files: Vec<PathBuf>,
    /// Apparent size of the files (sparse files take no disk space for their data).
    pub bytes: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniform(-a, a) values with a = 1/sqrt(fan_in) (norm gains around 1), as little-endian bytes.
fn random_bytes(name: &str, shape: &[usize], dtype: DType, seed: u64) -> Vec<u8> {
    let n: usize = shape.iter().product();
    let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
    let is_gain = name.ends_with("gamma")
        || (shape.len() == 1
            && (name.contains("norm")
                || name.contains("img_emb.proj.0")
                || name.contains("img_emb.proj.4"))
            && name.ends_with("weight"));
    let a = if shape.len() <= 1 {
        0.1
    } else {
        1.0 / (fan_in as f32).sqrt()
    };
    let mut st = seed
        ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        });
    let mut out = Vec::with_capacity(n * dtype.size_in_bytes());
    for _ in 0..n {
        let u = (splitmix(&mut st) >> 40) as f32 / (1u64 << 24) as f32;
        let v = (2.0 * u - 1.0) * a + if is_gain { 1.0 } else { 0.0 };
        match dtype {
            DType::F32 => out.extend_from_slice(&v.to_le_bytes()),
            DType::BF16 => out.extend_from_slice(&half::bf16::from_f32(v).to_le_bytes()),
            DType::F16 => out.extend_from_slice(&half::f16::from_f32(v).to_le_bytes()),
            _ => unreachable!("init-random writes float checkpoints"),
        }
    }
    out
}

/// `scail weights init-random`: random weights for every component in the official layout
/// (SAT `.pt` DiT, `.pth` VAE/umT5/CLIP) plus a tokenizer, for tests, smoke runs and
/// benchmarks at real size. With `sparse`, tensor data is left as file holes (zeros): the
/// folder has the real sizes and key contract and costs no disk space.
pub fn init_random(size: ModelSize, dir: &Path, sparse: bool, seed: u64) -> Result<InitReport> {
    let contract = Contract::new(size);
    let mut files = Vec::new();
    for (component, official, dtype, keys) in contract.components() {
        let path = dir.join(official);
        let (entries, nesting, fused): (Vec<PthEntry>, Nesting, Vec<Vec<String>>) =
            if component == "dit" {
                let shapes: HashMap<&str, &Vec<usize>> =
                    keys.iter().map(|(n, s)| (n.as_str(), s)).collect();
                let sat = wan_to_sat(&keys);
                let entries = sat
                    .iter()
                    .map(|(k, parts)| {
                        let mut shape = shapes[parts[0].as_str()].clone();
                        shape[0] *= parts.len();
                        PthEntry {
                            name: k.clone(),
                            dtype,
                            shape,
                        }
                    })
                    .collect();
                (
                    entries,
                    Nesting::Under("module".into()),
                    sat.into_iter().map(|(_, p)| p).collect(),
                )
            } else {
                let entries = keys
                    .iter()
                    .map(|(n, s)| PthEntry {
                        name: n.clone(),
                        dtype,
                        shape: s.clone(),
                    })
                    .collect();
                (
                    entries,
                    Nesting::Flat,
                    keys.iter().map(|(n, _)| vec![n.clone()]).collect(),
                )
            };
        write_pth(&path, &entries, &nesting, sparse, |i| {
            // A fused SAT tensor is its canonical parts concatenated along dim 0.
            let e = &entries[i];
            let mut part_shape = e.shape.clone();
            if fused[i].len() > 1 {
                part_shape[0] /= fused[i].len();
            }
            Ok(fused[i]
                .iter()
                .flat_map(|n| random_bytes(n, &part_shape, dtype, seed))
                .collect())
        })
        .map_err(io_err(&path))?;
        files.push(path);
    }
    let latest = dir.join(DIT_SAT_LATEST);
    std::fs::write(&latest, "1\n").map_err(io_err(&latest))?;
    files.push(latest);
    let tok = dir.join(T5_TOKENIZER);
    std::fs::write(&tok, synthetic_tokenizer_json(contract.t5.vocab_size)).map_err(io_err(&tok))?;
    files.push(tok);
    let bytes = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    Ok(InitReport { files, bytes })
}

/// A Unigram tokenizer.json in umT5's layout (`<pad>`, `</s>`, `<unk>` = 0, 1, 2) with
/// `vocab_size` pieces: ASCII characters, then synthetic word pieces.
pub fn synthetic_tokenizer_json(vocab_size: usize) -> String {
    let mut vocab: Vec<serde_json::Value> = vec![
        serde_json::json!(["<pad>", 0.0]),
        serde_json::json!(["</s>", 0.0]),
        serde_json::json!(["<unk>", 0.0]),
        serde_json::json!(["\u{2581}", -3.0]),
    ];
    for c in (b'!'..=b'~').map(|b| b as char) {
        vocab.push(serde_json::json!([c.to_string(), -10.0]));
    }
    let mut i = 0;
    while vocab.len() < vocab_size {
        vocab.push(serde_json::json!([format!("\u{2581}w{i}"), -12.0]));
        i += 1;
    }
    vocab.truncate(vocab_size);
    let special: Vec<serde_json::Value> = ["<pad>", "</s>", "<unk>"]
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}))
        .collect();
    let meta = serde_json::json!({"type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "always", "split": true});
    serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": special,
        "normalizer": null, "pre_tokenizer": meta, "post_processor": null, "decoder": meta,
        "model": {"type": "Unigram", "unk_id": 2, "vocab": vocab, "byte_fallback": false}
    })
    .to_string()
}

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

fn tensor_bytes(t: &Tensor) -> Result<Vec<u8>> {
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
