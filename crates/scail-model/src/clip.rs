//! The visual tower of open-clip XLM-R ViT-H/14 as SCAIL uses it: patch embedding (no bias),
//! class token, position embedding, pre-norm, every transformer block but the last, no
//! post-norm. Output `[B, 1+patches, width]` (`[1, 257, 1280]` for the published model).

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use crate::offload::{BlockLoader, Layers, Offload};

/// CLIP normalisation applied after mapping [-1, 1] pixels to [0, 1].
// The reference's literal values, kept verbatim.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
/// See [`CLIP_MEAN`].
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];

#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    pub image_size: usize,
    pub patch_size: usize,
    pub width: usize,
    pub heads: usize,
    pub layers: usize,
    pub mlp_ratio: usize,
    /// Width of the (unused) projection `visual.head`, part of the checkpoint contract.
    pub embed_dim: usize,
    pub eps: f64,
}

impl ClipVisionConfig {
    /// `models_clip_open-clip-xlm-roberta-large-vit-huge-14-onlyvisual.pth`.
    pub fn vit_h_14() -> Self {
        Self {
            image_size: 224,
            patch_size: 14,
            width: 1280,
            heads: 16,
            layers: 32,
            mlp_ratio: 4,
            embed_dim: 1024,
            eps: 1e-5,
        }
    }

    pub fn num_patches(&self) -> usize {
        (self.image_size / self.patch_size).pow(2)
    }

    /// Every tensor of the official visual-only checkpoint with its shape.
    pub fn expected_keys(&self) -> Vec<(String, Vec<usize>)> {
        let (w, p) = (self.width, self.patch_size);
        let m = w * self.mlp_ratio;
        let mut out = vec![
            ("log_scale".to_string(), vec![]),
            ("visual.cls_embedding".to_string(), vec![1, 1, w]),
            ("visual.head".to_string(), vec![w, self.embed_dim]),
            (
                "visual.patch_embedding.weight".to_string(),
                vec![w, 3, p, p],
            ),
            (
                "visual.pos_embedding".to_string(),
                vec![1, self.num_patches() + 1, w],
            ),
            ("visual.post_norm.bias".to_string(), vec![w]),
            ("visual.post_norm.weight".to_string(), vec![w]),
            ("visual.pre_norm.bias".to_string(), vec![w]),
            ("visual.pre_norm.weight".to_string(), vec![w]),
        ];
        for i in 0..self.layers {
            let b = format!("visual.transformer.{i}");
            out.push((format!("{b}.attn.proj.bias"), vec![w]));
            out.push((format!("{b}.attn.proj.weight"), vec![w, w]));
            out.push((format!("{b}.attn.to_qkv.bias"), vec![3 * w]));
            out.push((format!("{b}.attn.to_qkv.weight"), vec![3 * w, w]));
            out.push((format!("{b}.mlp.0.bias"), vec![m]));
            out.push((format!("{b}.mlp.0.weight"), vec![m, w]));
            out.push((format!("{b}.mlp.2.bias"), vec![w]));
            out.push((format!("{b}.mlp.2.weight"), vec![w, m]));
            for n in ["norm1", "norm2"] {
                out.push((format!("{b}.{n}.bias"), vec![w]));
                out.push((format!("{b}.{n}.weight"), vec![w]));
            }
        }
        out
    }
}

#[derive(Clone)]
struct Linear {
    w: Tensor,
    b: Tensor,
}

