//! Blockwise online-softmax attention against naive attention on random inputs.

use candle_core::{DType, Device, Tensor};
use scail_model::attention::{self, attention, naive_attention, BLOCK_K, BLOCK_Q};
use scail_model::fixtures::max_abs_diff;

/// Deterministic pseudo-random values in [-a, a] (xorshift), so failures reproduce.
fn rand_tensor(shape: &[usize], seed: u64, a: f32) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * a
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn blockwise_matches_naive_for_many_lengths() {
    // Lengths around and across both block sizes, including ones no block size divides.
    let lens = [
        1,
        5,
        BLOCK_Q - 1,
        BLOCK_Q + 1,
        BLOCK_K,
        BLOCK_K + 3,
        2 * BLOCK_K + 77,
    ];
    for (i, &lq) in lens.iter().enumerate() {
        for &lk in &[1, 17, BLOCK_K - 1, BLOCK_K + 1, 700] {
            let seed = (i * 1000 + lk) as u64;
            // Scores of magnitude ~10: exercises the running-max rescaling.
            let q = rand_tensor(&[3, lq, 32], seed, 2.0);
            let k = rand_tensor(&[3, lk, 32], seed + 1, 2.0);
            let v = rand_tensor(&[3, lk, 32], seed + 2, 1.0);
            let got = attention(&q, &k, &v).unwrap();
            let want = naive_attention(&q, &k, &v).unwrap();
            let d = max_abs_diff(&got, &want);
            assert!(d < 2e-6, "lq {lq} lk {lk}: max abs diff {d:e}");
        }
    }
}

#[test]
fn blockwise_handles_batch_axes_and_value_width() {
    let q = rand_tensor(&[2, 2, 300, 16], 7, 1.0);
    let k = rand_tensor(&[2, 2, 257, 16], 8, 1.0);
    let v = rand_tensor(&[2, 2, 257, 24], 9, 1.0);
    let got = attention(&q, &k, &v).unwrap();
    assert_eq!(got.dims(), &[2, 2, 300, 24]);
    let d = max_abs_diff(&got, &naive_attention(&q, &k, &v).unwrap());
    assert!(d < 2e-6, "max abs diff {d:e}");
}

#[test]
fn blockwise_is_stable_for_large_scores() {
    // Scores in the hundreds overflow a naive exp; the online max keeps them finite.
    // Integer q and k make every score exact in f32 (|products| <= 900, sums < 2^24, scale
    // 1/8), so both paths see the same scores whatever order their matmul kernels sum in
    // (OpenBLAS differs by CPU); what is compared is the softmax arithmetic alone.
    let q = rand_tensor(&[1, 200, 64], 11, 30.0).round().unwrap();
    let k = rand_tensor(&[1, 600, 64], 12, 30.0).round().unwrap();
    let v = rand_tensor(&[1, 600, 64], 13, 1.0);
    let got = attention(&q, &k, &v).unwrap();
    let want = naive_attention(&q, &k, &v).unwrap();
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-5, "max abs diff {d:e}");
}

#[test]
fn half_precision_inputs_keep_their_dtype() {
    let q = rand_tensor(&[2, 130, 32], 21, 1.0);
    let k = rand_tensor(&[2, 300, 32], 22, 1.0);
    let v = rand_tensor(&[2, 300, 32], 23, 1.0);
    let want = naive_attention(&q, &k, &v).unwrap();
    for dt in [DType::BF16, DType::F16] {
        let got = attention(
            &q.to_dtype(dt).unwrap(),
            &k.to_dtype(dt).unwrap(),
            &v.to_dtype(dt).unwrap(),
        )
        .unwrap();
        assert_eq!(got.dtype(), dt);
        let d = max_abs_diff(&got.to_dtype(DType::F32).unwrap(), &want);
        // Input rounding (bf16: 8 bits) dominates; outputs are O(0.1).
        assert!(d < 2e-2, "{dt:?}: max abs diff {d:e}");
    }
}

#[test]
fn chunked_path_matches_naive() {
    // The candle-ops path other devices take, checked here on the CPU with a score budget of 16
    // or 40 rows per chunk, so several chunks and a short last one run.
    for (lq, lk, rows) in [(1, 5, 16), (17, 300, 16), (1000, 33, 40)] {
        let q = rand_tensor(&[2, lq, 32], lq as u64, 2.0);
        let k = rand_tensor(&[2, lk, 32], lk as u64 + 1, 2.0);
        let v = rand_tensor(&[2, lk, 32], lk as u64 + 2, 1.0);
        let got = attention::chunked_attention(&q, &k, &v, 4 * 2 * lk * rows).unwrap();
        let d = max_abs_diff(&got, &naive_attention(&q, &k, &v).unwrap());
        assert!(d < 2e-6, "lq {lq} lk {lk}: max abs diff {d:e}");
    }
}

