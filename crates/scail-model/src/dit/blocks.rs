//! One DiT block: modulated self-attention with RoPE, text + image cross-attention, modulated
//! FFN; every stage adds onto the f32 residual stream.

use std::collections::HashMap;

use candle_core::{Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use super::gelu::gelu_tanh;
use super::layers::{
    attend, get_f32, layer_norm, merge_heads_b, modulate, rms, split_heads_b, Lin,
};
use super::{rope, DitConfig, Result};
use crate::attention::split_heads;

/// Tokens per FFN chunk (see `Block::ffn`).
pub(crate) const FFN_CHUNK: usize = 4096;

/// Optional capture of the reference's recorded intermediates (names as in the fixtures,
/// without the `out.` prefix, batch axis included).
pub type Trace = HashMap<String, Tensor>;

/// The q/k/v/o projections and q/k RMS norms both attentions share.
#[derive(Debug, Clone)]
struct Qkvo {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    norm_q: Tensor,
    norm_k: Tensor,
}

impl Qkvo {
    fn to_device(&self, dev: &Device) -> Result<Self> {
        Ok(Self {
            q: self.q.to_device(dev)?,
            k: self.k.to_device(dev)?,
            v: self.v.to_device(dev)?,
            o: self.o.to_device(dev)?,
            norm_q: self.norm_q.to_device(dev)?,
            norm_k: self.norm_k.to_device(dev)?,
        })
    }

    fn load(vb: &VarBuilder, prefix: &str, d: usize) -> Result<Self> {
        let lin = |p: &str| Lin::load(vb, &format!("{prefix}.{p}"), d, d);
        Ok(Self {
            q: lin("q")?,
            k: lin("k")?,
            v: lin("v")?,
            o: lin("o")?,
            norm_q: get_f32(vb, &[d], &format!("{prefix}.norm_q.weight"))?,
            norm_k: get_f32(vb, &[d], &format!("{prefix}.norm_k.weight"))?,
        })
    }
}

/// Cross-attention adds separate image keys and values (CLIP tokens) to the text ones.
#[derive(Debug, Clone)]
struct CrossAttention {
    text: Qkvo,
    k_img: Lin,
    v_img: Lin,
    norm_k_img: Tensor,
}

#[derive(Debug, Clone)]
pub(super) struct Block {
    modulation: Tensor, // [6, dim] f32
    self_attn: Qkvo,
    cross_attn: CrossAttention,
    norm3_w: Tensor,
    norm3_b: Tensor,
    ffn0: Lin,
    ffn2: Lin,
}

/// Everything a block needs that is shared across blocks of one forward.
pub(super) struct Shared<'a> {
    pub e0: &'a Tensor,       // [6, dim] f32
    pub ctx_text: &'a Tensor, // [B, text_len, dim]: one text context per branch
    pub ctx_img: &'a Tensor,  // [N, dim]: shared by all branches
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub ones: &'a Tensor,
    pub zeros: &'a Tensor,
}

impl Block {
    pub(super) fn load(vb: &VarBuilder, cfg: &DitConfig) -> Result<Self> {
        let d = cfg.dim;
        let cross_attn = CrossAttention {
            text: Qkvo::load(vb, "cross_attn", d)?,
            k_img: Lin::load(vb, "cross_attn.k_img", d, d)?,
            v_img: Lin::load(vb, "cross_attn.v_img", d, d)?,
            norm_k_img: get_f32(vb, &[d], "cross_attn.norm_k_img.weight")?,
        };
        Ok(Self {
            modulation: get_f32(vb, &[1, 6, d], "modulation")?.squeeze(0)?,
            self_attn: Qkvo::load(vb, "self_attn", d)?,
            cross_attn,
            norm3_w: get_f32(vb, &[d], "norm3.weight")?,
            norm3_b: get_f32(vb, &[d], "norm3.bias")?,
            ffn0: Lin::load(vb, "ffn.0", cfg.ffn_dim, d)?,
            ffn2: Lin::load(vb, "ffn.2", d, cfg.ffn_dim)?,
        })
    }

    /// A copy on `dev` (the `blocks` offload mode's copy at use).
    pub(super) fn to_device(&self, dev: &Device) -> Result<Self> {
        let ca = &self.cross_attn;
        Ok(Self {
            modulation: self.modulation.to_device(dev)?,
            self_attn: self.self_attn.to_device(dev)?,
            cross_attn: CrossAttention {
                text: ca.text.to_device(dev)?,
                k_img: ca.k_img.to_device(dev)?,
                v_img: ca.v_img.to_device(dev)?,
                norm_k_img: ca.norm_k_img.to_device(dev)?,
            },
            norm3_w: self.norm3_w.to_device(dev)?,
            norm3_b: self.norm3_b.to_device(dev)?,
            ffn0: self.ffn0.to_device(dev)?,
            ffn2: self.ffn2.to_device(dev)?,
        })
    }

