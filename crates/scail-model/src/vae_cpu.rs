//! CPU f32 kernels for the VAE's hot path: causal 3D convolution as shifted GEMMs without an
//! im2col buffer, and a fused channel RMS-norm + SiLU.
//!
//! Convolution: with the input zero-padded spatially to `[T, C, H+2p, W+2p]` and flattened,
//! the window of spatial tap (dy, dx) for every output pixel is one contiguous run starting at
//! `dy*Wp + dx` (the output is computed on the padded width and the extra columns dropped).
//! Because consecutive frames are `C*Hp*Wp` apart, the kD time taps and the C channels form a
//! single uniformly strided K axis, so each output frame is k*k GEMMs with K = kD*C reading the
//! input in place. Memory stays at the size of the activations.

use crate::blas::{self, Mat, Threads};
use rayon::prelude::*;

/// Reorders an `[O, C, kd, k, k]` weight to `[k*k][O][kd*C]` (K index = time tap * C + c),
/// the layout of the direct kernel (used for k = 1).
pub(crate) fn arrange_taps(w: &[f32], o: usize, c: usize, kd: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            for t in 0..kd {
                for dy in 0..k {
                    for dx in 0..k {
                        let src = (((oi * c + ci) * kd + t) * k + dy) * k + dx;
                        let dst = ((dy * k + dx) * o + oi) * (kd * c) + t * c + ci;
                        out[dst] = w[src];
                    }
                }
            }
        }
    }
    out
}

/// `acc = lhs · rhs` (`add` false) or `acc += lhs · rhs`: `lhs` is `[o, kk]` row-major, `rhs`
/// has `kk` rows `plane` apart with `n` contiguous columns (a shifted view of the padded
/// window), `acc` is `[o, n]` row-major. One conv tap as a matrix product.
fn tap_product(
    (o, n, kk): (usize, usize, usize),
    lhs: &[f32],
    rhs: &[f32],
    plane: usize,
    acc: &mut [f32],
    add: bool,
) {
    blas::sgemm(
        (o, n, kk),
        1.0,
        Mat {
            data: lhs,
            ld: kk,
            trans: false,
        },
        Mat {
            data: rhs,
            ld: plane,
            trans: false,
        },
        if add { 1.0 } else { 0.0 },
        acc,
        n,
        Threads::Many,
    );
}

/// Channel RMS-norm + SiLU applied while a frame is copied into the conv window.
pub(crate) struct Activation<'a> {
    pub gamma: &'a [f32],
    pub scale: f32,
}

/// Per-pixel `scale / max(||x||_c, 1e-12)` of one `[C, HW]` frame.
fn inv_norms(x: &[f32], c: usize, hw: usize, scale: f32) -> Vec<f32> {
    const CHUNK: usize = 1024;
    let mut inv = vec![0f32; hw];
    inv.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        let p0 = i * CHUNK;
        for ci in 0..c {
            let src = &x[ci * hw + p0..ci * hw + p0 + dst.len()];
            for (d, v) in dst.iter_mut().zip(src) {
                *d += v * v;
            }
        }
        for d in dst.iter_mut() {
            *d = scale / d.sqrt().max(1e-12);
        }
    });
    inv
}

/// Copies frame `src` ([C, H, W]) into a zero-bordered padded plane set, optionally activated.
fn fill_padded(
    dst: &mut [f32],
    src: &[f32],
    c: usize,
    h: usize,
    w: usize,
    p: usize,
    act: Option<&Activation>,
) {
    let (wp, plane) = (w + 2 * p, (h + 2 * p) * (w + 2 * p));
    let inv = act.map(|a| inv_norms(src, c, h * w, a.scale));
    dst[..c * plane]
        .par_chunks_mut(plane)
        .enumerate()
        .for_each(|(ci, d)| {
            let s = &src[ci * h * w..(ci + 1) * h * w];
            for y in 0..h {
                let row = &mut d[(y + p) * wp + p..(y + p) * wp + p + w];
                let sr = &s[y * w..(y + 1) * w];
                match (act, &inv) {
                    (Some(a), Some(inv)) => {
                        let g = a.gamma[ci];
                        for ((r, v), n) in row.iter_mut().zip(sr).zip(&inv[y * w..(y + 1) * w]) {
                            let z = v * n * g;
                            *r = z / (1.0 + (-z).exp());
                        }
                    }
                    _ => row.copy_from_slice(sr),
                }
            }
        });
}

