//! scail-pipeline: SCAIL-2 generation on the networks of `scail-model`.
//!
//! - [`sampler`]: flow-matching samplers (UniPC, DPM-Solver++ 2M, Euler) with shifted sigmas.
//! - [`noise`]: the documented seeded Gaussian generator for initial noise.
//! - [`segments`]: guidance, long-video segments with clean history, the sampling loop.
//! - [`models`]: a weights folder's networks, loaded once.
//! - [`job`]: one whole job from files to mp4 ([`job::run_job`]).
//! - [`generator`]: the server's [`scail_core::generator::Generator`].

pub mod generator;
pub mod job;
pub mod models;
pub mod noise;
pub mod sampler;
pub mod segments;

pub use generator::PipelineGenerator;
pub use segments::{
    sample_video, Conditioning, Hooks, NoHooks, NoiseSource, PixelInputs, SamplingOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cancelled")]
    Cancelled,
    #[error("{0}")]
    Input(String),
    #[error("weights: {0}")]
    Weights(String),
    /// The job would not fit in memory (refused before it starts).
    #[error("{0}")]
    Memory(String),
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