    pub(super) fn forward(
        &self,
        x: &Tensor,
        s: &Shared,
        cfg: &DitConfig,
        trace: Option<&mut Trace>,
    ) -> Result<Tensor> {
        let m = (&self.modulation + s.e0)?; // [6, dim]
        let row = |i: usize| m.i(i..i + 1);
        let (sh1, sc1, g1, sh2, sc2, g2) = (row(0)?, row(1)?, row(2)?, row(3)?, row(4)?, row(5)?);

        // Self-attention on the modulated plain LayerNorm.
        let h = modulate(&layer_norm(x, s.ones, s.zeros, cfg.eps)?, &sh1, &sc1)?;
        let y = self.self_attention(&h, s, cfg, trace)?;
        let x = (x + y.broadcast_mul(&g1)?)?;

        // Cross-attention on the affine norm3 output, no modulation.
        let h = layer_norm(&x, &self.norm3_w, &self.norm3_b, cfg.eps)?;
        let x = (&x + self.cross_attention(&h, s, cfg)?)?;

        // FFN on the modulated plain LayerNorm.
        let h = modulate(&layer_norm(&x, s.ones, s.zeros, cfg.eps)?, &sh2, &sc2)?;
        let y = self.ffn(&h)?;
        Ok((x + y.broadcast_mul(&g2)?)?)
    }

    /// The FFN over token chunks of [`FFN_CHUNK`]: its hidden layer (2.7x the width, twice
    /// with the activation) is the largest intermediate, so it never exists for every token
    /// at once. Rows are independent, so chunking changes no value.
    fn ffn(&self, h: &Tensor) -> Result<Tensor> {
        let run = |h: &Tensor| self.ffn2.forward(&gelu_tanh(&self.ffn0.forward(h)?)?);
        let l = h.dim(1)?;
        if l <= FFN_CHUNK {
            return run(h);
        }
        let parts = (0..l)
            .step_by(FFN_CHUNK)
            .map(|s| run(&h.narrow(1, s, FFN_CHUNK.min(l - s))?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::cat(&parts, 1)?)
    }

    /// RMS-normed q/k with RoPE, attention, output projection (before the gate).
    fn self_attention(
        &self,
        h: &Tensor,
        s: &Shared,
        cfg: &DitConfig,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor> {
        let (sa, eps, heads) = (&self.self_attn, cfg.eps, cfg.num_heads);
        let q = split_heads_b(&rms(&sa.q.forward(h)?, &sa.norm_q, eps)?, heads)?;
        let k = split_heads_b(&rms(&sa.k.forward(h)?, &sa.norm_k, eps)?, heads)?;
        let v = split_heads_b(&sa.v.forward(h)?, heads)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("block0_q_prerope_head0".into(), q.i((.., 0))?);
        }
        let q = rope::apply(&q, s.cos, s.sin)?;
        let k = rope::apply(&k, s.cos, s.sin)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("block0_q_rope_head0".into(), q.i((.., 0))?);
            t.insert("block0_k_rope_head0".into(), k.i((.., 0))?);
        }
        let a = attend(&q, &k, &v, &sa.o)?;
        let y = sa.o.forward(&merge_heads_b(&a)?)?;
        if let Some(t) = trace {
            t.insert("block0_selfattn_out".into(), y.clone());
        }
        Ok(y)
    }

    /// Text attention plus image attention with the same queries, summed before `o`.
    fn cross_attention(&self, h: &Tensor, s: &Shared, cfg: &DitConfig) -> Result<Tensor> {
        let (ca, eps, heads) = (&self.cross_attn, cfg.eps, cfg.num_heads);
        let t = &ca.text;
        let q = split_heads_b(&rms(&t.q.forward(h)?, &t.norm_q, eps)?, heads)?;
        let kt = split_heads_b(&rms(&t.k.forward(s.ctx_text)?, &t.norm_k, eps)?, heads)?;
        let vt = split_heads_b(&t.v.forward(s.ctx_text)?, heads)?;
        // The image keys/values are the same for every branch: projected once, then repeated.
        let b = h.dim(0)?;
        let per_branch = |t: Tensor| -> Result<Tensor> {
            let mut shape = vec![b];
            shape.extend_from_slice(t.dims());
            Ok(t.unsqueeze(0)?.broadcast_as(shape)?.contiguous()?)
        };
        let ki = per_branch(split_heads(
            &rms(&ca.k_img.forward(s.ctx_img)?, &ca.norm_k_img, eps)?,
            heads,
        )?)?;
        let vi = per_branch(split_heads(&ca.v_img.forward(s.ctx_img)?, heads)?)?;
        let text = attend(&q, &kt, &vt, &t.o)?;
        let img = attend(&q, &ki, &vi, &t.o)?;
        t.o.forward(&merge_heads_b(&(text + img)?)?)
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn the_chunked_ffn_equals_the_whole_one() {
        let cfg = DitConfig {
            dim: 64,
            ffn_dim: 128,
            num_heads: 2,
            num_layers: 1,
            ..DitConfig::fourteen_b()
        };
        let w = crate::dit::random_weights(&cfg, DType::F32, &Device::Cpu).unwrap();
        let vb = VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
        let b = Block::load(&vb.pp("blocks.0"), &cfg).unwrap();
        let l = 2 * FFN_CHUNK + 17;
        let h = Tensor::randn(0f32, 1.0, (1, l, cfg.dim), &Device::Cpu).unwrap();
        let chunked = b.ffn(&h).unwrap();
        let whole = b
            .ffn2
            .forward(&gelu_tanh(&b.ffn0.forward(&h).unwrap()).unwrap())
            .unwrap();
        let diff = crate::fixtures::max_abs_diff(&chunked, &whole);
        let scale = crate::fixtures::max_abs(&whole);
        assert!(
            diff <= 1e-6 * scale,
            "chunked FFN differs by {diff} (max {scale})"
        );
    }
}