/// Streaming causal convolution of `ctx` context frames (already activated) followed by the
/// `t` frames of `x` (raw; `act` is applied to them on the fly), spatial padding k/2, stride 1.
/// Only a window of kd padded frames is alive at a time. Returns the output `[t, O, H, W]`
/// (plus `residual` if given) and the last `ctx` activated input frames (the next cache).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3d_stream(
    prev: &[f32],
    x: &[f32],
    act: Option<&Activation>,
    (c, h, w): (usize, usize, usize),
    taps: &[f32],
    bias: &[f32],
    (o, kd, k): (usize, usize, usize),
    residual: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    if k == 3 {
        // Taps are in the Winograd layout for 3x3 kernels (`arrange_wino`).
        return conv3d_wino(prev, x, act, (c, h, w), taps, bias, (o, kd), residual);
    }
    let fl = c * h * w;
    let ctx = prev.len() / fl;
    let t_in = ctx + x.len() / fl;
    let t_out = t_in + 1 - kd;
    let p = k / 2;
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let plane = hp * wp;
    let (n, kk, ohw) = (h * wp, kd * c, h * w);
    // The tail covers the last tap's run past the final plane.
    let mut win = vec![0f32; kd * c * plane + 2 * p];
    let frame = |f: usize| stream_frame(prev, x, fl, f);
    let fill = |win: &mut [f32], slot: usize, f: usize| {
        let (src, raw) = frame(f);
        fill_padded(
            &mut win[slot * c * plane..],
            src,
            c,
            h,
            w,
            p,
            if raw { act } else { None },
        );
    };
    for j in 0..kd.min(t_in) {
        fill(&mut win, j, j);
    }
    let mut out = vec![0f32; t_out * o * ohw];
    let mut acc = vec![0f32; o * n];
    for t in 0..t_out {
        if t > 0 {
            // Slide the window by one frame; borders stay zero.
            win.copy_within(c * plane..kd * c * plane, 0);
            fill(&mut win, kd - 1, t + kd - 1);
        }
        for (tap, lhs) in taps.chunks_exact(o * kk).enumerate() {
            let (dy, dx) = (tap / k, tap % k);
            let rhs = &win[dy * wp + dx..];
            tap_product((o, n, kk), lhs, rhs, plane, &mut acc, tap > 0);
        }
        let res = residual.map(|r| &r[t * o * ohw..(t + 1) * o * ohw]);
        out[t * o * ohw..(t + 1) * o * ohw]
            .par_chunks_mut(ohw)
            .enumerate()
            .for_each(|(oi, dst)| {
                let b = bias[oi];
                for y in 0..h {
                    let src = &acc[oi * n + y * wp..oi * n + y * wp + w];
                    let d = &mut dst[y * w..(y + 1) * w];
                    match res {
                        Some(r) => {
                            let r = &r[oi * ohw + y * w..oi * ohw + (y + 1) * w];
                            for ((d, s), r) in d.iter_mut().zip(src).zip(r) {
                                *d = s + b + r;
                            }
                        }
                        None => {
                            for (d, s) in d.iter_mut().zip(src) {
                                *d = s + b;
                            }
                        }
                    }
                }
            });
    }
    // Next cache: the last kd-1 input frames, activated, unpadded (the window's tail).
    let next_ctx = kd - 1;
    let mut cache = vec![0f32; next_ctx * fl];
    if next_ctx > 0 {
        let first_slot = kd - next_ctx;
        for j in 0..next_ctx {
            let base = (first_slot + j) * c * plane;
            for ci in 0..c {
                for y in 0..h {
                    let s = base + ci * plane + (y + p) * wp + p;
                    cache[j * fl + ci * ohw + y * w..j * fl + ci * ohw + (y + 1) * w]
                        .copy_from_slice(&win[s..s + w]);
                }
            }
        }
    }
    (out, cache)
}

