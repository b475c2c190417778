//! The two ways a block runs its f32 work around the matmuls: fused CPU kernels on the token
//! layout, or candle ops on head-split tensors (every other device). The block is written once
//! against [`Ops`]; q, k, v and attention outputs are in the layout of the chosen way.

use candle_core::{DType, IndexOp, Tensor};

use super::layers::{attend, layer_norm, merge_heads_b, modulate, rms, split_heads_b, Lin};
use super::{fused, rope, Result};
use crate::attention::{self, split_heads};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Ops {
    /// CPU, f32 activations: q/k/v stay `[B, L, dim]`; norms, modulation, RoPE and residuals
    /// are one parallel pass each (see `fused`).
    Fused,
    /// Candle ops: q/k/v are `[B, heads, L, head_dim]`.
    Split,
}

impl Ops {
    pub(super) fn for_tokens(x: &Tensor) -> Self {
        if fused::applies(x) {
            Self::Fused
        } else {
            Self::Split
        }
    }

    /// `LayerNorm(x)·(1 + scale) + shift`, LayerNorm without affine (`ones`/`zeros` for the
    /// candle path).
    pub(super) fn ln_modulate(
        self,
        x: &Tensor,
        (shift, scale): (&Tensor, &Tensor),
        (ones, zeros): (&Tensor, &Tensor),
        eps: f64,
    ) -> Result<Tensor> {
        match self {
            Self::Fused => fused::ln_modulate(x, shift, scale, eps),
            Self::Split => modulate(&layer_norm(x, ones, zeros, eps)?, shift, scale),
        }
    }

    /// `x + y · gate`, or `x + y` without a gate.
    pub(super) fn gated_add(self, x: &Tensor, y: &Tensor, gate: Option<&Tensor>) -> Result<Tensor> {
        match (self, gate) {
            (Self::Fused, gate) => fused::gated_add(x, y, gate),
            (Self::Split, Some(g)) => Ok((x + y.broadcast_mul(g)?)?),
            (Self::Split, None) => Ok((x + y)?),
        }
    }

    /// Queries or keys: the projection `p` `[B, L, dim]` RMS-normed with `w`, rotated when
    /// tables are given.
    pub(super) fn qk(
        self,
        p: &Tensor,
        w: &Tensor,
        eps: f64,
        heads: usize,
        rot: Option<(&Tensor, &Tensor)>,
    ) -> Result<Tensor> {
        match (self, rot) {
            (Self::Fused, Some((cos, sin))) => fused::rms_rope(p, w, eps, cos, sin),
            (Self::Fused, None) => rms(p, w, eps),
            (Self::Split, rot) => {
                let x = split_heads_b(&rms(p, w, eps)?, heads)?;
                match rot {
                    Some((cos, sin)) => Ok(rope::apply(&x, cos, sin)?),
                    None => Ok(x),
                }
            }
        }
    }

    /// Values (or any tensor taking q/k/v's layout) from a projection `[B, L, dim]`.
    pub(super) fn heads(self, p: &Tensor, heads: usize) -> Result<Tensor> {
        match self {
            Self::Fused => Ok(p.clone()),
            Self::Split => split_heads_b(p, heads),
        }
    }

    /// Keys or values shared by all `b` batch rows, from a projection `[N, dim]`.
    pub(super) fn shared(self, p: &Tensor, heads: usize, b: usize) -> Result<Tensor> {
        match self {
            // The kernel reads one key set for every batch row: no copies.
            Self::Fused => Ok(p.unsqueeze(0)?),
            Self::Split => {
                let t = split_heads(p, heads)?;
                let mut shape = vec![b];
                shape.extend_from_slice(t.dims());
                Ok(t.unsqueeze(0)?.broadcast_as(shape)?.contiguous()?)
            }
        }
    }

    /// Attention in the matmul dtype of `consumer` (see [`attend`]), result `[B, L, dim]`.
    pub(super) fn attend(
        self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        heads: usize,
        consumer: &Lin,
    ) -> Result<Tensor> {
        match self {
            Self::Fused => {
                let dt = consumer.compute;
                let c = |t: &Tensor| t.to_dtype(dt);
                let out = attention::attention_tokens(&c(q)?, &c(k)?, &c(v)?, heads)?;
                Ok(out.to_dtype(DType::F32)?)
            }
            Self::Split => merge_heads_b(&attend(q, k, v, consumer)?),
        }
    }

    /// Head 0 of q or k as `[B, L, head_dim]` (the fixtures' traced intermediates).
    pub(super) fn head0(self, x: &Tensor, heads: usize) -> Result<Tensor> {
        match self {
            Self::Fused => {
                let hd = x.dim(2)? / heads;
                Ok(x.narrow(2, 0, hd)?.contiguous()?)
            }
            Self::Split => Ok(x.i((.., 0))?),
        }
    }
}
