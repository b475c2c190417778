//! The whole network: loading by the official key names, the public forwards, and the forward
//! cut at its stages (stream embedding, time and context embedding, blocks, head).

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;

use super::blocks::{Block, Shared, Trace};
use super::gelu::gelu_tanh;
use super::inputs::{expect, patchify, unpatchify, with_ones, DitInputs};
use super::layers::{get_f32, layer_norm, Lin};
use super::ops::Ops;
use super::{DitConfig, DitError, Result, CLIP_DIM, EXTRA_CHANNELS};
use crate::offload::{BlockLoader, Layers, Offload};
use crate::rope::ScailRope;

/// `img_emb`'s LayerNorms use PyTorch's default eps, unlike the blocks' 1e-6.
const IMG_EMB_EPS: f64 = 1e-5;

/// The patch-embedded token sequence of one branch and where its parts sit.
struct Streams {
    /// `[L, dim]`: additional references, reference, video, pose.
    tokens: Tensor,
    /// Video patch grid `(T, h, w)`.
    grid: (usize, usize, usize),
    /// Additional reference frames (in patch units).
    n_add: usize,
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
    blocks: Layers<Block, DitError>,
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
        let blocks = Self::load_blocks(&vb, cfg)?;
        let blocks = Layers::resident(Offload::None, blocks, vb.device(), Block::to_device);
        Self::load_rest(vb, cfg, blocks)
    }

    /// [`Dit::load`] with the blocks placed by `offload`: resident (`none`), resident in host
    /// memory and copied to the device at use (`blocks`), or read from `vb` at use (`stream`;
    /// host memory then holds one block at a time).
    pub fn load_offloaded(
        vb: VarBuilder<'static>,
        cfg: &DitConfig,
        offload: Offload,
    ) -> Result<Self> {
        cfg.validate()?;
        let device = vb.device().clone();
        let blocks = match offload {
            Offload::None => return Self::load(vb, cfg),
            Offload::Blocks => {
                let host = Self::load_blocks(&vb.clone().set_device(Device::Cpu), cfg)?;
                Layers::resident(Offload::Blocks, host, &device, Block::to_device)
            }
            Offload::Stream => {
                let (bvb, bcfg) = (vb.clone(), cfg.clone());
                let load: BlockLoader<Block, DitError> =
                    Arc::new(move |i| Block::load(&bvb.pp(format!("blocks.{i}")), &bcfg));
                Layers::streamed(cfg.num_layers, &device, load, Block::to_device)
            }
        };
        Self::load_rest(vb, cfg, blocks)
    }

    fn load_blocks(vb: &VarBuilder, cfg: &DitConfig) -> Result<Vec<Block>> {
        (0..cfg.num_layers)
            .map(|i| Block::load(&vb.pp(format!("blocks.{i}")), cfg))
            .collect()
    }

    /// Everything but the blocks (about 1% of the weights), resident.
    fn load_rest(vb: VarBuilder, cfg: &DitConfig, blocks: Layers<Block, DitError>) -> Result<Self> {
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
            Ok(Lin::dense(w, b))
        };
        // Time embedding and projection run under f32 autocast in the reference, the head too.
        let lin32 = |n: &str, o, i| Lin::load(&f32vb, n, o, i);
        let lin = |n: &str, o, i| Lin::load(&vb, n, o, i);
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

    /// Where the blocks live between uses.
    pub fn offload(&self) -> Offload {
        self.blocks.mode()
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
        let (_, t, h, w) = inp.x.dims4()?;
        let n_add = inp.additional_refs.map_or(Ok(0), |(l, _)| l.dim(1))?;
        Ok(self.cfg.seq_len((t, h, w), n_add))
    }

    /// Estimated peak activation memory in bytes of a forward of `batch` branches of `inp`
    /// (f32 block intermediates: residual, norms, q/k/v and their head copies, attention output,
    /// the FFN hidden layer and its activation), excluding weights. Used to decide whether the
    /// guidance branches fit in one batch.
    pub fn activation_bytes(&self, inp: &DitInputs, batch: usize) -> Result<u64> {
        Ok(self.cfg.activation_bytes(self.seq_len(inp)?, batch))
    }

    fn forward_impl(
        &self,
        inp: &DitInputs,
        contexts: &[&Tensor],
        mut trace: Option<&mut Trace>,
    ) -> Result<Vec<Tensor>> {
        let cfg = &self.cfg;
        let streams = self.embed_streams(inp)?;
        let tokens = streams.tokens.unsqueeze(0)?;
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

        let ctx_text = self.text_embedding(contexts)?;
        let ctx_img = self.img_emb(inp.clip_fea)?;
        if let Some(t) = trace.as_deref_mut() {
            t.insert("context_text_embedded".into(), ctx_text.clone());
            t.insert("context_clip_embedded".into(), ctx_img.unsqueeze(0)?);
        }

        let rope = ScailRope {
            head_dim: cfg.head_dim(),
            grid: streams.grid,
            n_additional_refs: streams.n_add,
            replace: inp.replace,
        };
        debug_assert_eq!(rope.seq_len(), seq);
        let (cos, sin) = rope.tables(DType::F32, &self.device)?;
        let shared = Shared {
            e0: &e0,
            ctx_text: &ctx_text,
            ctx_img: &ctx_img,
            cos: &cos,
            sin: &sin,
            ones: &self.ones,
            zeros: &self.zeros,
        };
        self.blocks.each(|i, b| {
            let tr = if i == 0 { trace.as_deref_mut() } else { None };
            tokens = b.forward(&tokens, &shared, cfg, tr)?;
            if let Some(t) = trace.as_deref_mut() {
                t.insert(format!("block{i}_out"), tokens.clone());
            }
            Ok(())
        })?;
        self.head(&tokens, &e, &streams, trace)
    }

    /// An input in f32 on the model's device.
    fn f32_in(&self, t: &Tensor) -> Result<Tensor> {
        Ok(t.to_dtype(DType::F32)?.to_device(&self.device)?)
    }

    /// [`Self::f32_in`] of an input that must have exactly `shape`.
    fn f32_shaped(&self, name: &'static str, t: &Tensor, shape: &[usize]) -> Result<Tensor> {
        let t = self.f32_in(t)?;
        expect(name, &t, shape, true)?;
        Ok(t)
    }

    /// Checks every latent stream against `x`'s grid and patch-embeds them: the video gets the
    /// history mask (or zeros) as extra channels, the reference and pose streams ones.
    fn embed_streams(&self, inp: &DitInputs) -> Result<Streams> {
        let cfg = &self.cfg;
        let c = cfg.latent_channels();
        let [pt, ph, pw] = cfg.patch_size;
        let x = self.f32_in(inp.x)?;
        let (xc, t, h, w) = x.dims4()?;
        expect("x", &x, &[c, t, h, w], xc == c)?;
        let ok_grid = t.is_multiple_of(pt) && h.is_multiple_of(2 * ph) && w.is_multiple_of(2 * pw);
        expect("x", &x, &[c, t, h, w], ok_grid)?;

        let hist = match inp.history_mask {
            Some(m) => self.f32_shaped("history_mask", m, &[EXTRA_CHANNELS, t, h, w])?,
            None => Tensor::zeros((EXTRA_CHANNELS, t, h, w), DType::F32, &self.device)?,
        };
        let x = Tensor::cat(&[x, hist], 0)?;
        let r = with_ones(&self.f32_shaped("ref_latents", inp.ref_latents, &[c, 1, h, w])?)?;
        let pose = self.f32_shaped("pose_latents", inp.pose_latents, &[c, t, h / 2, w / 2])?;
        let ref_masks =
            self.f32_shaped("ref_masks", inp.ref_masks, &[cfg.mask_dim, 1 + t, h, w])?;
        let drv = self.f32_shaped(
            "driving_masks",
            inp.driving_masks,
            &[cfg.mask_dim, t, h / 2, w / 2],
        )?;
        let main = self.embed(&self.patch_embedding, &Tensor::cat(&[r, x], 1)?, &ref_masks)?;
        let pz = self.embed(&self.patch_embedding_pose, &with_ones(&pose)?, &drv)?;

        let mut segs = Vec::new();
        let mut n_add = 0;
        if let Some((al, am)) = inp.additional_refs {
            let al = self.f32_in(al)?;
            let n = al.dim(1)?;
            expect(
                "additional_ref_latents",
                &al,
                &[c, n, h, w],
                n.is_multiple_of(pt),
            )?;
            let am = self.f32_shaped("additional_ref_masks", am, &[cfg.mask_dim, n, h, w])?;
            n_add = n / pt;
            segs.push(self.embed(&self.patch_embedding, &with_ones(&al)?, &am)?);
        }
        segs.push(main);
        segs.push(pz);
        Ok(Streams {
            tokens: Tensor::cat(&segs, 0)?,
            grid: (t / pt, h / ph, w / pw),
            n_add,
        })
    }

    /// A latent stream through its patch embedding plus its masks through the mask embedding.
    fn embed(&self, patch: &Lin, latent: &Tensor, masks: &Tensor) -> Result<Tensor> {
        let p = self.cfg.patch_size;
        let tokens = patch.forward(&patchify(latent, p)?)?;
        Ok((tokens + self.patch_embedding_mask.forward(&patchify(masks, p)?)?)?)
    }

    /// Text contexts zero-padded to `text_len` before the projection: `[B, text_len, dim]`.
    fn text_embedding(&self, contexts: &[&Tensor]) -> Result<Tensor> {
        let cfg = &self.cfg;
        let padded = contexts
            .iter()
            .map(|c| {
                let ctx = self.f32_in(c)?;
                let (lt, td) = ctx.dims2()?;
                expect("context", &ctx, &[lt, cfg.text_dim], td == cfg.text_dim)?;
                if lt > cfg.text_len {
                    return Err(DitError::TextTooLong {
                        got: lt,
                        text_len: cfg.text_len,
                    });
                }
                if lt < cfg.text_len {
                    let pad = Tensor::zeros((cfg.text_len - lt, td), DType::F32, &self.device)?;
                    Ok(Tensor::cat(&[ctx, pad], 0)?)
                } else {
                    Ok(ctx)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let ctx = Tensor::stack(&padded, 0)?; // [B, text_len, text_dim]
        self.text2.forward(&gelu_tanh(&self.text0.forward(&ctx)?)?)
    }

    /// Head: un-projected `e` plus the head's own (shift, scale), in f32; then the video tokens
    /// of every branch back to `[out_dim, T, h, w]`.
    fn head(
        &self,
        tokens: &Tensor,
        e: &Tensor,
        streams: &Streams,
        trace: Option<&mut Trace>,
    ) -> Result<Vec<Tensor>> {
        let m = self.head_modulation.broadcast_add(e)?;
        let h = Ops::for_tokens(tokens).ln_modulate(
            tokens,
            (&m.i(0..1)?, &m.i(1..2)?),
            (&self.ones, &self.zeros),
            self.cfg.eps,
        )?;
        let out = self.head.forward(&h)?;
        if let Some(t) = trace {
            t.insert("head_out".into(), out.clone());
        }
        let (gt, gh, gw) = streams.grid;
        let offset = (streams.n_add + 1) * gh * gw;
        (0..tokens.dim(0)?)
            .map(|b| {
                let video = out.i(b)?.narrow(0, offset, gt * gh * gw)?;
                unpatchify(&video, (gt, gh, gw), &self.cfg)
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

    /// CLIP features `[1, N, 1280]` or `[N, 1280]` through `img_emb`: `[N, dim]`.
    fn img_emb(&self, clip_fea: &Tensor) -> Result<Tensor> {
        let clip = self.f32_in(clip_fea)?;
        let clip = if clip.rank() == 3 {
            clip.squeeze(0)?
        } else {
            clip
        };
        let (nclip, cd) = clip.dims2()?;
        expect("clip_fea", &clip, &[nclip, CLIP_DIM], cd == CLIP_DIM)?;
        let h = layer_norm(&clip, &self.img_ln0.0, &self.img_ln0.1, IMG_EMB_EPS)?;
        let h = self.img1.forward(&h)?.gelu_erf()?;
        let h = self.img3.forward(&h)?;
        layer_norm(&h, &self.img_ln4.0, &self.img_ln4.1, IMG_EMB_EPS)
    }
}
