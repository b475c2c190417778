//! DWPose through ONNX Runtime: YOLOX-L person boxes and the whole-body keypoint model.

use std::path::Path;

use crate::dwpose::{
    decode_simcc, keypoints_to_source, Crop, WholeBody, INPUT_H, INPUT_W, NUM_KEYPOINTS,
};
use crate::frame::{BBox, RgbImage};
use crate::runtime::{HostTensor, OnnxModel, RuntimeConfig, RuntimeError};
use crate::yolox::{letterbox, postprocess, INPUT_SIZE};
use crate::StageAError;

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

    /// YOLOX-L person boxes in frame pixels, best first.
    pub fn detect_people(&mut self, frame: &RgbImage) -> Result<Vec<BBox>, StageAError> {
        let det = self.detector.as_mut().ok_or_else(|| {
            StageAError::Invalid("person detection needs yolox_l.onnx, which was not loaded".into())
        })?;
        let lb = letterbox(frame, INPUT_SIZE);
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

    /// Whole-body keypoints for each box (one model run per box, like the reference).
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