/// Reorders an `[O, C, kd, 3, 3]` weight for [`conv3d_wino`]: per kernel row dy, the four
/// Winograd F(2,3) components of the 3 horizontal taps, `[3][4][O][kd*C]`.
pub(crate) fn arrange_wino(w: &[f32], o: usize, c: usize, kd: usize) -> Vec<f32> {
    let kk = kd * c;
    let mut out = vec![0f32; 12 * o * kk];
    for oi in 0..o {
        for ci in 0..c {
            for t in 0..kd {
                for dy in 0..3 {
                    let g = &w[(((oi * c + ci) * kd + t) * 3 + dy) * 3..][..3];
                    let u = [
                        g[0],
                        (g[0] + g[1] + g[2]) * 0.5,
                        (g[0] - g[1] + g[2]) * 0.5,
                        g[2],
                    ];
                    for (comp, v) in u.iter().enumerate() {
                        out[((dy * 4 + comp) * o + oi) * kk + t * c + ci] = *v;
                    }
                }
            }
        }
    }
    out
}

/// Shares a raw pointer with rayon tasks that write disjoint elements.
#[derive(Clone, Copy)]
struct SyncPtr(*mut f32);
unsafe impl Send for SyncPtr {}
unsafe impl Sync for SyncPtr {}

impl SyncPtr {
    /// Element `i` (a method, so closures capture the whole `Send` wrapper).
    ///
    /// # Safety
    /// `i` must be inside the allocation and no other task may access that element.
    unsafe fn at(self, i: usize) -> *mut f32 {
        unsafe { self.0.add(i) }
    }
}

