//! The SCAIL-2 diffusion transformer (`SCAIL2Model`, Wan 2.1 I2V with a 3-stream
//! "reference | video | pose" token sequence), loaded by the official Wan-layout key names.
//!
//! Tokens are `[B, L, dim]`: B = 1 for [`Dit::forward`], or B branches that differ only in the
//! text context for [`Dit::forward_batch`] (classifier-free guidance in one pass). Precision follows the reference under bf16 autocast:
//! Linear layers (patch embeddings, attention projections, FFN, text and CLIP embeddings) run in
//! the weight dtype, while the time embedding, the modulation, all norms, the residual stream,
//! RoPE (f64 tables rounded to f32), the softmax and the head stay in f32. With f32 weights the
//! whole forward is f32 and matches the fixtures.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

use crate::attention::{self, split_heads};
use crate::blas::{self, Mat, Threads};
use crate::rope::{self, ScailRope};

/// Width of the CLIP features `img_emb` projects: hard-coded 1280 in the reference.
pub const CLIP_DIM: usize = 1280;
/// Channels appended to every latent stream (history mask for the video, ones elsewhere).
pub const EXTRA_CHANNELS: usize = 4;
/// `img_emb`'s LayerNorms use PyTorch's default eps, unlike the blocks' 1e-6.
const IMG_EMB_EPS: f64 = 1e-5;

