//! Scaled dot-product attention that never materialises the whole score matrix.
//!
//! The real model attends over ~49k tokens (96k at 704p): full scores would be tens of GB per
//! head batch. On the CPU we run a blockwise kernel with an online softmax (flash-attention style):
//! per (head, query block) the running row max, row sum and output accumulator are updated key
//! block by key block, so memory is the inputs plus the output plus a small per-task scratch.
//! On CUDA, bf16 calls with a head dim the build carries go to FlashAttention-2 (`flash-attn`
//! feature, see `flash`); everything else uses query-chunked attention with candle ops (scores
//! bounded to one chunk).

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::blas::{self, Mat};

#[cfg(feature = "testing")]
pub mod check;
mod flash;
mod tokens;
pub use flash::HEAD_DIMS as FLASH_HEAD_DIMS;
pub use tokens::attention_tokens;

/// Query rows per task of the CPU kernel.
pub const BLOCK_Q: usize = 256;
/// Key rows per inner step of the CPU kernel: the score scratch is `BLOCK_Q × BLOCK_K` f32.
pub const BLOCK_K: usize = 256;
/// Score bytes one query chunk may hold on non-CPU devices (all heads): the chunk length follows
/// from it, so 48k or 96k keys × 40 heads stay within a fixed budget.
pub const CHUNK_SCORE_BYTES: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    #[error("attention inputs must be [.., seq, head_dim] with equal leading dims: q {q:?} k {k:?} v {v:?}")]
    Shape {
        q: Vec<usize>,
        k: Vec<usize>,
        v: Vec<usize>,
    },
    #[error("attention inputs must share one dtype, got q {q:?} k {k:?} v {v:?}")]
    DType { q: DType, k: DType, v: DType },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

type Result<T> = std::result::Result<T, AttentionError>;

/// Shapes of one call: leading (batch × heads) count, query/key lengths, head dims.
struct Dims {
    lead: Vec<usize>,
    n: usize,
    lq: usize,
    lk: usize,
    d: usize,
    dv: usize,
}

fn check(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Dims> {
    let (qd, kd, vd) = (q.dims(), k.dims(), v.dims());
    let bad = || AttentionError::Shape {
        q: qd.to_vec(),
        k: kd.to_vec(),
        v: vd.to_vec(),
    };
    let r = qd.len();
    if r < 2 || kd.len() != r || vd.len() != r {
        return Err(bad());
    }
    let lead = &qd[..r - 2];
    if &kd[..r - 2] != lead || &vd[..r - 2] != lead {
        return Err(bad());
    }
    let (lq, d) = (qd[r - 2], qd[r - 1]);
    let (lk, dk) = (kd[r - 2], kd[r - 1]);
    let (lv, dv) = (vd[r - 2], vd[r - 1]);
    if dk != d || lv != lk || lk == 0 {
        return Err(bad());
    }
    if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
        return Err(AttentionError::DType {
            q: q.dtype(),
            k: k.dtype(),
            v: v.dtype(),
        });
    }
    Ok(Dims {
        lead: lead.to_vec(),
        n: lead.iter().product(),
        lq,
        lk,
        d,
        dv,
    })
}

/// `softmax(q kᵀ / √head_dim) v` over the last two axes; `q` `[.., Lq, d]`, `k` `[.., Lk, d]`,
/// `v` `[.., Lk, dv]` → `[.., Lq, dv]` in the input dtype. Half-precision inputs are computed in
/// f32 (like the reference's flash attention accumulates in f32).
pub fn attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let dims = check(q, k, v)?;
    let scale = 1.0 / (dims.d as f64).sqrt();
    match q.device() {
        Device::Cpu => blockwise_cpu(q, k, v, scale, &dims),
        #[cfg(feature = "flash-attn")]
        d if flash::applies(d, q.dtype(), &dims) => flash::attention(q, k, v, scale, &dims),
        _ => chunked(q, k, v, scale, &dims, CHUNK_SCORE_BYTES),
    }
}

