//! The horizontal pass over bands of rows, transposed so a tap is one vector multiply-add,
//! with its AVX2 builds.

use super::aa_taps::Taps;
use crate::frame::Image;

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
pub(super) const ROWS: usize = 8;

/// Horizontal pass over a band of `ROWS` rows starting at `y` (rows past the image repeat the
/// last one and are dropped). The band is transposed so the `ROWS` values of one input sample
/// are contiguous: each tap is then one vector multiply-add over the rows, while every output
/// sample still sums its taps in PyTorch's order (so the result is bit-identical).
pub(super) fn hpass_band<T: Sample>(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::testing::noise_image;

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
}
