//! DWPose through ONNX Runtime: YOLOX-L person boxes and the whole-body keypoint model.
//!
//! Like the reference extractor (SCAIL-Pose's `DWposeDetector`, which calls
//! controlnet_aux's `resize_image(img, 512)` first), both models run on the frame resized
//! to [`detect_size`]; results come back in frame pixels ([`DetectionFrame`]).

use std::path::Path;

use crate::dwpose::{
    decode_simcc, keypoints_to_source, Crop, Keypoint, WholeBody, INPUT_H, INPUT_W, NUM_KEYPOINTS,
};
use crate::frame::{dims, BBox, RgbImage};
use crate::runtime::{HostTensor, OnnxModel, RuntimeConfig, RuntimeError};
use crate::yolox::{letterbox, postprocess, INPUT_SIZE};
use crate::StageAError;

/// The short side the reference resizes frames to before pose detection.
pub const DETECT_RESOLUTION: u32 = 512;

/// The size the reference runs DWPose at for a `w` x `h` frame: scale so the short side
/// is 512, then round each side to a multiple of 64 (numpy's round, half to even). The
/// short side is always exactly 512; the aspect ratio changes slightly with the rounding.
pub fn detect_size(w: u32, h: u32) -> (u32, u32) {
    if w == 0 || h == 0 {
        return (w, h);
    }
    let k = DETECT_RESOLUTION as f64 / w.min(h) as f64;
    let side = |n: u32| ((n as f64 * k / 64.0).round_ties_even() as u32) * 64;
    (side(w), side(h))
}

/// The frame at [`detect_size`], resampled as the reference does: OpenCV `INTER_AREA`
/// when the scale factor 512 / short side is at most 1, `INTER_LANCZOS4` when enlarging.
pub fn resize_for_detection(frame: &RgbImage) -> RgbImage {
    let (fw, fh) = dims(frame);
    let (w, h) = detect_size(fw, fh);
    let (w, h) = (w as usize, h as usize);
    if fw.min(fh) >= DETECT_RESOLUTION {
        frame.resize_area(w, h)
    } else {
        frame.resize_lanczos4(w, h)
    }
}

/// A frame resized for detection, with the maps between its pixels and the frame's.
/// The reference divides keypoints by the resized size (normalised coordinates) and draws
/// them at the output size; mapping by `frame / detect` per axis is the same thing.
#[derive(Clone, Debug)]
pub struct DetectionFrame {
    /// The frame at [`detect_size`].
    pub image: RgbImage,
    pub frame_width: u32,
    pub frame_height: u32,
}

impl DetectionFrame {
    pub fn new(frame: &RgbImage) -> Self {
        let (frame_width, frame_height) = dims(frame);
        Self {
            image: resize_for_detection(frame),
            frame_width,
            frame_height,
        }
    }

    /// Per-axis factors (detection / frame, frame / detection). Multiplying by a ratio
    /// (rather than `x * W / W'`) leaves coordinates bit-identical when the sizes match.
    fn factors(&self) -> ((f32, f32), (f32, f32)) {
        let (fw, fh) = (
            self.frame_width.max(1) as f32,
            self.frame_height.max(1) as f32,
        );
        let (dw, dh) = (
            self.image.width.max(1) as f32,
            self.image.height.max(1) as f32,
        );
        ((dw / fw, dh / fh), (fw / dw, fh / dh))
    }

    /// A box in frame pixels -> detection-image pixels.
    pub fn box_to_detection(&self, b: &BBox) -> BBox {
        let ((sx, sy), _) = self.factors();
        BBox::new(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)
    }

    /// A box in detection-image pixels -> frame pixels.
    pub fn box_to_frame(&self, b: &BBox) -> BBox {
        let (_, (sx, sy)) = self.factors();
        BBox::new(b.x0 * sx, b.y0 * sy, b.x1 * sx, b.y1 * sy)
    }

    /// Keypoints in detection-image pixels -> frame pixels (`x * W / W'`, `y * H / H'`).
    pub fn body_to_frame(&self, body: &WholeBody) -> WholeBody {
        let (_, (sx, sy)) = self.factors();
        WholeBody {
            keypoints: body
                .keypoints
                .iter()
                .map(|k| Keypoint {
                    x: k.x * sx,
                    y: k.y * sy,
                    score: k.score,
                })
                .collect(),
        }
    }
}

pub struct PoseEstimator {
    detector: Option<OnnxModel>,
    pose: OnnxModel,
    pose_input: String,
    simcc_x: String,
    simcc_y: String,
}

fn sig(model: &OnnxModel, detail: String) -> StageAError {
    StageAError::Runtime(RuntimeError::Signature {
        model: model.path().display().to_string(),
        detail,
    })
}

