//! The causal 3D convolution with its streaming frame cache (candle path, or the CPU f32
//! kernels of `vae_cpu`), and the VAE's RMS norm.

use candle_core::{DType, Result, Tensor};
use candle_nn::VarBuilder;

/// Per-convolution streaming state, visited in the same order on every chunk.
#[derive(Default)]
pub(super) struct FeatCache {
    slots: Vec<Slot>,
    idx: usize,
}

#[derive(Clone)]
pub(super) enum Slot {
    Empty,
    /// An upsampling time conv that has seen its first chunk (which it skips).
    Started,
    Frames(Tensor),
}

impl FeatCache {
    pub(super) fn next(&mut self) -> &mut Slot {
        if self.idx == self.slots.len() {
            self.slots.push(Slot::Empty);
        }
        self.idx += 1;
        &mut self.slots[self.idx - 1]
    }

    pub(super) fn rewind(&mut self) {
        self.idx = 0;
    }
}

/// `nn.Conv3d` whose time axis is causal (padded on the left only); spatial padding k/2.
pub(super) struct CausalConv3d {
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

/// The dtype a half-precision VAE keeps where the reference computes in f32 (norms, attention
/// scores); other dtypes are kept as they are.
pub(super) fn wide(dt: DType) -> DType {
    match dt {
        DType::BF16 | DType::F16 => DType::F32,
        d => d,
    }
}

/// `f(a, b)` for a convolution or matmul. candle has neither in half precision on the CPU, so
/// there a half op runs in f32 on the half values and rounds its result back: what the GPU
/// kernels do (f32 accumulation, half output), so the CPU tests see the GPU's rounding.
pub(super) fn half_via_f32(
    a: &Tensor,
    b: &Tensor,
    f: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let dt = a.dtype();
    if a.device().is_cpu() && wide(dt) != dt {
        f(&a.to_dtype(DType::F32)?, &b.to_dtype(DType::F32)?)?.to_dtype(dt)
    } else {
        f(a, b)
    }
}

pub(super) fn use_cpu_kernels(vb: &VarBuilder) -> bool {
    vb.device().is_cpu() && vb.dtype() == DType::F32
}

impl CausalConv3d {
    pub(super) fn new(vb: VarBuilder, c_in: usize, c_out: usize, k: [usize; 3]) -> Result<Self> {
        let w = vb.get((c_out, c_in, k[0], k[1], k[2]), "weight")?;
        let bias = vb.get(c_out, "bias")?;
        Self::from_weight(w, bias, use_cpu_kernels(&vb))
    }

    /// A 2D `Conv2d(k, padding=k/2)` as a one-tap causal conv (`[O, C, k, k]` weight).
    pub(super) fn conv2d(w: Tensor, bias: Tensor, cpu: bool) -> Result<Self> {
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
    pub(super) fn conv_frames(&self, xs: &Tensor) -> Result<Tensor> {
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
        half_via_f32(&x, weight, |x, w| x.conv2d(w, self.k / 2, 1, 1, 1))?.broadcast_add(&self.bias)
    }

    /// Streaming forward: the slot holds the last kD-1 input frames (zeros before the start).
    pub(super) fn forward_cached(&self, x: &Tensor, slot: &mut Slot) -> Result<Tensor> {
        self.forward_act(x, None, slot, None)
    }

    /// `conv(silu(norm(x)))` (or `conv(x)` without a norm) with the streaming cache, plus an
    /// optional residual. On the CPU the activation, padding and residual are fused into the
    /// convolution, so no activated copy of the chunk is made.
    pub(super) fn forward_act(
        &self,
        x: &Tensor,
        norm: Option<&RmsNorm>,
        slot: &mut Slot,
        residual: Option<&Tensor>,
    ) -> Result<Tensor> {
        if let Some((taps, bias)) = &self.cpu {
            return self.forward_act_cpu(
                x,
                norm,
                slot,
                residual,
                (taps.as_slice(), bias.as_slice()),
            );
        }
        let (_, c, h, w) = x.dims4()?;
        let ctx = self.kd - 1;
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

    /// [`Self::forward_act`] through the fused CPU f32 kernel: norm, SiLU, left context and
    /// residual are applied while the taps are read.
    fn forward_act_cpu(
        &self,
        x: &Tensor,
        norm: Option<&RmsNorm>,
        slot: &mut Slot,
        residual: Option<&Tensor>,
        (taps, bias): (&[f32], &[f32]),
    ) -> Result<Tensor> {
        let (t, c, h, w) = x.dims4()?;
        let ctx = self.kd - 1;
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
        Tensor::from_vec(out, (t, self.c_out, h, w), x.device())
    }
}

/// `F.normalize` over channels times sqrt(C) times a per-channel gain (the VAE's RMS_norm).
pub(super) struct RmsNorm {
    gamma: Tensor,
    scale: f64,
}

impl RmsNorm {
    pub(super) fn new(vb: VarBuilder, c: usize, images: bool) -> Result<Self> {
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

    /// In f32 for a half-precision input (the sum of squares over hundreds of channels), the
    /// result in the input's dtype.
    pub(super) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dt = x.dtype();
        let x = x.to_dtype(wide(dt))?;
        let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.maximum(1e-12)?;
        (x.broadcast_div(&norm)? * self.scale)?
            .broadcast_mul(&self.gamma.to_dtype(wide(dt))?)?
            .to_dtype(dt)
    }

    pub(super) fn forward_silu(&self, x: &Tensor) -> Result<Tensor> {
        self.forward(x)?.silu()
    }
}
