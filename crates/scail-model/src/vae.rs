//! The Wan 2.1 video VAE (16 latent channels): causal 3D convolutions with a streaming frame
//! cache, encode in time chunks of 1, 4, 4, … and decode one latent frame at a time.
//!
//! Activations are kept as `[T, C, H, W]` (time folded into the conv2d batch). A causal 3x3x3
//! convolution is one conv2d over the three time taps stacked along channels, so a chunk costs a
//! single GEMM per layer; the cache holds the last two input frames of each convolution, which
//! is all the state a chunk needs: memory is bounded by the chunk, not by the clip.

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

/// Latent normalisation constants of the published Wan 2.1 VAE (the `WanVAE` wrapper).
pub const LATENT_MEAN: [f32; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
    -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
];
/// See [`LATENT_MEAN`].
pub const LATENT_STD: [f32; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
];

/// Shape of a Wan 2.1 VAE. The published checkpoint is [`VaeConfig::wan21`]; tests use narrower
/// widths with the same structure.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Base channel width (96 in the published model).
    pub dim: usize,
    /// Latent channels (16).
    pub z_dim: usize,
    pub dim_mult: Vec<usize>,
    pub num_res_blocks: usize,
    /// Per encoder stage (all but the last): halve time as well as space.
    pub temporal_downsample: Vec<bool>,
}

impl VaeConfig {
    pub fn wan21() -> Self {
        Self::with_dim(96)
    }

    /// The Wan 2.1 structure at another base width (the fixtures use 8).
    pub fn with_dim(dim: usize) -> Self {
        Self {
            dim,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            temporal_downsample: vec![false, true, true],
        }
    }

    fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|u| u * self.dim)
            .collect()
    }

    fn decoder_dims(&self) -> Vec<usize> {
        std::iter::once(*self.dim_mult.last().unwrap())
            .chain(self.dim_mult.iter().rev().copied())
            .map(|u| u * self.dim)
            .collect()
    }

    /// Every tensor of the official checkpoint (`Wan2.1_VAE.pth`) with its shape, in a stable
    /// order: the key contract checked by `weights verify`.
    pub fn expected_keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv3 =
            |out: &mut Vec<(String, Vec<usize>)>, p: &str, o: usize, i: usize, k: [usize; 3]| {
                out.push((format!("{p}.weight"), vec![o, i, k[0], k[1], k[2]]));
                out.push((format!("{p}.bias"), vec![o]));
            };
        let res = |out: &mut Vec<(String, Vec<usize>)>, p: &str, i: usize, o: usize| {
            out.push((format!("{p}.residual.0.gamma"), vec![i, 1, 1, 1]));
            conv3(out, &format!("{p}.residual.2"), o, i, [3, 3, 3]);
            out.push((format!("{p}.residual.3.gamma"), vec![o, 1, 1, 1]));
            conv3(out, &format!("{p}.residual.6"), o, o, [3, 3, 3]);
            if i != o {
                conv3(out, &format!("{p}.shortcut"), o, i, [1, 1, 1]);
            }
        };
        let attn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            out.push((format!("{p}.norm.gamma"), vec![c, 1, 1]));
            out.push((format!("{p}.to_qkv.weight"), vec![3 * c, c, 1, 1]));
            out.push((format!("{p}.to_qkv.bias"), vec![3 * c]));
            out.push((format!("{p}.proj.weight"), vec![c, c, 1, 1]));
            out.push((format!("{p}.proj.bias"), vec![c]));
        };
        let z2 = self.z_dim * 2;
        conv3(&mut out, "conv1", z2, z2, [1, 1, 1]);
        conv3(&mut out, "conv2", self.z_dim, self.z_dim, [1, 1, 1]);
        // Encoder.
        let dims = self.encoder_dims();
        conv3(&mut out, "encoder.conv1", dims[0], 3, [3, 3, 3]);
        let mut idx = 0;
        let n_stages = self.dim_mult.len();
        for i in 0..n_stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            for _ in 0..self.num_res_blocks {
                res(
                    &mut out,
                    &format!("encoder.downsamples.{idx}"),
                    in_dim,
                    out_dim,
                );
                in_dim = out_dim;
                idx += 1;
            }
            if i != n_stages - 1 {
                let p = format!("encoder.downsamples.{idx}");
                out.push((
                    format!("{p}.resample.1.weight"),
                    vec![out_dim, out_dim, 3, 3],
                ));
                out.push((format!("{p}.resample.1.bias"), vec![out_dim]));
                if self.temporal_downsample[i] {
                    conv3(
                        &mut out,
                        &format!("{p}.time_conv"),
                        out_dim,
                        out_dim,
                        [3, 1, 1],
                    );
                }
                idx += 1;
            }
        }
        let c = *dims.last().unwrap();
        res(&mut out, "encoder.middle.0", c, c);
        attn(&mut out, "encoder.middle.1", c);
        res(&mut out, "encoder.middle.2", c, c);
        out.push(("encoder.head.0.gamma".into(), vec![c, 1, 1, 1]));
        conv3(&mut out, "encoder.head.2", z2, c, [3, 3, 3]);
        // Decoder.
        let dims = self.decoder_dims();
        let c = dims[0];
        conv3(&mut out, "decoder.conv1", c, self.z_dim, [3, 3, 3]);
        res(&mut out, "decoder.middle.0", c, c);
        attn(&mut out, "decoder.middle.1", c);
        res(&mut out, "decoder.middle.2", c, c);
        let up = self.temporal_upsample();
        let mut idx = 0;
        for i in 0..n_stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if i > 0 {
                in_dim /= 2;
            }
            for _ in 0..=self.num_res_blocks {
                res(
                    &mut out,
                    &format!("decoder.upsamples.{idx}"),
                    in_dim,
                    out_dim,
                );
                in_dim = out_dim;
                idx += 1;
            }
            if i != n_stages - 1 {
                let p = format!("decoder.upsamples.{idx}");
                out.push((
                    format!("{p}.resample.1.weight"),
                    vec![out_dim / 2, out_dim, 3, 3],
                ));
                out.push((format!("{p}.resample.1.bias"), vec![out_dim / 2]));
                if up[i] {
                    conv3(
                        &mut out,
                        &format!("{p}.time_conv"),
                        out_dim * 2,
                        out_dim,
                        [3, 1, 1],
                    );
                }
                idx += 1;
            }
        }
        let c = *dims.last().unwrap();
        out.push(("decoder.head.0.gamma".into(), vec![c, 1, 1, 1]));
        conv3(&mut out, "decoder.head.2", 3, c, [3, 3, 3]);
        out
    }

    fn temporal_upsample(&self) -> Vec<bool> {
        self.temporal_downsample.iter().rev().copied().collect()
    }
}

/// Per-convolution streaming state, visited in the same order on every chunk.
#[derive(Default)]
struct FeatCache {
    slots: Vec<Slot>,
    idx: usize,
}

#[derive(Clone)]
enum Slot {
    Empty,
    /// An upsampling time conv that has seen its first chunk (which it skips).
    Started,
    Frames(Tensor),
}

impl FeatCache {
    fn next(&mut self) -> &mut Slot {
        if self.idx == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.idx += 1;
        &mut self.slots[self.idx - 1]
    }

    fn rewind(&mut self) {
        self.idx = 0;
    }
}

/// `nn.Conv3d` whose time axis is causal (padded on the left only); spatial padding k/2.
struct CausalConv3d {
    /// `[O, kD*C, kh, kw]`: the kD time taps stacked along input channels, oldest first
    /// (generic candle path; None when the CPU kernel is used).
    weight: Option<Tensor>,
    bias: Tensor,
    /// `[k*k][O][kD*C]` taps and the bias for the CPU f32 kernel.
    cpu: Option<(Vec<f32>, Vec<f32>)>,
    c_in: usize,
    c_out: usize,
    kd: usize,
    k: usize,
}

