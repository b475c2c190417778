//! Initial noise: a documented, platform-independent generator so the same seed gives the same
//! video on every machine.
//!
//! Algorithm: ChaCha20 (`rand_chacha::ChaCha20Rng::seed_from_u64(seed)`) produces u64 words;
//! each pair of words gives two uniforms `u = (w >> 11) * 2^-53` (u1 mapped to (0, 1] by
//! `1 - u`), and Box-Muller gives `sqrt(-2 ln u1) * (cos, sin)(2π u2)`, computed in f64 and
//! rounded to f32. Values fill the tensor in row-major order. One stream serves a whole job:
//! segment k's noise follows segment k-1's, as the reference draws it from one generator.

use candle_core::{Device, Tensor};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// A seeded stream of standard normal f32 values.
pub struct NoiseGen {
    rng: ChaCha20Rng,
    spare: Option<f32>,
}

impl NoiseGen {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
            spare: None,
        }
    }

    fn uniform(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub fn next_normal(&mut self) -> f32 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]: ln never sees 0
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let (s, c) = (2.0 * std::f64::consts::PI * u2).sin_cos();
        self.spare = Some((r * s) as f32);
        (r * c) as f32
    }

    /// A tensor of standard normal values of `shape` (f32).
    pub fn tensor(&mut self, shape: &[usize], device: &Device) -> candle_core::Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next_normal()).collect();
        Tensor::from_vec(v, shape, device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_values_other_seed_differs() {
        let a: Vec<f32> = {
            let mut g = NoiseGen::new(7);
            (0..64).map(|_| g.next_normal()).collect()
        };
        let b: Vec<f32> = {
            let mut g = NoiseGen::new(7);
            (0..64).map(|_| g.next_normal()).collect()
        };
        let c: Vec<f32> = {
            let mut g = NoiseGen::new(8);
            (0..64).map(|_| g.next_normal()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn roughly_standard_normal() {
        let mut g = NoiseGen::new(1);
        let n = 200_000;
        let v: Vec<f64> = (0..n).map(|_| g.next_normal() as f64).collect();
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "var {var}");
    }
}
