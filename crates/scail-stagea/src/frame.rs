//! Plain frame buffers. Stage A works on interleaved RGB8 images and binary masks so it
//! does not depend on the media crate's types; wiring converts at the boundary.

use crate::StageAError;

/// An interleaved RGB8 image, row-major, `data.len() == width * height * 3`.
#[derive(Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for RgbImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RgbImage({}x{})", self.width, self.height)
    }
}

impl RgbImage {
    /// An image filled with one colour.
    pub fn filled(width: u32, height: u32, rgb: [u8; 3]) -> Self {
        let n = width as usize * height as usize;
        let mut data = Vec::with_capacity(n * 3);
        for _ in 0..n {
            data.extend_from_slice(&rgb);
        }
        Self {
            width,
            height,
            data,
        }
    }

    /// Wraps a buffer, checking its length.
    pub fn from_raw(width: u32, height: u32, data: Vec<u8>) -> Result<Self, StageAError> {
        let want = width as usize * height as usize * 3;
        if data.len() != want {
            return Err(StageAError::BadBuffer {
                what: "RGB frame",
                expected: want,
                got: data.len(),
            });
        }
        Ok(Self {
            width,
            height,
            data,
        })
    }

    #[inline]
    pub fn get(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    #[inline]
    pub fn put(&mut self, x: u32, y: u32, rgb: [u8; 3]) {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        self.data[i..i + 3].copy_from_slice(&rgb);
    }

    /// Bilinear resize with half-pixel centres (OpenCV INTER_LINEAR / PyTorch
    /// align_corners=False without antialias), rounding to nearest.
    pub fn resize_bilinear(&self, width: u32, height: u32) -> RgbImage {
        let mut out = vec![0u8; width as usize * height as usize * 3];
        let xs = axis_taps(self.width, width);
        let ys = axis_taps(self.height, height);
        let sw = self.width as usize;
        for (oy, &(y0, y1, fy)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, fx)) in xs.iter().enumerate() {
                for c in 0..3 {
                    let p = |x: usize, y: usize| self.data[(y * sw + x) * 3 + c] as f32;
                    let top = p(x0, y0) * (1.0 - fx) + p(x1, y0) * fx;
                    let bot = p(x0, y1) * (1.0 - fx) + p(x1, y1) * fx;
                    let v = top * (1.0 - fy) + bot * fy;
                    out[(oy * width as usize + ox) * 3 + c] = v.round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        RgbImage {
            width,
            height,
            data: out,
        }
    }

    /// Nearest-neighbour resize: keeps palette colours exact (used for mask videos).
    pub fn resize_nearest(&self, width: u32, height: u32) -> RgbImage {
        let mut out = RgbImage::filled(width, height, [0, 0, 0]);
        for y in 0..height {
            let sy = nearest_src(y, height, self.height);
            for x in 0..width {
                let sx = nearest_src(x, width, self.width);
                out.put(x, y, self.get(sx, sy));
            }
        }
        out
    }

    /// OpenCV `INTER_AREA` resize, the filter the reference's `resize_image` uses when it
    /// shrinks a frame for DWPose, so scail's DWPose sees the reference's pixels. Written
    /// here (this and [`Self::resize_lanczos4`]) so the crate needs no native image
    /// library for two filters; the rounding details below were found by comparing with
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
    pub fn resize_area(&self, width: u32, height: u32) -> RgbImage {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        if self.width == 0 || self.height == 0 {
            // Nothing to sample from.
            return RgbImage::filled(width, height, [0, 0, 0]);
        }
        if width <= self.width && height <= self.height {
            let den = self.width as i64 * self.height as i64;
            let half_up = self.width == 2 * width && self.height == 2 * height;
            resample_separable(
                self,
                width,
                height,
                &area_taps(self.width, width),
                &area_taps(self.height, height),
                |h, q| h * q,
                |v| div_round(v, den, half_up),
            )
        } else {
            resample_separable(
                self,
                width,
                height,
                &area_two_taps(self.width, width),
                &area_two_taps(self.height, height),
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
    pub fn resize_lanczos4(&self, width: u32, height: u32) -> RgbImage {
        if (width, height) == (self.width, self.height) {
            return self.clone();
        }
        if self.width == 0 || self.height == 0 {
            // Nothing to sample from.
            return RgbImage::filled(width, height, [0, 0, 0]);
        }
        resample_separable(
            self,
            width,
            height,
            &lanczos4_taps(self.width, width),
            &lanczos4_taps(self.height, height),
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
fn area_taps(src: u32, dst: u32) -> Taps {
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
fn area_two_taps(src: u32, dst: u32) -> Taps {
    let s = src as f64 / dst as f64;
    let last = src as usize - 1;
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
fn lanczos4_taps(src: u32, dst: u32) -> Taps {
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

/// Applies integer per-axis weights: rows first into an `i64` buffer (nothing rounded
/// between the passes), then columns, each term `term(row value, weight)`, and `finish`
/// turns the column sum into a pixel.
fn resample_separable(
    img: &RgbImage,
    width: u32,
    height: u32,
    xs: &Taps,
    ys: &Taps,
    term: impl Fn(i64, i64) -> i64,
    finish: impl Fn(i64) -> u8,
) -> RgbImage {
    let (sw, dw) = (img.width as usize, width as usize);
    let mut rows = vec![0i64; img.height as usize * dw * 3];
    for (src, dst) in img
        .data
        .chunks_exact(sw * 3)
        .zip(rows.chunks_exact_mut(dw * 3))
    {
        for (ox, taps) in xs.iter().enumerate() {
            for &(i, w) in taps {
                for c in 0..3 {
                    dst[ox * 3 + c] += src[i * 3 + c] as i64 * w;
                }
            }
        }
    }
    let mut out = vec![0u8; height as usize * dw * 3];
    let mut acc = vec![0i64; dw * 3];
    for (taps, o) in ys.iter().zip(out.chunks_exact_mut(dw * 3)) {
        acc.iter_mut().for_each(|a| *a = 0);
        for &(i, w) in taps {
            for (a, &v) in acc.iter_mut().zip(&rows[i * dw * 3..(i + 1) * dw * 3]) {
                *a += term(v, w);
            }
        }
        for (px, &a) in o.iter_mut().zip(&acc) {
            *px = finish(a);
        }
    }
    RgbImage {
        width,
        height,
        data: out,
    }
}

/// Source index for nearest-neighbour sampling with half-pixel centres.
pub(crate) fn nearest_src(dst: u32, dst_len: u32, src_len: u32) -> u32 {
    let s = ((dst as f64 + 0.5) * src_len as f64 / dst_len as f64).floor() as u32;
    s.min(src_len - 1)
}

/// Per output index: (low source index, high source index, weight of high).
pub(crate) fn axis_taps(src: u32, dst: u32) -> Vec<(usize, usize, f32)> {
    let scale = src as f32 / dst as f32;
    (0..dst)
        .map(|o| {
            let s = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(src as usize - 1);
            let i1 = (i0 + 1).min(src as usize - 1);
            (i0, i1, s - i0 as f32)
        })
        .collect()
}

/// A binary mask, row-major, one byte per pixel (0 or 1).
#[derive(Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mask({}x{}, area {})",
            self.width,
            self.height,
            self.area()
        )
    }
}

impl Mask {
    pub fn empty(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    /// A mask that is set inside the axis-aligned rectangle [x0, x1) x [y0, y1).
    pub fn from_rect(width: u32, height: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> Self {
        let mut m = Self::empty(width, height);
        for y in y0.min(height)..y1.min(height) {
            for x in x0.min(width)..x1.min(width) {
                m.data[(y * width + x) as usize] = 1;
            }
        }
        m
    }

    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[(y * self.width + x) as usize] != 0
    }

    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    /// Fraction of the frame covered.
    pub fn coverage(&self) -> f32 {
        self.area() as f32 / (self.width as f32 * self.height as f32).max(1.0)
    }

    /// Intersection over union; two empty masks have IoU 0.
    pub fn iou(&self, other: &Mask) -> f32 {
        debug_assert_eq!((self.width, self.height), (other.width, other.height));
        let (mut inter, mut uni) = (0usize, 0usize);
        for (&a, &b) in self.data.iter().zip(&other.data) {
            let (a, b) = (a != 0, b != 0);
            inter += (a && b) as usize;
            uni += (a || b) as usize;
        }
        if uni == 0 {
            0.0
        } else {
            inter as f32 / uni as f32
        }
    }

    /// Tight bounding box (x0, y0, x1, y1) in pixel edges, or None when empty.
    pub fn bbox(&self) -> Option<BBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.get(x, y) {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
        }
        (x0 != u32::MAX).then(|| BBox::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32))
    }

    /// Nearest-neighbour resize (half-pixel centres).
    pub fn resize_nearest(&self, width: u32, height: u32) -> Mask {
        let mut out = Mask::empty(width, height);
        for y in 0..height {
            let sy = nearest_src(y, height, self.height);
            for x in 0..width {
                let sx = nearest_src(x, width, self.width);
                out.data[(y * width + x) as usize] = self.data[(sy * self.width + sx) as usize];
            }
        }
        out
    }

    /// True when any pixel within `radius` (Chebyshev) of (x, y) is set.
    pub fn near(&self, x: i64, y: i64, radius: i64) -> bool {
        let (w, h) = (self.width as i64, self.height as i64);
        for yy in (y - radius).max(0)..=(y + radius).min(h - 1) {
            for xx in (x - radius).max(0)..=(x + radius).min(w - 1) {
                if self.data[(yy * w + xx) as usize] != 0 {
                    return true;
                }
            }
        }
        false
    }
}

/// An axis-aligned box in pixel coordinates, corners (x0, y0) and (x1, y1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }
    pub fn centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) * 0.5, (self.y0 + self.y1) * 0.5)
    }
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }
    pub fn iou(&self, o: &BBox) -> f32 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let uni = self.area() + o.area() - inter;
        if uni <= 0.0 {
            0.0
        } else {
            inter / uni
        }
    }
}