impl PoseEstimator {
    /// Loads `dw-ll_ucoco_384.onnx` and, when given, `yolox_l.onnx` (needed only for
    /// [`Self::detect_people`]; Stage A takes person boxes from the subject masks).
    pub fn load(
        yolox: Option<&Path>,
        dwpose: &Path,
        rt: &RuntimeConfig,
    ) -> Result<Self, StageAError> {
        let detector = yolox.map(|p| OnnxModel::load(p, rt)).transpose()?;
        if let Some(d) = &detector {
            let ok = d.inputs().len() == 1
                && d.inputs()[0].shape == [1, 3, INPUT_SIZE as i64, INPUT_SIZE as i64]
                && d.outputs().first().is_some_and(|o| o.shape.len() == 3);
            if !ok {
                return Err(sig(d, format!("expected one [1,3,640,640] input and a [1,N,85] output, found inputs {} outputs {}",
                    crate::runtime::names(d.inputs()), crate::runtime::names(d.outputs()))));
            }
        }
        let pose = OnnxModel::load(dwpose, rt)?;
        let inp = pose
            .inputs()
            .first()
            .ok_or_else(|| sig(&pose, "no inputs".into()))?;
        if inp.shape.len() != 4 || inp.shape[2..] != [INPUT_H as i64, INPUT_W as i64] {
            return Err(sig(
                &pose,
                format!("input {}{:?} is not [1,3,384,288]", inp.name, inp.shape),
            ));
        }
        let pose_input = inp.name.clone();
        // By name, else by the SimCC bin count (2 x width for x, 2 x height for y).
        let by = |name: &str, bins: i64| {
            pose.outputs()
                .iter()
                .find(|o| o.name == name)
                .or_else(|| {
                    pose.outputs()
                        .iter()
                        .find(|o| o.shape.last() == Some(&bins))
                })
                .map(|o| o.name.clone())
        };
        let simcc_x = by("simcc_x", 2 * INPUT_W as i64)
            .ok_or_else(|| sig(&pose, "no simcc_x output".into()))?;
        let simcc_y = by("simcc_y", 2 * INPUT_H as i64)
            .ok_or_else(|| sig(&pose, "no simcc_y output".into()))?;
        Ok(Self {
            detector,
            pose,
            pose_input,
            simcc_x,
            simcc_y,
        })
    }

    /// YOLOX-L person boxes in frame pixels, best first, detected on the frame resized
    /// to [`detect_size`] like the reference.
    pub fn detect_people(&mut self, frame: &RgbImage) -> Result<Vec<BBox>, StageAError> {
        self.detect_people_at(&DetectionFrame::new(frame))
    }

    /// [`Self::detect_people`] on an already resized frame (resize once, then detect and
    /// [`Self::estimate_at`]); boxes in frame pixels.
    pub fn detect_people_at(&mut self, view: &DetectionFrame) -> Result<Vec<BBox>, StageAError> {
        Ok(self
            .detect_people_in(&view.image)?
            .iter()
            .map(|b| view.box_to_frame(b))
            .collect())
    }

    /// YOLOX-L person boxes in `image`'s own pixels (no resize), best first.
    pub fn detect_people_in(&mut self, image: &RgbImage) -> Result<Vec<BBox>, StageAError> {
        let det = self.detector.as_mut().ok_or_else(|| {
            StageAError::Invalid("person detection needs yolox_l.onnx, which was not loaded".into())
        })?;
        let lb = letterbox(image, INPUT_SIZE);
        let name = det.inputs()[0].name.clone();
        let out_name = det.outputs()[0].name.clone();
        let s = INPUT_SIZE as i64;
        let out = det.run(vec![(name, HostTensor::f32(vec![1, 3, s, s], lb.chw))])?;
        let t = &out[&out_name];
        let row = *t.shape.last().unwrap_or(&0) as usize;
        let data = t
            .as_f32()
            .ok_or_else(|| sig(det, "output is not float".into()))?;
        Ok(postprocess(data, row, INPUT_SIZE, lb.scale)?
            .into_iter()
            .map(|d| d.bbox)
            .collect())
    }

    /// Whole-body keypoints for each box given in frame pixels, the model run on the
    /// resized frame as the reference does; keypoints come back in frame pixels.
    pub fn estimate_at(
        &mut self,
        view: &DetectionFrame,
        frame_boxes: &[BBox],
    ) -> Result<Vec<WholeBody>, StageAError> {
        let boxes: Vec<BBox> = frame_boxes
            .iter()
            .map(|b| view.box_to_detection(b))
            .collect();
        Ok(self
            .estimate(&view.image, &boxes)?
            .iter()
            .map(|b| view.body_to_frame(b))
            .collect())
    }

    /// Whole-body keypoints for each box, in `image`'s pixels at whatever size it has
    /// (one model run per box, like the reference).
    pub fn estimate(
        &mut self,
        frame: &RgbImage,
        boxes: &[BBox],
    ) -> Result<Vec<WholeBody>, StageAError> {
        let mut people = Vec::with_capacity(boxes.len());
        for b in boxes {
            let crop = Crop::from_box(b);
            let input = HostTensor::f32(
                vec![1, 3, INPUT_H as i64, INPUT_W as i64],
                crop.input_tensor(frame),
            );
            let out = self.pose.run(vec![(self.pose_input.clone(), input)])?;
            let (Some(sx), Some(sy)) = (
                out.get(&self.simcc_x).and_then(|t| t.as_f32()),
                out.get(&self.simcc_y).and_then(|t| t.as_f32()),
            ) else {
                return Err(sig(&self.pose, "simcc outputs missing or not float".into()));
            };
            let dec = decode_simcc(sx, sy, NUM_KEYPOINTS)?;
            people.push(keypoints_to_source(&crop, &dec));
        }
        Ok(people)
    }
}
