//! PyTorch's uint8 antialiased bilinear resize (`interpolate(..., mode="bilinear",
//! antialias=True)` on a uint8 tensor, which torchvision's `resize` uses for uint8 images and
//! so Hugging Face's SAM3 image processor does): PIL's triangle filter widened by the scale,
//! weights normalised in f64 and rounded to int16 at the largest precision that keeps the
//! biggest weight in range, a horizontal pass rounded to uint8, then a vertical pass. Every
//! step is integer, so the result is bit-exact to PyTorch's.

use crate::frame::{Image, ImageU8};

/// One axis: per output sample the first source sample and its fixed-point weights.
struct AxisTaps {
    taps: Vec<(usize, Vec<i32>)>,
    precision: u32,
}

fn axis_taps(input: usize, output: usize) -> AxisTaps {
    let scale = input as f64 / output as f64;
    // Bilinear: support 1, widened by the scale when shrinking.
    let (support, invscale) = if scale >= 1.0 {
        (scale, 1.0 / scale)
    } else {
        (1.0, 1.0)
    };
    let max_taps = support.ceil() as i64 * 2 + 1;
    let mut real = Vec::with_capacity(output);
    let mut wt_max = 0.0f64;
    for i in 0..output {
        let center = scale * (i as f64 + 0.5);
        // `as i64` truncates toward zero, as PyTorch's casts do.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xsize = (((center + support + 0.5) as i64).min(input as i64) - xmin).clamp(0, max_taps);
        let mut w: Vec<f64> = (0..xsize)
            .map(|j| {
                let x = ((j + xmin) as f64 - center + 0.5) * invscale;
                (1.0 - x.abs()).max(0.0)
            })
            .collect();
        let total: f64 = w.iter().sum();
        if total != 0.0 {
            for v in &mut w {
                *v /= total;
                wt_max = wt_max.max(*v);
            }
        }
        real.push((xmin as usize, w));
    }
    let mut precision = 0u32;
    while precision < 22 && ((0.5 + wt_max * (1u64 << (precision + 1)) as f64) as i64) < (1 << 15) {
        precision += 1;
    }
    let unit = (1u64 << precision) as f64;
    let taps = real
        .into_iter()
        .map(|(start, w)| {
            let fixed = w
                .iter()
                .map(|&v| {
                    if v < 0.0 {
                        (-0.5 + v * unit) as i32
                    } else {
                        (0.5 + v * unit) as i32
                    }
                })
                .collect();
            (start, fixed)
        })
        .collect();
    AxisTaps { taps, precision }
}

fn round_shift(acc: i64, precision: u32) -> u8 {
    (acc >> precision).clamp(0, 255) as u8
}

impl ImageU8 {
    /// Antialiased bilinear resize, bit-exact to PyTorch's uint8 kernel (see the module doc).
    pub fn resize_aa_bilinear(&self, width: usize, height: usize) -> ImageU8 {
        let ch = self.channels;
        let mut cur = self.clone();
        if width != self.width {
            let ax = axis_taps(self.width, width);
            let half = 1i64 << (ax.precision - 1);
            let mut out = vec![0u8; width * cur.height * ch];
            for y in 0..cur.height {
                let row = &cur.data[y * cur.width * ch..(y + 1) * cur.width * ch];
                for (ox, (start, w)) in ax.taps.iter().enumerate() {
                    for c in 0..ch {
                        let acc = w.iter().enumerate().fold(half, |acc, (j, &wj)| {
                            acc + row[(start + j) * ch + c] as i64 * wj as i64
                        });
                        out[(y * width + ox) * ch + c] = round_shift(acc, ax.precision);
                    }
                }
            }
            cur = Image::from_vec(width, cur.height, ch, out);
        }
        if height != self.height {
            let ax = axis_taps(self.height, height);
            let half = 1i64 << (ax.precision - 1);
            let stride = cur.width * ch;
            let mut out = vec![0u8; height * stride];
            for (oy, (start, w)) in ax.taps.iter().enumerate() {
                let dst = &mut out[oy * stride..(oy + 1) * stride];
                for (i, d) in dst.iter_mut().enumerate() {
                    let acc = w.iter().enumerate().fold(half, |acc, (j, &wj)| {
                        acc + cur.data[(start + j) * stride + i] as i64 * wj as i64
                    });
                    *d = round_shift(acc, ax.precision);
                }
            }
            cur = Image::from_vec(cur.width, height, ch, out);
        }
        cur
    }
}

#[cfg(test)]
mod tests {
    use crate::resize::testing::noise_image;

    #[test]
    fn weights_of_each_output_sum_to_one_in_fixed_point() {
        for (i, o) in [(320, 1008), (1008, 320), (7, 3), (3, 7), (100, 100)] {
            let ax = super::axis_taps(i, o);
            let unit = 1i64 << ax.precision;
            for (start, w) in &ax.taps {
                assert!(start + w.len() <= i);
                let sum: i64 = w.iter().map(|&v| v as i64).sum();
                // Each weight is rounded on its own: the sum is within one unit per tap.
                assert!(
                    (sum - unit).abs() <= w.len() as i64,
                    "{i}->{o}: {sum} vs {unit}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat_and_same_size_is_identity() {
        let mut img = noise_image(37, 23, 3, 9);
        assert_eq!(img.resize_aa_bilinear(37, 23).data, img.data);
        img.data.iter_mut().for_each(|v| *v = 200);
        for (w, h) in [(100, 61), (11, 5), (37, 70)] {
            let r = img.resize_aa_bilinear(w, h);
            assert_eq!((r.width, r.height), (w, h));
            assert!(r.data.iter().all(|&v| v == 200));
        }
    }
}
