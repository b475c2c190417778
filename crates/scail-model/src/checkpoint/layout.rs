//! The files of a weights folder (official and canonical names) and the configuration of every
//! component per model size.

use std::path::{Path, PathBuf};

use candle_core::DType;

use crate::clip::ClipVisionConfig;
use crate::dit::DitConfig;
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
pub(crate) type ComponentSpec = (&'static str, &'static str, DType, Vec<(String, Vec<usize>)>);

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
    pub(crate) fn components(&self) -> Vec<ComponentSpec> {
        vec![
            ("dit", DIT_SAT, DType::F32, self.dit.weight_shapes()),
            ("vae", VAE_PTH, DType::F32, self.vae.expected_keys()),
            ("t5", T5_PTH, DType::BF16, self.t5.expected_keys()),
            ("clip", CLIP_PTH, DType::F16, self.clip.expected_keys()),
        ]
    }
}

/// Official file of a component, else its canonical one.
pub(crate) fn locate(dir: &Path, official: &str, canonical: &str) -> Option<PathBuf> {
    [official, canonical]
        .iter()
        .map(|p| dir.join(p))
        .find(|p| p.is_file())
}

pub(crate) fn canonical_name(component: &str) -> &'static str {
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

/// The precision a folder's DiT is stored in, from one block matrix: f32, bf16 or f16 as
/// stored, bf16 for fp8 (fp8_scaled weights stay fp8 and compute in bf16). `None` when the
/// folder has no readable DiT.
pub fn stored_precision(dir: &Path) -> Option<DType> {
    let path = locate(dir, DIT_SAT, DIT_ST)?;
    let ck = super::Checkpoint::open(&path).ok()?;
    let name = "blocks.0.ffn.0.weight";
    match (ck.source(name)?, ck.meta(name)?.dtype) {
        (super::Source::Fp8Scaled { .. }, _) | (_, DType::F8E4M3) => Some(DType::BF16),
        (_, d) => Some(d),
    }
}
