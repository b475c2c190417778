//! The VAE's residual, attention and resampling blocks and the encoder/decoder towers built
//! from them.

use candle_core::{Result, Tensor, D};
use candle_nn::VarBuilder;

use super::config::StageLayer;
use super::conv::{half_via_f32, use_cpu_kernels, wide, CausalConv3d, FeatCache, RmsNorm, Slot};
use super::VaeConfig;

struct ResidualBlock {
    norm1: RmsNorm,
    conv1: CausalConv3d,
    norm2: RmsNorm,
    conv2: CausalConv3d,
    shortcut: Option<CausalConv3d>,
}

impl ResidualBlock {
    fn new(vb: VarBuilder, i: usize, o: usize) -> Result<Self> {
        let r = vb.pp("residual");
        Ok(Self {
            norm1: RmsNorm::new(r.pp("0"), i, false)?,
            conv1: CausalConv3d::new(r.pp("2"), i, o, [3, 3, 3])?,
            norm2: RmsNorm::new(r.pp("3"), o, false)?,
            conv2: CausalConv3d::new(r.pp("6"), o, o, [3, 3, 3])?,
            shortcut: if i != o {
                Some(CausalConv3d::new(vb.pp("shortcut"), i, o, [1, 1, 1])?)
            } else {
                None
            },
        })
    }

    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let h = match &self.shortcut {
            Some(s) => s.conv_frames(x)?,
            None => x.clone(),
        };
        let y = self
            .conv1
            .forward_act(x, Some(&self.norm1), cache.next(), None)?;
        self.conv2
            .forward_act(&y, Some(&self.norm2), cache.next(), Some(&h))
    }
}

/// Single-head spatial self-attention applied to every frame separately.
struct AttentionBlock {
    norm: RmsNorm,
    to_qkv_w: Tensor,
    to_qkv_b: Tensor,
    proj_w: Tensor,
    proj_b: Tensor,
}

