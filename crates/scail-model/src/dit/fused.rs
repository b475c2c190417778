//! One-pass CPU kernels for the f32 work between the DiT's matmuls.
//!
//! Composed from candle ops, each norm, modulation, rotation and gated residual is its own pass
//! over the `[B, L, dim]` activations, and candle runs elementwise ops on one thread. These
//! kernels do each group in one parallel pass per row: LayerNorm with the modulation, RMS norm
//! with RoPE, and the gated residual. Rows are independent, so any split gives the same values.
//! Off the CPU, or in another dtype, the callers keep the candle composition.

use candle_core::{DType, Tensor};
use rayon::prelude::*;

use super::Result;
use crate::attention::cpu_slice;

/// Rows per parallel task: enough work per task to amortise scheduling.
const ROWS_PER_TASK: usize = 16;

/// Whether `t` can take the fused kernels (f32 on the CPU).
pub(super) fn applies(t: &Tensor) -> bool {
    t.device().is_cpu() && t.dtype() == DType::F32
}

/// The f32 values of a (made) contiguous CPU tensor, copied out only when they are not already.
fn values(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

/// Runs `f(row_index, input_row, output_row)` over the rows (last axis `width`) of `x` in
/// parallel and returns the output, shaped like `x`.
fn map_rows(x: &Tensor, f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send) -> Result<Tensor> {
    let width = *x.dims().last().expect("rank >= 1");
    let x = x.contiguous()?;
    let mut out = vec![0f32; x.elem_count()];
    {
        let (xs, _) = x.storage_and_layout();
        let xv = cpu_slice(&xs, &x)?;
        out.par_chunks_mut(ROWS_PER_TASK * width)
            .zip(xv.par_chunks(ROWS_PER_TASK * width))
            .enumerate()
            .for_each(|(task, (o, i))| {
                for (r, (orow, irow)) in o
                    .chunks_exact_mut(width)
                    .zip(i.chunks_exact(width))
                    .enumerate()
                {
                    f(task * ROWS_PER_TASK + r, irow, orow);
                }
            });
    }
    Ok(Tensor::from_vec(out, x.shape(), x.device())?)
}

/// `LayerNorm(x) · (1 + scale) + shift` (LayerNorm without affine), `shift`/`scale` `[1, dim]`.
pub(super) fn ln_modulate(x: &Tensor, shift: &Tensor, scale: &Tensor, eps: f64) -> Result<Tensor> {
    let shift = values(shift)?;
    let scale1: Vec<f32> = values(scale)?.iter().map(|s| 1.0 + s).collect();
    let width = *x.dims().last().expect("rank >= 1");
    if shift.len() != width || scale1.len() != width {
        return Err(candle_core::Error::Msg(format!(
            "modulation of {} and {} values for rows of {width}",
            shift.len(),
            scale1.len()
        ))
        .into());
    }
    let eps = eps as f32;
    map_rows(x, |_, i, o| {
        let (mean, rstd) = mean_rstd(i, eps);
        for (((o, &x), &s), &b) in o.iter_mut().zip(i).zip(&scale1).zip(&shift) {
            *o = (x - mean) * rstd * s + b;
        }
    })
}

/// `x + y · gate` with `gate` `[1, dim]` (the gated residual), or `x + y` without one.
pub(super) fn gated_add(x: &Tensor, y: &Tensor, gate: Option<&Tensor>) -> Result<Tensor> {
    let width = *x.dims().last().expect("rank >= 1");
    let gate = gate.map(values).transpose()?;
    if y.dims() != x.dims() || gate.as_ref().is_some_and(|g| g.len() != width) {
        return Err(candle_core::Error::Msg(format!(
            "residual {:?} + {:?} · gate of {:?} values",
            x.dims(),
            y.dims(),
            gate.map(|g| g.len())
        ))
        .into());
    }
    let y = y.contiguous()?;
    let (ys, _) = y.storage_and_layout();
    let yv = cpu_slice(&ys, &y)?;
    map_rows(x, |r, i, o| {
        let yr = &yv[r * width..(r + 1) * width];
        match &gate {
            Some(g) => {
                for (((o, &x), &y), &g) in o.iter_mut().zip(i).zip(yr).zip(g) {
                    *o = x + y * g;
                }
            }
            None => {
                for ((o, &x), &y) in o.iter_mut().zip(i).zip(yr) {
                    *o = x + y;
                }
            }
        }
    })
}

/// RMS norm over the whole width (`WanRMSNorm`, weight `w`) and then, per head, the
/// interleaved-pair rotation by `cos + i·sin` (`[L, head_dim/2]`, row `l` for token `l` of every
/// batch row): what `rope::apply(split_heads(rms(x)))` computes, kept in the token layout.
pub(super) fn rms_rope(
    x: &Tensor,
    w: &Tensor,
    eps: f64,
    cos: &Tensor,
    sin: &Tensor,
) -> Result<Tensor> {
    let (_, l, width) = x.dims3()?;
    let (cl, half) = cos.dims2()?;
    if cl != l || sin.dims() != cos.dims() || half == 0 || !width.is_multiple_of(2 * half) {
        return Err(crate::rope::RopeError::Shape(x.dims().to_vec()).into());
    }
    // The tables are read in place: at real sizes they are tens of MB, used twice per block.
    let (w, cos, sin) = (w.contiguous()?, cos.contiguous()?, sin.contiguous()?);
    let ((ws, _), (cs, _), (ss, _)) = (
        w.storage_and_layout(),
        cos.storage_and_layout(),
        sin.storage_and_layout(),
    );
    let (w, cos, sin) = (
        cpu_slice(&ws, &w)?,
        cpu_slice(&cs, &cos)?,
        cpu_slice(&ss, &sin)?,
    );
    if w.len() != width {
        return Err(crate::rope::RopeError::Shape(x.dims().to_vec()).into());
    }
    let eps = eps as f32;
    map_rows(x, |r, i, o| {
        let t = r % l;
        let (c, s) = (
            &cos[t * half..(t + 1) * half],
            &sin[t * half..(t + 1) * half],
        );
        let inv = 1.0 / (lane_sum_sq(i) / width as f32 + eps).sqrt();
        for ((op, ip), wp) in o
            .chunks_exact_mut(2 * half)
            .zip(i.chunks_exact(2 * half))
            .zip(w.chunks_exact(2 * half))
        {
            for j in 0..half {
                let re = ip[2 * j] * inv * wp[2 * j];
                let im = ip[2 * j + 1] * inv * wp[2 * j + 1];
                op[2 * j] = re * c[j] - im * s[j];
                op[2 * j + 1] = re * s[j] + im * c[j];
            }
        }
    })
}

/// Mean and `1 / sqrt(var + eps)` of a row, two passes (no cancellation on large means).
fn mean_rstd(x: &[f32], eps: f32) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = lanes(x, 0.0, |a, v| a + v) / n;
    let var = lanes(x, mean, |a, v| a + v * v) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

fn lane_sum_sq(x: &[f32]) -> f32 {
    lanes(x, 0.0, |a, v| a + v * v)
}

/// `Σ f(acc, x − centre)` folded in 8 independent lanes so the loop vectorises.
#[inline(always)]
fn lanes(x: &[f32], centre: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for j in 0..8 {
            acc[j] = f(acc[j], c[j] - centre);
        }
    }
    let tail = rest.iter().fold(0.0, |a, &v| f(a, v - centre));
    acc.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::super::layers::{layer_norm, modulate, rms};
    use super::*;
    use candle_core::{Device, IndexOp};

    fn rand(shape: &[usize], mean: f32) -> Tensor {
        (Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap() + mean as f64).unwrap()
    }

    fn assert_close(a: &Tensor, b: &Tensor, rel: f64, what: &str) {
        let diff = crate::fixtures::max_abs_diff(a, b);
        let scale = crate::fixtures::max_abs(b).max(1.0);
        assert!(
            diff <= rel * scale,
            "{what}: differs by {diff} (max {scale})"
        );
    }

    // Odd sizes: rows not a multiple of the task size, widths not a multiple of the lanes.
    const SHAPES: [(usize, usize, usize); 3] = [(1, 37, 24), (2, 5, 1030), (3, 19, 60)];

    #[test]
    fn ln_modulate_equals_layer_norm_then_modulate() {
        for (b, l, d) in SHAPES {
            let x = rand(&[b, l, d], 3.0);
            let (sh, sc) = (rand(&[1, d], 0.0), rand(&[1, d], 0.0));
            // The reference in f64: candle's f32 LayerNorm takes the variance in one pass, whose
            // cancellation at this mean is larger than the fused kernel's error.
            let f = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
            let (x64, sh64, sc64) = (f(&x), f(&sh), f(&sc));
            let centred = x64.broadcast_sub(&x64.mean_keepdim(2).unwrap()).unwrap();
            let var = centred.sqr().unwrap().mean_keepdim(2).unwrap();
            let normed = centred
                .broadcast_div(&(var + 1e-6).unwrap().sqrt().unwrap())
                .unwrap();
            let want = modulate(&normed, &sh64, &sc64)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap();
            let got = ln_modulate(&x, &sh, &sc, 1e-6).unwrap();
            assert_close(&got, &want, 1e-5, "ln_modulate");
            // And within the f32 composition's own rounding of it.
            let ones = Tensor::ones(d, DType::F32, &Device::Cpu).unwrap();
            let zeros = Tensor::zeros(d, DType::F32, &Device::Cpu).unwrap();
            let f32_ref =
                modulate(&layer_norm(&x, &ones, &zeros, 1e-6).unwrap(), &sh, &sc).unwrap();
            assert_close(&got, &f32_ref, 1e-4, "ln_modulate vs f32 LayerNorm");
        }
    }

    #[test]
    fn gated_add_equals_the_composition() {
        for (b, l, d) in SHAPES {
            let (x, y, g) = (
                rand(&[b, l, d], 0.0),
                rand(&[b, l, d], 0.0),
                rand(&[1, d], 0.0),
            );
            let want = (&x + y.broadcast_mul(&g).unwrap()).unwrap();
            assert_close(
                &gated_add(&x, &y, Some(&g)).unwrap(),
                &want,
                1e-6,
                "gated_add",
            );
            let sum = (&x + &y).unwrap();
            assert_close(&gated_add(&x, &y, None).unwrap(), &sum, 0.0, "add");
        }
    }

    #[test]
    fn rms_rope_equals_rms_split_rope_merge() {
        for (b, l, d) in SHAPES {
            let heads = [2, 3, 5]
                .into_iter()
                .find(|h| (d / h) % 2 == 0 && d % h == 0)
                .unwrap();
            let half = d / heads / 2;
            let x = rand(&[b, l, d], 0.5);
            let w = rand(&[d], 1.0);
            // Non-unit factors, as the pooled pose stream has.
            let (cos, sin) = (rand(&[l, half], 0.0), rand(&[l, half], 0.0));
            let normed = rms(&x, &w, 1e-6).unwrap();
            let split = super::super::layers::split_heads_b(&normed, heads).unwrap();
            let rotated = crate::rope::apply(&split, &cos, &sin).unwrap();
            let want = super::super::layers::merge_heads_b(&rotated).unwrap();
            let got = rms_rope(&x, &w, 1e-6, &cos, &sin).unwrap();
            assert_close(&got, &want, 1e-5, "rms_rope");
            // Every batch row uses the same table rows.
            if b > 1 {
                let one = rms_rope(&x.i(1..2).unwrap(), &w, 1e-6, &cos, &sin).unwrap();
                assert_close(&got.i(1..2).unwrap(), &one, 0.0, "rms_rope batch row");
            }
        }
    }

    #[test]
    fn rms_rope_refuses_tables_of_another_length() {
        let x = rand(&[1, 8, 16], 0.0);
        let w = rand(&[16], 1.0);
        let (cos, sin) = (rand(&[7, 4], 0.0), rand(&[7, 4], 0.0));
        assert!(rms_rope(&x, &w, 1e-6, &cos, &sin).is_err());
    }
}
