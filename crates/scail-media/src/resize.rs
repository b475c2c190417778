//! Resize and crop with the reference's arithmetic (PyTorch CPU kernels, float32).
//!
//! The reference resizes through torchvision `resize(..., BICUBIC)` (antialiased, PIL-style
//! kernel a = -0.5, support widened by the scale factor, horizontal pass then vertical pass),
//! CLIP uses `F.interpolate(mode="bicubic")` without antialias (a = -0.75) and the pose/mask
//! stream `F.interpolate(scale_factor=0.5, mode="bilinear")`. The weight formulas below keep
//! PyTorch's mix of float and double intermediates, because the uint8 path rounds the result
//! and a one-ulp change flips a pixel.

use crate::frame::{Image, ImageF32, ImageU8, Tensor};

/// CLIP normalisation of `CLIPModel.visual` (OpenAI constants), the reference's decimal
/// literals rounded to float32 as PyTorch does.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// CLIP input side.
pub const CLIP_SIZE: usize = 224;

/// The target (h, w) the reference CLI uses for a reference image of this size: the requested
/// target is swapped when the reference is portrait; a square reference keeps it.
pub fn oriented_target(ref_h: usize, ref_w: usize, target_hw: (usize, usize)) -> (usize, usize) {
    if ref_h > ref_w {
        (target_hw.1, target_hw.0)
    } else {
        target_hw
    }
}

/// The crop of `resize_for_rectangle_crop(.., "center")`: the size the source is resized to so
/// that it covers the target, and the (top, left) of the centre crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoverCrop {
    pub src_h: usize,
    pub src_w: usize,
    pub resize_h: usize,
    pub resize_w: usize,
    pub top: usize,
    pub left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

pub fn cover_crop(src_h: usize, src_w: usize, target_h: usize, target_w: usize) -> CoverCrop {
    // Python: `w / h > tw / th` in double, then `int(w * th / h)` (truncation).
    let (resize_h, resize_w) =
        if (src_w as f64) / (src_h as f64) > (target_w as f64) / (target_h as f64) {
            (
                target_h,
                ((src_w * target_h) as f64 / src_h as f64) as usize,
            )
        } else {
            (
                ((src_h * target_w) as f64 / src_w as f64) as usize,
                target_w,
            )
        };
    // The truncation can leave a side one short of the target on extreme aspect ratios; the
    // reference would then fail in crop, here the side is clamped so the crop stays inside.
    let resize_h = resize_h.max(target_h);
    let resize_w = resize_w.max(target_w);
    CoverCrop {
        src_h,
        src_w,
        resize_h,
        resize_w,
        top: (resize_h - target_h) / 2,
        left: (resize_w - target_w) / 2,
        out_h: target_h,
        out_w: target_w,
    }
}

/// Taps of one output sample: first source index and weights.
#[derive(Clone, Debug)]
struct Taps {
    start: usize,
    weights: Vec<f32>,
}

// PyTorch's `cubic_convolution1/2` as its x86 build evaluates them: the compiler contracts
// them into fused multiply-adds. Plain mul+add differs by an ulp and flips uint8 rounding at
// .5 (the `pose` fixture has two such pixels).
fn cubic_conv1(x: f32, a: f32) -> f32 {
    ((a + 2.0).mul_add(x, -(a + 3.0)) * x).mul_add(x, 1.0)
}

fn cubic_conv2(x: f32, a: f32) -> f32 {
    a.mul_add(x, -(5.0 * a))
        .mul_add(x, 8.0 * a)
        .mul_add(x, -4.0 * a)
}

fn aa_bicubic_filter(x: f32) -> f32 {
    let x = x.abs();
    if x < 1.0 {
        cubic_conv1(x, -0.5)
    } else if x < 2.0 {
        cubic_conv2(x, -0.5)
    } else {
        0.0
    }
}