/// Reference attention that materialises all scores; for tests and tiny sizes only.
pub fn naive_attention(q: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
    let dims = check(q, k, v)?;
    let scale = 1.0 / (dims.d as f64).sqrt();
    let dt = q.dtype();
    let (q, k, v) = (
        q.to_dtype(DType::F32)?,
        k.to_dtype(DType::F32)?,
        v.to_dtype(DType::F32)?,
    );
    let s = (q.matmul(&k.t()?)? * scale)?;
    let p = candle_nn::ops::softmax_last_dim(&s)?;
    Ok(p.matmul(&v)?.to_dtype(dt)?)
}

/// Query-chunked attention with candle ops (any device): scores of one chunk of queries at a time,
/// at most `score_bytes` (chunks of 16 to 4096 rows). The path non-CPU devices take, with
/// [`CHUNK_SCORE_BYTES`].
pub fn chunked_attention(q: &Tensor, k: &Tensor, v: &Tensor, score_bytes: usize) -> Result<Tensor> {
    let dims = check(q, k, v)?;
    chunked(q, k, v, 1.0 / (dims.d as f64).sqrt(), &dims, score_bytes)
}

fn chunked(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    scale: f64,
    dims: &Dims,
    score_bytes: usize,
) -> Result<Tensor> {
    let chunk = (score_bytes / (4 * dims.n.max(1) * dims.lk)).clamp(16, 4096);
    let dt = q.dtype();
    let q = q.to_dtype(DType::F32)?;
    let k = k.to_dtype(DType::F32)?;
    let v = v.to_dtype(DType::F32)?;
    let kt = k.t()?.contiguous()?;
    let mut outs = Vec::new();
    let axis = q.rank() - 2;
    let mut start = 0;
    while start < dims.lq {
        let len = chunk.min(dims.lq - start);
        let qc = q.narrow(axis, start, len)?;
        let s = (qc.matmul(&kt)? * scale)?;
        let p = candle_nn::ops::softmax_last_dim(&s)?;
        outs.push(p.matmul(&v)?);
        start += len;
    }
    Ok(Tensor::cat(&outs, axis)?.to_dtype(dt)?)
}

fn blockwise_cpu(q: &Tensor, k: &Tensor, v: &Tensor, scale: f64, dims: &Dims) -> Result<Tensor> {
    let dt = q.dtype();
    // Contiguous f32 inputs are read in place (no copy: at 48k tokens × 5120 each is 1 GB).
    let (q, k, v) = (f32_contiguous(q)?, f32_contiguous(k)?, f32_contiguous(v)?);
    let (qs, _) = q.storage_and_layout();
    let (ks, _) = k.storage_and_layout();
    let (vs, _) = v.storage_and_layout();
    let out = blockwise_f32(
        cpu_slice(&qs, &q)?,
        cpu_slice(&ks, &k)?,
        cpu_slice(&vs, &v)?,
        dims,
        scale as f32,
    );
    let mut shape = dims.lead.clone();
    shape.extend([dims.lq, dims.dv]);
    Ok(Tensor::from_vec(out, shape, &Device::Cpu)?.to_dtype(dt)?)
}

fn f32_contiguous(t: &Tensor) -> Result<Tensor> {
    Ok(t.to_dtype(DType::F32)?.contiguous()?)
}

/// The f32 elements of a contiguous CPU tensor, borrowed from its storage.
pub(crate) fn cpu_slice<'a>(storage: &'a candle_core::Storage, t: &Tensor) -> Result<&'a [f32]> {
    let candle_core::Storage::Cpu(cpu) = storage else {
        return Err(candle_core::Error::Msg("blockwise attention needs CPU tensors".into()).into());
    };
    let all = cpu.as_slice::<f32>()?;
    let (start, end) = t
        .layout()
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg("attention input not contiguous".into()))?;
    Ok(&all[start..end])
}

