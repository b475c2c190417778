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

    /// Write the band `rows` sample-major into `tb`: `tb[i * ROWS + r] = rows[r][i]`, for the
    /// first `tb.len() / ROWS` samples of each row. Only value conversion, so any faster
    /// layout change gives the same floats.
    fn transpose_band(rows: &[&[Self]; ROWS], tb: &mut [f32]) {
        for (i, dst) in tb.chunks_exact_mut(ROWS).enumerate() {
            for (d, row) in dst.iter_mut().zip(rows) {
                *d = row[i].f();
            }
        }
    }
}

impl Sample for u8 {
    #[inline(always)]
    fn f(self) -> f32 {
        self as f32
    }

    fn transpose_band(rows: &[&[u8]; ROWS], tb: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 support was checked just above.
                let done = unsafe { transpose_u8_avx2(rows, tb) };
                for i in done..tb.len() / ROWS {
                    for (r, row) in rows.iter().enumerate() {
                        tb[i * ROWS + r] = row[i] as f32;
                    }
                }
                return;
            }
        }
        for (i, dst) in tb.chunks_exact_mut(ROWS).enumerate() {
            for (d, row) in dst.iter_mut().zip(rows) {
                *d = row[i] as f32;
            }
        }
    }
}

impl Sample for f32 {
    #[inline(always)]
    fn f(self) -> f32 {
        self
    }
}

/// 8x8 blocks of the u8 band widened to f32 and transposed in registers (the scalar loop is a
/// strided gather per sample). Returns how many samples per row it handled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transpose_u8_avx2(rows: &[&[u8]; ROWS], tb: &mut [f32]) -> usize {
    use std::arch::x86_64::*;
    let n = tb.len() / ROWS;
    let blocks = n / 8;
    for b in 0..blocks {
        let i = b * 8;
        let v: [__m256; 8] = std::array::from_fn(|r| {
            let row = &rows[r][i..i + 8];
            // SAFETY: `row` holds 8 bytes, read unaligned.
            let bytes = unsafe { _mm_loadl_epi64(row.as_ptr() as *const __m128i) };
            _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes))
        });
        let cols = transpose8(v);
        let dst = &mut tb[i * ROWS..(i + 8) * ROWS];
        for (k, c) in cols.iter().enumerate() {
            // SAFETY: `dst` holds 8 * ROWS floats; unaligned store of 8.
            unsafe { _mm256_storeu_ps(dst[k * ROWS..].as_mut_ptr(), *c) };
        }
    }
    blocks * 8
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
    ot: &mut Vec<f32>,
    out: &mut [f32],
    out_rows: usize,
) {
    let c = src.channels;
    let row_len = src.width * c;
    // Every element is overwritten below: no clearing (it was a large memset per band).
    tb.resize(row_len * ROWS, 0.0);
    let rows: [&[T]; ROWS] = std::array::from_fn(|r| {
        let yy = (y + r).min(src.height - 1);
        &src.data[yy * row_len..(yy + 1) * row_len]
    });
    T::transpose_band(&rows, tb);
    let out_len = taps.len() * c;
    let mut hb = |f: fn(&[f32], &[Taps], &mut [f32])| {
        ot.resize(out_len * ROWS, 0.0);
        f(tb, taps, ot);
        untranspose(ot, out, out_len, out_rows);
    };
    match c {
        3 => hb(hband::<3>),
        4 => hb(hband::<4>),
        1 => hb(hband::<1>),
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
fn hband<const C: usize>(tb: &[f32], taps: &[Taps], ot: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            unsafe { hband_avx2::<C>(tb, taps, ot) };
            return;
        }
    }
    hband_c::<C>(tb, taps, ot)
}