#[derive(Debug, thiserror::Error)]
pub enum DitError {
    #[error("config: {0}")]
    Config(String),
    #[error("input {name}: expected {expected}, got {got:?}")]
    Input {
        name: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    #[error("{got} text tokens exceed text_len {text_len}")]
    TextTooLong { got: usize, text_len: usize },
    #[error("loading weights: {0}")]
    Weights(candle_core::Error),
    #[error(transparent)]
    Rope(#[from] rope::RopeError),
    #[error(transparent)]
    Attention(#[from] attention::AttentionError),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

pub type Result<T> = std::result::Result<T, DitError>;

/// The DiT hyper-parameters (`SCAIL2Model.__init__`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DitConfig {
    pub patch_size: [usize; 3],
    pub text_len: usize,
    pub in_dim: usize,
    pub mask_dim: usize,
    pub dim: usize,
    pub ffn_dim: usize,
    pub freq_dim: usize,
    pub text_dim: usize,
    pub out_dim: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub qk_norm: bool,
    pub cross_attn_norm: bool,
    pub eps: f64,
}

impl DitConfig {
    /// The released SCAIL-2 14B DiT (`model.md` §2).
    pub fn fourteen_b() -> Self {
        Self {
            patch_size: [1, 2, 2],
            text_len: 512,
            in_dim: 20,
            mask_dim: 28,
            dim: 5120,
            ffn_dim: 13824,
            freq_dim: 256,
            text_dim: 4096,
            out_dim: 16,
            num_heads: 40,
            num_layers: 40,
            qk_norm: true,
            cross_attn_norm: true,
            eps: 1e-6,
        }
    }

    /// From a fixture manifest: either the `config.dit` object itself or the whole manifest.
    pub fn from_manifest(v: &serde_json::Value) -> Result<Self> {
        let v = if v.get("config").is_some() {
            &v["config"]["dit"]
        } else {
            v
        };
        if let Some(mt) = v.get("model_type").and_then(|m| m.as_str()) {
            if mt != "i2v" {
                return Err(DitError::Config(format!(
                    "model_type {mt}: only i2v (image cross-attention) is supported"
                )));
            }
        }
        if let Some(ws) = v.get("window_size").and_then(|w| w.as_array()) {
            if ws.iter().any(|x| x.as_i64() != Some(-1)) {
                return Err(DitError::Config(format!(
                    "window_size {ws:?}: only global attention (-1, -1) is supported"
                )));
            }
        }
        let cfg: Self =
            serde_json::from_value(v.clone()).map_err(|e| DitError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.num_heads
    }

    /// Values per output token: `out_dim × prod(patch)`.
    pub fn head_out(&self) -> usize {
        self.out_dim * self.patch_size.iter().product::<usize>()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DitError::Config(m));
        if self.num_heads == 0 || !self.dim.is_multiple_of(self.num_heads) {
            return bad(format!(
                "dim {} not divisible by {} heads",
                self.dim, self.num_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() < 6 {
            return bad(format!(
                "head_dim {} must be even and >= 6",
                self.head_dim()
            ));
        }
        if !self.freq_dim.is_multiple_of(2) {
            return bad(format!("freq_dim {} must be even", self.freq_dim));
        }
        if self.in_dim <= EXTRA_CHANNELS {
            return bad(format!(
                "in_dim {} must exceed the {EXTRA_CHANNELS} mask channels",
                self.in_dim
            ));
        }
        if !(self.qk_norm && self.cross_attn_norm) {
            return bad(
                "only qk_norm = cross_attn_norm = true (the SCAIL-2 layout) is supported".into(),
            );
        }
        Ok(())
    }

    /// Latent channels: `in_dim` minus the 4 appended mask channels.
    pub fn latent_channels(&self) -> usize {
        self.in_dim - EXTRA_CHANNELS
    }

    /// Every weight of the Wan-layout checkpoint with its shape, in a stable order; the key
    /// contract of the model, computed without allocating anything.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.dim, self.ffn_dim);
        let [pt, ph, pw] = self.patch_size;
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |n: String, s: Vec<usize>| v.push((n, s));
        for (name, cin) in [
            ("patch_embedding", self.in_dim),
            ("patch_embedding_pose", self.in_dim),
            ("patch_embedding_mask", self.mask_dim),
        ] {
            push(format!("{name}.weight"), vec![d, cin, pt, ph, pw]);
            push(format!("{name}.bias"), vec![d]);
        }
        let lin = |p: &mut dyn FnMut(String, Vec<usize>), n: &str, o: usize, i: usize| {
            p(format!("{n}.weight"), vec![o, i]);
            p(format!("{n}.bias"), vec![o]);
        };
        lin(&mut push, "text_embedding.0", d, self.text_dim);
        lin(&mut push, "text_embedding.2", d, d);
        lin(&mut push, "time_embedding.0", d, self.freq_dim);
        lin(&mut push, "time_embedding.2", d, d);
        lin(&mut push, "time_projection.1", 6 * d, d);
        for i in 0..self.num_layers {
            let b = format!("blocks.{i}");
            push(format!("{b}.modulation"), vec![1, 6, d]);
            for a in ["self_attn", "cross_attn"] {
                for p in ["q", "k", "v", "o"] {
                    lin(&mut push, &format!("{b}.{a}.{p}"), d, d);
                }
                push(format!("{b}.{a}.norm_q.weight"), vec![d]);
                push(format!("{b}.{a}.norm_k.weight"), vec![d]);
            }
            lin(&mut push, &format!("{b}.cross_attn.k_img"), d, d);
            lin(&mut push, &format!("{b}.cross_attn.v_img"), d, d);
            push(format!("{b}.cross_attn.norm_k_img.weight"), vec![d]);
            push(format!("{b}.norm3.weight"), vec![d]);
            push(format!("{b}.norm3.bias"), vec![d]);
            lin(&mut push, &format!("{b}.ffn.0"), f, d);
            lin(&mut push, &format!("{b}.ffn.2"), d, f);
        }
        lin(&mut push, "head.head", self.head_out(), d);
        push("head.modulation".into(), vec![1, 2, d]);
        push("img_emb.proj.0.weight".into(), vec![CLIP_DIM]);
        push("img_emb.proj.0.bias".into(), vec![CLIP_DIM]);
        lin(&mut push, "img_emb.proj.1", CLIP_DIM, CLIP_DIM);
        lin(&mut push, "img_emb.proj.3", d, CLIP_DIM);
        push("img_emb.proj.4.weight".into(), vec![d]);
        push("img_emb.proj.4.bias".into(), vec![d]);
        v
    }
}

/// A Linear layer whose matmul runs in the weight dtype; input and output are f32.
#[derive(Debug, Clone)]
struct Lin {
    w: Tensor,
    b: Tensor,
}

impl Lin {
    fn load(vb: &VarBuilder, name: &str, out: usize, inp: usize) -> Result<Self> {
        let w = vb
            .get((out, inp), &format!("{name}.weight"))
            .map_err(DitError::Weights)?;
        let b = vb
            .get(out, &format!("{name}.bias"))
            .map_err(DitError::Weights)?;
        Ok(Self { w, b })
    }

    /// `x` `[.., in]` → `[.., out]`: leading axes are flattened into the matmul's rows.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
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

fn get_f32(vb: &VarBuilder, shape: &[usize], name: &str) -> Result<Tensor> {
    vb.to_dtype(DType::F32)
        .get(shape, name)
        .map_err(DitError::Weights)
}

/// LayerNorm over the last axis in f32 (affine or not).
fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::layer_norm(x, w, b, eps as f32)?)
}

#[derive(Debug, Clone)]
struct SelfAttention {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    norm_q: Tensor,
    norm_k: Tensor,
}

#[derive(Debug, Clone)]
struct CrossAttention {
    q: Lin,
    k: Lin,
    v: Lin,
    o: Lin,
    k_img: Lin,
    v_img: Lin,
    norm_q: Tensor,
    norm_k: Tensor,
    norm_k_img: Tensor,
}

#[derive(Debug, Clone)]
struct Block {
    modulation: Tensor, // [6, dim] f32
    self_attn: SelfAttention,
    cross_attn: CrossAttention,
    norm3_w: Tensor,
    norm3_b: Tensor,
    ffn0: Lin,
    ffn2: Lin,
}

/// Everything a block needs that is shared across blocks of one forward.
struct Shared<'a> {
    e0: &'a Tensor,       // [6, dim] f32
    ctx_text: &'a Tensor, // [B, text_len, dim]: one text context per branch
    ctx_img: &'a Tensor,  // [N, dim]: shared by all branches
    cos: &'a Tensor,
    sin: &'a Tensor,
    ones: &'a Tensor,
    zeros: &'a Tensor,
}

/// Optional capture of the reference's recorded intermediates (names as in the fixtures,
/// without the `out.` prefix, batch axis included).
pub type Trace = HashMap<String, Tensor>;

impl Block {
    fn load(vb: &VarBuilder, cfg: &DitConfig) -> Result<Self> {
        let d = cfg.dim;
        let lin = |n: &str, o, i| Lin::load(vb, n, o, i);
        let self_attn = SelfAttention {
            q: lin("self_attn.q", d, d)?,
            k: lin("self_attn.k", d, d)?,
            v: lin("self_attn.v", d, d)?,
            o: lin("self_attn.o", d, d)?,
            norm_q: get_f32(vb, &[d], "self_attn.norm_q.weight")?,
            norm_k: get_f32(vb, &[d], "self_attn.norm_k.weight")?,
        };
        let cross_attn = CrossAttention {
            q: lin("cross_attn.q", d, d)?,
            k: lin("cross_attn.k", d, d)?,
            v: lin("cross_attn.v", d, d)?,
            o: lin("cross_attn.o", d, d)?,
            k_img: lin("cross_attn.k_img", d, d)?,
            v_img: lin("cross_attn.v_img", d, d)?,
            norm_q: get_f32(vb, &[d], "cross_attn.norm_q.weight")?,
            norm_k: get_f32(vb, &[d], "cross_attn.norm_k.weight")?,
            norm_k_img: get_f32(vb, &[d], "cross_attn.norm_k_img.weight")?,
        };
        Ok(Self {
            modulation: get_f32(vb, &[1, 6, d], "modulation")?.squeeze(0)?,
            self_attn,
            cross_attn,
            norm3_w: get_f32(vb, &[d], "norm3.weight")?,
            norm3_b: get_f32(vb, &[d], "norm3.bias")?,
            ffn0: lin("ffn.0", cfg.ffn_dim, d)?,
            ffn2: lin("ffn.2", d, cfg.ffn_dim)?,
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        s: &Shared,
        cfg: &DitConfig,
        mut trace: Option<&mut Trace>,
    ) -> Result<Tensor> {
        let eps = cfg.eps;
        let m = (&self.modulation + s.e0)?; // [6, dim]
        let row = |i: usize| m.i(i..i + 1);
        let (sh1, sc1, g1, sh2, sc2, g2) = (row(0)?, row(1)?, row(2)?, row(3)?, row(4)?, row(5)?);

        // Self-attention on the modulated plain LayerNorm.
        let h = modulate(&layer_norm(x, s.ones, s.zeros, eps)?, &sh1, &sc1)?;
        let sa = &self.self_attn;
        let heads = cfg.num_heads;
        let q = rms(&sa.q.forward(&h)?, &sa.norm_q, eps)?;
        let k = rms(&sa.k.forward(&h)?, &sa.norm_k, eps)?;
        let v = sa.v.forward(&h)?;
        let q = split_heads_b(&q, heads)?;
        let k = split_heads_b(&k, heads)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("block0_q_prerope_head0".into(), q.i((.., 0))?);
        }
        let q = rope::apply(&q, s.cos, s.sin)?;
        let k = rope::apply(&k, s.cos, s.sin)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("block0_q_rope_head0".into(), q.i((.., 0))?);
            t.insert("block0_k_rope_head0".into(), k.i((.., 0))?);
        }
        let v = split_heads_b(&v, heads)?;
        let a = attend(&q, &k, &v, &sa.o)?;
        let y = sa.o.forward(&merge_heads_b(&a)?)?;
        if let Some(t) = trace {
            t.insert("block0_selfattn_out".into(), y.clone());
        }
        let x = (x + y.broadcast_mul(&g1)?)?;

        // Cross-attention on the affine norm3 output, no modulation: text + image attention.
        let ca = &self.cross_attn;
        let h = layer_norm(&x, &self.norm3_w, &self.norm3_b, eps)?;
        let q = split_heads_b(&rms(&ca.q.forward(&h)?, &ca.norm_q, eps)?, heads)?;
        let kt = split_heads_b(&rms(&ca.k.forward(s.ctx_text)?, &ca.norm_k, eps)?, heads)?;
        let vt = split_heads_b(&ca.v.forward(s.ctx_text)?, heads)?;
        // The image keys/values are the same for every branch: projected once, then repeated.
        let b = x.dim(0)?;
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
        let text = attend(&q, &kt, &vt, &ca.o)?;
        let img = attend(&q, &ki, &vi, &ca.o)?;
        let y = ca.o.forward(&merge_heads_b(&(text + img)?)?)?;
        let x = (x + y)?;

        // FFN on the modulated plain LayerNorm.
        let h = modulate(&layer_norm(&x, s.ones, s.zeros, eps)?, &sh2, &sc2)?;
        let y = self.ffn2.forward(&gelu_tanh(&self.ffn0.forward(&h)?)?)?;
        Ok((x + y.broadcast_mul(&g2)?)?)
    }
}

/// Attention in the matmul dtype of the layer that consumes it (the reference's flash attention
/// takes bf16 q/k/v under autocast); result back in f32.
fn attend(q: &Tensor, k: &Tensor, v: &Tensor, consumer: &Lin) -> Result<Tensor> {
    let dt = consumer.w.dtype();
    let out = attention::attention(&q.to_dtype(dt)?, &k.to_dtype(dt)?, &v.to_dtype(dt)?)?;
    Ok(out.to_dtype(DType::F32)?)
}

/// Tanh-approximation GELU (the FFN's and text embedding's). On the CPU in f32 it uses the
/// identity `0.5·x·(1 + tanh z) = x / (1 + e^(−2z))` with the vectorised exp, several times faster
/// than a per-element `tanh`; elsewhere candle's `gelu`.
fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    if !(x.device().is_cpu() && x.dtype() == DType::F32) {
        return Ok(x.gelu()?);
    }
    let mut v = x.flatten_all()?.to_vec1::<f32>()?;
    v.par_chunks_mut(1 << 14).for_each(gelu_tanh_slice);
    Ok(Tensor::from_vec(v, x.shape(), x.device())?)
}

fn gelu_tanh_slice(v: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { gelu_tanh_avx2(v) };
        }
    }
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

/// `[B, L, heads·head_dim]` → `[B, heads, L, head_dim]`.
fn split_heads_b(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, l, w) = x.dims3()?;
    Ok(x.reshape((b, l, heads, w / heads))?
        .transpose(1, 2)?
        .contiguous()?)
}

