//! The OpenCV filters Stage A applies to RGB8 frames (DWPose's `resize_image` and letterbox,
//! palette masks and pose videos). They live here so Stage A and the media code share one
//! image type; each follows the arithmetic of the OpenCV function it reproduces.

use crate::frame::{Image, ImageU8};

impl ImageU8 {
    /// Bilinear resize as OpenCV's `cv2.resize(..., INTER_LINEAR)` computes it on 8-bit
    /// images, bit for bit: half-pixel centres, weights rounded to 11-bit fixed point, a
    /// horizontal pass into 32-bit rows (edge columns clamped), and its vectorised vertical
    /// pass (each row pre-shifted by 4, high halves of the 16-bit products, rounded by 2
    /// bits; edge rows clipped). Exact halving in both axes is OpenCV's `INTER_AREA`, as
    /// OpenCV itself switches.
    pub fn resize_bilinear(&self, width: usize, height: usize) -> ImageU8 {
        if self.width == 2 * width && self.height == 2 * height {
            return self.resize_area(width, height);
        }
        let ch = self.channels;
        let (sw, sh) = (self.width, self.height);
        let xs = cv_linear_taps(sw, width, true);
        let ys = cv_linear_taps(sh, height, false);
        // Horizontal pass over every source row (2048 x pixel scale).
        let mut rows = vec![0i32; sh * width * ch];
        for y in 0..sh {
            let src = &self.data[y * sw * ch..(y + 1) * sw * ch];
            let dst = &mut rows[y * width * ch..(y + 1) * width * ch];
            for (dx, &(sx, [a0, a1])) in xs.iter().enumerate() {
                let sx = sx as usize;
                for c in 0..ch {
                    let s0 = src[sx * ch + c] as i32;
                    dst[dx * ch + c] = if sx + 1 >= sw {
                        s0 * CV_ONE
                    } else {
                        s0 * a0 + src[(sx + 1) * ch + c] as i32 * a1
                    };
                }
            }
        }
        let stride = width * ch;
        let mut out = vec![0u8; height * stride];
        let row = |r: i64| {
            let r = r.clamp(0, sh as i64 - 1) as usize;
            &rows[r * stride..(r + 1) * stride]
        };
        for (dy, &(sy, [b0, b1])) in ys.iter().enumerate() {
            let (r0, r1) = (row(sy), row(sy + 1));
            let mul_hi = |v: i32, b: i32| ((v >> 4) * b) >> 16;
            for ((o, &v0), &v1) in out[dy * stride..(dy + 1) * stride]
                .iter_mut()
                .zip(r0)
                .zip(r1)
            {
                *o = ((mul_hi(v0, b0) + mul_hi(v1, b1) + 2) >> 2).clamp(0, 255) as u8;
            }
        }
        Image::from_vec(width, height, ch, out)
    }

    /// Nearest-neighbour resize: keeps palette colours exact (used for mask videos).
    pub fn resize_nearest(&self, width: usize, height: usize) -> ImageU8 {
        let mut out = ImageU8::new(width, height, self.channels);
        for y in 0..height {
            let sy = nearest_src(y, height, self.height);
            for x in 0..width {
                let sx = nearest_src(x, width, self.width);
                out.pixel_mut(x, y).copy_from_slice(self.pixel(sx, sy));
            }
        }
        out
    }

    /// The result of a resize that needs no filter: a copy at equal size, black when there is
    /// nothing to sample from.
    fn trivial_resize(&self, width: usize, height: usize) -> Option<ImageU8> {
        if (width, height) == (self.width, self.height) {
            Some(self.clone())
        } else if self.width == 0 || self.height == 0 {
            Some(ImageU8::new(width, height, self.channels))
        } else {
            None
        }
    }

