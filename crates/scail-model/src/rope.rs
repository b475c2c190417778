//! SCAIL-2's 3-segment rotary position embedding.
//!
//! Each head vector holds `head_dim / 2` complex slots (interleaved pairs), split into temporal,
//! height and width groups of sizes `(c - 2*(c/3), c/3, c/3)`. The token sequence is
//! `[additional refs | ref | video | pose]`; every segment gets its own (t, h, w) position offsets
//! (see `model.md` §2), and the half-resolution pose stream uses 2×2 average-pooled factors of the
//! full-resolution grid, which are deliberately *not* of unit modulus.
//!
//! Factors are computed in f64 (as the reference does) and rounded once to f32 for the rotation.

use candle_core::{DType, Device, Tensor};

/// Rows of the reference's frequency table: positions (incl. the +120 shifts) must stay below.
pub const MAX_POSITIONS: usize = 8192;
/// Offset the reference adds to the H axis of reference tokens in replacement mode and to the W
/// axis of pose tokens.
pub const SEGMENT_SHIFT: usize = 120;

#[derive(Debug, thiserror::Error)]
pub enum RopeError {
    #[error("head_dim {0} must be even and at least 6 (3 axis groups of complex pairs)")]
    HeadDim(usize),
    #[error("rope position {pos} on axis {axis} exceeds the {MAX_POSITIONS}-row frequency table")]
    OutOfTable { axis: &'static str, pos: usize },
    #[error("pose stream needs an even patch grid, got h={h} w={w}")]
    OddGrid { h: usize, w: usize },
    #[error("input of shape {0:?} is not [b, heads, seq, head_dim] with seq matching the tables")]
    Shape(Vec<usize>),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

type Result<T> = std::result::Result<T, RopeError>;

/// Complex slots per axis group for a head dimension: (t, h, w).
pub fn axis_slots(head_dim: usize) -> Result<[usize; 3]> {
    if !head_dim.is_multiple_of(2) || head_dim < 6 {
        return Err(RopeError::HeadDim(head_dim));
    }
    let c = head_dim / 2;
    Ok([c - 2 * (c / 3), c / 3, c / 3])
}

/// Inverse frequencies of one axis group: `1 / 10000^(2k / d_g)` with `d_g` twice the group size,
/// computed exactly like the reference (f64 power, then reciprocal).
fn inv_freqs(slots: usize) -> Vec<f64> {
    let dim = (2 * slots) as f64;
    (0..slots)
        .map(|k| 1.0 / 10000f64.powf((2 * k) as f64 / dim))
        .collect()
}

/// The reference's complex frequency table for positions `0..rows`: `[rows][c]` (cos, sin) in
/// f64, the three axis groups concatenated per row.
pub fn freq_table(head_dim: usize, rows: usize) -> Result<Vec<Vec<(f64, f64)>>> {
    let slots = axis_slots(head_dim)?;
    let ladders: Vec<Vec<f64>> = slots.iter().map(|&s| inv_freqs(s)).collect();
    Ok((0..rows)
        .map(|n| {
            ladders
                .iter()
                .flat_map(|l| l.iter().map(move |f| polar(n as f64 * f)))
                .collect()
        })
        .collect())
}

fn polar(angle: f64) -> (f64, f64) {
    (angle.cos(), angle.sin())
}

/// Complex factors of a run of tokens: `rows × slots` values, f64.
#[derive(Debug, Clone)]
pub struct Factors {
    pub rows: usize,
    pub slots: usize,
    pub re: Vec<f64>,
    pub im: Vec<f64>,
}

impl Factors {
    fn with_capacity(rows: usize, slots: usize) -> Self {
        Self {
            rows,
            slots,
            re: Vec::with_capacity(rows * slots),
            im: Vec::with_capacity(rows * slots),
        }
    }

    /// Interleaved `(re, im)` per slot as an f32 tensor `[rows, 2*slots]`, the layout of the
    /// fixtures' `factors_*` tables.
    pub fn interleaved(&self, device: &Device) -> Result<Tensor> {
        let v: Vec<f32> = self
            .re
            .iter()
            .zip(&self.im)
            .flat_map(|(&r, &i)| [r as f32, i as f32])
            .collect();
        Ok(Tensor::from_vec(v, (self.rows, 2 * self.slots), device)?)
    }

    fn append(&mut self, other: &Factors) {
        self.rows += other.rows;
        self.re.extend_from_slice(&other.re);
        self.im.extend_from_slice(&other.im);
    }
}

/// Factors of an `f × h × w` grid (row-major) whose positions start at `(sf, sh, sw)`.
pub fn grid_factors(
    head_dim: usize,
    (f, h, w): (usize, usize, usize),
    (sf, sh, sw): (usize, usize, usize),
) -> Result<Factors> {
    let slots = axis_slots(head_dim)?;
    for (axis, end) in [("t", sf + f), ("h", sh + h), ("w", sw + w)] {
        if end > MAX_POSITIONS {
            return Err(RopeError::OutOfTable { axis, pos: end - 1 });
        }
    }
    let ladders: Vec<Vec<f64>> = slots.iter().map(|&s| inv_freqs(s)).collect();
    let c = head_dim / 2;
    let mut out = Factors::with_capacity(f * h * w, c);
    for ti in 0..f {
        for hi in 0..h {
            for wi in 0..w {
                let pos = [sf + ti, sh + hi, sw + wi];
                for (ladder, &p) in ladders.iter().zip(&pos) {
                    for fr in ladder {
                        let (re, im) = polar(p as f64 * fr);
                        out.re.push(re);
                        out.im.push(im);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// 2×2 average pool (real and imaginary parts separately) of the factors of an `f × h × w` grid.
pub fn pool2x2(g: &Factors, (f, h, w): (usize, usize, usize)) -> Result<Factors> {
    if !h.is_multiple_of(2) || !w.is_multiple_of(2) {
        return Err(RopeError::OddGrid { h, w });
    }
    let c = g.slots;
    let (h2, w2) = (h / 2, w / 2);
    let mut out = Factors::with_capacity(f * h2 * w2, c);
    let idx = |t: usize, y: usize, x: usize, s: usize| ((t * h + y) * w + x) * c + s;
    for t in 0..f {
        for y in 0..h2 {
            for x in 0..w2 {
                for s in 0..c {
                    let cells = [
                        idx(t, 2 * y, 2 * x, s),
                        idx(t, 2 * y, 2 * x + 1, s),
                        idx(t, 2 * y + 1, 2 * x, s),
                        idx(t, 2 * y + 1, 2 * x + 1, s),
                    ];
                    out.re
                        .push(cells.iter().map(|&i| g.re[i]).sum::<f64>() / 4.0);
                    out.im
                        .push(cells.iter().map(|&i| g.im[i]).sum::<f64>() / 4.0);
                }
            }
        }
    }
    Ok(out)
}

/// Where the tokens of one DiT forward sit: the video patch grid plus the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScailRope {
    pub head_dim: usize,
    /// Video patch grid (T, h, w); the pose stream is (T, h/2, w/2).
    pub grid: (usize, usize, usize),
    /// Number of additional reference frames (one patch frame each).
    pub n_additional_refs: usize,
    pub replace: bool,
}

/// Per-segment factors, in sequence order.
#[derive(Debug, Clone)]
pub struct SegmentFactors {
    pub additional_ref: Factors,
    pub reference: Factors,
    pub video: Factors,
    /// Full-resolution pose grid before pooling (with the pose shifts).
    pub pose_unpooled: Factors,
    pub pose: Factors,
}

impl ScailRope {
    /// Sequence length: additional refs + ref + video + pose tokens.
    pub fn seq_len(&self) -> usize {
        let (t, h, w) = self.grid;
        (self.n_additional_refs + 1 + t) * h * w + t * (h / 2) * (w / 2)
    }

    pub fn segments(&self) -> Result<SegmentFactors> {
        let (t, h, w) = self.grid;
        let n = self.n_additional_refs;
        let ref_h = if self.replace { SEGMENT_SHIFT } else { 0 };
        let video_t = n + usize::from(!self.replace);
        let hd = self.head_dim;
        let additional_ref = grid_factors(hd, (n, h, w), (0, ref_h, 0))?;
        let reference = grid_factors(hd, (1, h, w), (n, ref_h, 0))?;
        let video = grid_factors(hd, (t, h, w), (video_t, 0, 0))?;
        let pose_unpooled = grid_factors(hd, (t, h, w), (video_t, 0, SEGMENT_SHIFT))?;
        let pose = pool2x2(&pose_unpooled, (t, h, w))?;
        Ok(SegmentFactors {
            additional_ref,
            reference,
            video,
            pose_unpooled,
            pose,
        })
    }

    /// The whole sequence's factors.
    pub fn factors(&self) -> Result<Factors> {
        let s = self.segments()?;
        let mut all = Factors::with_capacity(0, self.head_dim / 2);
        for seg in [&s.additional_ref, &s.reference, &s.video, &s.pose] {
            all.append(seg);
        }
        Ok(all)
    }

    /// `(cos, sin)` tables `[seq_len, head_dim/2]` for [`apply`], rounded once from f64 to `dtype`
    /// (f32 to keep the reference's precision; the bf16 path still rotates in f32).
    pub fn tables(&self, dtype: DType, device: &Device) -> Result<(Tensor, Tensor)> {
        let f = self.factors()?;
        let shape = (f.rows, f.slots);
        let cos = Tensor::from_vec(f.re, shape, &Device::Cpu)?;
        let sin = Tensor::from_vec(f.im, shape, &Device::Cpu)?;
        Ok((
            cos.to_dtype(dtype)?.to_device(device)?,
            sin.to_dtype(dtype)?.to_device(device)?,
        ))
    }
}

/// Rotates `x` `[b, heads, seq, head_dim]` (interleaved pairs) by the complex factors `cos + i sin`
/// `[seq, head_dim/2]`; general complex multiplication, so pooled non-unit factors work too.
pub fn apply(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    if dims.len() != 4 || cos.dims() != [dims[2], dims[3] / 2] {
        return Err(RopeError::Shape(dims));
    }
    Ok(candle_nn::rotary_emb::rope_i(&x.contiguous()?, cos, sin)?)
}