/// Sample-major band `ot` (`ot[i * ROWS + r]`) back to `out_rows` rows of `out_len` samples.
fn untranspose(ot: &[f32], out: &mut [f32], out_len: usize, out_rows: usize) {
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            done = unsafe { untranspose_avx2(ot, out, out_len, out_rows) };
        }
    }
    for i in done..out_len {
        for r in 0..out_rows {
            out[r * out_len + i] = ot[i * ROWS + r];
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn untranspose_avx2(ot: &[f32], out: &mut [f32], out_len: usize, out_rows: usize) -> usize {
    use std::arch::x86_64::*;
    let blocks = out_len / 8;
    for b in 0..blocks {
        let i = b * 8;
        let src = &ot[i * ROWS..(i + 8) * ROWS];
        // SAFETY: `src` holds 8 * ROWS floats, read unaligned.
        let v: [__m256; 8] =
            std::array::from_fn(|k| unsafe { _mm256_loadu_ps(src[k * ROWS..].as_ptr()) });
        let rows = transpose8(v);
        for (r, row) in rows.iter().enumerate().take(out_rows) {
            let dst = &mut out[r * out_len + i..r * out_len + i + 8];
            // SAFETY: `dst` holds 8 floats; unaligned store.
            unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), *row) };
        }
    }
    blocks * 8
}

/// 8x8 float transpose in registers: result k holds element k of every input.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
fn transpose8(v: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn hband_avx2<const C: usize>(tb: &[f32], taps: &[Taps], ot: &mut [f32]) {
    hband_c::<C>(tb, taps, ot)
}

#[inline(always)]
fn hband_c<const C: usize>(tb: &[f32], taps: &[Taps], ot: &mut [f32]) {
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
        // Sample-major like the input band: one vector store per channel; `untranspose`
        // turns the band back into rows.
        for (ch, a) in acc.iter().enumerate() {
            ot[(ox * C + ch) * ROWS..(ox * C + ch + 1) * ROWS].copy_from_slice(a);
        }
    }
}

/// The cover resize + crop of one source size, planned once: the tap tables of both passes
/// (restricted to the kept window) and the reusable intermediate buffer. Resizing many frames
/// of a clip through one `FrameResizer` gives the same results as the one-shot functions.
pub struct FrameResizer {
    cc: CoverCrop,
    htaps: Option<Vec<Taps>>,
    vtaps: Option<Vec<Taps>>,
    row_hi: usize,
    /// Per-band working buffers kept between frames (fresh ones are mapped and zeroed by the
    /// kernel for every frame).
    scratch: std::sync::Mutex<Vec<Scratch>>,
}

#[derive(Default)]
struct Scratch {
    tb: Vec<f32>,
    ot: Vec<f32>,
    win: Vec<f32>,
    row: Vec<f32>,
}

impl FrameResizer {
    pub fn new(cc: &CoverCrop) -> Self {
        // Horizontal pass first (PyTorch's order), only on the rows the vertical pass reads.
        let htaps = (cc.resize_w != cc.src_w)
            .then(|| aa_taps(cc.src_w, cc.resize_w)[cc.left..cc.left + cc.out_w].to_vec());
        let vtaps = (cc.resize_h != cc.src_h)
            .then(|| aa_taps(cc.src_h, cc.resize_h)[cc.top..cc.top + cc.out_h].to_vec());
        // The end of the rows any output reads.
        let row_hi = match &vtaps {
            Some(v) => v
                .iter()
                .map(|t| t.start + t.weights.len())
                .max()
                .unwrap_or(0),
            None => cc.top + cc.out_h,
        };
        FrameResizer {
            cc: *cc,
            htaps,
            vtaps,
            row_hi,
            scratch: std::sync::Mutex::new(Vec::new()),
        }
    }

    pub fn cover_crop(&self) -> &CoverCrop {
        &self.cc
    }

    /// The video-frame arithmetic of [`video_frame_resize_crop`] (float resize, clamp, round
    /// half-to-even), written straight into the uint8 output row by row.
    pub fn resize_u8(&mut self, frame: &ImageU8) -> ImageU8 {
        self.run(frame, &|out: &mut [u8], row: &[f32]| round_row(out, row))
    }

    /// [`resize_aa_bicubic_crop`] with the planned tables.
    pub fn resize_f32<T: Sample>(&mut self, src: &Image<T>) -> ImageF32 {
        self.run(src, &|out: &mut [f32], row: &[f32]| {
            out.copy_from_slice(row)
        })
    }

