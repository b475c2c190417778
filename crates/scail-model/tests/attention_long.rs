//! A 48k-token single-head attention on the CPU within a stated memory bound. Its own test binary
//! so the process's peak RSS belongs to this test alone.

use candle_core::{Device, Tensor};
use scail_model::attention::{attention, naive_attention};
use scail_model::fixtures::max_abs_diff;

const TOKENS: usize = 48 * 1024;
const HEAD_DIM: usize = 64;
/// Peak RSS growth allowed while attending: the f32 output (12.6 MB) plus per-thread block
/// scratch (~0.3 MB each), with headroom for the allocator; the inputs are read in place.
/// Materialised scores would need TOKENS² × 4 B = 9.7 GB.
const BOUND_MB: f64 = 64.0;

fn status_kb(field: &str) -> f64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{field} missing"))
}

fn rand_tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

#[test]
fn attention_48k_tokens_single_head_in_bounded_memory() {
    let q = rand_tensor(&[1, TOKENS, HEAD_DIM], 1);
    let k = rand_tensor(&[1, TOKENS, HEAD_DIM], 2);
    let v = rand_tensor(&[1, TOKENS, HEAD_DIM], 3);
    // Reset the peak-RSS watermark (Linux: "5" to clear_refs) so VmHWM measures this call only.
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let base = status_kb("VmRSS:");
    let out = attention(&q, &k, &v).unwrap();
    let peak = status_kb("VmHWM:");
    assert_eq!(out.dims(), &[1, TOKENS, HEAD_DIM]);
    if reset {
        let growth_mb = (peak - base) / 1024.0;
        eprintln!("48k-token attention: peak RSS growth {growth_mb:.1} MB (bound {BOUND_MB} MB)");
        assert!(
            growth_mb < BOUND_MB,
            "peak RSS grew {growth_mb:.0} MB (bound {BOUND_MB} MB)"
        );
    }
    // Spot-check rows spread over the sequence against naive attention over all keys.
    let rows: Vec<u32> = (0..8).map(|i| (i * (TOKENS / 8) + 4321) as u32).collect();
    let idx = Tensor::new(rows.as_slice(), &Device::Cpu).unwrap();
    let qs = q.index_select(&idx, 1).unwrap();
    let want = naive_attention(&qs, &k, &v).unwrap();
    let got = out.index_select(&idx, 1).unwrap();
    let d = max_abs_diff(&got, &want);
    assert!(d < 1e-5, "spot rows: max abs diff {d:e}");
}
