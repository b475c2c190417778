//! umT5 encoder against the reference (the `t5` case): full hidden states and trimmed contexts.

use candle_core::{DType, Device, IndexOp};
use candle_nn::VarBuilder;
use scail_model::fixtures;
use scail_model::t5::{relative_position_bucket, T5Encoder};

#[test]
fn t5_encoder_parity() {
    let m = fixtures::manifest();
    let file = &fixtures::only_file_of_kind(&m, "t5");
    let path = fixtures::weights_of(&m, file);
    // SAFETY: read-only mapping of a fixture file nobody writes.
    let vb =
        unsafe { VarBuilder::from_mmaped_safetensors(&[path], DType::F32, &Device::Cpu) }.unwrap();
    let enc = T5Encoder::new(&fixtures::t5_config(&m), vb).unwrap();
    let t = fixtures::load(file);
    let (ids, mask) = (&t["in.ids"], &t["in.mask"]);
    let hidden = enc.forward(ids, Some(mask)).unwrap();
    fixtures::assert_close(
        &m,
        file,
        "out.hidden_states",
        &hidden,
        &t["out.hidden_states"],
    );
    // The pipeline path: each prompt alone, unpadded, trimmed to its length.
    let seq_lens: Vec<usize> = m["config"]["t5"]["seq_lens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let ids = ids.to_dtype(DType::U32).unwrap();
    for (i, &n) in seq_lens.iter().enumerate() {
        let row: Vec<u32> = ids.i((i, ..n)).unwrap().to_vec1().unwrap();
        let ctx = enc.encode(&row).unwrap();
        let name = format!("out.context_{i}");
        fixtures::assert_close(&m, file, &name, &ctx, &t[&name]);
    }
}

#[test]
fn relative_buckets_match_reference_rule() {
    // Hand-derived from the reference formula with 32 buckets, max distance 128:
    // |r| < 8 exact; sign > 0 adds 16; log-spaced up to 15.
    let b = |r| relative_position_bucket(r, 32, 128);
    assert_eq!(b(0), 0);
    assert_eq!(b(1), 17);
    assert_eq!(b(-1), 1);
    assert_eq!(b(-7), 7);
    assert_eq!(b(-8), 8);
    assert_eq!(b(-12), 9); // 8 + trunc(ln(1.5)/ln(16)*8) = 8 + 1
    assert_eq!(b(-127), 15);
    assert_eq!(b(-1000), 15);
    assert_eq!(b(500), 31);
}