    fn run<T: Sample, U, S>(&mut self, src: &Image<T>, store: &S) -> Image<U>
    where
        U: Copy + Default + Send,
        S: Fn(&mut [U], &[f32]) + Sync,
    {
        let cc = &self.cc;
        assert_eq!(
            (src.height, src.width),
            (cc.src_h, cc.src_w),
            "frame size differs from the planned resize"
        );
        let row_len = cc.out_w * src.channels;
        let mut out = vec![U::default(); cc.out_h * row_len];
        let this = &*self;
        let do_out = |rows: &mut [U], y0: usize| this.out_band(src, rows, y0, store);
        parallel_rows(&mut out, row_len, 0, &do_out);
        Image::from_vec(cc.out_w, cc.out_h, src.channels, out)
    }

    /// Output rows `y0..` of `rows`. The horizontal pass runs just ahead of the vertical one
    /// over a sliding window of intermediate rows, so they are read back from cache rather
    /// than memory. Each intermediate row is the same whichever band computes it.
    fn out_band<T: Sample, U, S>(&self, src: &Image<T>, rows: &mut [U], y0: usize, store: &S)
    where
        S: Fn(&mut [U], &[f32]),
    {
        let cc = &self.cc;
        let c = src.channels;
        let row_len = cc.out_w * c;
        let mut sc = self
            .scratch
            .lock()
            .map(|mut v| v.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        let Scratch {
            tb,
            ot,
            win,
            row: scratch,
        } = &mut sc;
        scratch.resize(row_len, 0.0);
        win.clear();
        let (mut wlo, mut whi) = (0usize, 0usize);
        for (ry, out_row) in rows.chunks_exact_mut(row_len).enumerate() {
            let oy = y0 + ry;
            let (lo, hi) = match &self.vtaps {
                Some(t) => (t[oy].start, t[oy].start + t[oy].weights.len()),
                None => (cc.top + oy, cc.top + oy + 1),
            };
            if lo < wlo || lo >= whi {
                win.clear();
                (wlo, whi) = (lo, lo);
            } else if lo - wlo >= 2 * ROWS {
                // Tap starts never decrease: rows below `lo` are done. Dropped in batches so
                // the kept rows move rarely.
                win.drain(..(lo - wlo) * row_len);
                wlo = lo;
            }
            while whi < hi {
                // Whole bands ahead (the kernel computes 8 rows anyway), within the rows any
                // output reads.
                let k = ROWS.min(self.row_hi - whi);
                let at = win.len();
                win.resize(at + k * row_len, 0.0);
                let dst = &mut win[at..];
                match &self.htaps {
                    Some(taps) => hpass_band(src, whi, taps, tb, ot, dst, k),
                    None => {
                        for (r, d) in dst.chunks_exact_mut(row_len).enumerate() {
                            let in_row = &src.data[((whi + r) * src.width + cc.left) * c..];
                            for (o, v) in d.iter_mut().zip(&in_row[..row_len]) {
                                *o = v.f();
                            }
                        }
                    }
                }
                whi += k;
            }
            let base = &win[(lo - wlo) * row_len..];
            match &self.vtaps {
                Some(t) => {
                    vrow(scratch, base, &t[oy].weights);
                    store(out_row, scratch);
                }
                None => store(out_row, &base[..row_len]),
            }
        }
        if let Ok(mut v) = self.scratch.lock() {
            v.push(sc);
        }
    }
}

/// Antialiased bicubic resize of an HWC image to `(resize_h, resize_w)`, returning only the
/// window `[top, top+out_h) x [left, left+out_w)`: every output sample is computed on its own,
/// so skipping the cropped-away ones changes nothing. Values are not clamped.
pub fn resize_aa_bicubic_crop<T: Sample>(src: &Image<T>, cc: &CoverCrop) -> ImageF32 {
    let cc = CoverCrop {
        src_h: src.height,
        src_w: src.width,
        ..*cc
    };
    FrameResizer::new(&cc).resize_f32(src)
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

/// [`round_u8`] over a row, built for AVX2 where present (the clamp and the 2^23 trick
/// vectorise; results are the same).
fn round_row(out: &mut [u8], row: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: AVX2 support was checked just above.
            unsafe { round_row_avx2(out, row) };
            return;
        }
    }
    round_row_impl(out, row)
}

