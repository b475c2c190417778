//! The planned cover resize of whole frames ([`FrameResizer`]): horizontal bands feed a
//! sliding window the vertical pass reads, rows split over threads; and the image and
//! video-frame paths built on it.

use super::aa_taps::{aa_taps, Taps};
use super::band::{hpass_band, Sample, ROWS};
use super::crop::{cover_crop, CoverCrop};
use crate::frame::{Image, ImageF32, ImageU8};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::testing::noise_image;

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
}
