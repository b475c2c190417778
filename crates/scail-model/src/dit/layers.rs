//! The DiT's Linear layer (matmul in the weight dtype, optionally through OpenBLAS) and the
//! small f32 operations around it: norms, modulation, head splitting, attention dispatch.

use std::borrow::Cow;

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;

use super::{attention, DitError, Result};
use crate::blas::{self, Mat, Threads};

/// A Linear layer whose matmul runs in the compute dtype; input and output are f32. An
/// `fp8_scaled` weight stays fp8 (e4m3) with its scale and is widened at each use, so the
/// network never holds more than one widened layer.
#[derive(Debug, Clone)]
pub(super) struct Lin {
    pub(super) w: Tensor,
    /// The fp8 weight's scale: one value or one per output channel (`[out, 1]`).
    scale: Option<Tensor>,
    /// The matmul dtype (the weight's, or the model's for an fp8 weight).
    pub(super) compute: DType,
    pub(super) b: Tensor,
}

impl Lin {
    /// A layer from a weight already in its matmul dtype.
    pub(super) fn dense(w: Tensor, b: Tensor) -> Self {
        Self {
            compute: w.dtype(),
            w,
            scale: None,
            b,
        }
    }

    pub(super) fn load(vb: &VarBuilder, name: &str, out: usize, inp: usize) -> Result<Self> {
        let w_name = format!("{name}.weight");
        let scale_name = format!("{name}.scale_weight");
        let (w, scale) = if vb.contains_tensor(&scale_name) {
            let w = vb
                .get_with_hints_dtype((out, inp), &w_name, Default::default(), DType::F8E4M3)
                .map_err(DitError::Weights)?;
            let s = vb
                .get_unchecked_dtype(&scale_name, DType::F32)
                .map_err(DitError::Weights)?;
            let s = match s.elem_count() {
                1 => s.flatten_all()?.reshape(())?,
                n if n == out => s.reshape((out, 1))?,
                _ => {
                    return Err(DitError::Weights(candle_core::Error::Msg(format!(
                        "`{scale_name}` has shape {:?}: expected one value or {out} (one per \
                         output channel of `{w_name}`)",
                        s.dims()
                    ))))
                }
            };
            (w, Some(s))
        } else {
            let w = vb.get((out, inp), &w_name).map_err(DitError::Weights)?;
            (w, None)
        };
        let b = vb
            .get(out, &format!("{name}.bias"))
            .map_err(DitError::Weights)?;
        Ok(Self {
            compute: if scale.is_some() {
                vb.dtype()
            } else {
                w.dtype()
            },
            w,
            scale,
            b,
        })
    }

    /// The weight in the compute dtype: as held, or an fp8 one widened and scaled.
    pub(super) fn weight(&self) -> Result<Cow<'_, Tensor>> {
        Ok(match &self.scale {
            None => Cow::Borrowed(&self.w),
            Some(s) => {
                let w = self.w.to_dtype(DType::F32)?.broadcast_mul(s)?;
                Cow::Owned(w.to_dtype(self.compute)?)
            }
        })
    }

    /// Copies the layer to `dev` (fp8 weights stay fp8).
    pub(super) fn to_device(&self, dev: &candle_core::Device) -> Result<Self> {
        Ok(Self {
            w: crate::offload::to_device(&self.w, dev)?,
            scale: self.scale.as_ref().map(|s| s.to_device(dev)).transpose()?,
            compute: self.compute,
            b: self.b.to_device(dev)?,
        })
    }

    /// `x` `[.., in]` → `[.., out]`: leading axes are flattened into the matmul's rows.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = self.weight()?;
        // Without OpenBLAS, candle's own matmul (the gemm crate) is as fast as a direct call.
        if self.compute == DType::F32 && x.device().is_cpu() && crate::blas::has_fast() {
            return self.forward_cpu_f32(x, &w);
        }
        let dims = x.dims();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp.max(1);
        let xd = x.to_dtype(self.compute)?.reshape((rows, inp))?;
        let y = xd.matmul(&w.t()?)?.broadcast_add(&self.b)?;
        let mut out = dims.to_vec();
        *out.last_mut().expect("rank >= 1") = w.dim(0)?;
        Ok(y.to_dtype(DType::F32)?.reshape(out)?)
    }
}

impl Lin {
    /// f32 CPU path: one [`Lin::gemm_rows`] straight from the weight's storage.
    fn forward_cpu_f32(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let (out_dim, inp) = w.dims2()?;
        let rows = x.elem_count() / inp.max(1);
        let x = x.to_dtype(DType::F32)?.contiguous()?;
        let mut y = vec![0f32; rows * out_dim];
        {
            let (xs, _) = x.storage_and_layout();
            self.gemm_rows(w, attention::cpu_slice(&xs, &x)?, &mut y)?;
        }
        let mut shape = dims;
        *shape.last_mut().expect("rank >= 1") = out_dim;
        Ok(Tensor::from_vec(y, shape, x.device())?)
    }

    /// `y = x · wᵀ + b` on CPU slices, `x` `rows × in`, `y` `rows × out`, with the f32 weight
    /// `w` (from [`Lin::weight`]) read transposed in place: one [`blas::sgemm`] accumulating
    /// onto rows pre-filled with the bias.
    pub(super) fn gemm_rows(&self, w: &Tensor, x: &[f32], y: &mut [f32]) -> Result<()> {
        let (out_dim, inp) = w.dims2()?;
        let rows = x.len() / inp.max(1);
        let w = w.contiguous()?;
        let b = self.b.to_dtype(DType::F32)?.contiguous()?;
        let (ws, _) = w.storage_and_layout();
        let (bs, _) = b.storage_and_layout();
        let wv = attention::cpu_slice(&ws, &w)?;
        let bv = attention::cpu_slice(&bs, &b)?;
        for row in y.chunks_exact_mut(out_dim) {
            row.copy_from_slice(bv);
        }
        blas::sgemm(
            (rows, out_dim, inp),
            1.0,
            Mat {
                data: x,
                ld: inp,
                trans: false,
            },
            Mat {
                data: wv,
                ld: inp,
                trans: true,
            },
            1.0,
            y,
            out_dim,
            Threads::Many,
        );
        Ok(())
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
    let dt = consumer.compute;
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
