//! CPU f32 kernels for the VAE's hot path: causal 3D convolution as shifted GEMMs without an
//! im2col buffer, and a fused channel RMS-norm + SiLU.
//!
//! Convolution: with the input zero-padded spatially to `[T, C, H+2p, W+2p]` and flattened,
//! the window of spatial tap (dy, dx) for every output pixel is one contiguous run starting at
//! `dy*Wp + dx` (the output is computed on the padded width and the extra columns dropped).
//! Because consecutive frames are `C*Hp*Wp` apart, the kD time taps and the C channels form a
//! single uniformly strided K axis, so each output frame is k*k GEMMs with K = kD*C reading the
//! input in place. Memory stays at the size of the activations.

use gemm::{gemm, Parallelism};
use rayon::prelude::*;

/// Reorders an `[O, C, kd, k, k]` weight to `[k*k][O][kd*C]` (K index = time tap * C + c).
pub(crate) fn arrange_taps(w: &[f32], o: usize, c: usize, kd: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            for t in 0..kd {
                for dy in 0..k {
                    for dx in 0..k {
                        let src = (((oi * c + ci) * kd + t) * k + dy) * k + dx;
                        let dst = ((dy * k + dx) * o + oi) * (kd * c) + t * c + ci;
                        out[dst] = w[src];
                    }
                }
            }
        }
    }
    out
}

fn threads() -> Parallelism {
    let n = rayon::current_num_threads();
    if n <= 1 {
        Parallelism::None
    } else {
        Parallelism::Rayon(n)
    }
}

/// Valid (in time) convolution of `frames` (each `[C, H, W]`), `same` spatial padding of k/2,
/// stride 1. Returns `[frames - kd + 1, O, H, W]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3d(
    frames: &[&[f32]],
    c: usize,
    h: usize,
    w: usize,
    taps: &[f32],
    bias: &[f32],
    o: usize,
    kd: usize,
    k: usize,
) -> Vec<f32> {
    let t_out = frames.len() + 1 - kd;
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let plane = hp * wp;
    let n = h * wp;
    let kk = kd * c;
    // Padded input; the tail covers the last tap's run past the final plane.
    let mut padded = vec![0f32; frames.len() * c * plane + 2 * p];
    padded[..frames.len() * c * plane]
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(fc, dst)| {
            let (f, ci) = (fc / c, fc % c);
            let src = &frames[f][ci * h * w..(ci + 1) * h * w];
            for y in 0..h {
                dst[(y + p) * wp + p..(y + p) * wp + p + w].copy_from_slice(&src[y * w..(y + 1) * w]);
            }
        });
    let mut out = vec![0f32; t_out * o * h * w];
    let mut acc = vec![0f32; o * n];
    for t in 0..t_out {
        let base = t * c * plane;
        for (tap, lhs) in taps.chunks_exact(o * kk).enumerate() {
            let (dy, dx) = (tap / k, tap % k);
            let rhs = &padded[base + dy * wp + dx..];
            debug_assert!((kk - 1) * plane + n <= rhs.len());
            // SAFETY: lhs is [o, kk] row-major, rhs rows are `plane` apart with `n` contiguous
            // columns inside `padded` (checked above), acc is [o, n] row-major.
            unsafe {
                gemm(
                    o,
                    n,
                    kk,
                    acc.as_mut_ptr(),
                    1,
                    n as isize,
                    tap > 0,
                    lhs.as_ptr(),
                    1,
                    kk as isize,
                    rhs.as_ptr(),
                    1,
                    plane as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    threads(),
                );
            }
        }
        out[t * o * h * w..(t + 1) * o * h * w]
            .par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(oi, dst)| {
                let b = bias[oi];
                for y in 0..h {
                    let src = &acc[oi * n + y * wp..oi * n + y * wp + w];
                    for (d, s) in dst[y * w..(y + 1) * w].iter_mut().zip(src) {
                        *d = s + b;
                    }
                }
            });
    }
    out
}

/// `silu(x / max(||x||_c, 1e-12) * scale * gamma[c])` over `[T, C, HW]`.
pub(crate) fn rms_silu(x: &[f32], t: usize, c: usize, hw: usize, gamma: &[f32], scale: f32) -> Vec<f32> {
    const CHUNK: usize = 2048;
    // Pass 1: per-pixel inverse norms, parallel over pixel runs of every frame.
    let mut inv = vec![0f32; t * hw];
    inv.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        let start = i * CHUNK;
        let (f, p0) = (start / hw, start % hw);
        // Chunks never straddle frames when hw is a multiple of CHUNK; handle the general case.
        for (j, d) in dst.iter_mut().enumerate() {
            let (f, p) = if p0 + j < hw { (f, p0 + j) } else { ((start + j) / hw, (start + j) % hw) };
            let mut s = 0f32;
            for ci in 0..c {
                let v = x[(f * c + ci) * hw + p];
                s += v * v;
            }
            *d = scale / s.sqrt().max(1e-12);
        }
    });
    // Pass 2: scale, gain and SiLU, one (frame, channel) plane per task.
    let mut out = vec![0f32; x.len()];
    out.par_chunks_mut(hw).enumerate().for_each(|(fc, dst)| {
        let (f, ci) = (fc / c, fc % c);
        let g = gamma[ci];
        let src = &x[fc * hw..(fc + 1) * hw];
        for ((d, v), s) in dst.iter_mut().zip(src).zip(&inv[f * hw..(f + 1) * hw]) {
            let y = v * s * g;
            *d = y / (1.0 + (-y).exp());
        }
    });
    out
}