impl Linear {
    fn new(vb: VarBuilder, i: usize, o: usize) -> Result<Self> {
        Ok(Self {
            w: vb.get((o, i), "weight")?,
            b: vb.get(o, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.broadcast_matmul(&self.w.t()?)?.broadcast_add(&self.b)
    }

    fn to_device(&self, dev: &Device) -> Result<Self> {
        Ok(Self {
            w: crate::offload::to_device(&self.w, dev)?,
            b: self.b.to_device(dev)?,
        })
    }
}

#[derive(Clone)]
struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f64,
}

impl LayerNorm {
    fn new(vb: VarBuilder, d: usize, eps: f64) -> Result<Self> {
        Ok(Self {
            w: vb.get(d, "weight")?,
            b: vb.get(d, "bias")?,
            eps,
        })
    }

    fn to_device(&self, dev: &Device) -> Result<Self> {
        Ok(Self {
            w: crate::offload::to_device(&self.w, dev)?,
            b: self.b.to_device(dev)?,
            eps: self.eps,
        })
    }

    /// Computed in f32 whatever the activation dtype, like the reference's LayerNorm.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let xf = x.to_dtype(DType::F32)?;
        let y = candle_nn::ops::layer_norm(
            &xf,
            &self.w.to_dtype(DType::F32)?,
            &self.b.to_dtype(DType::F32)?,
            self.eps as f32,
        )?;
        y.to_dtype(dt)
    }
}

#[derive(Clone)]
struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Block {
    fn load(v: &VarBuilder, cfg: &ClipVisionConfig, i: usize) -> Result<Self> {
        let w = cfg.width;
        let m = w * cfg.mlp_ratio;
        let b = v.pp("transformer").pp(i);
        Ok(Block {
            norm1: LayerNorm::new(b.pp("norm1"), w, cfg.eps)?,
            qkv: Linear::new(b.pp("attn.to_qkv"), w, 3 * w)?,
            proj: Linear::new(b.pp("attn.proj"), w, w)?,
            norm2: LayerNorm::new(b.pp("norm2"), w, cfg.eps)?,
            fc1: Linear::new(b.pp("mlp.0"), w, m)?,
            fc2: Linear::new(b.pp("mlp.2"), m, w)?,
        })
    }

    fn to_device(&self, dev: &Device) -> Result<Self> {
        Ok(Block {
            norm1: self.norm1.to_device(dev)?,
            qkv: self.qkv.to_device(dev)?,
            proj: self.proj.to_device(dev)?,
            norm2: self.norm2.to_device(dev)?,
            fc1: self.fc1.to_device(dev)?,
            fc2: self.fc2.to_device(dev)?,
        })
    }
}

/// The visual tower; only the blocks that run are loaded (the last one is skipped).
pub struct ClipVision {
    cfg: ClipVisionConfig,
    patch_w: Tensor,
    cls: Tensor,
    pos: Tensor,
    pre_norm: LayerNorm,
    blocks: Layers<Block, candle_core::Error>,
}

impl ClipVision {
    /// Weights in the official layout (`visual.*` prefix included in the names).
    pub fn new(cfg: &ClipVisionConfig, vb: VarBuilder) -> Result<Self> {
        let v = vb.pp("visual");
        // SCAIL uses the output of block layers-2 (`transformer[:-1]`).
        let blocks = (0..Self::used_blocks(cfg))
            .map(|i| Block::load(&v, cfg, i))
            .collect::<Result<Vec<_>>>()?;
        let blocks = Layers::resident(Offload::None, blocks, vb.device(), Block::to_device);
        Self::with_blocks(cfg, &v, blocks)
    }

    /// [`ClipVision::new`] with the blocks placed by `offload`.
    pub fn new_offloaded(
        cfg: &ClipVisionConfig,
        vb: VarBuilder<'static>,
        offload: Offload,
    ) -> Result<Self> {
        let v = vb.pp("visual");
        let n = Self::used_blocks(cfg);
        let blocks = match offload {
            Offload::None => return Self::new(cfg, vb),
            Offload::Blocks => {
                let host = v.clone().set_device(Device::Cpu);
                let blocks = (0..n)
                    .map(|i| Block::load(&host, cfg, i))
                    .collect::<Result<Vec<_>>>()?;
                Layers::resident(Offload::Blocks, blocks, vb.device(), Block::to_device)
            }
            Offload::Stream => {
                let (bv, bcfg) = (v.clone(), cfg.clone());
                let load: BlockLoader<Block, candle_core::Error> =
                    Arc::new(move |i| Block::load(&bv, &bcfg, i));
                Layers::streamed(n, vb.device(), load, Block::to_device)
            }
        };
        Self::with_blocks(cfg, &v, blocks)
    }