/// PyTorch `_compute_indices_min_size_weights_aa` for bicubic (interp_size 4), float32.
fn aa_taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale: f32 = in_size as f32 / out_size as f32;
    let support: f32 = if scale >= 1.0 {
        (2.0f64 * scale as f64) as f32
    } else {
        2.0
    };
    let max_interp = (support.ceil() * 2.0 + 1.0) as i64;
    let invscale: f32 = if scale >= 1.0 {
        (1.0f64 / scale as f64) as f32
    } else {
        1.0
    };
    (0..out_size)
        .map(|i| {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let xmin = ((((center - support) as f64) + 0.5) as i64).max(0);
            let xmax = ((((center + support) as f64) + 0.5) as i64).min(in_size as i64);
            let xsize = (xmax - xmin).clamp(0, max_interp);
            let mut w: Vec<f32> = (0..xsize)
                .map(|j| {
                    let d = ((j + xmin) as f32 - center) as f64 + 0.5;
                    aa_bicubic_filter((d * invscale as f64) as f32)
                })
                .collect();
            let total: f32 = w.iter().fold(0.0f32, |acc, v| acc + v);
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                }
            }
            Taps {
                start: xmin as usize,
                weights: w,
            }
        })
        .collect()
}

/// A pixel sample the resizer reads: converting to f32 is exact for both, so resizing u8
/// directly equals resizing its float copy.
pub trait Sample: Copy + Send + Sync {
    fn f(self) -> f32;
}

impl Sample for u8 {
    #[inline(always)]
    fn f(self) -> f32 {
        self as f32
    }
}

impl Sample for f32 {
    #[inline(always)]
    fn f(self) -> f32 {
        self
    }
}

/// Rows the horizontal pass handles together.
const ROWS: usize = 8;

/// Horizontal pass over a band of `ROWS` rows starting at `y` (rows past the image repeat the
/// last one and are dropped). The band is transposed so the `ROWS` values of one input sample
/// are contiguous: each tap is then one vector multiply-add over the rows, while every output
/// sample still sums its taps in PyTorch's order (so the result is bit-identical).
fn hpass_band<T: Sample>(
    src: &Image<T>,
    y: usize,
    taps: &[Taps],
    tb: &mut Vec<f32>,
    out: &mut [f32],
    out_rows: usize,
) {
    let c = src.channels;
    let row_len = src.width * c;
    tb.clear();
    tb.resize(row_len * ROWS, 0.0);
    let rows: [&[T]; ROWS] = std::array::from_fn(|r| {
        let yy = (y + r).min(src.height - 1);
        &src.data[yy * row_len..(yy + 1) * row_len]
    });
    // Sample-major: the ROWS values of one input sample are written together.
    for (i, dst) in tb.chunks_exact_mut(ROWS).enumerate() {
        for (d, row) in dst.iter_mut().zip(&rows) {
            *d = row[i].f();
        }
    }
    let out_len = taps.len() * c;
    match c {
        3 => hband::<3>(tb, taps, out, out_len, out_rows),
        4 => hband::<4>(tb, taps, out, out_len, out_rows),
        1 => hband::<1>(tb, taps, out, out_len, out_rows),
        _ => {
            for (ox, t) in taps.iter().enumerate() {
                for ch in 0..c {
                    let mut acc = [0.0f32; ROWS];
                    let b0 = (t.start * c + ch) * ROWS;
                    for r in 0..ROWS {
                        acc[r] = tb[b0 + r] * t.weights[0];
                    }
                    for (j, &w) in t.weights.iter().enumerate().skip(1) {
                        let b = ((t.start + j) * c + ch) * ROWS;
                        for r in 0..ROWS {
                            acc[r] += tb[b + r] * w;
                        }
                    }
                    for (r, a) in acc.iter().enumerate().take(out_rows) {
                        out[r * out_len + ox * c + ch] = *a;
                    }
                }
            }
        }
    }
}

