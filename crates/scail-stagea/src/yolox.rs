//! YOLOX-L person detector host code, as DWPose runs it: letterbox, grid decode, NMS.

use crate::frame::{BBox, RgbImage};
use crate::StageAError;

/// The detector's square input side.
pub const INPUT_SIZE: u32 = 640;
/// Letterbox padding value.
pub const PAD_VALUE: f32 = 114.0;
pub const STRIDES: [u32; 3] = [8, 16, 32];
pub const NMS_IOU: f32 = 0.45;
pub const NMS_SCORE: f32 = 0.1;
/// A person is kept when its score is strictly above this.
pub const PERSON_SCORE: f32 = 0.3;

/// Letterboxed detector input: CHW float32 raw 0-255 pixels, and the scale used.
pub struct Letterbox {
    pub chw: Vec<f32>,
    pub scale: f32,
}

/// Scales the image to fit `size` x `size` keeping its aspect (bilinear, truncated
/// sizes like the reference's `int(w * r)`), places it top-left, pads with 114.
/// Channels go in BGR order: SCAIL-Pose converts frames RGB -> BGR before DWPose.
pub fn letterbox(img: &RgbImage, size: u32) -> Letterbox {
    let r = (size as f32 / img.height as f32).min(size as f32 / img.width as f32);
    let nw = ((img.width as f32 * r) as u32).clamp(1, size);
    let nh = ((img.height as f32 * r) as u32).clamp(1, size);
    let resized = img.resize_bilinear(nw as usize, nh as usize);
    let plane = size as usize * size as usize;
    let mut chw = vec![PAD_VALUE; plane * 3];
    for y in 0..nh as usize {
        for x in 0..nw as usize {
            let s = (y * nw as usize + x) * 3;
            for c in 0..3 {
                chw[(2 - c) * plane + y * size as usize + x] = resized.data[s + c] as f32;
            }
        }
    }
    Letterbox { chw, scale: r }
}

/// One decoded detection in letterbox pixels (before undoing the scale).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    pub score: f32,
    pub class: usize,
}

/// Decodes raw grid predictions `[n_anchors, 5 + n_classes]` (row-major) for a square
/// input of `size`: xy = (p + grid) * stride, wh = exp(p) * stride; per class
/// score = objectness * class score. Returns, per anchor, the box and all class scores.
pub fn decode_grid(
    preds: &[f32],
    row: usize,
    size: u32,
) -> Result<Vec<(BBox, Vec<f32>)>, StageAError> {
    let anchors: usize = STRIDES
        .iter()
        .map(|s| ((size / s) * (size / s)) as usize)
        .sum();
    if row < 6 || preds.len() != anchors * row {
        return Err(StageAError::BadModelOutput {
            model: "yolox",
            detail: format!(
                "expected {anchors} anchors x {row} values for a {size} px input, got {} values",
                preds.len()
            ),
        });
    }
    let mut out = Vec::with_capacity(anchors);
    let mut a = 0usize;
    for &stride in &STRIDES {
        let n = size / stride;
        for gy in 0..n {
            for gx in 0..n {
                let p = &preds[a * row..(a + 1) * row];
                let s = stride as f32;
                let cx = (p[0] + gx as f32) * s;
                let cy = (p[1] + gy as f32) * s;
                let w = p[2].exp() * s;
                let h = p[3].exp() * s;
                let bbox = BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0);
                let scores = p[5..].iter().map(|c| p[4] * c).collect();
                out.push((bbox, scores));
                a += 1;
            }
        }
    }
    Ok(out)
}

/// Greedy NMS with YOLOX's inclusive-pixel areas (`+1` on widths and heights); returns
/// kept indices into `boxes`, best score first.
pub fn nms(boxes: &[BBox], scores: &[f32], iou_thr: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let area = |b: &BBox| (b.x1 - b.x0 + 1.0) * (b.y1 - b.y0 + 1.0);
    let mut keep = Vec::new();
    let mut suppressed = vec![false; boxes.len()];
    for (k, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        let bi = &boxes[i];
        for &j in &order[k + 1..] {
            if suppressed[j] {
                continue;
            }
            let bj = &boxes[j];
            let w = (bi.x1.min(bj.x1) - bi.x0.max(bj.x0) + 1.0).max(0.0);
            let h = (bi.y1.min(bj.y1) - bi.y0.max(bj.y0) + 1.0).max(0.0);
            let inter = w * h;
            let ovr = inter / (area(bi) + area(bj) - inter);
            if ovr > iou_thr {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// Class-aware NMS over decoded anchors (per class: score > `score_thr`, then NMS).
pub fn multiclass_nms(
    decoded: &[(BBox, Vec<f32>)],
    iou_thr: f32,
    score_thr: f32,
) -> Vec<Detection> {
    let n_cls = decoded.first().map_or(0, |d| d.1.len());
    let mut dets = Vec::new();
    for cls in 0..n_cls {
        let (boxes, scores): (Vec<BBox>, Vec<f32>) = decoded
            .iter()
            .filter(|d| d.1[cls] > score_thr)
            .map(|d| (d.0, d.1[cls]))
            .unzip();
        for i in nms(&boxes, &scores, iou_thr) {
            dets.push(Detection {
                bbox: boxes[i],
                score: scores[i],
                class: cls,
            });
        }
    }
    dets
}

/// The whole post-process: decode, class-aware NMS (IoU 0.45, score 0.1), keep people
/// (class 0) scoring above 0.3, map boxes back to the original image by the letterbox
/// scale. Sorted by score, best first.
pub fn postprocess(
    preds: &[f32],
    row: usize,
    size: u32,
    scale: f32,
) -> Result<Vec<Detection>, StageAError> {
    let decoded = decode_grid(preds, row, size)?;
    // Only class 0 survives the final filter and NMS is per class, so the other classes'
    // NMS cannot change the result: skip it.
    let person: Vec<(BBox, Vec<f32>)> = decoded.into_iter().map(|(b, s)| (b, vec![s[0]])).collect();
    let mut dets = multiclass_nms(&person, NMS_IOU, NMS_SCORE);
    dets.retain(|d| d.class == 0 && d.score > PERSON_SCORE);
    for d in &mut dets {
        d.bbox = BBox::new(
            d.bbox.x0 / scale,
            d.bbox.y0 / scale,
            d.bbox.x1 / scale,
            d.bbox.y1 / scale,
        );
    }
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(dets)
}