    fn used_blocks(cfg: &ClipVisionConfig) -> usize {
        cfg.layers.saturating_sub(1)
    }

    fn with_blocks(
        cfg: &ClipVisionConfig,
        v: &VarBuilder,
        blocks: Layers<Block, candle_core::Error>,
    ) -> Result<Self> {
        let (w, p) = (cfg.width, cfg.patch_size);
        Ok(Self {
            patch_w: v.get((w, 3, p, p), "patch_embedding.weight")?,
            cls: v.get((1, 1, w), "cls_embedding")?,
            pos: v.get((1, cfg.num_patches() + 1, w), "pos_embedding")?,
            pre_norm: LayerNorm::new(v.pp("pre_norm"), w, cfg.eps)?,
            blocks,
            cfg: cfg.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        self.cls.device()
    }

    /// Tokens `[B, 1+patches, width]` of an already preprocessed batch `[B, 3, S, S]` (S =
    /// image_size, CLIP-normalised).
    pub fn forward(&self, pixels: &Tensor) -> Result<Tensor> {
        let (b, _, hh, ww) = pixels.dims4()?;
        let s = self.cfg.image_size;
        if hh != s || ww != s {
            candle_core::bail!("CLIP visual expects {s}x{s} input, got {hh}x{ww}");
        }
        let (w, heads) = (self.cfg.width, self.cfg.heads);
        let hd = w / heads;
        let pixels = pixels.to_dtype(self.cls.dtype())?;
        let x = pixels.conv2d(&self.patch_w, 0, self.cfg.patch_size, 1, 1)?; // [B, W, g, g]
        let x = x.flatten_from(2)?.transpose(1, 2)?; // [B, N, W]
        let cls = self.cls.broadcast_as((b, 1, w))?;
        let x = Tensor::cat(&[&cls, &x], 1)?.broadcast_add(&self.pos)?;
        let mut x = self.pre_norm.forward(&x)?;
        let n = x.dim(1)?;
        let scale = 1.0 / (hd as f64).sqrt();
        self.blocks.each(|_, blk| {
            let y = blk
                .qkv
                .forward(&blk.norm1.forward(&x)?)?
                .reshape((b, n, 3, heads, hd))?;
            let part = |i: usize| -> Result<Tensor> {
                y.narrow(2, i, 1)?.squeeze(2)?.transpose(1, 2)?.contiguous()
            };
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let att = (q.matmul(&k.t()?)? * scale)?;
            let att = candle_nn::ops::softmax_last_dim(&att.to_dtype(DType::F32)?)?
                .to_dtype(v.dtype())?;
            let a = att.matmul(&v)?.transpose(1, 2)?.reshape((b, n, w))?;
            x = (&x + blk.proj.forward(&a)?)?;
            let h = blk.fc1.forward(&blk.norm2.forward(&x)?)?.gelu_erf()?;
            x = (&x + blk.fc2.forward(&h)?)?;
            Ok(())
        })?;
        Ok(x)
    }

    /// CLIP normalisation of images already resized to image_size, given in [-1, 1]
    /// (`[B, 3, S, S]`): `(x*0.5+0.5 - mean) / std`.
    pub fn normalize(pixels: &Tensor) -> Result<Tensor> {
        let dev = pixels.device();
        let mean = Tensor::new(&CLIP_MEAN, dev)?.reshape((1, 3, 1, 1))?;
        let std = Tensor::new(&CLIP_STD, dev)?.reshape((1, 3, 1, 1))?;
        let x = pixels.to_dtype(DType::F32)?.affine(0.5, 0.5)?;
        x.broadcast_sub(&mean)?.broadcast_div(&std)
    }
}