/// Dispatch to an AVX2 build of the band kernel where the CPU has it (8 rows = one vector).
/// The arithmetic is the same separate multiply and add either way (Rust never fuses them),
/// so results do not depend on the CPU.
fn hband<const C: usize>(
    tb: &[f32],
    taps: &[Taps],
    out: &mut [f32],
    out_len: usize,
    out_rows: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            unsafe { hband_avx2::<C>(tb, taps, out, out_len, out_rows) };
            return;
        }
    }
    hband_c::<C>(tb, taps, out, out_len, out_rows)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hband_avx2<const C: usize>(
    tb: &[f32],
    taps: &[Taps],
    out: &mut [f32],
    out_len: usize,
    out_rows: usize,
) {
    hband_c::<C>(tb, taps, out, out_len, out_rows)
}

#[inline(always)]
fn hband_c<const C: usize>(
    tb: &[f32],
    taps: &[Taps],
    out: &mut [f32],
    out_len: usize,
    out_rows: usize,
) {
    for (ox, t) in taps.iter().enumerate() {
        let span = &tb[t.start * C * ROWS..(t.start + t.weights.len()) * C * ROWS];
        let mut acc = [[0.0f32; ROWS]; C];
        let w0 = t.weights[0];
        for ch in 0..C {
            for r in 0..ROWS {
                acc[ch][r] = span[ch * ROWS + r] * w0;
            }
        }
        for (px, &w) in span.chunks_exact(C * ROWS).zip(&t.weights).skip(1) {
            for ch in 0..C {
                let v = &px[ch * ROWS..(ch + 1) * ROWS];
                for r in 0..ROWS {
                    acc[ch][r] += v[r] * w;
                }
            }
        }
        for r in 0..out_rows {
            for ch in 0..C {
                out[r * out_len + ox * C + ch] = acc[ch][r];
            }
        }
    }
}

/// Antialiased bicubic resize of an HWC image to `(resize_h, resize_w)`, returning only the
/// window `[top, top+out_h) x [left, left+out_w)`: every output sample is computed on its own,
/// so skipping the cropped-away ones changes nothing. Values are not clamped.
pub fn resize_aa_bicubic_crop<T: Sample>(src: &Image<T>, cc: &CoverCrop) -> ImageF32 {
    let c = src.channels;
    // Horizontal pass first (PyTorch's order), only on the rows the vertical pass reads.
    let htaps: Option<Vec<Taps>> = (cc.resize_w != src.width)
        .then(|| aa_taps(src.width, cc.resize_w)[cc.left..cc.left + cc.out_w].to_vec());
    let vtaps: Option<Vec<Taps>> = (cc.resize_h != src.height)
        .then(|| aa_taps(src.height, cc.resize_h)[cc.top..cc.top + cc.out_h].to_vec());
    let (row_lo, row_hi) = match &vtaps {
        Some(v) => (
            v.iter().map(|t| t.start).min().unwrap_or(0),
            v.iter()
                .map(|t| t.start + t.weights.len())
                .max()
                .unwrap_or(0),
        ),
        None => (cc.top, cc.top + cc.out_h),
    };
    let mid_w = cc.out_w;
    // The intermediate is large (rows x output width): reuse one per thread instead of
    // mapping and zeroing fresh pages for every video frame.
    let mut mid = MID_SCRATCH.with(|m| std::mem::take(&mut *m.borrow_mut()));
    mid.clear();
    mid.resize((row_hi - row_lo) * mid_w * c, 0.0);
    let do_rows = |rows: &mut [f32], y0: usize| {
        let row_len = mid_w * c;
        let n = rows.len() / row_len;
        match &htaps {
            Some(taps) => {
                let mut tb = Vec::new();
                for (b, band) in rows.chunks_mut(ROWS * row_len).enumerate() {
                    let k = band.len() / row_len;
                    hpass_band(src, y0 + b * ROWS, taps, &mut tb, band, k);
                }
            }
            None => {
                for ry in 0..n {
                    let y = y0 + ry;
                    let in_row = &src.data[(y * src.width + cc.left) * c..][..row_len];
                    for (o, v) in rows[ry * row_len..(ry + 1) * row_len]
                        .iter_mut()
                        .zip(in_row)
                    {
                        *o = v.f();
                    }
                }
            }
        }
    };
    parallel_rows(&mut mid, mid_w * c, row_lo, &do_rows);

    let row_len = mid_w * c;
    let mut out = vec![0.0f32; cc.out_h * row_len];
    let do_out = |rows: &mut [f32], y0: usize| {
        for (ry, out_row) in rows.chunks_exact_mut(row_len).enumerate() {
            let oy = y0 + ry;
            match &vtaps {
                Some(taps) => vrow(
                    out_row,
                    &mid[(taps[oy].start - row_lo) * row_len..],
                    &taps[oy].weights,
                ),
                None => {
                    let r = (cc.top + oy - row_lo) * row_len;
                    out_row.copy_from_slice(&mid[r..r + row_len]);
                }
            }
        }
    };
    parallel_rows(&mut out, row_len, 0, &do_out);
    MID_SCRATCH.with(|m| *m.borrow_mut() = mid);
    Image::from_vec(cc.out_w, cc.out_h, c, out)
}