/// 32 samples at a time: max/min against 0 and 255 (a NaN becomes 0, as in `round_u8`), the
/// same 2^23 rounding, then packed to bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn round_row_avx2(out: &mut [u8], row: &[f32]) {
    use std::arch::x86_64::*;
    let n = out.len().min(row.len());
    let blocks = n / 32;
    let zero = _mm256_setzero_ps();
    let max = _mm256_set1_ps(255.0);
    let magic = _mm256_set1_ps(8_388_608.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..blocks {
        let src = &row[b * 32..b * 32 + 32];
        let q: [__m256i; 4] = std::array::from_fn(|k| {
            // SAFETY: `src` holds 32 floats, read unaligned.
            let v = unsafe { _mm256_loadu_ps(src[k * 8..].as_ptr()) };
            // `max_ps(v, 0)` returns 0 when v is NaN.
            let c = _mm256_min_ps(_mm256_max_ps(v, zero), max);
            _mm256_cvttps_epi32(_mm256_sub_ps(_mm256_add_ps(c, magic), magic))
        });
        let ab = _mm256_packus_epi32(q[0], q[1]);
        let cd = _mm256_packus_epi32(q[2], q[3]);
        let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(ab, cd), order);
        let dst = &mut out[b * 32..b * 32 + 32];
        // SAFETY: `dst` holds 32 bytes; unaligned store.
        unsafe { _mm256_storeu_si256(dst.as_mut_ptr() as *mut __m256i, bytes) };
    }
    round_row_impl(&mut out[blocks * 32..n], &row[blocks * 32..n])
}

#[inline(always)]
fn round_row_impl(out: &mut [u8], row: &[f32]) {
    for (o, &v) in out.iter_mut().zip(row) {
        *o = round_u8(v);
    }
}

