//! Float32 plane kernels on tensors (`F.interpolate` bilinear and bicubic without
//! antialias), the CLI's normalisations and CLIP preprocessing.

use super::aa_taps::{cubic_conv1, cubic_conv2};
use crate::frame::{ImageF32, Tensor};

/// CLIP normalisation of `CLIPModel.visual` (OpenAI constants), the reference's decimal
/// literals rounded to float32 as PyTorch does.
#[allow(clippy::excessive_precision)]
pub const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_58, 0.275_777_11];
/// CLIP input side.
pub const CLIP_SIZE: usize = 224;

/// Video normalisation of the CLI: `(x - 127.5) / 127.5` in float32.
pub fn normalize_video_u8(v: u8) -> f32 {
    (v as f32 - 127.5) / 127.5
}

/// Image normalisation of the CLI: `ToTensor` then `*2-1`.
pub fn normalize_image_u8(v: u8) -> f32 {
    (v as f32 / 255.0) * 2.0 - 1.0
}

/// PyTorch `guard_index_and_lambda`.
fn guard_index_and_lambda(real: f32, in_size: usize) -> (i64, f32) {
    let idx = (real.floor() as i64).min(in_size as i64 - 1);
    let lambda = (real - idx as f32).clamp(0.0, 1.0);
    (idx, lambda)
}

/// Bilinear resize (align_corners=false, no antialias) of planes `[N, H, W]` with the given
/// source/destination scale `scale = 1 / scale_factor`, PyTorch's float32 arithmetic.
fn bilinear_planes(
    data: &[f32],
    n: usize,
    (h, w): (usize, usize),
    (oh, ow): (usize, usize),
    (scale_h, scale_w): (f32, f32),
) -> Vec<f32> {
    let idx = |scale: f32, in_size: usize, out: usize| -> Vec<(usize, usize, f32, f32)> {
        (0..out)
            .map(|i| {
                let real = (scale * (i as f32 + 0.5) - 0.5).max(0.0);
                let (i0, l1) = guard_index_and_lambda(real, in_size);
                let i0 = i0.max(0) as usize;
                let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
                (i0, i1, 1.0 - l1, l1)
            })
            .collect()
    };
    let ys = idx(scale_h, h, oh);
    let xs = idx(scale_w, w, ow);
    let mut out = vec![0.0f32; n * oh * ow];
    for p in 0..n {
        let plane = &data[p * h * w..(p + 1) * h * w];
        let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
        for (oy, &(y0, y1, wy0, wy1)) in ys.iter().enumerate() {
            for (ox, &(x0, x1, wx0, wx1)) in xs.iter().enumerate() {
                let t0 = plane[y0 * w + x0] * wx0 + plane[y0 * w + x1] * wx1;
                let t1 = plane[y1 * w + x0] * wx0 + plane[y1 * w + x1] * wx1;
                o[oy * ow + ox] = t0 * wy0 + t1 * wy1;
            }
        }
    }
    out
}

/// `F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)` over the last two
/// axes of a tensor (all leading axes are planes): output side `floor(side / 2)`.
pub fn half_bilinear(t: &Tensor) -> Tensor {
    let nd = t.shape.len();
    assert!(nd >= 2, "half_bilinear needs at least 2 axes");
    let (h, w) = (t.shape[nd - 2], t.shape[nd - 1]);
    let n: usize = t.shape[..nd - 2].iter().product();
    let (oh, ow) = (h / 2, w / 2);
    let data = bilinear_planes(&t.data, n, (h, w), (oh, ow), (2.0, 2.0));
    let mut shape = t.shape.clone();
    shape[nd - 2] = oh;
    shape[nd - 1] = ow;
    Tensor::new(shape, data)
}

/// PyTorch bicubic (a = -0.75) coefficients for fraction `t`.
fn cubic_coeffs(t: f32) -> [f32; 4] {
    let a = -0.75f32;
    let x2 = 1.0 - t;
    [
        cubic_conv2(t + 1.0, a),
        cubic_conv1(t, a),
        cubic_conv1(x2, a),
        cubic_conv2(x2 + 1.0, a),
    ]
}

fn cubic_idx(in_size: usize, out_size: usize) -> Vec<([usize; 4], [f32; 4])> {
    let scale = in_size as f32 / out_size as f32;
    (0..out_size)
        .map(|i| {
            let real = scale * (i as f32 + 0.5) - 0.5;
            let (i0, lambda) = guard_index_and_lambda(real, in_size);
            let mut ids = [0usize; 4];
            for (j, id) in ids.iter_mut().enumerate() {
                *id = (i0 + j as i64 - 1).clamp(0, in_size as i64 - 1) as usize;
            }
            (ids, cubic_coeffs(lambda))
        })
        .collect()
}

/// `F.interpolate(mode="bicubic", align_corners=False)` without antialias on planes [N, H, W].
pub fn bicubic_planes(
    data: &[f32],
    n: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Vec<f32> {
    let ys = cubic_idx(h, oh);
    let xs = cubic_idx(w, ow);
    let mut out = vec![0.0f32; n * oh * ow];
    for p in 0..n {
        let plane = &data[p * h * w..(p + 1) * h * w];
        let o = &mut out[p * oh * ow..(p + 1) * oh * ow];
        for (oy, (yi, wy)) in ys.iter().enumerate() {
            for (ox, (xi, wx)) in xs.iter().enumerate() {
                let row = |y: usize| {
                    let r = &plane[y * w..(y + 1) * w];
                    let mut t = r[xi[0]] * wx[0];
                    for j in 1..4 {
                        t += r[xi[j]] * wx[j];
                    }
                    t
                };
                let mut acc = row(yi[0]) * wy[0];
                for j in 1..4 {
                    acc += row(yi[j]) * wy[j];
                }
                o[oy * ow + ox] = acc;
            }
        }
    }
    out
}

/// CLIP preprocessing of `CLIPModel.visual`: the cropped reference in [-1, 1] (HWC, 3
/// channels) -> bicubic 224x224 -> `*0.5+0.5` -> mean/std. Returns `[1, 3, 224, 224]`.
pub fn clip_preprocess(model_input: &ImageF32) -> Tensor {
    assert_eq!(model_input.channels, 3, "CLIP takes RGB");
    let (h, w) = (model_input.height, model_input.width);
    let chw = model_input.to_chw();
    let mut out = bicubic_planes(&chw, 3, h, w, CLIP_SIZE, CLIP_SIZE);
    let hw = CLIP_SIZE * CLIP_SIZE;
    for (ch, plane) in out.chunks_exact_mut(hw).enumerate() {
        for v in plane {
            *v = ((*v * 0.5 + 0.5) - CLIP_MEAN[ch]) / CLIP_STD[ch];
        }
    }
    Tensor::new(vec![1, 3, CLIP_SIZE, CLIP_SIZE], out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_bilinear_averages_2x2() {
        let t = Tensor::new(vec![1, 2, 4], vec![0., 2., 4., 6., 2., 4., 6., 8.]);
        let h = half_bilinear(&t);
        assert_eq!(h.shape, vec![1, 1, 2]);
        assert_eq!(h.data, vec![2.0, 6.0]);
    }
}
