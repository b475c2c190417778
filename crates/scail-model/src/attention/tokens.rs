//! Multi-head attention taking and returning the `[B, L, heads·head_dim]` token layout the
//! projections produce. The head split and merge happen inside the kernel, in parallel and one
//! head at a time (only the heads in flight hold copies of their keys and values), instead of
//! as whole-tensor copies around it.

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use super::{attention, cpu_slice, query_block, AttentionError, Result, Rows, BLOCK_Q};
use crate::blas;

/// `softmax(q kᵀ / √head_dim) v` per head: `q` `[B, Lq, W]`, `k` and `v` `[Bk, Lk, W]` with
/// `W = heads · head_dim` and `Bk` either `B` or 1 (one key set shared by every batch row, e.g.
/// the image tokens of all guidance branches) → `[B, Lq, W]` in the input dtype.
pub fn attention_tokens(q: &Tensor, k: &Tensor, v: &Tensor, heads: usize) -> Result<Tensor> {
    let bad = || AttentionError::Shape {
        q: q.dims().to_vec(),
        k: k.dims().to_vec(),
        v: v.dims().to_vec(),
    };
    let ((b, lq, w), (bk, lk, wk)) = match (q.dims3(), k.dims3()) {
        (Ok(qd), Ok(kd)) => (qd, kd),
        _ => return Err(bad()),
    };
    let ok = k.dims() == v.dims()
        && wk == w
        && (bk == b || bk == 1)
        && heads > 0
        && w.is_multiple_of(heads)
        && lk > 0;
    if !ok {
        return Err(bad());
    }
    let split = |t: &Tensor| -> Result<Tensor> {
        let (tb, l, _) = t.dims3()?;
        let t = t.reshape((tb, l, heads, w / heads))?.transpose(1, 2)?;
        Ok(t.broadcast_as((b, heads, l, w / heads))?.contiguous()?)
    };
    if !q.device().is_cpu() {
        let out = attention(&split(q)?, &split(k)?, &split(v)?)?;
        return Ok(out.transpose(1, 2)?.contiguous()?.reshape((b, lq, w))?);
    }
    if q.dtype() != k.dtype() || q.dtype() != v.dtype() {
        return Err(AttentionError::DType {
            q: q.dtype(),
            k: k.dtype(),
            v: v.dtype(),
        });
    }
    let dt = q.dtype();
    let f32c = |t: &Tensor| -> Result<Tensor> { Ok(t.to_dtype(DType::F32)?.contiguous()?) };
    let (q, k, v) = (f32c(q)?, f32c(k)?, f32c(v)?);
    let (qs, _) = q.storage_and_layout();
    let (ks, _) = k.storage_and_layout();
    let (vs, _) = v.storage_and_layout();
    let shape = TokenShape {
        b,
        lq,
        lk,
        w,
        heads,
        shared_kv: bk == 1 && b > 1,
    };
    let out = tokens_f32(
        cpu_slice(&qs, &q)?,
        cpu_slice(&ks, &k)?,
        cpu_slice(&vs, &v)?,
        shape,
    );
    Ok(Tensor::from_vec(out, (b, lq, w), &Device::Cpu)?.to_dtype(dt)?)
}

#[derive(Clone, Copy)]
struct TokenShape {
    b: usize,
    lq: usize,
    lk: usize,
    w: usize,
    heads: usize,
    shared_kv: bool,
}

fn tokens_f32(q: &[f32], k: &[f32], v: &[f32], s: TokenShape) -> Vec<f32> {
    let TokenShape {
        lq,
        lk,
        w,
        heads,
        shared_kv,
        ..
    } = s;
    let hd = w / heads;
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; s.b * lq * w];
    if lq == 0 {
        return out;
    }
    // One head's band of a `[rows, W]` matrix, copied out contiguous: strided at W floats (4 KiB
    // and more apart at real widths), its rows would alias in the cache while BLAS packs them.
    let gather = |m: &[f32], row0: usize, rows: usize, h: usize| -> Vec<f32> {
        let mut c = Vec::with_capacity(rows * hd);
        for r in row0..row0 + rows {
            c.extend_from_slice(&m[r * w + h * hd..r * w + (h + 1) * hd]);
        }
        c
    };
    blas::single_threaded(|| {
        // Tasks are (batch row, head), each with its query blocks as nested tasks so the pool
        // stays balanced at any token count; only the heads in flight hold key/value copies.
        let per_head: Vec<Vec<f32>> = (0..s.b * heads)
            .into_par_iter()
            .map(|bh| {
                let (bi, h) = (bh / heads, bh % heads);
                let kb = if shared_kv { 0 } else { bi };
                let (kc, vc) = (gather(k, kb * lk, lk, h), gather(v, kb * lk, lk, h));
                let mut o = vec![0f32; lq * hd];
                o.par_chunks_mut(BLOCK_Q * hd)
                    .enumerate()
                    .for_each(|(qb, oc)| {
                        let bq = oc.len() / hd;
                        let qc = gather(q, bi * lq + qb * BLOCK_Q, bq, h);
                        let (qr, kr, vr) = (
                            Rows::new(&qc, hd, hd),
                            Rows::new(&kc, hd, hd),
                            Rows::new(&vc, hd, hd),
                        );
                        query_block(qr, kr, vr, oc, scale);
                    });
                o
            })
            .collect();
        out.par_chunks_mut(w).enumerate().for_each(|(r, row)| {
            let (bi, l) = (r / lq, r % lq);
            for (h, band) in row.chunks_exact_mut(hd).enumerate() {
                band.copy_from_slice(&per_head[bi * heads + h][l * hd..(l + 1) * hd]);
            }
        });
    });
    out
}
