//! Antialiased bicubic weights (torchvision `resize(..., BICUBIC)`), and the cubic
//! convolution shared with the plain bicubic of CLIP.

#[derive(Clone, Debug)]
pub(super) struct Taps {
    pub(super) start: usize,
    pub(super) weights: Vec<f32>,
}

// PyTorch's `cubic_convolution1/2` as its x86 build evaluates them: the compiler contracts
// them into fused multiply-adds. Plain mul+add differs by an ulp and flips uint8 rounding at
// .5 (the `pose` fixture has two such pixels).
pub(super) fn cubic_conv1(x: f32, a: f32) -> f32 {
    ((a + 2.0).mul_add(x, -(a + 3.0)) * x).mul_add(x, 1.0)
}

pub(super) fn cubic_conv2(x: f32, a: f32) -> f32 {
    a.mul_add(x, -(5.0 * a))
        .mul_add(x, 8.0 * a)
        .mul_add(x, -4.0 * a)
}

fn aa_bicubic_filter(x: f32) -> f32 {
    let x = x.abs();
    if x < 1.0 {
        cubic_conv1(x, -0.5)
    } else if x < 2.0 {
        cubic_conv2(x, -0.5)
    } else {
        0.0
    }
}

/// PyTorch `_compute_indices_min_size_weights_aa` for bicubic (interp_size 4), float32.
pub(super) fn aa_taps(in_size: usize, out_size: usize) -> Vec<Taps> {
    let scale: f32 = in_size as f32 / out_size as f32;
    let support: f32 = if scale >= 1.0 {
        (2.0f64 * scale as f64) as f32
    } else {
        2.0
    };
    let max_interp = (support.ceil() * 2.0 + 1.0) as i64;
    let invscale: f32 = if scale >= 1.0 {
        (1.0f64 / scale as f64) as f32
    } else {
        1.0
    };
    (0..out_size)
        .map(|i| {
            let center = (scale as f64 * (i as f64 + 0.5)) as f32;
            let xmin = ((((center - support) as f64) + 0.5) as i64).max(0);
            let xmax = ((((center + support) as f64) + 0.5) as i64).min(in_size as i64);
            let xsize = (xmax - xmin).clamp(0, max_interp);
            let mut w: Vec<f32> = (0..xsize)
                .map(|j| {
                    let d = ((j + xmin) as f32 - center) as f64 + 0.5;
                    aa_bicubic_filter((d * invscale as f64) as f32)
                })
                .collect();
            let total: f32 = w.iter().fold(0.0f32, |acc, v| acc + v);
            if total != 0.0 {
                for v in &mut w {
                    *v /= total;
                }
            }
            Taps {
                start: xmin as usize,
                weights: w,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::ImageF32;
    use crate::resize::{cover_crop, resize_aa_bicubic_crop};

    #[test]
    fn aa_weights_sum_to_one_and_identity_at_scale_one() {
        for (i, o) in [(300, 256), (120, 64), (150, 168), (2048, 970)] {
            for t in aa_taps(i, o) {
                let s: f32 = t.weights.iter().sum();
                assert!((s - 1.0).abs() < 1e-5, "{i}->{o}: sum {s}");
                assert!(t.start + t.weights.len() <= i);
            }
        }
        let img = ImageF32::from_vec(4, 3, 1, (0..12).map(|v| v as f32).collect());
        let cc = cover_crop(3, 4, 3, 4);
        assert_eq!(resize_aa_bicubic_crop(&img, &cc), img);
    }
}