fn blockwise_f32(q: &[f32], k: &[f32], v: &[f32], dims: &Dims, scale: f32) -> Vec<f32> {
    let Dims {
        n, lq, lk, d, dv, ..
    } = *dims;
    let mut out = vec![0f32; n * lq * dv];
    if lq == 0 {
        return out;
    }
    // Each task runs its block products on its own thread (OpenBLAS's pool stays idle).
    blas::single_threaded(|| {
        out.par_chunks_mut(lq * dv)
            .enumerate()
            .for_each(|(h, out_h)| {
                let qh = &q[h * lq * d..(h + 1) * lq * d];
                let kh = &k[h * lk * d..(h + 1) * lk * d];
                let vh = &v[h * lk * dv..(h + 1) * lk * dv];
                out_h
                    .par_chunks_mut(BLOCK_Q * dv)
                    .enumerate()
                    .for_each(|(qb, o)| {
                        let q0 = qb * BLOCK_Q;
                        let bq = o.len() / dv;
                        let qv = Rows::new(&qh[q0 * d..(q0 + bq) * d], d, d);
                        query_block(qv, Rows::new(kh, d, d), Rows::new(vh, dv, dv), o, scale);
                    });
            });
    });
    out
}

/// Rows of a row-major matrix whose row stride may exceed its width (one head's columns of a
/// `[L, heads·head_dim]` token matrix): `rows × width` values, row `i` at `data[i·ld..]`.
#[derive(Clone, Copy)]
pub(crate) struct Rows<'a> {
    data: &'a [f32],
    width: usize,
    ld: usize,
}

impl<'a> Rows<'a> {
    /// The rows in `data` (which may end right after the last row's `width` values).
    pub(crate) fn new(data: &'a [f32], width: usize, ld: usize) -> Self {
        debug_assert!(ld >= width);
        Self { data, width, ld }
    }

    pub(crate) fn count(&self) -> usize {
        (self.data.len() + self.ld - self.width) / self.ld
    }

    /// Rows `r0..r0 + n`.
    fn range(&self, r0: usize, n: usize) -> Rows<'a> {
        let start = r0 * self.ld;
        Rows::new(
            &self.data[start..start + (n - 1) * self.ld + self.width],
            self.width,
            self.ld,
        )
    }

    fn mat(&self, trans: bool) -> Mat<'a> {
        Mat {
            data: self.data,
            ld: self.ld,
            trans,
        }
    }
}

/// One query block against all keys: online softmax over key blocks, the result written to `o`
/// (contiguous `rows × v.width`).
pub(crate) fn query_block(q: Rows, k: Rows, v: Rows, o: &mut [f32], scale: f32) {
    let (d, dv) = (q.width, v.width);
    let bq = q.count();
    let lk = k.count();
    let mut s = vec![0f32; bq * BLOCK_K];
    let mut m = vec![f32::NEG_INFINITY; bq];
    let mut l = vec![0f32; bq];
    o.fill(0.0);
    let mut k0 = 0;
    while k0 < lk {
        let bk = BLOCK_K.min(lk - k0);
        let s = &mut s[..bq * bk];
        // Scores: q (bq×d) times the key block (bk×d) transposed.
        blas::sgemm_block(
            (bq, bk, d),
            scale,
            q.mat(false),
            k.range(k0, bk).mat(true),
            0.0,
            s,
            bk,
        );
        online_softmax_step(s, bk, &mut m, &mut l, o, dv);
        // o += p (bq×bk) times the value block (bk×dv).
        blas::sgemm_block(
            (bq, dv, bk),
            1.0,
            Mat {
                data: s,
                ld: bk,
                trans: false,
            },
            v.range(k0, bk).mat(false),
            1.0,
            o,
            dv,
        );
        k0 += bk;
    }
    for i in 0..bq {
        let inv = 1.0 / l[i];
        o[i * dv..(i + 1) * dv].iter_mut().for_each(|x| *x *= inv);
    }
}

