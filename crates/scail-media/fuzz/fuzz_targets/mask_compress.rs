//! Mask compression on arbitrary small frame sets: never panics, output shape follows the
//! latent rules, values are coverage fractions in [0, 1].
#![no_main]

use libfuzzer_sys::fuzz_target;
use scail_media::mask::{driving_mask_latent, reference_mask_latent};
use scail_media::ImageU8;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let w = 1 + data[0] as usize % 40;
    let h = 1 + data[1] as usize % 40;
    let t = 1 + 4 * (data[2] as usize % 3);
    let px = &data[3..];
    if px.is_empty() {
        return;
    }
    let frames: Vec<ImageU8> = (0..t)
        .map(|f| {
            let v = (0..w * h * 3).map(|i| px[(f * w * h * 3 + i) % px.len()]).collect();
            ImageU8::from_vec(w, h, 3, v)
        })
        .collect();
    let r = reference_mask_latent(&frames[0]).unwrap();
    assert_eq!(r.shape[0], 28);
    assert!(r.data.iter().all(|v| (0.0..=1.0).contains(v)));
    if let Ok(d) = driving_mask_latent(&frames) {
        assert_eq!(d.shape[1], 1 + (t - 1) / 4);
        assert!(d.data.iter().all(|v| (0.0..=1.0).contains(v)));
    }
});