/// The f32 slice of a contiguous CPU tensor.
fn cpu_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => {
            let v = cpu.as_slice::<f32>()?;
            let o = layout.start_offset();
            Ok(f(&v[o..o + t.elem_count()]))
        }
        _ => candle_core::bail!("cpu_slice on a non-CPU tensor"),
    }
}

fn use_cpu_kernels(vb: &VarBuilder) -> bool {
    vb.device().is_cpu() && vb.dtype() == DType::F32
}

impl CausalConv3d {
    fn new(vb: VarBuilder, c_in: usize, c_out: usize, k: [usize; 3]) -> Result<Self> {
        let w = vb.get((c_out, c_in, k[0], k[1], k[2]), "weight")?;
        let bias = vb.get(c_out, "bias")?;
        Self::from_weight(w, bias, use_cpu_kernels(&vb))
    }

    /// A 2D `Conv2d(k, padding=k/2)` as a one-tap causal conv (`[O, C, k, k]` weight).
    fn conv2d(w: Tensor, bias: Tensor, cpu: bool) -> Result<Self> {
        let (o, c, kh, kw) = w.dims4()?;
        Self::from_weight(w.reshape((o, c, 1, kh, kw))?, bias, cpu)
    }

    fn from_weight(w: Tensor, bias: Tensor, cpu: bool) -> Result<Self> {
        let (c_out, c_in, kd, kh, kw) = w.dims5()?;
        let k = [kd, kh, kw];
        if k[1] != k[2] || k[1] % 2 == 0 {
            candle_core::bail!("causal conv kernel {k:?}: square odd spatial kernels only");
        }
        let (weight, cpu) = if cpu {
            // 3x3 kernels take the Winograd F(2,3) kernel (see `vae_cpu::conv3d_stream`).
            let taps = cpu_slice(&w, |s| {
                if k[1] == 3 {
                    crate::vae_cpu::arrange_wino(s, c_out, c_in, k[0])
                } else {
                    crate::vae_cpu::arrange_taps(s, c_out, c_in, k[0], k[1])
                }
            })?;
            (None, Some((taps, bias.to_vec1::<f32>()?)))
        } else {
            let folded = w
                .permute((0, 2, 1, 3, 4))?
                .reshape((c_out, k[0] * c_in, k[1], k[2]))?
                .contiguous()?;
            (Some(folded), None)
        };
        Ok(Self {
            weight,
            bias: bias.reshape((1, c_out, 1, 1))?,
            cpu,
            c_in,
            c_out,
            kd: k[0],
            k: k[1],
        })
    }

    /// Convolution over frames that already include the kD-1 frames of left context.
    fn conv_frames(&self, xs: &Tensor) -> Result<Tensor> {
        let (t_in, c, h, w) = xs.dims4()?;
        if c != self.c_in {
            candle_core::bail!("causal conv expects {} channels, got {c}", self.c_in);
        }
        let t = t_in + 1 - self.kd;
        if let Some((taps, bias)) = &self.cpu {
            let (out, _) = cpu_slice(xs, |x| {
                crate::vae_cpu::conv3d_stream(
                    &[],
                    x,
                    None,
                    (c, h, w),
                    taps,
                    bias,
                    (self.c_out, self.kd, self.k),
                    None,
                )
            })?;
            return Tensor::from_vec(out, (t, self.c_out, h, w), xs.device());
        }
        let x = if self.kd == 1 {
            xs.clone()
        } else {
            let taps = (0..self.kd)
                .map(|k| xs.narrow(0, k, t))
                .collect::<Result<Vec<_>>>()?;
            Tensor::cat(&taps, 1)?
        };
        let weight = self
            .weight
            .as_ref()
            .expect("candle path has a folded weight");
        x.conv2d(weight, self.k / 2, 1, 1, 1)?
            .broadcast_add(&self.bias)
    }

