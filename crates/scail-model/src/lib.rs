//! The SCAIL-2 networks on candle: the DiT, RoPE, the Wan 2.1 VAE, umT5 and the CLIP visual tower,
//! plus checkpoint loading. Numerics are pinned by the fixtures in `testdata/fixtures`.
//!
//! Feature `testing` adds what tests, benches and the CLI's `bench` / `weights init-random`
//! need and inference does not: random weights, the `.pth` writer, fixture access.

pub mod attention;
pub mod blas;
pub mod checkpoint;
pub mod clip;
pub mod dit;
#[cfg(feature = "testing")]
pub mod fixtures;
pub mod lora;
#[cfg(feature = "testing")]
pub mod pth;
pub mod rope;
pub mod t5;
pub mod tokenizer;
pub mod vae;
pub(crate) mod vae_cpu;

/// The checkpoint module under its earlier name, which the other crates use.
pub use checkpoint as weights;
