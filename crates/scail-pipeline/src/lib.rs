//! scail-pipeline: SCAIL-2 generation on the networks of `scail-model`.
//!
//! - [`sampler`]: flow-matching samplers (UniPC, DPM-Solver++ 2M, Euler) with shifted sigmas.
//! - [`noise`]: the documented seeded Gaussian generator for initial noise.
//! - [`segments`]: guidance, long-video segments with clean history, the sampling loop.

pub mod noise;
pub mod sampler;
pub mod segments;

pub use segments::{sample_video, Conditioning, Hooks, NoHooks, NoiseSource, PixelInputs, SamplingOptions};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Input(String),
    #[error("weights: {0}")]
    Weights(String),
    #[error(transparent)]
    Sampler(#[from] sampler::SamplerError),
    #[error(transparent)]
    Dit(#[from] scail_model::dit::DitError),
    #[error(transparent)]
    Media(#[from] scail_media::MediaError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, PipelineError>;
