//! One DiT block: modulated self-attention with RoPE, text + image cross-attention, modulated
//! FFN; every stage adds onto the f32 residual stream.

use std::collections::HashMap;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use super::gelu::{gelu_tanh, gelu_tanh_in_place};
use super::layers::{get_f32, layer_norm, rms, Lin};
use super::ops::Ops;
use super::{fused, DitConfig, Result};

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
        let ops = Ops::for_tokens(x);
        let m = (&self.modulation + s.e0)?; // [6, dim]
        let row = |i: usize| m.i(i..i + 1);
        let (sh1, sc1, g1, sh2, sc2, g2) = (row(0)?, row(1)?, row(2)?, row(3)?, row(4)?, row(5)?);
        let plain = (s.ones, s.zeros);

        // Self-attention on the modulated plain LayerNorm.
        let h = ops.ln_modulate(x, (&sh1, &sc1), plain, cfg.eps)?;
        let y = self.self_attention(ops, &h, s, cfg, trace)?;
        let x = ops.gated_add(x, &y, Some(&g1))?;

        // Cross-attention on the affine norm3 output, no modulation.
        let h = layer_norm(&x, &self.norm3_w, &self.norm3_b, cfg.eps)?;
        let x = ops.gated_add(&x, &self.cross_attention(ops, &h, s, cfg)?, None)?;

        // FFN on the modulated plain LayerNorm.
        let h = ops.ln_modulate(&x, (&sh2, &sc2), plain, cfg.eps)?;
        let y = self.ffn(&h)?;
        ops.gated_add(&x, &y, Some(&g2))
    }

    /// The FFN over row chunks of at most [`FFN_CHUNK`] tokens: its hidden layer (2.7x the
    /// width, twice with the activation) is the largest intermediate, so it never exists for
    /// every token at once. Rows are independent, so chunking changes no value.
    fn ffn(&self, h: &Tensor) -> Result<Tensor> {
        if fused::applies(h) && self.ffn0.compute == DType::F32 && self.ffn2.compute == DType::F32 {
            return self.ffn_cpu_f32(h);
        }
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

    /// The f32 CPU FFN: equal chunks of all rows (no small remainder matmul), each through
    /// `ffn.0`, GELU in place and `ffn.2` written straight into its rows of the output, one
    /// hidden buffer reused.
    fn ffn_cpu_f32(&self, h: &Tensor) -> Result<Tensor> {
        let (w0, w2) = (self.ffn0.weight()?, self.ffn2.weight()?);
        let (hidden_dim, d) = w0.dims2()?;
        let rows = h.elem_count() / d;
        let chunk = rows.div_ceil(rows.div_ceil(FFN_CHUNK).max(1)).max(1);
        let h = h.contiguous()?;
        let mut out = vec![0f32; rows * d];
        let mut hidden = vec![0f32; chunk * hidden_dim];
        {
            let (hs, _) = h.storage_and_layout();
            let hv = crate::attention::cpu_slice(&hs, &h)?;
            for (x, y) in hv.chunks(chunk * d).zip(out.chunks_mut(chunk * d)) {
                let n = x.len() / d;
                let hid = &mut hidden[..n * hidden_dim];
                self.ffn0.gemm_rows(&w0, x, hid)?;
                gelu_tanh_in_place(hid);
                self.ffn2.gemm_rows(&w2, hid, y)?;
            }
        }
        Ok(Tensor::from_vec(out, h.shape(), h.device())?)
    }

    /// RMS-normed q/k with RoPE, attention, output projection (before the gate).
    fn self_attention(
        &self,
        ops: Ops,
        h: &Tensor,
        s: &Shared,
        cfg: &DitConfig,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor> {
        let (sa, eps, heads) = (&self.self_attn, cfg.eps, cfg.num_heads);
        let rot = Some((s.cos, s.sin));
        let (qp, kp) = (sa.q.forward(h)?, sa.k.forward(h)?);
        if let Some(t) = trace.as_deref_mut() {
            let q = Ops::Split.qk(&qp, &sa.norm_q, eps, heads, None)?;
            t.insert("block0_q_prerope_head0".into(), q.i((.., 0))?);
        }
        let q = ops.qk(&qp, &sa.norm_q, eps, heads, rot)?;
        let k = ops.qk(&kp, &sa.norm_k, eps, heads, rot)?;
        let v = ops.heads(&sa.v.forward(h)?, heads)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("block0_q_rope_head0".into(), ops.head0(&q, heads)?);
            t.insert("block0_k_rope_head0".into(), ops.head0(&k, heads)?);
        }
        let a = ops.attend(&q, &k, &v, heads, &sa.o)?;
        let y = sa.o.forward(&a)?;
        if let Some(t) = trace {
            t.insert("block0_selfattn_out".into(), y.clone());
        }
        Ok(y)
    }

    /// Text attention plus image attention with the same queries, summed before `o`.
    fn cross_attention(&self, ops: Ops, h: &Tensor, s: &Shared, cfg: &DitConfig) -> Result<Tensor> {
        let (ca, eps, heads) = (&self.cross_attn, cfg.eps, cfg.num_heads);
        let t = &ca.text;
        let q = ops.qk(&t.q.forward(h)?, &t.norm_q, eps, heads, None)?;
        let kt = ops.qk(&t.k.forward(s.ctx_text)?, &t.norm_k, eps, heads, None)?;
        let vt = ops.heads(&t.v.forward(s.ctx_text)?, heads)?;
        // The image keys/values are the same for every branch: projected once.
        let b = h.dim(0)?;
        let ki = rms(&ca.k_img.forward(s.ctx_img)?, &ca.norm_k_img, eps)?;
        let ki = ops.shared(&ki, heads, b)?;
        let vi = ops.shared(&ca.v_img.forward(s.ctx_img)?, heads, b)?;
        let text = ops.attend(&q, &kt, &vt, heads, &t.o)?;
        let img = ops.attend(&q, &ki, &vi, heads, &t.o)?;
        t.o.forward(&(text + img)?)
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
