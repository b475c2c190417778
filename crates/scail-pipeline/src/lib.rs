//! scail-pipeline: SCAIL-2 generation on the networks of `scail-model`.
//!
//! - [`sampler`]: flow-matching samplers (UniPC, DPM-Solver++ 2M, Euler) with shifted sigmas.
//! - [`noise`]: the documented seeded Gaussian generator for initial noise.

pub mod noise;
pub mod sampler;
