//! The SCAIL-2 diffusion transformer (`SCAIL2Model`, Wan 2.1 I2V with a 3-stream
//! "reference | video | pose" token sequence), loaded by the official Wan-layout key names.
//!
//! Tokens are `[B, L, dim]`: B = 1 for [`Dit::forward`], or B branches that differ only in the
//! text context for [`Dit::forward_batch`] (classifier-free guidance in one pass). Precision follows the reference under bf16 autocast:
//! Linear layers (patch embeddings, attention projections, FFN, text and CLIP embeddings) run in
//! the weight dtype, while the time embedding, the modulation, all norms, the residual stream,
//! RoPE (f64 tables rounded to f32), the softmax and the head stay in f32. With f32 weights the
//! whole forward is f32 and matches the fixtures.
//!
//! Layout: [`config`] holds the hyper-parameters and the checkpoint key contract, [`inputs`] the
//! per-sample inputs and the patch (un)embedding, `layers` the Linear layer and the small f32
//! ops, `fused` the one-pass CPU kernels and `ops` the choice between them and candle ops,
//! `gelu` the CPU GELU kernel, `blocks` the transformer block, [`model`] the whole
//! network and its forward, and `bench` (feature `testing`) random weights and the benchmark.

#[cfg(feature = "testing")]
pub mod bench;
mod blocks;
pub mod config;
mod fused;
mod gelu;
pub mod inputs;
mod layers;
pub mod model;
mod ops;

use crate::{attention, rope};

#[cfg(feature = "testing")]
pub use bench::{
    bench_forward, bench_model, bench_size_problem, bench_vae, latent_size, random_weights,
    AnonPeak, BenchReport, Peak, RandomInputs,
};
pub use blocks::Trace;
pub use config::{DitConfig, CLIP_DIM, EXTRA_CHANNELS};
pub use inputs::{history_mask, patchify, DitInputs};
pub use model::Dit;

#[derive(Debug, thiserror::Error)]
pub enum DitError {
    #[error("config: {0}")]
    Config(String),
    #[error("input {name}: expected {expected}, got {got:?}")]
    Input {
        name: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    #[error("{got} text tokens exceed text_len {text_len}")]
    TextTooLong { got: usize, text_len: usize },
    #[error("loading weights: {0}")]
    Weights(candle_core::Error),
    #[error(transparent)]
    Rope(#[from] rope::RopeError),
    #[error(transparent)]
    Attention(#[from] attention::AttentionError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, DitError>;