    /// Streaming forward: the slot holds the last kD-1 input frames (zeros before the start).
    fn forward_cached(&self, x: &Tensor, slot: &mut Slot) -> Result<Tensor> {
        self.forward_act(x, None, slot, None)
    }

    /// `conv(silu(norm(x)))` (or `conv(x)` without a norm) with the streaming cache, plus an
    /// optional residual. On the CPU the activation, padding and residual are fused into the
    /// convolution, so no activated copy of the chunk is made.
    fn forward_act(
        &self,
        x: &Tensor,
        norm: Option<&RmsNorm>,
        slot: &mut Slot,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (t, c, h, w) = x.dims4()?;
        let ctx = self.kd - 1;
        if let Some((taps, bias)) = &self.cpu {
            let prev = match slot {
                Slot::Frames(p) if ctx > 0 => Some(p.clone()),
                _ => None,
            };
            let zeros;
            let gamma = norm
                .map(|n| n.gamma.flatten_all()?.to_vec1::<f32>())
                .transpose()?;
            let act = norm
                .zip(gamma.as_deref())
                .map(|(n, g)| crate::vae_cpu::Activation {
                    gamma: g,
                    scale: n.scale as f32,
                });
            let res = residual.map(|r| r.contiguous()).transpose()?;
            let run = |prev: &[f32]| -> Result<(Vec<f32>, Vec<f32>)> {
                cpu_slice(x, |xs| {
                    let go = |r: Option<&[f32]>| {
                        crate::vae_cpu::conv3d_stream(
                            prev,
                            xs,
                            act.as_ref(),
                            (c, h, w),
                            taps,
                            bias,
                            (self.c_out, self.kd, self.k),
                            r,
                        )
                    };
                    match &res {
                        Some(r) => cpu_slice(r, |r| go(Some(r))),
                        None => Ok(go(None)),
                    }
                })?
            };
            let (out, cache) = match &prev {
                Some(p) => cpu_slice(p, |p| run(p))??,
                None => {
                    zeros = vec![0f32; ctx * c * h * w];
                    run(&zeros)?
                }
            };
            if ctx > 0 {
                *slot = Slot::Frames(Tensor::from_vec(cache, (ctx, c, h, w), x.device())?);
            }
            return Tensor::from_vec(out, (t, self.c_out, h, w), x.device());
        }
        let x = match norm {
            Some(n) => n.forward_silu(x)?,
            None => x.clone(),
        };
        let y = if self.kd == 1 {
            self.conv_frames(&x)?
        } else {
            let prev = match slot {
                Slot::Frames(t) => t.clone(),
                _ => Tensor::zeros((ctx, c, h, w), x.dtype(), x.device())?,
            };
            let xs = Tensor::cat(&[&prev, &x], 0)?;
            let n = xs.dim(0)?;
            // A copy, so the cache does not pin the whole chunk's buffer.
            *slot = Slot::Frames(xs.narrow(0, n - ctx, ctx)?.copy()?);
            self.conv_frames(&xs)?
        };
        match residual {
            Some(r) => y + r,
            None => Ok(y),
        }
    }
}

/// `F.normalize` over channels times sqrt(C) times a per-channel gain (the VAE's RMS_norm).
struct RmsNorm {
    gamma: Tensor,
    scale: f64,
}