/// Turns one block of scores (`rows × bk`) into `exp(s − running max)` in place and updates the
/// running max `m`, the row sums `l` and rescales the accumulated output rows `o` (`rows × dv`).
fn online_softmax_step(
    s: &mut [f32],
    bk: usize,
    m: &mut [f32],
    l: &mut [f32],
    o: &mut [f32],
    dv: usize,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features the function is compiled for.
            return unsafe { online_softmax_step_avx512(s, bk, m, l, o, dv) };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { online_softmax_step_avx2(s, bk, m, l, o, dv) };
        }
    }
    online_softmax_step_impl(s, bk, m, l, o, dv)
}

/// The same body compiled with AVX-512: the exp loop, the step's main cost, runs 16-wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn online_softmax_step_avx512(
    s: &mut [f32],
    bk: usize,
    m: &mut [f32],
    l: &mut [f32],
    o: &mut [f32],
    dv: usize,
) {
    online_softmax_step_impl(s, bk, m, l, o, dv)
}

/// The same body compiled with AVX2 so the exp/max/sum loops vectorise 8-wide.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn online_softmax_step_avx2(
    s: &mut [f32],
    bk: usize,
    m: &mut [f32],
    l: &mut [f32],
    o: &mut [f32],
    dv: usize,
) {
    online_softmax_step_impl(s, bk, m, l, o, dv)
}

#[inline(always)]
fn online_softmax_step_impl(
    s: &mut [f32],
    bk: usize,
    m: &mut [f32],
    l: &mut [f32],
    o: &mut [f32],
    dv: usize,
) {
    for (i, row) in s.chunks_exact_mut(bk).enumerate() {
        let m_new = m[i].max(lane_max(row));
        let sum = exp_sub_sum(row, m_new);
        if m_new > m[i] {
            // Rescale what was accumulated under the old max (zero on the first block).
            let corr = exp_f32(m[i] - m_new);
            l[i] *= corr;
            o[i * dv..(i + 1) * dv].iter_mut().for_each(|x| *x *= corr);
            m[i] = m_new;
        }
        l[i] += sum;
    }
}

/// Independent accumulator lanes of the row reductions: a strict left fold does not vectorise;
/// 16 fill one AVX-512 register or two AVX2 ones.
const LANES: usize = 16;

#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..LANES {
            acc[j] = if c[j] > acc[j] { c[j] } else { acc[j] };
        }
    }
    let mut mx = rest.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for a in acc {
        mx = mx.max(a);
    }
    mx
}

/// `x ← exp(x − m)` in place, returning the sum of the results (one pass over the row).
#[inline(always)]
fn exp_sub_sum(x: &mut [f32], m: f32) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for j in 0..LANES {
            c[j] = exp_f32(c[j] - m);
            acc[j] += c[j];
        }
    }
    let mut tail = 0f32;
    for v in chunks.into_remainder() {
        *v = exp_f32(*v - m);
        tail += *v;
    }
    acc.iter().sum::<f32>() + tail
}

/// `exp` for arguments `<= 0` (scores minus their running max), branch-free so the loop
/// vectorises: `2^n · p(r)` with `r = x − n·ln2` (two-part ln2) and a degree-7 Taylor polynomial,
/// relative error below 1e-7 on the reduced range. Arguments below −87 flush to ~1e-38, which the
/// softmax cannot distinguish from 0.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Round-to-nearest via the 1.5·2^23 trick: `t`'s low mantissa bits hold n as an integer, so
    // no float→int conversion (which would not vectorise) is needed.
    const MAGIC: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let ni = t.to_bits().wrapping_sub(MAGIC.to_bits());
    p * f32::from_bits(ni.wrapping_add(127) << 23)
}

/// Helper for callers that need `[L, heads*head_dim]` ↔ `[heads, L, head_dim]`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (l, w) = x.dims2()?;
    Ok(x.reshape((l, heads, w / heads))?
        .transpose(0, 1)?
        .contiguous()?)
}

/// Inverse of [`split_heads`].
pub fn merge_heads(x: &Tensor) -> Result<Tensor> {
    let (h, l, d) = x.dims3()?;
    Ok(x.transpose(0, 1)?.contiguous()?.reshape((l, h * d))?)
}
