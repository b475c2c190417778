//! The inputs of one forward, their shape checks, and the patch (un)embedding of the latent
//! streams.

use candle_core::{DType, Device, Tensor};

use super::{DitConfig, DitError, Result, EXTRA_CHANNELS};

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

pub(super) fn expect(
    name: &'static str,
    t: &Tensor,
    shape: &[usize],
    extra_ok: bool,
) -> Result<()> {
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

pub(super) fn with_ones(x: &Tensor) -> Result<Tensor> {
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
pub(super) fn unpatchify(
    x: &Tensor,
    (gt, gh, gw): (usize, usize, usize),
    cfg: &DitConfig,
) -> Result<Tensor> {
    let [pt, ph, pw] = cfg.patch_size;
    let c = cfg.out_dim;
    let x = x.reshape(vec![gt, gh, gw, pt, ph, pw, c])?;
    // fhwpqrc -> cfphqwr
    let x = x.permute(vec![6, 0, 3, 1, 4, 2, 5])?;
    Ok(x.contiguous()?.reshape((c, gt * pt, gh * ph, gw * pw))?)
}