impl RmsNorm {
    fn new(vb: VarBuilder, c: usize, images: bool) -> Result<Self> {
        let gamma = if images {
            vb.get((c, 1, 1), "gamma")?
        } else {
            vb.get((c, 1, 1, 1), "gamma")?
        };
        Ok(Self {
            gamma: gamma.reshape((1, c, 1, 1))?,
            scale: (c as f64).sqrt(),
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        (x.broadcast_div(&norm)? * self.scale)?.broadcast_mul(&self.gamma)
    }

    fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)?.silu()
    }
}

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
        let qkv = y
            .broadcast_matmul(&self.to_qkv_w.t()?)?
            .broadcast_add(&self.to_qkv_b)?;
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
        let o = Tensor::stack(&outs, 0)?
            .broadcast_matmul(&self.proj_w.t()?)?
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

    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        let mut x = x.clone();
        if let (ResampleMode::Up3d, Some(tc)) = (&self.mode, &self.time_conv) {
            let slot = cache.next();
            if matches!(slot, Slot::Empty) {
                // The reference skips the time conv on the first chunk (no frame doubling).
                *slot = Slot::Started;
            } else {
                if matches!(slot, Slot::Started) {
                    *slot = Slot::Empty;
                }
                let y = tc.forward_cached(&x, slot)?;
                let (t, c2, h, w) = y.dims4()?;
                // Channels [0, c) are the even output frame, [c, 2c) the odd one.
                x = y
                    .reshape((t, 2, c2 / 2, h, w))?
                    .reshape((2 * t, c2 / 2, h, w))?;
            }
        }
        let (_, _, h, w) = x.dims4()?;
        x = match self.mode {
            ResampleMode::Up2d | ResampleMode::Up3d => self
                .conv
                .conv_frames(&x.upsample_nearest2d(2 * h, 2 * w)?)?,
            ResampleMode::Down2d | ResampleMode::Down3d => x
                .pad_with_zeros(2, 0, 1)?
                .pad_with_zeros(3, 0, 1)?
                .conv2d(&self.down_w, 0, 2, 1, 1)?
                .broadcast_add(&self.down_b)?,
        };
        if let (ResampleMode::Down3d, Some(tc)) = (&self.mode, &self.time_conv) {
            let slot = cache.next();
            let t = x.dim(0)?;
            let last = x.narrow(0, t - 1, 1)?.copy()?;
            if let Slot::Frames(prev) = slot {
                let xs = Tensor::cat(&[&*prev, &x], 0)?;
                // Kernel 3, stride 2, no padding: output j reads frames 2j, 2j+1, 2j+2.
                let n_out = (xs.dim(0)? - 3) / 2 + 1;
                let outs = (0..n_out)
                    .map(|j| tc.conv_frames(&xs.narrow(0, 2 * j, 3)?))
                    .collect::<Result<Vec<_>>>()?;
                x = Tensor::cat(&outs, 0)?;
            }
            // The first chunk passes through; every chunk's last frame seeds the next one.
            *slot = Slot::Frames(last);
        }
        Ok(x)
    }
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
struct Tower {
    conv1: CausalConv3d,
    layers: Vec<Layer>,
    head_norm: RmsNorm,
    head_conv: CausalConv3d,
}

impl Tower {
    fn forward(&self, x: &Tensor, cache: &mut FeatCache) -> Result<Tensor> {
        cache.rewind();
        let mut x = self.conv1.forward_cached(x, cache.next())?;
        for l in &self.layers {
            x = l.forward(&x, cache)?;
        }
        self.head_conv
            .forward_act(&x, Some(&self.head_norm), cache.next(), None)
    }

    fn encoder(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let dims = cfg.encoder_dims();
        let conv1 = CausalConv3d::new(vb.pp("conv1"), 3, dims[0], [3, 3, 3])?;
        let mut layers = Vec::new();
        let ds = vb.pp("downsamples");
        let n = cfg.dim_mult.len();
        for i in 0..n {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            for _ in 0..cfg.num_res_blocks {
                layers.push(Layer::Res(ResidualBlock::new(
                    ds.pp(layers.len()),
                    in_dim,
                    out_dim,
                )?));
                in_dim = out_dim;
            }
            if i != n - 1 {
                let mode = if cfg.temporal_downsample[i] {
                    ResampleMode::Down3d
                } else {
                    ResampleMode::Down2d
                };
                layers.push(Layer::Resample(Resample::new(
                    ds.pp(layers.len()),
                    out_dim,
                    mode,
                )?));
            }
        }
        let c = *dims.last().unwrap();
        let m = vb.pp("middle");
        layers.push(Layer::Res(ResidualBlock::new(m.pp("0"), c, c)?));
        layers.push(Layer::Attn(AttentionBlock::new(m.pp("1"), c)?));
        layers.push(Layer::Res(ResidualBlock::new(m.pp("2"), c, c)?));
        Ok(Self {
            conv1,
            layers,
            head_norm: RmsNorm::new(vb.pp("head.0"), c, false)?,
            head_conv: CausalConv3d::new(vb.pp("head.2"), c, 2 * cfg.z_dim, [3, 3, 3])?,
        })
    }