/// Inverse of [`split_heads_b`].
fn merge_heads_b(x: &Tensor) -> Result<Tensor> {
    let (b, h, l, d) = x.dims4()?;
    Ok(x.transpose(1, 2)?.contiguous()?.reshape((b, l, h * d))?)
}

/// `x * (1 + scale) + shift` with row-vector scale/shift, f32.
fn modulate(x: &Tensor, shift: &Tensor, scale: &Tensor) -> Result<Tensor> {
    Ok(x.broadcast_mul(&(scale + 1.0)?)?.broadcast_add(shift)?)
}

/// RMS norm over the full width (`WanRMSNorm`), f32.
fn rms(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    Ok(candle_nn::ops::rms_norm(&x.contiguous()?, w, eps as f32)?)
}

/// The inputs of one forward, exactly those `SCAIL2Model.forward` takes for one sample.
#[derive(Debug, Clone, Copy)]
pub struct DitInputs<'a> {
    /// Noisy latent `[C, T, h, w]`.
    pub x: &'a Tensor,
    /// Timestep (the pipeline passes the integer scheduler timestep).
    pub t: f64,
    /// Text features `[L ≤ text_len, text_dim]`; zero-padded to `text_len` inside.
    pub context: &'a Tensor,
    /// CLIP features `[1, N, 1280]` or `[N, 1280]`.
    pub clip_fea: &'a Tensor,
    /// Reference latent `[C, 1, h, w]`.
    pub ref_latents: &'a Tensor,
    /// Reference masks `[mask_dim, 1 + T, h, w]`.
    pub ref_masks: &'a Tensor,
    /// Pose latents `[C, T, h/2, w/2]`.
    pub pose_latents: &'a Tensor,
    /// Driving masks `[mask_dim, T, h/2, w/2]`.
    pub driving_masks: &'a Tensor,
    /// History mask `[4, T, h, w]` (see [`history_mask`]); `None` = zeros.
    pub history_mask: Option<&'a Tensor>,
    /// Additional references: latents `[C, n, h, w]` and masks `[mask_dim, n, h, w]`.
    pub additional_refs: Option<(&'a Tensor, &'a Tensor)>,
    /// Replacement mode (shifts the reference RoPE positions).
    pub replace: bool,
}