    /// OpenCV `INTER_AREA` resize, the filter the reference's `resize_image` uses when it
    /// shrinks a frame for DWPose, so scail's DWPose sees the reference's pixels. Written
    /// here (this and [`Self::resize_lanczos4`]) so no native image library is needed for
    /// two filters; the rounding details below were found by comparing with
    /// `cv2.resize` outputs.
    ///
    /// Shrinking (or keeping) both sides, each output pixel is the exact area-weighted mean
    /// of the source pixels under its footprint, separable. The weights are whole multiples
    /// of `1 / src` per axis, so the mean is computed exactly in integers; exact halves
    /// round to even, except at a 2x factor on both axes, where OpenCV's fast path rounds
    /// them up. Equal size is a copy. (OpenCV sums non-integer factors in `f32`, so a
    /// pixel within float error of a half may come out 1 apart: ~0.2% at 1280x704.)
    ///
    /// When a side grows (possible for the long side after the 64-rounding), OpenCV uses a
    /// two-tap filter on both axes instead: source pixel `floor(d * scale)` and the next,
    /// the second weighted by how far output pixel `d` reaches past the first's far edge.
    /// On a growing axis that is the exact overlap; on a shrinking one it is not a box
    /// filter. Its 11-bit fixed-point arithmetic is reproduced too (bit-exact against
    /// OpenCV 5.0 on x86-64 when this was written).
    pub fn resize_area(&self, width: usize, height: usize) -> ImageU8 {
        if let Some(done) = self.trivial_resize(width, height) {
            return done;
        }
        if width <= self.width && height <= self.height {
            let den = self.width as i64 * self.height as i64;
            let half_up = self.width == 2 * width && self.height == 2 * height;
            resample_separable(
                self,
                width,
                height,
                area_taps,
                |h, q| h * q,
                |v| div_round(v, den, half_up),
            )
        } else {
            resample_separable(
                self,
                width,
                height,
                area_two_taps,
                // The vertical pass drops low bits as OpenCV's 16-bit SIMD path does
                // (4 + 16 + 2 = the 22 fractional bits of two 11-bit weights).
                |h, q| ((h >> 4) * q) >> 16,
                |v| ((v + 2) >> 2).clamp(0, 255) as u8,
            )
        }
    }

    /// OpenCV `INTER_LANCZOS4` resize, the filter the reference's `resize_image` uses when
    /// it enlarges a frame for DWPose: 8 taps around source position `(d + 0.5) * scale -
    /// 0.5`, kernel `sin(pi x / 4) sin(pi x) / (pi^2 x^2 / 4)` normalised to sum 1, edge
    /// pixels replicated, rounded and saturated to 0..255. Weights are quantised to 11
    /// bits and summed in integers like OpenCV's 8-bit path (float weights would differ
    /// from it by 1 on a few percent of pixels; this is off by 1 on a few tenths of a
    /// percent, where a weight sits near a rounding half).
    pub fn resize_lanczos4(&self, width: usize, height: usize) -> ImageU8 {
        if let Some(done) = self.trivial_resize(width, height) {
            return done;
        }
        resample_separable(
            self,
            width,
            height,
            lanczos4_taps,
            |h, q| h * q,
            |v| ((v + (1 << (2 * COEF_BITS - 1))) >> (2 * COEF_BITS)).clamp(0, 255) as u8,
        )
    }
}

/// Fractional bits of the fixed-point weights (OpenCV's 8-bit resize uses 11).
const COEF_BITS: u32 = 11;

/// Per output index along one axis: (source index, integer weight).
type Taps = Vec<Vec<(usize, i64)>>;

/// `v / den` rounded to nearest, exact halves up or to even (`v >= 0`, `den > 0`).
fn div_round(v: i64, den: i64, half_up: bool) -> u8 {
    let (q, r) = (v / den, v % den);
    let up = match (2 * r).cmp(&den) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => half_up || q % 2 == 1,
        std::cmp::Ordering::Less => false,
    };
    (q + up as i64).clamp(0, 255) as u8
}

/// Box-filter weights for shrinking `src` to `dst`, in units of `1 / src`: output `d`
/// covers source interval `[d * src / dst, (d + 1) * src / dst)`, and source pixel `i`'s
/// overlap with it, times `dst`, is the integer
/// `min((d + 1) * src, (i + 1) * dst) - max(d * src, i * dst)`. Each row sums to `src`.
fn area_taps(src: usize, dst: usize) -> Taps {
    let (src, dst) = (src as i64, dst as i64);
    (0..dst)
        .map(|d| {
            let (a, b) = (d * src, (d + 1) * src);
            (a / dst..(b + dst - 1) / dst)
                .map(|i| (i as usize, b.min((i + 1) * dst) - a.max(i * dst)))
                .filter(|&(_, w)| w > 0)
                .collect()
        })
        .collect()
}

/// OpenCV's area weights when the image grows on some axis, quantised to 11 bits: source
/// pixel `i = floor(d * s)` and `i + 1` (clamped), the second weighted by
/// `f = (d + 1) - (i + 1) / s` wrapped into [0, 1) (0 when not positive).
fn area_two_taps(src: usize, dst: usize) -> Taps {
    let s = src as f64 / dst as f64;
    let last = src - 1;
    let one = 1i64 << COEF_BITS;
    (0..dst)
        .map(|d| {
            let i = (d as f64 * s).floor() as usize;
            let f = (d + 1) as f64 - (i + 1) as f64 / s;
            let f = if f <= 0.0 { 0.0 } else { f - f.floor() };
            let q = (f * one as f64).round_ties_even() as i64;
            vec![(i.min(last), one - q), ((i + 1).min(last), q)]
        })
        .collect()
}