    fn decoder(vb: VarBuilder, cfg: &VaeConfig) -> Result<Self> {
        let dims = cfg.decoder_dims();
        let c = dims[0];
        let conv1 = CausalConv3d::new(vb.pp("conv1"), cfg.z_dim, c, [3, 3, 3])?;
        let m = vb.pp("middle");
        let mut layers = vec![
            Layer::Res(ResidualBlock::new(m.pp("0"), c, c)?),
            Layer::Attn(AttentionBlock::new(m.pp("1"), c)?),
            Layer::Res(ResidualBlock::new(m.pp("2"), c, c)?),
        ];
        let up = cfg.temporal_upsample();
        let us = vb.pp("upsamples");
        let n = cfg.dim_mult.len();
        let mut idx = 0;
        for i in 0..n {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if i > 0 {
                in_dim /= 2;
            }
            for _ in 0..=cfg.num_res_blocks {
                layers.push(Layer::Res(ResidualBlock::new(us.pp(idx), in_dim, out_dim)?));
                in_dim = out_dim;
                idx += 1;
            }
            if i != n - 1 {
                let mode = if up[i] {
                    ResampleMode::Up3d
                } else {
                    ResampleMode::Up2d
                };
                layers.push(Layer::Resample(Resample::new(us.pp(idx), out_dim, mode)?));
                idx += 1;
            }
        }
        let c = *dims.last().unwrap();
        Ok(Self {
            conv1,
            layers,
            head_norm: RmsNorm::new(vb.pp("head.0"), c, false)?,
            head_conv: CausalConv3d::new(vb.pp("head.2"), c, 3, [3, 3, 3])?,
        })
    }
}

/// The Wan 2.1 VAE with the published latent normalisation.
pub struct WanVae {
    cfg: VaeConfig,
    encoder: Tower,
    decoder: Tower,
    conv1: CausalConv3d,
    conv2: CausalConv3d,
    mean: Tensor,
    inv_std: Tensor,
}