/// The history mask the pipeline builds: ones on the first `frames` latent frames of `[4, T, h, w]`.
pub fn history_mask(
    frames: usize,
    (t, h, w): (usize, usize, usize),
    device: &Device,
) -> Result<Tensor> {
    let frames = frames.min(t);
    let ones = Tensor::ones((EXTRA_CHANNELS, frames, h, w), DType::F32, device)?;
    let zeros = Tensor::zeros((EXTRA_CHANNELS, t - frames, h, w), DType::F32, device)?;
    Ok(Tensor::cat(&[ones, zeros], 1)?)
}

/// The SCAIL-2 DiT.
#[derive(Debug, Clone)]
pub struct Dit {
    cfg: DitConfig,
    device: Device,
    dtype: DType,
    patch_embedding: Lin,
    patch_embedding_pose: Lin,
    patch_embedding_mask: Lin,
    text0: Lin,
    text2: Lin,
    time0: Lin,
    time2: Lin,
    time_proj: Lin,
    blocks: Vec<Block>,
    head: Lin,
    head_modulation: Tensor, // [2, dim]
    img_ln0: (Tensor, Tensor),
    img1: Lin,
    img3: Lin,
    img_ln4: (Tensor, Tensor),
    ones: Tensor,
    zeros: Tensor,
}

