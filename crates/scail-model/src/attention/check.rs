//! [`attention`](super::attention) against [`naive_attention`](super::naive_attention) on any
//! device, and its timing: the check `tests/attention.rs` runs where a GPU exists and
//! `scail-gpu-bench attention` runs on a GPU host without a Rust toolchain (bench/gpu.sh).

use std::time::Instant;

use candle_core::{DType, Device, Tensor};

use super::{check, Result};

/// Which kernel [`attention`](super::attention) takes for a call of `dtype` and head dims on
/// `device`.
#[cfg_attr(not(feature = "flash-attn"), allow(unused_variables))]
pub fn path(device: &Device, dtype: DType, d: usize, dv: usize) -> &'static str {
    if device.is_cpu() {
        return "blockwise (CPU)";
    }
    #[cfg(feature = "flash-attn")]
    {
        let dims = super::Dims {
            lead: vec![1],
            n: 1,
            lq: 1,
            lk: 1,
            d,
            dv,
        };
        if super::flash::applies(device, dtype, &dims) {
            return "FlashAttention-2";
        }
    }
    "chunked"
}

/// One comparison: the largest absolute difference and the bound it must stay within.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub path: &'static str,
    pub max_err: f32,
    pub bound: f32,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.max_err <= self.bound
    }
}

/// Random `q` `[lead.., lq, d]`, `k`/`v` `[lead.., lk, d]` in `dtype` on `device`; the result of
/// [`attention`](super::attention) against the f32 naive attention of the same (rounded) inputs.
///
/// The bound, for bf16 (ε = 2⁻⁹, half an ulp): the kernel rounds the unnormalised
/// probabilities (in [0, 1]) to bf16 before the PV product, an error of at most ε·max|v| after
/// normalisation, and rounds the output, at most ε·|o| ≤ ε·max|v|; products and sums accumulate
/// in f32. So |err| ≤ 2ε·max|v|, plus 1e-5·max|v| for the f32 terms. For f16, ε = 2⁻¹¹; for f32
/// the f32 terms alone.
pub fn compare_with_naive(
    device: &Device,
    dtype: DType,
    lead: &[usize],
    (lq, lk, d): (usize, usize, usize),
) -> Result<Comparison> {
    let shape = |l: usize| {
        let mut s = lead.to_vec();
        s.extend([l, d]);
        s
    };
    let rand = |l: usize| -> Result<Tensor> {
        Ok(Tensor::randn(0f32, 1.0, shape(l), device)?.to_dtype(dtype)?)
    };
    let (q, k, v) = (rand(lq)?, rand(lk)?, rand(lk)?);
    let f32 = |t: &Tensor| t.to_dtype(DType::F32);
    let want = super::naive_attention(&f32(&q)?, &f32(&k)?, &f32(&v)?)?;
    let got = super::attention(&q, &k, &v)?.to_dtype(DType::F32)?;
    let max = |t: Tensor| -> Result<f32> { Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar()?) };
    let vmax = max(f32(&v)?)?;
    let eps = match dtype {
        DType::BF16 => 2f32.powi(-9),
        DType::F16 => 2f32.powi(-11),
        _ => 0.0,
    };
    Ok(Comparison {
        path: path(device, dtype, d, d),
        max_err: max((got - want)?)?,
        bound: (2.0 * eps + 1e-5) * vmax,
    })
}

/// Seconds per call of `f` (the attention function under test) on `[1, heads, tokens, d]`
/// self-attention: best of `runs` after a warm-up, the device synchronised around each call.
pub fn time_attention(
    device: &Device,
    dtype: DType,
    (heads, tokens, d): (usize, usize, usize),
    runs: usize,
    f: impl Fn(&Tensor, &Tensor, &Tensor) -> Result<Tensor>,
) -> Result<f64> {
    let q = Tensor::randn(0f32, 1.0, (1, heads, tokens, d), device)?.to_dtype(dtype)?;
    check(&q, &q, &q)?;
    let mut best = f64::INFINITY;
    for i in 0..=runs.max(1) {
        device.synchronize()?;
        let t = Instant::now();
        let o = f(&q, &q, &q)?;
        device.synchronize()?;
        drop(o);
        if i > 0 {
            best = best.min(t.elapsed().as_secs_f64());
        }
    }
    Ok(best)
}