/// Runs `f(rows, first_row_index)` over `buf` split into row bands on the available cores.
fn parallel_rows<U, F>(buf: &mut [U], row_len: usize, row0: usize, f: &F)
where
    U: Send,
    F: Fn(&mut [U], usize) + Sync,
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
/// [0, 255] and rounded half-to-even back to uint8, then centre-cropped. For many frames of
/// one size, a [`FrameResizer`] plans once.
pub fn video_frame_resize_crop(frame: &ImageU8, cc: &CoverCrop) -> ImageU8 {
    let cc = CoverCrop {
        src_h: frame.height,
        src_w: frame.width,
        ..*cc
    };
    FrameResizer::new(&cc).resize_u8(frame)
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

    /// A deterministic pseudo-random u8 image (xorshift), no fixture needed.
    fn noise_image(w: usize, h: usize, c: usize, seed: u32) -> ImageU8 {
        let mut x = seed | 1;
        let data = (0..w * h * c)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        ImageU8::from_vec(w, h, c, data)
    }

    #[test]
    fn vector_rounding_matches_scalar() {
        // Ties, out-of-range, NaN, infinities, -0, and a length that leaves a scalar tail.
        let mut row: Vec<f32> = (0..=1300).map(|i| -20.0 + i as f32 * 0.25).collect();
        row.extend([
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            254.5,
            253.5,
        ]);
        let mut out = vec![0u8; row.len()];
        round_row(&mut out, &row);
        for (o, v) in out.iter().zip(&row) {
            assert_eq!(*o, round_u8(*v), "{v}");
        }
    }

    #[test]
    fn vector_transpose_matches_scalar() {
        // 37 pixels x 3 channels: 13 whole blocks of 8 samples and a tail.
        let img = noise_image(37, ROWS, 3, 7);
        let len = 37 * 3;
        let rows: [&[u8]; ROWS] = std::array::from_fn(|r| &img.data[r * len..(r + 1) * len]);
        let mut fast = vec![0.0f32; len * ROWS];
        u8::transpose_band(&rows, &mut fast);
        for i in 0..len {
            for r in 0..ROWS {
                assert_eq!(fast[i * ROWS + r], rows[r][i] as f32);
            }
        }
        let mut back = vec![0.0f32; len * 5];
        untranspose(&fast, &mut back, len, 5);
        for r in 0..5 {
            for i in 0..len {
                assert_eq!(back[r * len + i], rows[r][i] as f32);
            }
        }
    }

    /// The two passes written plainly (whole intermediate, one sample at a time, taps summed
    /// in order): what the banded, windowed, threaded kernels must reproduce bit for bit.
    fn naive_resize(img: &ImageU8, cc: &CoverCrop) -> Vec<f32> {
        let c = img.channels;
        let ht = aa_taps(img.width, cc.resize_w);
        let vt = aa_taps(img.height, cc.resize_h);
        let mut mid = vec![0.0f32; img.height * cc.resize_w * c];
        for y in 0..img.height {
            for (ox, t) in ht.iter().enumerate() {
                for ch in 0..c {
                    let mut acc = img.pixel(t.start, y)[ch] as f32 * t.weights[0];
                    for (j, &w) in t.weights.iter().enumerate().skip(1) {
                        acc += img.pixel(t.start + j, y)[ch] as f32 * w;
                    }
                    mid[(y * cc.resize_w + ox) * c + ch] = acc;
                }
            }
        }
        let mut out = Vec::new();
        for t in &vt[cc.top..cc.top + cc.out_h] {
            for ox in cc.left..cc.left + cc.out_w {
                for ch in 0..c {
                    let at = |y: usize| mid[(y * cc.resize_w + ox) * c + ch];
                    let mut acc = at(t.start) * t.weights[0];
                    for (j, &w) in t.weights.iter().enumerate().skip(1) {
                        acc += at(t.start + j) * w;
                    }
                    out.push(acc);
                }
            }
        }
        out
    }

    #[test]
    fn fast_resize_matches_plain_passes() {
        // Large enough for the two-thread split; a wide and a tall source (crop on each axis).
        for (w, h, tw, th) in [(517, 391, 180, 128), (203, 421, 96, 160)] {
            let img = noise_image(w, h, 3, 5);
            let cc = cover_crop(h, w, th, tw);
            let want = naive_resize(&img, &cc);
            assert_eq!(resize_aa_bicubic_crop(&img, &cc).data, want, "{w}x{h}");
            let got = FrameResizer::new(&cc).resize_u8(&img);
            let rounded: Vec<u8> = want.iter().map(|&v| round_u8(v)).collect();
            assert_eq!(got.data, rounded, "{w}x{h}");
        }
    }

    #[test]
    fn planned_resizer_matches_one_shot_paths() {
        // Odd sizes (taps that end at the border, partial bands) and a reused plan.
        let cc = cover_crop(133, 301, 64, 96);
        let mut plan = FrameResizer::new(&cc);
        for seed in [3, 11] {
            let img = noise_image(301, 133, 3, seed);
            let via_f32 = resize_aa_bicubic_crop(&img.to_f32(), &cc);
            let want: Vec<u8> = via_f32.data.iter().map(|&v| round_u8(v)).collect();
            let got = plan.resize_u8(&img);
            assert_eq!((got.width, got.height), (96, 64));
            assert_eq!(got.data, want);
            assert_eq!(video_frame_resize_crop(&img, &cc), got);
            assert_eq!(resize_aa_bicubic_crop(&img, &cc), via_f32);
        }
    }

    #[test]
    fn half_bilinear_averages_2x2() {
        let t = Tensor::new(vec![1, 2, 4], vec![0., 2., 4., 6., 2., 4., 6., 8.]);
        let h = half_bilinear(&t);
        assert_eq!(h.shape, vec![1, 1, 2]);
        assert_eq!(h.data, vec![2.0, 6.0]);
    }
}