impl WanVae {
    /// Builds the VAE from weights with the official key names (`Wan2.1_VAE.pth` layout).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let z = cfg.z_dim;
        if z != LATENT_MEAN.len() {
            candle_core::bail!("the Wan 2.1 normalisation has 16 channels, config has {z}");
        }
        let dev = vb.device().clone();
        let dtype = vb.dtype();
        // The reference stores scale = [mean, 1/std] and multiplies/divides by 1/std: keep that
        // rounding.
        let inv: Vec<f32> = LATENT_STD.iter().map(|s| 1.0f32 / s).collect();
        Ok(Self {
            encoder: Tower::encoder(vb.pp("encoder"), cfg)?,
            decoder: Tower::decoder(vb.pp("decoder"), cfg)?,
            conv1: CausalConv3d::new(vb.pp("conv1"), 2 * z, 2 * z, [1, 1, 1])?,
            conv2: CausalConv3d::new(vb.pp("conv2"), z, z, [1, 1, 1])?,
            mean: Tensor::new(&LATENT_MEAN, &dev)?
                .to_dtype(dtype)?
                .reshape((z, 1, 1, 1))?,
            inv_std: Tensor::new(inv.as_slice(), &dev)?
                .to_dtype(dtype)?
                .reshape((z, 1, 1, 1))?,
            cfg: cfg.clone(),
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// Un-normalised posterior mean μ `[16, 1+(T-1)/4, H/8, W/8]` of a clip `[3, T, H, W]` in
    /// [-1, 1]; T must be 4k+1 (trailing frames beyond that are ignored, as in the reference).
    pub fn encode_raw(&self, video: &Tensor) -> Result<Tensor> {
        let (c, t, _, _) = video.dims4()?;
        if c != 3 || t == 0 {
            candle_core::bail!(
                "VAE encode expects [3, T, H, W] with T >= 1, got {:?}",
                video.dims()
            );
        }
        let frames = video.transpose(0, 1)?; // [T, 3, H, W]
        let mut cache = FeatCache::default();
        let n_chunks = 1 + (t - 1) / 4;
        let mut outs = Vec::with_capacity(n_chunks);
        for i in 0..n_chunks {
            let chunk = if i == 0 {
                frames.narrow(0, 0, 1)?
            } else {
                frames.narrow(0, 1 + 4 * (i - 1), 4)?
            }
            .contiguous()?;
            let out = self.encoder.forward(&chunk, &mut cache)?;
            outs.push(self.conv1.conv_frames(&out)?.narrow(1, 0, self.cfg.z_dim)?);
        }
        Tensor::cat(&outs, 0)?.transpose(0, 1)?.contiguous()
    }

    /// The normalised latent the DiT consumes: (μ - mean) / std.
    pub fn encode(&self, video: &Tensor) -> Result<Tensor> {
        let mu = self.encode_raw(video)?;
        mu.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)
    }

    /// Decodes a normalised latent `[16, T, h, w]` to `[3, 1+4(T-1), 8h, 8w]`, clamped to [-1, 1].
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        self.decode_unclamped(latent)?.clamp(-1f32, 1f32)
    }

    /// [`WanVae::decode`] without the final clamp.
    pub fn decode_unclamped(&self, latent: &Tensor) -> Result<Tensor> {
        let mut outs = Vec::new();
        self.decode_streaming(latent, |chunk| {
            outs.push(chunk);
            Ok(())
        })?;
        Tensor::cat(&outs, 1)
    }

    /// Decodes one latent frame at a time and hands every chunk of pixel frames
    /// (`[3, n, H, W]`, unclamped; n = 1 for the first latent frame, 4 after) to `sink`, so a
    /// caller can write frames out without holding the whole clip.
    pub fn decode_streaming(
        &self,
        latent: &Tensor,
        mut sink: impl FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let (c, t, _, _) = latent.dims4()?;
        if c != self.cfg.z_dim {
            candle_core::bail!(
                "VAE decode expects [{}, T, h, w], got {:?}",
                self.cfg.z_dim,
                latent.dims()
            );
        }
        let z = latent
            .broadcast_div(&self.inv_std)?
            .broadcast_add(&self.mean)?
            .transpose(0, 1)?
            .contiguous()?; // [T, 16, h, w]
        let mut cache = FeatCache::default();
        for i in 0..t {
            let x = self.conv2.conv_frames(&z.narrow(0, i, 1)?)?;
            let out = self.decoder.forward(&x, &mut cache)?;
            sink(out.transpose(0, 1)?.contiguous()?)?;
        }
        Ok(())
    }