/// [`conv3d_stream`] for 3x3 spatial kernels with Winograd F(2,3) along the width: each pair of
/// output columns takes 4 products per kernel row instead of 6, so the GEMM work is 2/3 of the
/// direct method. The window holds the 4 transformed input components; odd widths read an
/// extra zero column whose output is dropped.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv3d_wino(
    prev: &[f32],
    x: &[f32],
    act: Option<&Activation>,
    (c, h, w): (usize, usize, usize),
    wtaps: &[f32],
    bias: &[f32],
    (o, kd): (usize, usize),
    residual: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let fl = c * h * w;
    let ctx = prev.len() / fl;
    let t_in = ctx + x.len() / fl;
    let t_out = t_in + 1 - kd;
    let (hp, wq) = (h + 2, w.div_ceil(2));
    let plane = hp * wq;
    let (n, kk, ohw) = (h * wq, kd * c, h * w);
    let cb = kd * c * plane; // one component's window
    let mut win = vec![0f32; 4 * cb];
    let frame = |f: usize| stream_frame(prev, x, fl, f);
    let fill = |win: &mut [f32], slot: usize, f: usize| {
        let (src, raw) = frame(f);
        let a = if raw { act } else { None };
        let inv = a.map(|a| inv_norms(src, c, h * w, a.scale));
        let ptr = SyncPtr(win.as_mut_ptr());
        (0..c).into_par_iter().for_each(|ci| {
            let s = &src[ci * h * w..(ci + 1) * h * w];
            let mut row = vec![0f32; 2 * wq + 2];
            for y in 0..h {
                // row[1 + x] = activated input at column x; zeros around it.
                for xx in 0..w {
                    let v = s[y * w + xx];
                    row[1 + xx] = match (a, &inv) {
                        (Some(a), Some(inv)) => {
                            let z = v * inv[y * w + xx] * a.gamma[ci];
                            z / (1.0 + (-z).exp())
                        }
                        _ => v,
                    };
                }
                let base = (slot * c + ci) * plane + (y + 1) * wq;
                for j in 0..wq {
                    let d = &row[2 * j..2 * j + 4];
                    let v = [d[0] - d[2], d[1] + d[2], d[2] - d[1], d[1] - d[3]];
                    for (comp, val) in v.iter().enumerate() {
                        // SAFETY: (comp, slot, ci, y, j) addresses are distinct per task
                        // (ci differs) and inside `win` (4 * cb elements).
                        unsafe { *ptr.at(comp * cb + base + j) = *val };
                    }
                }
            }
        });
    };
    for j in 0..kd.min(t_in) {
        fill(&mut win, j, j);
    }
    let mut out = vec![0f32; t_out * o * ohw];
    let mut acc = vec![0f32; 4 * o * n];
    for t in 0..t_out {
        if t > 0 {
            for comp in 0..4 {
                win.copy_within(comp * cb + c * plane..(comp + 1) * cb, comp * cb);
            }
            fill(&mut win, kd - 1, t + kd - 1);
        }
        for comp in 0..4 {
            let dst = &mut acc[comp * o * n..(comp + 1) * o * n];
            for dy in 0..3 {
                let lhs = &wtaps[(dy * 4 + comp) * o * kk..][..o * kk];
                let rhs = &win[comp * cb + dy * wq..(comp + 1) * cb];
                tap_product((o, n, kk), lhs, rhs, plane, dst, dy > 0);
            }
        }
        let res = residual.map(|r| &r[t * o * ohw..(t + 1) * o * ohw]);
        let acc = &acc;
        out[t * o * ohw..(t + 1) * o * ohw]
            .par_chunks_mut(ohw)
            .enumerate()
            .for_each(|(oi, dst)| {
                let b = bias[oi];
                let m = |comp: usize, y: usize| &acc[(comp * o + oi) * n + y * wq..][..wq];
                for y in 0..h {
                    let (m0, m1, m2, m3) = (m(0, y), m(1, y), m(2, y), m(3, y));
                    let d = &mut dst[y * w..(y + 1) * w];
                    for j in 0..wq {
                        d[2 * j] = m0[j] + m1[j] + m2[j] + b;
                        if 2 * j + 1 < w {
                            d[2 * j + 1] = m1[j] - m2[j] - m3[j] + b;
                        }
                    }
                    if let Some(r) = res {
                        for (d, r) in d
                            .iter_mut()
                            .zip(&r[oi * ohw + y * w..oi * ohw + (y + 1) * w])
                        {
                            *d += r;
                        }
                    }
                }
            });
    }
    // Next cache: the last kd-1 input frames, activated.
    let next_ctx = kd - 1;
    let mut cache = vec![0f32; next_ctx * fl];
    for j in 0..next_ctx {
        let f = t_in - next_ctx + j;
        let (src, raw) = frame(f);
        let dst = &mut cache[j * fl..(j + 1) * fl];
        match (raw, act) {
            (true, Some(a)) => {
                let inv = inv_norms(src, c, h * w, a.scale);
                dst.par_chunks_mut(h * w)
                    .zip(src.par_chunks(h * w))
                    .enumerate()
                    .for_each(|(ci, (d, s))| {
                        let g = a.gamma[ci];
                        for ((d, v), n) in d.iter_mut().zip(s).zip(&inv) {
                            let z = v * n * g;
                            *d = z / (1.0 + (-z).exp());
                        }
                    });
            }
            _ => dst.copy_from_slice(src),
        }
    }
    (out, cache)
}

/// Frame `f` of the streamed sequence `prev ++ x` (frames of `fl` values) and whether it is a
/// new frame of this chunk (`true`) or cached left context, which is stored already activated.
fn stream_frame<'a>(prev: &'a [f32], x: &'a [f32], fl: usize, f: usize) -> (&'a [f32], bool) {
    let ctx = prev.len() / fl;
    if f < ctx {
        (&prev[f * fl..(f + 1) * fl], false)
    } else {
        (&x[(f - ctx) * fl..(f - ctx + 1) * fl], true)
    }
}