impl Dit {
    /// Loads every weight by its official Wan-layout name. Matmul weights take `vb`'s dtype
    /// (f32, bf16 or f16); the f32 islands (modulation, norms, time embedding, head) are read as
    /// f32 from the same source.
    pub fn load(vb: VarBuilder, cfg: &DitConfig) -> Result<Self> {
        cfg.validate()?;
        let d = cfg.dim;
        let [pt, ph, pw] = cfg.patch_size;
        let kvol = pt * ph * pw;
        let dtype = vb.dtype();
        let device = vb.device().clone();
        let f32vb = vb.to_dtype(DType::F32);
        let patch = |name: &str, cin: usize| -> Result<Lin> {
            let w = vb
                .get((d, cin, pt, ph, pw), &format!("{name}.weight"))
                .map_err(DitError::Weights)?
                .reshape((d, cin * kvol))?;
            let b = vb
                .get(d, &format!("{name}.bias"))
                .map_err(DitError::Weights)?;
            Ok(Lin { w, b })
        };
        // Time embedding and projection run under f32 autocast in the reference, the head too.
        let lin32 = |n: &str, o, i| Lin::load(&f32vb, n, o, i);
        let lin = |n: &str, o, i| Lin::load(&vb, n, o, i);
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(&vb.pp(format!("blocks.{i}")), cfg))
            .collect::<Result<Vec<_>>>()?;
        let ln = |n: &str, w: usize| -> Result<(Tensor, Tensor)> {
            Ok((
                get_f32(&vb, &[w], &format!("{n}.weight"))?,
                get_f32(&vb, &[w], &format!("{n}.bias"))?,
            ))
        };
        Ok(Self {
            patch_embedding: patch("patch_embedding", cfg.in_dim)?,
            patch_embedding_pose: patch("patch_embedding_pose", cfg.in_dim)?,
            patch_embedding_mask: patch("patch_embedding_mask", cfg.mask_dim)?,
            text0: lin("text_embedding.0", d, cfg.text_dim)?,
            text2: lin("text_embedding.2", d, d)?,
            time0: lin32("time_embedding.0", d, cfg.freq_dim)?,
            time2: lin32("time_embedding.2", d, d)?,
            time_proj: lin32("time_projection.1", 6 * d, d)?,
            blocks,
            head: lin32("head.head", cfg.head_out(), d)?,
            head_modulation: get_f32(&vb, &[1, 2, d], "head.modulation")?.squeeze(0)?,
            img_ln0: ln("img_emb.proj.0", CLIP_DIM)?,
            img1: lin("img_emb.proj.1", CLIP_DIM, CLIP_DIM)?,
            img3: lin("img_emb.proj.3", d, CLIP_DIM)?,
            img_ln4: ln("img_emb.proj.4", d)?,
            ones: Tensor::ones(d, DType::F32, &device)?,
            zeros: Tensor::zeros(d, DType::F32, &device)?,
            cfg: cfg.clone(),
            device,
            dtype,
        })
    }

    /// Memory-maps safetensors files (no copy of the whole file in RAM) and loads the model with
    /// matmul weights in `dtype`.
    pub fn from_safetensors<P: AsRef<Path>>(
        paths: &[P],
        cfg: &DitConfig,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        // SAFETY: the files are mapped read-only; they must not be modified while mapped.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(paths, dtype, device) }
            .map_err(DitError::Weights)?;
        Self::load(vb, cfg)
    }

    pub fn config(&self) -> &DitConfig {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype the Linear layers compute in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Velocity `[out_dim, T, h, w]` for one sample.
    pub fn forward(&self, inp: &DitInputs) -> Result<Tensor> {
        self.forward_traced(inp, None)
    }

    /// [`Dit::forward`] that also records the reference's intermediates into `trace`.
    pub fn forward_traced(&self, inp: &DitInputs, trace: Option<&mut Trace>) -> Result<Tensor> {
        let mut out = self.forward_impl(inp, &[inp.context], trace)?;
        Ok(out.remove(0))
    }

    /// One pass over `contexts.len()` branches that share every input of `inp` except the text
    /// context (`inp.context` is ignored): e.g. `[context, context_null]` for classifier-free
    /// guidance. The branches run as one batch through the blocks, attention and head (the
    /// patch/time/image embeddings and image keys are computed once); returns one velocity
    /// `[out_dim, T, h, w]` per context, in order, each equal to [`Dit::forward`] with that context.
    pub fn forward_batch(&self, inp: &DitInputs, contexts: &[&Tensor]) -> Result<Vec<Tensor>> {
        if contexts.is_empty() {
            return Err(DitError::Input {
                name: "contexts",
                expected: "at least one text context".into(),
                got: vec![0],
            });
        }
        self.forward_impl(inp, contexts, None)
    }

    /// Tokens of one branch of `inp` (reference, video and pose streams plus additional refs).
    pub fn seq_len(&self, inp: &DitInputs) -> Result<usize> {
        let [pt, ph, pw] = self.cfg.patch_size;
        let (_, t, h, w) = inp.x.dims4()?;
        let n_add = inp.additional_refs.map_or(Ok(0), |(l, _)| l.dim(1))? / pt;
        let per = (h / ph) * (w / pw);
        Ok((1 + n_add + t / pt) * per + (t / pt) * (h / 2 / ph) * (w / 2 / pw))
    }

    /// Estimated peak activation memory in bytes of a forward of `batch` branches of `inp`
    /// (f32 block intermediates: residual, norms, q/k/v and their head copies, attention output,
    /// the FFN hidden layer and its activation), excluding weights. Used to decide whether the
    /// guidance branches fit in one batch.
    pub fn activation_bytes(&self, inp: &DitInputs, batch: usize) -> Result<u64> {
        let l = self.seq_len(inp)? as u64;
        let (d, f) = (self.cfg.dim as u64, self.cfg.ffn_dim as u64);
        let ctx = (self.cfg.text_len as u64) * (self.cfg.text_dim as u64 + 4 * d);
        Ok(batch as u64 * 4 * (l * (10 * d + 2 * f) + ctx))
    }

    fn forward_impl(
        &self,
        inp: &DitInputs,
        contexts: &[&Tensor],
        mut trace: Option<&mut Trace>,
    ) -> Result<Vec<Tensor>> {
        let cfg = &self.cfg;
        let dev = &self.device;
        let f32_in = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.to_device(dev)?) };
        let c = cfg.latent_channels();
        let [pt, ph, pw] = cfg.patch_size;

        let x = f32_in(inp.x)?;
        let (xc, t_lat, h_lat, w_lat) = x.dims4()?;
        expect("x", &x, &[c, t_lat, h_lat, w_lat], xc == c)?;
        let ok_grid = t_lat.is_multiple_of(pt)
            && h_lat.is_multiple_of(2 * ph)
            && w_lat.is_multiple_of(2 * pw);
        expect("x", &x, &[c, t_lat, h_lat, w_lat], ok_grid)?;
        let (gt, gh, gw) = (t_lat / pt, h_lat / ph, w_lat / pw);

        // Video stream: latent + history mask (or zeros); reference and pose: + ones.
        let hist = match inp.history_mask {
            Some(m) => {
                let m = f32_in(m)?;
                expect(
                    "history_mask",
                    &m,
                    &[EXTRA_CHANNELS, t_lat, h_lat, w_lat],
                    true,
                )?;
                m
            }
            None => Tensor::zeros((EXTRA_CHANNELS, t_lat, h_lat, w_lat), DType::F32, dev)?,
        };
        let x = Tensor::cat(&[x, hist], 0)?;
        let r = f32_in(inp.ref_latents)?;
        expect("ref_latents", &r, &[c, 1, h_lat, w_lat], true)?;
        let r = with_ones(&r)?;
        let pose = f32_in(inp.pose_latents)?;
        expect(
            "pose_latents",
            &pose,
            &[c, t_lat, h_lat / 2, w_lat / 2],
            true,
        )?;
        let pose = with_ones(&pose)?;
        let ref_masks = f32_in(inp.ref_masks)?;
        expect(
            "ref_masks",
            &ref_masks,
            &[cfg.mask_dim, 1 + t_lat, h_lat, w_lat],
            true,
        )?;
        let drv = f32_in(inp.driving_masks)?;
        expect(
            "driving_masks",
            &drv,
            &[cfg.mask_dim, t_lat, h_lat / 2, w_lat / 2],
            true,
        )?;

        let main = self
            .patch_embedding
            .forward(&patchify(&Tensor::cat(&[r, x], 1)?, cfg.patch_size)?)?;
        let main = (main
            + self
                .patch_embedding_mask
                .forward(&patchify(&ref_masks, cfg.patch_size)?)?)?;
        let pz = self
            .patch_embedding_pose
            .forward(&patchify(&pose, cfg.patch_size)?)?;
        let pz = (pz
            + self
                .patch_embedding_mask
                .forward(&patchify(&drv, cfg.patch_size)?)?)?;
        let mut segs = Vec::new();
        let mut n_add = 0;
        if let Some((al, am)) = inp.additional_refs {
            let al = f32_in(al)?;
            let n = al.dim(1)?;
            expect(
                "additional_ref_latents",
                &al,
                &[c, n, h_lat, w_lat],
                n.is_multiple_of(pt),
            )?;
            let am = f32_in(am)?;
            expect(
                "additional_ref_masks",
                &am,
                &[cfg.mask_dim, n, h_lat, w_lat],
                true,
            )?;
            n_add = n / pt;
            let e = self
                .patch_embedding
                .forward(&patchify(&with_ones(&al)?, cfg.patch_size)?)?;
            segs.push(
                (e + self
                    .patch_embedding_mask
                    .forward(&patchify(&am, cfg.patch_size)?)?)?,
            );
        }
        segs.push(main);
        segs.push(pz);
        let tokens = Tensor::cat(&segs, 0)?.unsqueeze(0)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("tokens_embedded".into(), tokens.clone());
        }
        // The branches start from the same tokens: embedded once, repeated along the batch.
        let batch = contexts.len();
        let (seq, dim) = (tokens.dim(1)?, tokens.dim(2)?);
        let mut tokens = if batch == 1 {
            tokens
        } else {
            tokens.broadcast_as((batch, seq, dim))?.contiguous()?
        };

        // Time embedding (f64 sinusoid, then f32) and the six-way projection.
        let e = self.time_embedding(inp.t)?;
        let e0 = self.time_proj.forward(&e.silu()?)?.reshape((6, cfg.dim))?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("time_embedding_e".into(), e.clone());
            t.insert("time_projection_e0".into(), e0.unsqueeze(0)?);
        }

        // Context: text zero-padded to text_len before the projection; CLIP through img_emb.
        let padded = contexts
            .iter()
            .map(|c| {
                let ctx = f32_in(c)?;
                let (lt, td) = ctx.dims2()?;
                expect("context", &ctx, &[lt, cfg.text_dim], td == cfg.text_dim)?;
                if lt > cfg.text_len {
                    return Err(DitError::TextTooLong {
                        got: lt,
                        text_len: cfg.text_len,
                    });
                }
                if lt < cfg.text_len {
                    let pad = Tensor::zeros((cfg.text_len - lt, td), DType::F32, dev)?;
                    Ok(Tensor::cat(&[ctx, pad], 0)?)
                } else {
                    Ok(ctx)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = Tensor::stack(&padded, 0)?; // [B, text_len, text_dim]
        let ctx_text = self
            .text2
            .forward(&gelu_tanh(&self.text0.forward(&ctx)?)?)?;
        let clip = f32_in(inp.clip_fea)?;
        let clip = if clip.rank() == 3 {
            clip.squeeze(0)?
        } else {
            clip
        };
        let (nclip, cd) = clip.dims2()?;
        expect("clip_fea", &clip, &[nclip, CLIP_DIM], cd == CLIP_DIM)?;
        let ctx_img = self.img_emb(&clip)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("context_text_embedded".into(), ctx_text.clone());
            t.insert("context_clip_embedded".into(), ctx_img.unsqueeze(0)?);
        }

        let rope = ScailRope {
            head_dim: cfg.head_dim(),
            grid: (gt, gh, gw),
            n_additional_refs: n_add,
            replace: inp.replace,
        };
        debug_assert_eq!(rope.seq_len(), seq);
        let (cos, sin) = rope.tables(DType::F32, dev)?;
        let shared = Shared {
            e0: &e0,
            ctx_text: &ctx_text,
            ctx_img: &ctx_img,
            cos: &cos,
            sin: &sin,
            ones: &self.ones,
            zeros: &self.zeros,
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let tr = if i == 0 { trace.as_deref_mut() } else { None };
            tokens = b.forward(&tokens, &shared, cfg, tr)?;
            if let Some(t) = trace.as_deref_mut() {
                t.insert(format!("block{i}_out"), tokens.clone());
            }
        }

        // Head: un-projected e plus the head's own (shift, scale), in f32.
        let m = self.head_modulation.broadcast_add(&e)?;
        let h = modulate(
            &layer_norm(&tokens, &self.ones, &self.zeros, cfg.eps)?,
            &m.i(0..1)?,
            &m.i(1..2)?,
        )?;
        let out = self.head.forward(&h)?;
        if let Some(t) = trace {
            t.insert("head_out".into(), out.clone());
        }
        let offset = (n_add + 1) * gh * gw;
        (0..batch)
            .map(|b| {
                let video = out.i(b)?.narrow(0, offset, gt * gh * gw)?;
                unpatchify(&video, (gt, gh, gw), cfg)
            })
            .collect()
    }

    /// `time_embedding(sinusoid(t))` → `[1, dim]`, f32.
    fn time_embedding(&self, t: f64) -> Result<Tensor> {
        let half = self.cfg.freq_dim / 2;
        let mut v = vec![0f32; 2 * half];
        for k in 0..half {
            let arg = t * 10000f64.powf(-(k as f64) / half as f64);
            v[k] = arg.cos() as f32;
            v[half + k] = arg.sin() as f32;
        }
        let s = Tensor::from_vec(v, (1, 2 * half), &self.device)?;
        self.time2.forward(&self.time0.forward(&s)?.silu()?)
    }

    fn img_emb(&self, clip: &Tensor) -> Result<Tensor> {
        let h = layer_norm(clip, &self.img_ln0.0, &self.img_ln0.1, IMG_EMB_EPS)?;
        let h = self.img1.forward(&h)?.gelu_erf()?;
        let h = self.img3.forward(&h)?;
        layer_norm(&h, &self.img_ln4.0, &self.img_ln4.1, IMG_EMB_EPS)
    }
}

