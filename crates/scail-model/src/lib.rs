//! The SCAIL-2 networks on candle: the DiT, RoPE, the Wan 2.1 VAE, umT5 and the CLIP visual tower,
//! plus checkpoint loading. Numerics are pinned by the fixtures in `testdata/fixtures`.

pub mod attention;
pub mod blas;
pub mod clip;
pub mod dit;
pub mod fixtures;
pub mod pth;
pub mod rope;
pub mod t5;
pub mod tokenizer;
pub mod vae;
pub(crate) mod vae_cpu;
pub mod weights;