/// One output row of the vertical pass: `rows` holds the input rows from the first tap on.
fn vrow(out_row: &mut [f32], rows: &[f32], weights: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            unsafe { vrow_avx2(out_row, rows, weights) };
            return;
        }
    }
    vrow_impl(out_row, rows, weights)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn vrow_avx2(out_row: &mut [f32], rows: &[f32], weights: &[f32]) {
    vrow_impl(out_row, rows, weights)
}

#[inline(always)]
fn vrow_impl(out_row: &mut [f32], rows: &[f32], weights: &[f32]) {
    let n = out_row.len();
    let w0 = weights[0];
    for (o, v) in out_row.iter_mut().zip(&rows[..n]) {
        *o = v * w0;
    }
    for (j, &w) in weights.iter().enumerate().skip(1) {
        for (o, v) in out_row.iter_mut().zip(&rows[j * n..(j + 1) * n]) {
            *o += v * w;
        }
    }
}

thread_local! {
    static MID_SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f(rows, first_row_index)` over `buf` split into row bands on the available cores.
fn parallel_rows<F>(buf: &mut [f32], row_len: usize, row0: usize, f: &F)
where
    F: Fn(&mut [f32], usize) + Sync,
{
    let rows = buf.len() / row_len.max(1);
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    // Small images are not worth a thread.
    if threads <= 1 || buf.len() < 64 * 1024 {
        f(buf, row0);
        return;
    }
    // Bands of whole `ROWS` so every thread's horizontal pass works on full bands.
    let per = rows.div_ceil(threads).div_ceil(ROWS) * ROWS;
    std::thread::scope(|s| {
        for (i, chunk) in buf.chunks_mut(per * row_len).enumerate() {
            s.spawn(move || f(chunk, row0 + i * per));
        }
    });
}

/// The reference-image path: u8 image -> `ToTensor` (x/255) -> `*2-1` -> antialiased bicubic
/// cover resize -> centre crop. Float result in HWC, not clamped (bicubic may overshoot).
pub fn reference_image_to_model(img: &ImageU8, target_h: usize, target_w: usize) -> ImageF32 {
    let f = Image::from_vec(
        img.width,
        img.height,
        img.channels,
        img.data
            .iter()
            .map(|&v| (v as f32 / 255.0) * 2.0 - 1.0)
            .collect(),
    );
    let cc = cover_crop(img.height, img.width, target_h, target_w);
    resize_aa_bicubic_crop(&f, &cc)
}

/// The video-frame path: uint8 frame resized through float32 (torchvision), clamped to
/// [0, 255] and rounded half-to-even back to uint8, then centre-cropped.
pub fn video_frame_resize_crop(frame: &ImageU8, cc: &CoverCrop) -> ImageU8 {
    let out = resize_aa_bicubic_crop(frame, cc);
    Image::from_vec(
        out.width,
        out.height,
        out.channels,
        out.data.iter().map(|&v| round_u8(v)).collect(),
    )
}

/// Clamp to [0, 255] and round half-to-even. Adding and removing 2^23 rounds a float in
/// [0, 2^23) to an integer in the current (nearest-even) mode: the same as `round_ties_even`
/// without a libm call per sample.
#[inline(always)]
fn round_u8(v: f32) -> u8 {
    const MAGIC: f32 = 8_388_608.0;
    let c = v.clamp(0.0, 255.0);
    ((c + MAGIC) - MAGIC) as u8
}

/// Video normalisation of the CLI: `(x - 127.5) / 127.5` in float32.
pub fn normalize_video_u8(v: u8) -> f32 {
    (v as f32 - 127.5) / 127.5
}

/// Image normalisation of the CLI: `ToTensor` then `*2-1`.
pub fn normalize_image_u8(v: u8) -> f32 {
    (v as f32 / 255.0) * 2.0 - 1.0
}

/// PyTorch `guard_index_and_lambda`.
fn guard_index_and_lambda(real: f32, in_size: usize) -> (i64, f32) {
    let idx = (real.floor() as i64).min(in_size as i64 - 1);
    let lambda = (real - idx as f32).clamp(0.0, 1.0);
    (idx, lambda)
}

/// Bilinear resize (align_corners=false, no antialias) of planes `[N, H, W]` with the given
/// source/destination scale `scale = 1 / scale_factor`, PyTorch's float32 arithmetic.
fn bilinear_planes(
    data: &[f32],
    n: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    (scale_h, scale_w): (f32, f32),
) -> Vec<f32> {
    let idx = |scale: f32, in_size: usize, out: usize| -> Vec<(usize, usize, f32, f32)> {
        (0..out)
            .map(|i| {
                let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
                let (i0, l1) = guard_index_and_lambda(real, in_size);
                let i0 = i0.max(0) as usize;
                let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
                (i0, i1, 1.0 - l1, l1)
            })
            .collect()
    };
    let ys = idx(scale_h, h, oh);
    let xs = idx(scale_w, w, ow);
    let mut out = vec![0.0f32; n * oh * ow];
    for p in 0..n {
        let plane = &data[p * h * w..(p + 1) * h * w];
        let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
        for (oy, &(y0, y1, wy0, wy1)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, wx0, wx1)) in xs.iter().enumerate() {
                let t0 = plane[y0 * w + x0] * wx0 + plane[y0 * w + x1] * wx1;
                let t1 = plane[y1 * w + x0] * wx0 + plane[y1 * w + x1] * wx1;
                o[oy * ow + ox] = t0 * wy0 + t1 * wy1;
            }
        }
    }
    out
}

/// `F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)` over the last two
/// axes of a tensor (all leading axes are planes): output side `floor(side / 2)`.
pub fn half_bilinear(t: &Tensor) -> Tensor {
    let nd = t.shape.len();
    assert!(nd >= 2, "half_bilinear needs at least 2 axes");
    let (h, w) = (t.shape[nd - 2], t.shape[nd - 1]);
    let n: usize = t.shape[..nd - 2].iter().product();
    let (oh, ow) = (h / 2, w / 2);
    let data = bilinear_planes(&t.data, n, (h, w), (oh, ow), (2.0, 2.0));
    let mut shape = t.shape.clone();
    shape[nd - 2] = oh;
    shape[nd - 1] = ow;
    Tensor::new(shape, data)
}

/// PyTorch bicubic (a = -0.75) coefficients for fraction `t`.
fn cubic_coeffs(t: f32) -> [f32; 4] {
    let a = -0.75f32;
    let x2 = 1.0 - t;
    [
        cubic_conv2(t + 1.0, a),
        cubic_conv1(t, a),
        cubic_conv1(x2, a),
        cubic_conv2(x2 + 1.0, a),
    ]
}

fn cubic_idx(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let (i0, lambda) = guard_index_and_lambda(real, in_size);
            let mut ids = [0usize; 4];
            for (j, id) in ids.iter_mut().enumerate() {
                *id = (i0 + j as i64 - 1).clamp(0, in_size as i64 - 1) as usize;
            }
            (ids, cubic_coeffs(lambda))
        })
        .collect()
}

/// `F.interpolate(mode="bicubic", align_corners=False)` without antialias on planes [N, H, W].
pub fn bicubic_planes(
    data: &[f32],
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let ys = cubic_idx(h, oh);
    let xs = cubic_idx(w, ow);
    let mut out = vec![0.0f32; n * oh * ow];
    for p in 0..n {
        let plane = &data[p * h * w..(p + 1) * h * w];
        let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
        for (oy, (yi, wy)) in ys.iter().enumerate() {
            for (ox, (xi, wx)) in xs.iter().enumerate() {
                let row = |y: usize| {
                    let r = &plane[y * w..(y + 1) * w];
                    let mut t = r[xi[0]] * wx[0];
                    for j in 1..4 {
                        t += r[xi[j]] * wx[j];
                    }
                    t
                };
                let mut acc = row(yi[0]) * wy[0];
                for j in 1..4 {
                    acc += row(yi[j]) * wy[j];
                }
                o[oy * ow + ox] = acc;
            }
        }
    }
    out
}

/// CLIP preprocessing of `CLIPModel.visual`: the cropped reference in [-1, 1] (HWC, 3
/// channels) -> bicubic 224x224 -> `*0.5+0.5` -> mean/std. Returns `[1, 3, 224, 224]`.
pub fn clip_preprocess(model_input: &ImageF32) -> Tensor {
    assert_eq!(model_input.channels, 3, "CLIP takes RGB");
    let (h, w) = (model_input.height, model_input.width);
    let chw = model_input.to_chw();
    let mut out = bicubic_planes(&chw, 3, h, w, CLIP_SIZE, CLIP_SIZE);
    let hw = CLIP_SIZE * CLIP_SIZE;
    for (ch, plane) in out.chunks_exact_mut(hw).enumerate() {
        for v in plane {
            *v = ((*v * 0.5 + 0.5) - CLIP_MEAN[ch]) / CLIP_STD[ch];
        }
    }
    Tensor::new(vec![1, 3, CLIP_SIZE, CLIP_SIZE], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_rule() {
        assert_eq!(oriented_target(1080, 1920, (512, 896)), (512, 896));
        assert_eq!(oriented_target(1920, 1080, (512, 896)), (896, 512));
        assert_eq!(oriented_target(700, 700, (512, 896)), (512, 896));
    }

    #[test]
    fn cover_crop_wide_and_tall() {
        // 2048x1080 to 896x512: height fits, width 970 cropped by 37 on the left.
        let c = cover_crop(1080, 2048, 512, 896);
        assert_eq!((c.resize_h, c.resize_w, c.top, c.left), (512, 970, 0, 37));
        let c = cover_crop(1000, 500, 512, 896);
        assert_eq!((c.resize_h, c.resize_w), (1792, 896));
        assert_eq!(c.top, (1792 - 512) / 2);
    }

    #[test]
    fn aa_weights_sum_to_one_and_identity_at_scale_one() {
        for (i, o) in [(300, 256), (120, 64), (150, 168), (2048, 970)] {
            for t in aa_taps(i, o) {
                let s: f32 = t.weights.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{i}->{o}: sum {s}");
                assert!(t.start + t.weights.len() <= i);
            }
        }
        let img = ImageF32::from_vec(4, 3, 1, (0..12).map(|v| v as f32).collect());
        let cc = cover_crop(3, 4, 3, 4);
        assert_eq!(resize_aa_bicubic_crop(&img, &cc), img);
    }

    #[test]
    fn round_u8_is_half_to_even() {
        for i in 0..=5120 {
            let v = -10.0 + i as f32 * 0.05;
            assert_eq!(
                round_u8(v),
                v.clamp(0.0, 255.0).round_ties_even() as u8,
                "{v}"
            );
        }
        assert_eq!(
            (round_u8(252.5), round_u8(253.5), round_u8(0.5)),
            (252, 254, 0)
        );
        assert_eq!(round_u8(f32::NAN), 0);
    }

    #[test]
    fn half_bilinear_averages_2x2() {
        let t = Tensor::new(vec![1, 2, 4], vec![0., 2., 4., 6., 2., 4., 6., 8.]);
        let h = half_bilinear(&t);
        assert_eq!(h.shape, vec![1, 1, 2]);
        assert_eq!(h.data, vec![2.0, 6.0]);
    }
}