fn expect(name: &'static str, t: &Tensor, shape: &[usize], extra_ok: bool) -> Result<()> {
    if extra_ok && t.dims() == shape {
        Ok(())
    } else {
        Err(DitError::Input {
            name,
            expected: format!("{shape:?}"),
            got: t.dims().to_vec(),
        })
    }
}

fn with_ones(x: &Tensor) -> Result<Tensor> {
    let (_, t, h, w) = x.dims4()?;
    let ones = Tensor::ones((EXTRA_CHANNELS, t, h, w), DType::F32, x.device())?;
    Ok(Tensor::cat(&[x, &ones], 0)?)
}

/// `[C, T, H, W]` → `[(T/pt)(H/ph)(W/pw), C·pt·ph·pw]`, tokens row-major over the patch grid and
/// features in the Conv3d weight order (c, kt, kh, kw): a stride-equals-kernel Conv3d is this
/// followed by a Linear.
pub fn patchify(x: &Tensor, [pt, ph, pw]: [usize; 3]) -> Result<Tensor> {
    let (c, t, h, w) = x.dims4()?;
    let (gt, gh, gw) = (t / pt, h / ph, w / pw);
    let x = x.reshape(vec![c, gt, pt, gh, ph, gw, pw])?;
    let x = x.permute(vec![1, 3, 5, 0, 2, 4, 6])?;
    Ok(x.contiguous()?.reshape((gt * gh * gw, c * pt * ph * pw))?)
}