impl AttentionBlock {
    fn new(vb: VarBuilder, c: usize) -> Result<Self> {
        Ok(Self {
            norm: RmsNorm::new(vb.pp("norm"), c, true)?,
            to_qkv_w: vb
                .get((3 * c, c, 1, 1), "to_qkv.weight")?
                .reshape((3 * c, c))?,
            to_qkv_b: vb.get(3 * c, "to_qkv.bias")?,
            proj_w: vb.get((c, c, 1, 1), "proj.weight")?.reshape((c, c))?,
            proj_b: vb.get(c, "proj.bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, c, h, w) = x.dims4()?;
        // Tokens-major [T, HW, C] so the 1x1 convs are plain matmuls.
        let y = self
            .norm
            .forward(x)?
            .reshape((t, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let qkv = half_via_f32(&y, &self.to_qkv_w, |y, w| y.broadcast_matmul(&w.t()?))?
            .broadcast_add(&self.to_qkv_b)?;
        // Scores and softmax in f32 for a half-precision VAE, as the reference computes them.
        let qkv = qkv.to_dtype(wide(qkv.dtype()))?;
        let q = qkv.narrow(D::Minus1, 0, c)?.contiguous()?;
        let k = qkv.narrow(D::Minus1, c, c)?.contiguous()?;
        let v = qkv.narrow(D::Minus1, 2 * c, c)?.contiguous()?;
        let mut outs = Vec::with_capacity(t);
        let n = h * w;
        // One frame and one block of queries at a time: the full score matrix would be (HW)^2
        // (205 MB per frame at 896x512), the largest buffer of the decoder.
        const Q_BLOCK: usize = 1024;
        for i in 0..t {
            let (q, k, v) = (q.get(i)?, k.get(i)?, v.get(i)?);
            let kt = k.t()?;
            let mut rows = Vec::with_capacity(n.div_ceil(Q_BLOCK));
            for start in (0..n).step_by(Q_BLOCK) {
                let qb = q.narrow(0, start, Q_BLOCK.min(n - start))?;
                let s = (qb.matmul(&kt)? * (1.0 / (c as f64).sqrt()))?;
                let p = candle_nn::ops::softmax_last_dim(&s)?;
                rows.push(p.matmul(&v)?);
            }
            outs.push(Tensor::cat(&rows, 0)?);
        }
        let o = Tensor::stack(&outs, 0)?.to_dtype(x.dtype())?;
        let o = half_via_f32(&o, &self.proj_w, |o, w| o.broadcast_matmul(&w.t()?))?
            .broadcast_add(&self.proj_b)?;
        let o = o.transpose(1, 2)?.reshape((t, c, h, w))?;
        o + x
    }
}

enum ResampleMode {
    Up2d,
    Up3d,
    Down2d,
    Down3d,
}

struct Resample {
    mode: ResampleMode,
    /// The spatial conv (`resample.1`); for downsampling it runs through candle (stride 2).
    conv: CausalConv3d,
    down_w: Tensor,
    down_b: Tensor,
    time_conv: Option<CausalConv3d>,
}

impl Resample {
    fn new(vb: VarBuilder, c: usize, mode: ResampleMode) -> Result<Self> {
        let (c_out, time_conv) = match mode {
            ResampleMode::Up2d => (c / 2, None),
            ResampleMode::Up3d => (
                c / 2,
                Some(CausalConv3d::new(vb.pp("time_conv"), c, 2 * c, [3, 1, 1])?),
            ),
            ResampleMode::Down2d => (c, None),
            ResampleMode::Down3d => (
                c,
                Some(CausalConv3d::new(vb.pp("time_conv"), c, c, [3, 1, 1])?),
            ),
        };
        let w = vb.get((c_out, c, 3, 3), "resample.1.weight")?;
        let b = vb.get(c_out, "resample.1.bias")?;
        let up = matches!(mode, ResampleMode::Up2d | ResampleMode::Up3d);
        Ok(Self {
            mode,
            conv: CausalConv3d::conv2d(w.clone(), b.clone(), up && use_cpu_kernels(&vb))?,
            down_w: w,
            down_b: b.reshape((1, c_out, 1, 1))?,
            time_conv,
        })
    }

    /// Time upsampling (3D up), the spatial resampling, then time downsampling (3D down).
    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut x = x.clone();
        if let (ResampleMode::Up3d, Some(tc)) = (&self.mode, &self.time_conv) {
            x = double_frames(tc, &x, cache.next())?;
        }
        let (_, _, h, w) = x.dims4()?;
        x = match self.mode {
            ResampleMode::Up2d | ResampleMode::Up3d => self
                .conv
                .conv_frames(&x.upsample_nearest2d(2 * h, 2 * w)?)?,
            ResampleMode::Down2d | ResampleMode::Down3d => {
                let x = x.pad_with_zeros(2, 0, 1)?.pad_with_zeros(3, 0, 1)?;
                half_via_f32(&x, &self.down_w, |x, w| x.conv2d(w, 0, 2, 1, 1))?
                    .broadcast_add(&self.down_b)?
            }
        };
        if let (ResampleMode::Down3d, Some(tc)) = (&self.mode, &self.time_conv) {
            x = halve_frames(tc, &x, cache.next())?;
        }
        Ok(x)
    }
}

/// The upsampling time conv: every frame becomes two (its output channels [0, c) and [c, 2c)),
/// except on the first chunk, which the reference passes through.
fn double_frames(tc: &CausalConv3d, x: &Tensor, slot: &mut Slot) -> Result<Tensor> {
    if matches!(slot, Slot::Empty) {
        *slot = Slot::Started;
        return Ok(x.clone());
    }
    if matches!(slot, Slot::Started) {
        *slot = Slot::Empty;
    }
    let y = tc.forward_cached(x, slot)?;
    let (t, c2, h, w) = y.dims4()?;
    y.reshape((t, 2, c2 / 2, h, w))?
        .reshape((2 * t, c2 / 2, h, w))
}

/// The downsampling time conv (kernel 3, stride 2, no padding) over the previous chunk's last
/// frame and this chunk; the first chunk passes through.
fn halve_frames(tc: &CausalConv3d, x: &Tensor, slot: &mut Slot) -> Result<Tensor> {
    let t = x.dim(0)?;
    let last = x.narrow(0, t - 1, 1)?.copy()?;
    let out = match slot {
        Slot::Frames(prev) => {
            let xs = Tensor::cat(&[&*prev, x], 0)?;
            // Output j reads frames 2j, 2j+1, 2j+2.
            let n_out = (xs.dim(0)? - 3) / 2 + 1;
            let outs = (0..n_out)
                .map(|j| tc.conv_frames(&xs.narrow(0, 2 * j, 3)?))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&outs, 0)?
        }
        _ => x.clone(),
    };
    // Every chunk's last frame seeds the next one.
    *slot = Slot::Frames(last);
    Ok(out)
}

enum Layer {
    Res(ResidualBlock),
    Attn(AttentionBlock),
    Resample(Resample),
}

impl Layer {
    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        match self {
            Layer::Res(b) => b.forward(x, cache),
            Layer::Attn(b) => b.forward(x),
            Layer::Resample(b) => b.forward(x, cache),
        }
    }
}

/// conv1 → stages → middle → head, shared by the encoder and decoder.
pub(super) struct Tower {
    conv1: CausalConv3d,
    layers: Vec<Layer>,
    head_norm: RmsNorm,
    head_conv: CausalConv3d,
}

impl Tower {
    pub(super) fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        cache.rewind();
        let mut x = self.conv1.forward_cached(x, cache.next())?;
        for l in &self.layers {
            x = l.forward(&x, cache)?;
        }
        self.head_conv
            .forward_act(&x, Some(&self.head_norm), cache.next(), None)
    }

    pub(super) fn encoder(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let c = *cfg.encoder_dims().last().unwrap();
        let mut layers = stage_layers(vb.pp("downsamples"), &cfg.encoder_stages())?;
        layers.extend(middle(vb.pp("middle"), c)?);
        Ok(Self {
            conv1: CausalConv3d::new(vb.pp("conv1"), 3, cfg.dim, [3, 3, 3])?,
            layers,
            head_norm: RmsNorm::new(vb.pp("head.0"), c, false)?,
            head_conv: CausalConv3d::new(vb.pp("head.2"), c, 2 * cfg.z_dim, [3, 3, 3])?,
        })
    }

    pub(super) fn decoder(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let dims = cfg.decoder_dims();
        let mut layers = middle(vb.pp("middle"), dims[0])?;
        layers.extend(stage_layers(vb.pp("upsamples"), &cfg.decoder_stages())?);
        let c = *dims.last().unwrap();
        Ok(Self {
            conv1: CausalConv3d::new(vb.pp("conv1"), cfg.z_dim, dims[0], [3, 3, 3])?,
            layers,
            head_norm: RmsNorm::new(vb.pp("head.0"), c, false)?,
            head_conv: CausalConv3d::new(vb.pp("head.2"), c, 3, [3, 3, 3])?,
        })
    }
}

/// Residual block, attention block, residual block at `c` channels.
fn middle(vb: VarBuilder, c: usize) -> Result<Vec<Layer>> {
    Ok(vec![
        Layer::Res(ResidualBlock::new(vb.pp("0"), c, c)?),
        Layer::Attn(AttentionBlock::new(vb.pp("1"), c)?),
        Layer::Res(ResidualBlock::new(vb.pp("2"), c, c)?),
    ])
}

/// The layers of a `downsamples` / `upsamples` list.
fn stage_layers(vb: VarBuilder, stages: &[StageLayer]) -> Result<Vec<Layer>> {
    stages
        .iter()
        .enumerate()
        .map(|(idx, layer)| {
            Ok(match *layer {
                StageLayer::Res { in_dim, out_dim } => {
                    Layer::Res(ResidualBlock::new(vb.pp(idx), in_dim, out_dim)?)
                }
                StageLayer::Resample { c, up, temporal } => {
                    let mode = match (up, temporal) {
                        (false, false) => ResampleMode::Down2d,
                        (false, true) => ResampleMode::Down3d,
                        (true, false) => ResampleMode::Up2d,
                        (true, true) => ResampleMode::Up3d,
                    };
                    Layer::Resample(Resample::new(vb.pp(idx), c, mode)?)
                }
            })
        })
        .collect()
}
