//! FlashAttention-2 on CUDA (candle-flash-attn, behind the `flash-attn` feature): memory linear in
//! tokens, bf16 inputs with f32 accumulation like the reference's flash attention.
//!
//! `scripts/build-cuda.sh` builds only the kernels scail calls (bf16, the head dims in
//! [`HEAD_DIMS`]); any other call, or a GPU older than sm_80, takes the chunked path. The layout
//! change around the kernel is device-independent and tested on the CPU with a stand-in kernel.

use candle_core::Tensor;
#[cfg(feature = "flash-attn")]
use candle_core::{DType, Device};

use super::{Dims, Result};

/// Head dims whose bf16 kernel the CUDA build carries (`SCAIL_FLASH_KERNELS` in
/// `scripts/nvcc-select.sh`): the DiT's 128 (5120 / 40 heads at 14B).
pub const HEAD_DIMS: &[usize] = &[128];

/// Whether a call of these dims and dtype on `device` goes to FlashAttention. `SCAIL_FLASH_ATTN=0`
/// turns it off (the chunked path then runs, e.g. to compare the two on one GPU).
#[cfg(feature = "flash-attn")]
pub(super) fn applies(device: &Device, dtype: DType, dims: &Dims) -> bool {
    let sm80 = || match device {
        Device::Cuda(dev) => dev
            .cuda_stream()
            .context()
            .compute_capability()
            .is_ok_and(|(major, _)| major >= 8),
        _ => false,
    };
    dtype == DType::BF16
        && dims.dv == dims.d
        && HEAD_DIMS.contains(&dims.d)
        && std::env::var("SCAIL_FLASH_ATTN").map_or(true, |v| v != "0")
        && sm80()
}

/// `softmax(q kᵀ · scale) v` through FlashAttention.
#[cfg(feature = "flash-attn")]
pub(super) fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    dims: &Dims,
) -> Result<Tensor> {
    via_token_layout(q, k, v, dims, |q, k, v| {
        candle_flash_attn::flash_attn(q, k, v, scale as f32, false)
    })
}

/// Runs `kernel`, which takes and returns the FlashAttention layout `[batch, L, heads, d]`, on
/// inputs `[.., L, d]`: every leading axis becomes a head of one batch row, passed as a strided
/// view (no copy of q, k or v), and the result comes back as `[.., Lq, dv]`.
#[cfg_attr(not(feature = "flash-attn"), allow(dead_code))]
pub(super) fn via_token_layout(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    dims: &Dims,
    kernel: impl Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor>,
) -> Result<Tensor> {
    let view = |t: &Tensor, l: usize, d: usize| -> candle_core::Result<Tensor> {
        t.contiguous()?.reshape((1, dims.n, l, d))?.transpose(1, 2)
    };
    let out = kernel(
        &view(q, dims.lq, dims.d)?,
        &view(k, dims.lk, dims.d)?,
        &view(v, dims.lk, dims.dv)?,
    )?;
    let mut shape = dims.lead.clone();
    shape.extend([dims.lq, dims.dv]);
    Ok(out.transpose(1, 2)?.contiguous()?.reshape(shape)?)
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Tensor};

    use super::super::{check, naive_attention};

    /// The FlashAttention contract on the CPU: `[b, L, h, d]` views in (last axis contiguous, as
    /// the kernel requires), `[b, Lq, h, dv]` out.
    fn stand_in(q: &Tensor, k: &Tensor, v: &Tensor) -> candle_core::Result<Tensor> {
        for t in [q, k, v] {
            assert_eq!(t.rank(), 4);
            assert_eq!(t.stride()[3], 1, "last axis must be contiguous");
        }
        let o = naive_attention(
            &q.transpose(1, 2).unwrap(),
            &k.transpose(1, 2).unwrap(),
            &v.transpose(1, 2).unwrap(),
        )
        .unwrap();
        o.transpose(1, 2)
    }

    #[test]
    fn token_layout_round_trip_matches_naive_attention() {
        let dev = Device::Cpu;
        // Ranks 3 and 4 (heads only; batch × heads), uneven lengths, dv ≠ d.
        for (lead, lq, lk, d, dv) in [(vec![3], 37, 21, 16, 16), (vec![2, 3], 29, 40, 8, 12)] {
            let shape = |l: usize, w: usize| {
                let mut s = lead.clone();
                s.extend([l, w]);
                s
            };
            let q = Tensor::randn(0f32, 1.0, shape(lq, d), &dev).unwrap();
            let k = Tensor::randn(0f32, 1.0, shape(lk, d), &dev).unwrap();
            let v = Tensor::randn(0f32, 1.0, shape(lk, dv), &dev).unwrap();
            let dims = check(&q, &k, &v).unwrap();
            let got = super::via_token_layout(&q, &k, &v, &dims, stand_in).unwrap();
            let want = naive_attention(&q, &k, &v).unwrap();
            assert_eq!(got.dims(), want.dims());
            let err: f32 = (got - want)
                .unwrap()
                .abs()
                .unwrap()
                .flatten_all()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar()
                .unwrap();
            assert!(err < 1e-5, "lead {lead:?}: max error {err}");
        }
    }
}