/// Head output of the video tokens `[gt·gh·gw, pt·ph·pw·out]` (ordered (pt, ph, pw, c)) →
/// `[out, T, H, W]`.
fn unpatchify(x: &Tensor, (gt, gh, gw): (usize, usize, usize), cfg: &DitConfig) -> Result<Tensor> {
    let [pt, ph, pw] = cfg.patch_size;
    let c = cfg.out_dim;
    let x = x.reshape(vec![gt, gh, gw, pt, ph, pw, c])?;
    // fhwpqrc -> cfphqwr
    let x = x.permute(vec![6, 0, 3, 1, 4, 2, 5])?;
    Ok(x.contiguous()?.reshape((c, gt * pt, gh * ph, gw * pw))?)
}

/// Latent grid `(T, h, w)` of a clip of `frames` frames at `height × width` pixels (VAE stride
/// 4×8×8), the units [`bench_forward`] takes.
pub fn latent_size(frames: usize, height: usize, width: usize) -> (usize, usize, usize) {
    (frames.saturating_sub(1) / 4 + 1, height / 8, width / 8)
}

/// Output of [`bench_forward`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct BenchReport {
    pub tokens: usize,
    /// Mean over the timed forwards.
    pub seconds_per_forward: f64,
    /// Fastest timed forward (robust to other load on a shared machine).
    pub best_seconds_per_forward: f64,
    pub tokens_per_second: f64,
    /// Peak resident memory of the process (VmHWM) in bytes, when the OS reports it.
    pub peak_memory_bytes: Option<u64>,
    pub forwards: usize,
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Random weights for `cfg` (normal, std 1/√fan_in; norms and modulation around their natural
/// values) in `dtype`, for benchmarks and real-size tests. Not seeded (candle's CPU RNG cannot
/// be): convert one draw to compare dtypes.
pub fn random_weights(
    cfg: &DitConfig,
    dtype: DType,
    device: &Device,
) -> Result<HashMap<String, Tensor>> {
    let mut m = HashMap::new();
    for (name, shape) in cfg.weight_shapes() {
        let fan_in: usize = if shape.len() >= 2 {
            shape[1..].iter().product()
        } else {
            1
        };
        let t = if name.ends_with("modulation") {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? / (cfg.dim as f64).sqrt())?
        } else if shape.len() == 1
            && (name.contains("norm")
                || name.starts_with("img_emb.proj.0")
                || name.starts_with("img_emb.proj.4"))
            && name.ends_with("weight")
        {
            Tensor::ones(shape.as_slice(), DType::F32, device)?
        } else if shape.len() == 1 {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? * 0.02)?
        } else {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), device)? / (fan_in as f64).sqrt())?
        };
        m.insert(name, t.to_dtype(dtype)?);
    }
    Ok(m)
}