#[test]
fn mismatched_shapes_are_rejected() {
    let q = rand_tensor(&[2, 10, 32], 1, 1.0);
    let k = rand_tensor(&[2, 12, 16], 2, 1.0);
    let v = rand_tensor(&[2, 12, 32], 3, 1.0);
    assert!(matches!(
        attention(&q, &k, &v),
        Err(attention::AttentionError::Shape { .. })
    ));
}

#[test]
fn fast_exp_is_accurate() {
    let mut worst = 0f64;
    for i in 0..=200_000 {
        let x = -87.0 + 87.0 * i as f32 / 200_000.0;
        let got = attention::exp_f32(x) as f64;
        let want = (x as f64).exp();
        worst = worst.max((got - want).abs() / want);
    }
    assert!(worst < 3e-7, "worst relative error {worst:e}");
}

/// `[B, L, heads·hd]` → `[B, heads, L, hd]`, broadcasting a batch of one to `b`.
fn split(t: &Tensor, heads: usize, b: usize) -> Tensor {
    let (tb, l, w) = t.dims3().unwrap();
    let t = t
        .reshape((tb, l, heads, w / heads))
        .unwrap()
        .transpose(1, 2)
        .unwrap();
    t.broadcast_as((b, heads, l, w / heads))
        .unwrap()
        .contiguous()
        .unwrap()
}

#[test]
fn token_layout_attention_equals_split_heads_attention() {
    // (batch, query len, key len, heads, head_dim, keys shared by every batch row)
    let cases = [
        (1, BLOCK_Q + 5, 300, 4, 16, false),
        (2, 37, BLOCK_K + 1, 3, 8, false),
        (3, 2 * BLOCK_Q + 1, 57, 2, 32, true),
        (1, 1, 1, 5, 6, false),
    ];
    for (i, &(b, lq, lk, heads, hd, shared)) in cases.iter().enumerate() {
        let seed = 77 + i as u64 * 10;
        let bk = if shared { 1 } else { b };
        let q = rand_tensor(&[b, lq, heads * hd], seed, 2.0);
        let k = rand_tensor(&[bk, lk, heads * hd], seed + 1, 2.0);
        let v = rand_tensor(&[bk, lk, heads * hd], seed + 2, 1.0);
        let got = attention::attention_tokens(&q, &k, &v, heads).unwrap();
        let want = naive_attention(
            &split(&q, heads, b),
            &split(&k, heads, b),
            &split(&v, heads, b),
        )
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((b, lq, heads * hd))
        .unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 2e-6, "case {i}: max abs diff {diff}");
    }
}

#[test]
fn token_layout_attention_rejects_bad_shapes_and_keeps_dtype() {
    let q = rand_tensor(&[2, 10, 12], 1, 1.0);
    let k = rand_tensor(&[2, 9, 12], 2, 1.0);
    let ok = attention::attention_tokens(&q, &k, &k, 3).unwrap();
    assert_eq!(ok.dims(), &[2, 10, 12]);
    // Heads that do not divide the width; a key batch that is neither B nor 1; v unlike k.
    assert!(attention::attention_tokens(&q, &k, &k, 5).is_err());
    let k3 = rand_tensor(&[3, 9, 12], 3, 1.0);
    assert!(attention::attention_tokens(&q, &k3, &k3, 3).is_err());
    let v = rand_tensor(&[2, 8, 12], 4, 1.0);
    assert!(attention::attention_tokens(&q, &k, &v, 3).is_err());
    let h = |t: &Tensor| t.to_dtype(DType::BF16).unwrap();
    assert!(attention::attention_tokens(&h(&q), &k, &k, 3).is_err());
    let out = attention::attention_tokens(&h(&q), &h(&k), &h(&k), 3).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
}

/// FlashAttention (or, without it, the chunked path) on a GPU against naive attention, within the
/// bound `compare_with_naive` derives from bf16 rounding. Runs where a CUDA device exists; skips,
/// saying so, elsewhere. A build with `flash-attn` must take the FlashAttention path there.
#[test]
fn cuda_attention_matches_naive_where_a_gpu_exists() {
    let dev = match Device::new_cuda(0) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "SKIPPED cuda_attention_matches_naive_where_a_gpu_exists: no CUDA device ({e})"
            );
            return;
        }
    };
    let head_dim = attention::FLASH_HEAD_DIMS[0];
    // Lengths that are not multiples of the kernel's 128-row tiles, batch and head axes.
    for (lead, lq, lk) in [(vec![2, 3], 300, 257), (vec![5], 129, 1000)] {
        let r = attention::check::compare_with_naive(&dev, DType::BF16, &lead, (lq, lk, head_dim))
            .unwrap();
        eprintln!(
            "{lead:?} {lq}x{lk}: {} max error {} (bound {})",
            r.path, r.max_err, r.bound
        );
        if cfg!(feature = "flash-attn") {
            assert_eq!(r.path, "FlashAttention-2");
        }
        assert!(r.ok(), "{r:?}");
    }
}
