//! DWPose (`dw-ll_ucoco_384`) host code: top-down affine crop, SimCC decode, confidence.

use crate::frame::{BBox, RgbImage};
use crate::StageAError;

/// Model input width and height (the graph takes [1, 3, 384, 288]).
pub const INPUT_W: u32 = 288;
pub const INPUT_H: u32 = 384;
pub const BOX_PADDING: f32 = 1.25;
pub const SIMCC_SPLIT_RATIO: f32 = 2.0;
pub const MEAN: [f32; 3] = [123.675, 116.28, 103.53];
pub const STD: [f32; 3] = [58.395, 57.12, 57.375];
pub const NUM_KEYPOINTS: usize = 133;
/// A keypoint is drawn (and the neck exists) only when its confidence is above this.
pub const VISIBLE_SCORE: f32 = 0.3;

/// A keypoint in source-image pixels with its confidence.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Keypoint {
    pub x: f32,
    pub y: f32,
    pub score: f32,
}

/// One person's 133 COCO-WholeBody keypoints: 17 body, 6 feet, 68 face, 21 + 21 hands.
#[derive(Clone, Debug, PartialEq)]
pub struct WholeBody {
    pub keypoints: Vec<Keypoint>,
}

/// The crop a box maps to: centre and (aspect-fixed) scale in source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Crop {
    pub centre: (f32, f32),
    pub scale: (f32, f32),
}

impl Crop {
    /// Box -> centre and scale with 1.25 padding, then the aspect fixed to 288:384 by
    /// growing the short side (the reference's `bbox_xyxy2cs` + `_fix_aspect_ratio`).
    pub fn from_box(b: &BBox) -> Self {
        let centre = ((b.x0 + b.x1) * 0.5, (b.y0 + b.y1) * 0.5);
        let (w, h) = ((b.x1 - b.x0) * BOX_PADDING, (b.y1 - b.y0) * BOX_PADDING);
        let ar = INPUT_W as f32 / INPUT_H as f32;
        let scale = if w > h * ar { (w, w / ar) } else { (h * ar, h) };
        Self { centre, scale }
    }

    /// Source -> crop pixels. With no rotation the reference's warp matrix is a uniform
    /// scale taking the centre to the crop centre.
    pub fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        let s = INPUT_W as f32 / self.scale.0;
        (
            (x - self.centre.0) * s + INPUT_W as f32 * 0.5,
            (y - self.centre.1) * s + INPUT_H as f32 * 0.5,
        )
    }

    /// Crop -> source pixels (the reference writes it as `p / size * scale + centre -
    /// scale / 2`, the same map).
    pub fn inverse(&self, u: f32, v: f32) -> (f32, f32) {
        (
            u / INPUT_W as f32 * self.scale.0 + self.centre.0 - self.scale.0 * 0.5,
            v / INPUT_H as f32 * self.scale.1 + self.centre.1 - self.scale.1 * 0.5,
        )
    }

    /// The 288x384 crop as RGB8 (bilinear, constant-0 border, sampling source point
    /// `inverse(u, v)` for output pixel (u, v) like `cv2.warpAffine`).
    pub fn warp(&self, img: &RgbImage) -> RgbImage {
        let mut out = RgbImage::new(INPUT_W as usize, INPUT_H as usize, 3);
        let (w, h) = (img.width as i64, img.height as i64);
        for v in 0..INPUT_H {
            for u in 0..INPUT_W {
                let (sx, sy) = self.inverse(u as f32, v as f32);
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let (x0, y0) = (x0 as i64, y0 as i64);
                let mut acc = [0f32; 3];
                for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
                    for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                        let (xx, yy) = (x0 + dx, y0 + dy);
                        if xx < 0 || yy < 0 || xx >= w || yy >= h {
                            continue;
                        }
                        let p = img.rgb(xx as usize, yy as usize);
                        for c in 0..3 {
                            acc[c] += p[c] as f32 * wx * wy;
                        }
                    }
                }
                out.put_rgb(
                    u as usize,
                    v as usize,
                    acc.map(|a| a.round().clamp(0.0, 255.0) as u8),
                );
            }
        }
        out
    }

    /// The normalised model input, CHW float32 in BGR order (the reference converts RGB
    /// -> BGR before DWPose), (x - mean[c]) / std[c] per input channel c.
    pub fn input_tensor(&self, img: &RgbImage) -> Vec<f32> {
        let crop = self.warp(img);
        let plane = (INPUT_W * INPUT_H) as usize;
        let mut chw = vec![0f32; plane * 3];
        for (p, px) in crop.data.chunks_exact(3).enumerate() {
            for c in 0..3 {
                chw[c * plane + p] = (px[2 - c] as f32 - MEAN[c]) / STD[c];
            }
        }
        chw
    }
}

/// SimCC decode for one person: per keypoint, argmax over each axis divided by the
/// split ratio (crop pixels); confidence is the smaller of the two maxima, and a
/// keypoint whose confidence is <= 0 gets location -1 (the reference's rule).
/// `simcc_x` is [k, wx] and `simcc_y` [k, wy], row-major.
pub fn decode_simcc(
    simcc_x: &[f32],
    simcc_y: &[f32],
    k: usize,
) -> Result<Vec<(f32, f32, f32)>, StageAError> {
    if k == 0 || simcc_x.len() % k != 0 || simcc_y.len() % k != 0 {
        return Err(StageAError::BadModelOutput {
            model: "dwpose",
            detail: format!(
                "simcc lengths {} and {} do not split into {k} keypoints",
                simcc_x.len(),
                simcc_y.len()
            ),
        });
    }
    let (wx, wy) = (simcc_x.len() / k, simcc_y.len() / k);
    let argmax = |row: &[f32]| {
        // First maximum wins, like numpy's argmax.
        let mut best = 0;
        for (i, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = i;
            }
        }
        (best, row[best])
    };
    Ok((0..k)
        .map(|i| {
            let (xi, xv) = argmax(&simcc_x[i * wx..(i + 1) * wx]);
            let (yi, yv) = argmax(&simcc_y[i * wy..(i + 1) * wy]);
            let conf = xv.min(yv);
            let (mut x, mut y) = (xi as f32, yi as f32);
            if conf <= 0.0 {
                x = -1.0;
                y = -1.0;
            }
            (x / SIMCC_SPLIT_RATIO, y / SIMCC_SPLIT_RATIO, conf)
        })
        .collect())
}

/// Decoded keypoints mapped back to source pixels through the crop.
pub fn keypoints_to_source(crop: &Crop, decoded: &[(f32, f32, f32)]) -> WholeBody {
    WholeBody {
        keypoints: decoded
            .iter()
            .map(|&(u, v, score)| {
                let (x, y) = crop.inverse(u, v);
                Keypoint { x, y, score }
            })
            .collect(),
    }
}
