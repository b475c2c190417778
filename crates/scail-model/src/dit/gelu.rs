//! The tanh-approximation GELU kernel of the FFN and the text embedding.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::{attention, Result};

/// Tanh-approximation GELU (the FFN's and text embedding's). On the CPU in f32 it uses the
/// identity `0.5·x·(1 + tanh z) = x / (1 + e^(−2z))` with the vectorised exp, several times faster
/// than a per-element `tanh`; elsewhere candle's `gelu`.
pub(super) fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32) {
        return Ok(x.gelu()?);
    }
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    gelu_tanh_in_place(&mut v);
    Ok(Tensor::from_vec(v, x.shape(), x.device())?)
}

/// [`gelu_tanh`] on a CPU buffer, in place, in parallel.
pub(super) fn gelu_tanh_in_place(v: &mut [f32]) {
    v.par_chunks_mut(1 << 14).for_each(gelu_tanh_slice);
}

fn gelu_tanh_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { gelu_tanh_avx512(v) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { gelu_tanh_avx2(v) };
        }
    }
    gelu_tanh_impl(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn gelu_tanh_avx512(v: &mut [f32]) {
    gelu_tanh_impl(v)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gelu_tanh_avx2(v: &mut [f32]) {
    gelu_tanh_impl(v)
}

#[inline(always)]
fn gelu_tanh_impl(v: &mut [f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for x in v.iter_mut() {
        let z = C * (*x + 0.044_715 * *x * *x * *x);
        *x /= 1.0 + attention::exp_f32(-2.0 * z);
    }
}