/// Random inputs for a forward at latent size `frames × height × width` (latent units).
pub struct RandomInputs {
    pub x: Tensor,
    pub context: Tensor,
    pub clip_fea: Tensor,
    pub ref_latents: Tensor,
    pub ref_masks: Tensor,
    pub pose_latents: Tensor,
    pub driving_masks: Tensor,
}

impl RandomInputs {
    pub fn new(cfg: &DitConfig, (t, h, w): (usize, usize, usize), device: &Device) -> Result<Self> {
        let c = cfg.latent_channels();
        let r = |s: &[usize]| Tensor::randn(0f32, 1.0, s, device);
        let u = |s: &[usize]| Tensor::rand(0f32, 1.0, s, device);
        Ok(Self {
            x: r(&[c, t, h, w])?,
            context: r(&[cfg.text_len.min(64), cfg.text_dim])?,
            clip_fea: r(&[1, 257, CLIP_DIM])?,
            ref_latents: r(&[c, 1, h, w])?,
            ref_masks: u(&[cfg.mask_dim, 1 + t, h, w])?,
            pose_latents: r(&[c, t, h / 2, w / 2])?,
            driving_masks: u(&[cfg.mask_dim, t, h / 2, w / 2])?,
        })
    }

    pub fn inputs(&self, t: f64) -> DitInputs<'_> {
        DitInputs {
            x: &self.x,
            t,
            context: &self.context,
            clip_fea: &self.clip_fea,
            ref_latents: &self.ref_latents,
            ref_masks: &self.ref_masks,
            pose_latents: &self.pose_latents,
            driving_masks: &self.driving_masks,
            history_mask: None,
            additional_refs: None,
            replace: false,
        }
    }
}

/// `scail bench dit`: the forward of `cfg` with random weights at a latent size of
/// `frames × height × width` (latent units: pixels / 8, frames (n−1)/4+1), `dtype` weights.
/// One warm-up forward, then `forwards` timed ones.
pub fn bench_forward(
    cfg: &DitConfig,
    (frames, height, width): (usize, usize, usize),
    dtype: DType,
    device: &Device,
    forwards: usize,
) -> Result<BenchReport> {
    let weights = random_weights(cfg, dtype, device)?;
    let vb = VarBuilder::from_tensors(weights, dtype, device);
    let model = Dit::load(vb, cfg)?;
    let inputs = RandomInputs::new(cfg, (frames, height, width), device)?;
    let tokens = ScailRope {
        head_dim: cfg.head_dim(),
        grid: (
            frames / cfg.patch_size[0],
            height / cfg.patch_size[1],
            width / cfg.patch_size[2],
        ),
        n_additional_refs: 0,
        replace: false,
    }
    .seq_len();
    let out = model.forward(&inputs.inputs(500.0))?;
    out.device().synchronize()?;
    let forwards = forwards.max(1);
    let mut times = Vec::with_capacity(forwards);
    for _ in 0..forwards {
        let start = std::time::Instant::now();
        let out = model.forward(&inputs.inputs(500.0))?;
        out.device().synchronize()?;
        times.push(start.elapsed().as_secs_f64());
    }
    let secs = times.iter().sum::<f64>() / forwards as f64;
    Ok(BenchReport {
        tokens,
        seconds_per_forward: secs,
        best_seconds_per_forward: times.iter().copied().fold(f64::INFINITY, f64::min),
        tokens_per_second: tokens as f64 / secs,
        peak_memory_bytes: peak_rss_bytes(),
        forwards,
    })
}
