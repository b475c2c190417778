//! Checkpoints as published: the official `.pth` files (VAE, umT5, CLIP), the SAT-layout DiT
//! checkpoint with the official key conversion, Wan-layout safetensors (fp32/bf16/fp16) and the
//! community `fp8_scaled` safetensors (dequantised with their scales at load). Large files are
//! read tensor by tensor (PyTorch zips entry by entry, safetensors memory-mapped), never whole.
//!
//! Also the `scail weights` operations: [`verify`], [`convert`] and (feature `testing`)
//! `init_random`.
//!
//! Layout: [`raw`] opens one file as stored, [`keys`] maps the SAT names to the Wan layout,
//! [`reader`] shows any file under canonical names (and as a `VarBuilder`), [`layout`] names
//! the files of a weights folder and the per-size contracts, [`verify`](mod@verify) and
//! [`convert`](mod@convert) are the `scail weights` operations, `random` writes random
//! checkpoints (feature `testing`).

pub mod convert;
pub mod keys;
pub mod layout;
#[cfg(feature = "testing")]
pub mod random;
pub mod raw;
pub mod reader;
pub mod verify;

use std::path::{Path, PathBuf};

pub use convert::{convert, write_safetensors_streaming, ConvertReport};
pub use keys::{diffusers_to_wan, sat_to_wan, strip_wan_prefix, to_canonical};
pub use layout::*;
#[cfg(feature = "testing")]
pub use random::{init_random, synthetic_tokenizer_json, InitReport};
pub use raw::{RawCheckpoint, TensorMeta};
pub use reader::{Checkpoint, Source};
pub use verify::{verify, verify_with, ComponentReport, VerifyReport};

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
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{path}: not a PyTorch zip or safetensors file")]
    UnknownFormat { path: PathBuf },
    #[error("unknown SAT checkpoint key `{0}`")]
    UnknownSatKey(String),
    #[error("tensor `{0}` not found in the checkpoint")]
    Missing(String),
    #[error("`{name}`: {msg}")]
    Tensor { name: String, msg: String },
    #[error("{path}: tensor `{name}`: {msg}")]
    InFile {
        path: PathBuf,
        name: String,
        msg: String,
    },
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

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    }
}