    /// Spatially tiled decode for small memory budgets (off unless called): the latent is cut
    /// into overlapping tiles, each decoded over the whole clip with its own frame cache, and
    /// the overlaps are blended with linear ramps. Working memory and the cache scale with the
    /// tile instead of the frame; the result differs slightly from [`WanVae::decode`] near
    /// tile seams (the decoder's receptive field is wider than the overlap). Clamped to
    /// [-1, 1]; returned on the CPU in f32.
    pub fn decode_tiled(&self, latent: &Tensor, tiling: Tiling) -> Result<Tensor> {
        let (_, t, h, w) = latent.dims4()?;
        if tiling.tile == 0 || tiling.overlap >= tiling.tile {
            candle_core::bail!("tiling: need 0 <= overlap < tile, got {tiling:?}");
        }
        let starts = |n: usize| -> Vec<usize> {
            if n <= tiling.tile {
                return vec![0];
            }
            let step = tiling.tile - tiling.overlap;
            let mut v: Vec<usize> = (0..)
                .map(|i| i * step)
                .take_while(|s| s + tiling.tile < n)
                .collect();
            v.push(n - tiling.tile);
            v
        };
        let (hs, ws) = (starts(h), starts(w));
        let (tf, ph, pw) = (pixel_frames(t), 8 * h, 8 * w);
        let mut acc = vec![0f32; 3 * tf * ph * pw];
        let mut wsum = vec![0f32; ph * pw];
        let ov = 8 * tiling.overlap;
        // Weight of pixel i of a tile of length n, ramping over the overlap on inner edges.
        let ramp = |i: usize, n: usize, first: bool, last: bool| -> f32 {
            let mut v = 1f32;
            if !first && i < ov {
                v = v.min((i as f32 + 0.5) / ov as f32);
            }
            if !last && n - i <= ov {
                v = v.min(((n - i) as f32 - 0.5) / ov as f32);
            }
            v
        };
        for (yi, &y0) in hs.iter().enumerate() {
            for (xi, &x0) in ws.iter().enumerate() {
                let (th, tw) = (tiling.tile.min(h), tiling.tile.min(w));
                let z = latent.narrow(2, y0, th)?.narrow(3, x0, tw)?.contiguous()?;
                let (py, px, pth, ptw) = (8 * y0, 8 * x0, 8 * th, 8 * tw);
                let wy: Vec<f32> = (0..pth)
                    .map(|i| ramp(i, pth, yi == 0, yi + 1 == hs.len()))
                    .collect();
                let wx: Vec<f32> = (0..ptw)
                    .map(|i| ramp(i, ptw, xi == 0, xi + 1 == ws.len()))
                    .collect();
                for (i, a) in wy.iter().enumerate() {
                    for (j, b) in wx.iter().enumerate() {
                        wsum[(py + i) * pw + px + j] += a * b;
                    }
                }
                let mut f0 = 0;
                self.decode_streaming(&z, |chunk| {
                    let n = chunk.dim(1)?;
                    let v = chunk
                        .to_dtype(DType::F32)?
                        .to_device(&Device::Cpu)?
                        .flatten_all()?
                        .to_vec1::<f32>()?;
                    for c in 0..3 {
                        for f in 0..n {
                            for (i, a) in wy.iter().enumerate() {
                                let src = ((c * n + f) * pth + i) * ptw;
                                let dst = ((c * tf + f0 + f) * ph + py + i) * pw + px;
                                let row = &mut acc[dst..dst + ptw];
                                for ((d, s), b) in row.iter_mut().zip(&v[src..src + ptw]).zip(&wx) {
                                    *d += s * a * b;
                                }
                            }
                        }
                    }
                    f0 += n;
                    Ok(())
                })?;
            }
        }
        for (k, a) in acc.iter_mut().enumerate() {
            *a = (*a / wsum[k % (ph * pw)]).clamp(-1.0, 1.0);
        }
        Tensor::from_vec(acc, (3, tf, ph, pw), &Device::Cpu)
    }

    pub fn device(&self) -> &Device {
        self.mean.device()
    }

    pub fn dtype(&self) -> DType {
        self.mean.dtype()
    }
}

/// Spatial tiling of [`WanVae::decode_tiled`], in latent units (x8 for pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tiling {
    pub tile: usize,
    pub overlap: usize,
}

/// Pixel frames ↔ latent frames: 4k+1 frames encode to k+1 latent frames.
pub fn latent_frames(pixel_frames: usize) -> usize {
    1 + pixel_frames.saturating_sub(1) / 4
}

/// Latent frames ↔ pixel frames: T latent frames decode to 1+4(T-1) frames.
pub fn pixel_frames(latent_frames: usize) -> usize {
    if latent_frames == 0 {
        0
    } else {
        1 + 4 * (latent_frames - 1)
    }
}
