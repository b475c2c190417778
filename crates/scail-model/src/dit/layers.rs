//! The DiT's Linear layer (matmul in the weight dtype, optionally through OpenBLAS) and the
//! small f32 operations around it: norms, modulation, head splitting, attention dispatch.

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::{attention, DitError, Result};
use crate::blas::{self, Mat, Threads};

/// A Linear layer whose matmul runs in the weight dtype; input and output are f32.
#[derive(Debug, Clone)]
pub(super) struct Lin {
    pub(super) w: Tensor,
    pub(super) b: Tensor,
}

impl Lin {
    pub(super) fn load(vb: &VarBuilder, name: &str, out: usize, inp: usize) -> Result<Self> {
        let w = vb
            .get((out, inp), &format!("{name}.weight"))
            .map_err(DitError::Weights)?;
        let b = vb
            .get(out, &format!("{name}.bias"))
            .map_err(DitError::Weights)?;
        Ok(Self { w, b })
    }

    /// `x` `[.., in]` → `[.., out]`: leading axes are flattened into the matmul's rows.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        // Without OpenBLAS, candle's own matmul (the gemm crate) is as fast as a direct call.
        if cfg!(feature = "openblas") && self.w.dtype() == DType::F32 && x.device().is_cpu() {
            return self.forward_cpu_f32(x);
        }
        let dims = x.dims();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp.max(1);
        let xd = x.to_dtype(self.w.dtype())?.reshape((rows, inp))?;
        let y = xd.matmul(&self.w.t()?)?.broadcast_add(&self.b)?;
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank >= 1") = self.w.dim(0)?;
        Ok(y.to_dtype(DType::F32)?.reshape(out)?)
    }
}

impl Lin {
    /// f32 CPU path: one [`blas::sgemm`] straight from the weight's storage, reading it
    /// transposed in place and accumulating onto rows pre-filled with the bias.
    fn forward_cpu_f32(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (out_dim, inp) = self.w.dims2()?;
        let rows = x.elem_count() / inp.max(1);
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let w = self.w.contiguous()?;
        let b = self.b.to_dtype(DType::F32)?.contiguous()?;
        let mut y = Vec::with_capacity(rows * out_dim);
        {
            let (xs, _) = x.storage_and_layout();
            let (ws, _) = w.storage_and_layout();
            let (bs, _) = b.storage_and_layout();
            let xv = attention::cpu_slice(&xs, &x)?;
            let wv = attention::cpu_slice(&ws, &w)?;
            let bv = attention::cpu_slice(&bs, &b)?;
            for _ in 0..rows {
                y.extend_from_slice(bv);
            }
            blas::sgemm(
                (rows, out_dim, inp),
                1.0,
                Mat {
                    data: xv,
                    ld: inp,
                    trans: false,
                },
                Mat {
                    data: wv,
                    ld: inp,
                    trans: true,
                },
                1.0,
                &mut y,
                out_dim,
                Threads::Many,
            );
        }
        let mut shape = dims;
        *shape.last_mut().expect("rank >= 1") = out_dim;
        Ok(Tensor::from_vec(y, shape, x.device())?)
    }
}

pub(super) fn get_f32(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    vb.to_dtype(DType::F32)
        .get(shape, name)
        .map_err(DitError::Weights)
}

/// LayerNorm over the last axis in f32 (affine or not).
pub(super) fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::layer_norm(x, w, b, eps as f32)?)
}

/// Attention in the matmul dtype of the layer that consumes it (the reference's flash attention
/// takes bf16 q/k/v under autocast); result back in f32.
pub(super) fn attend(q: &Tensor, k: &Tensor, v: &Tensor, consumer: &Lin) -> Result<Tensor> {
    let dt = consumer.w.dtype();
    let out = attention::attention(&q.to_dtype(dt)?, &k.to_dtype(dt)?, &v.to_dtype(dt)?)?;
    Ok(out.to_dtype(DType::F32)?)
}

/// `[B, L, heads·head_dim]` → `[B, heads, L, head_dim]`.
pub(super) fn split_heads_b(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, w) = x.dims3()?;
    Ok(x.reshape((b, l, heads, w / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Inverse of [`split_heads_b`].
pub(super) fn merge_heads_b(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, l, h * d))?)
}

/// `x * (1 + scale) + shift` with row-vector scale/shift, f32.
pub(super) fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)?)
}

/// RMS norm over the full width (`WanRMSNorm`), f32.
pub(super) fn rms(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?)
}