/// Lanczos-4 weights, quantised to 11 bits: taps `floor(p) - 3 ..= floor(p) + 4` around
/// `p = (d + 0.5) * s - 0.5`, clamped into the image (edge replication), normalised to
/// sum 1 before quantising.
fn lanczos4_taps(src: usize, dst: usize) -> Taps {
    use std::f64::consts::PI;
    let s = src as f64 / dst as f64;
    let kernel = |x: f64| {
        if x.abs() < 1e-12 {
            1.0
        } else {
            (PI * x / 4.0).sin() * (PI * x).sin() / (PI * PI * x * x / 4.0)
        }
    };
    (0..dst)
        .map(|d| {
            let p = (d as f64 + 0.5) * s - 0.5;
            let base = p.floor();
            let frac = p - base;
            let w: Vec<f64> = (-3..=4).map(|k| kernel(frac - k as f64)).collect();
            let sum: f64 = w.iter().sum();
            (-3..=4i64)
                .zip(w)
                .map(|(k, wk)| {
                    let i = (base as i64 + k).clamp(0, src as i64 - 1) as usize;
                    let q = (wk / sum * (1i64 << COEF_BITS) as f64).round_ties_even() as i64;
                    (i, q)
                })
                .collect()
        })
        .collect()
}

/// Applies integer per-axis weights (`weights(source side, output side)` on each axis): rows
/// first into an `i64` buffer (nothing rounded between the passes), then columns, each term
/// `term(row value, weight)`, and `finish` turns the column sum into a pixel.
fn resample_separable(
    img: &ImageU8,
    width: usize,
    height: usize,
    weights: fn(usize, usize) -> Taps,
    term: impl Fn(i64, i64) -> i64,
    finish: impl Fn(i64) -> u8,
) -> ImageU8 {
    let (xs, ys) = (weights(img.width, width), weights(img.height, height));
    let ch = img.channels;
    let (sw, dw) = (img.width, width);
    let mut rows = vec![0i64; img.height * dw * ch];
    for (src, dst) in img
        .data
        .chunks_exact(sw * ch)
        .zip(rows.chunks_exact_mut(dw * ch))
    {
        for (ox, taps) in xs.iter().enumerate() {
            for &(i, w) in taps {
                for c in 0..ch {
                    dst[ox * ch + c] += src[i * ch + c] as i64 * w;
                }
            }
        }
    }
    let mut out = vec![0u8; height * dw * ch];
    let mut acc = vec![0i64; dw * ch];
    for (taps, o) in ys.iter().zip(out.chunks_exact_mut(dw * ch)) {
        acc.iter_mut().for_each(|a| *a = 0);
        for &(i, w) in taps {
            for (a, &v) in acc.iter_mut().zip(&rows[i * dw * ch..(i + 1) * dw * ch]) {
                *a += term(v, w);
            }
        }
        for (px, &a) in o.iter_mut().zip(&acc) {
            *px = finish(a);
        }
    }
    Image::from_vec(width, height, ch, out)
}

/// OpenCV's `INTER_RESIZE_COEF_SCALE`: bilinear weights in 11-bit fixed point.
const CV_ONE: i32 = 2048;

/// OpenCV's `INTER_LINEAR` taps for one axis: per output index the first source index and
/// the fixed-point weights of it and the next. Positions are computed in double, then float,
/// as OpenCV does; the horizontal axis clamps them into the image (`clamp`), the vertical one
/// keeps them and clips the rows it reads.
fn cv_linear_taps(src: usize, dst: usize, clamp: bool) -> Vec<(i64, [i32; 2])> {
    let scale = 1.0 / (dst as f64 / src as f64);
    (0..dst)
        .map(|d| {
            let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
            let mut s = f.floor() as i64;
            let mut frac = f - s as f32;
            if clamp && s < 0 {
                (s, frac) = (0, 0.0);
            }
            if clamp && s >= src as i64 - 1 {
                (s, frac) = (src as i64 - 1, 0.0);
            }
            // saturate_cast<short>(float): nearest, ties to even.
            let w = |v: f32| (v * CV_ONE as f32).round_ties_even() as i32;
            (s, [w(1.0 - frac), w(frac)])
        })
        .collect()
}

/// Source index for nearest-neighbour sampling with half-pixel centres.
pub fn nearest_src(dst: usize, dst_len: usize, src_len: usize) -> usize {
    let s = ((dst as f64 + 0.5) * src_len as f64 / dst_len as f64).floor() as usize;
    s.min(src_len - 1)
}

/// Bilinear taps with half-pixel centres, per output index: (low source index, high source
/// index, weight of high).
pub fn axis_taps(src: usize, dst: usize) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|o| {
            let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src - 1);
            let i1 = (i0 + 1).min(src - 1);
            (i0, i1, s - i0 as f32)
        })
        .collect()
}
