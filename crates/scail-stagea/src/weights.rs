//! The Stage A files `scail weights fetch` downloads, and signature checks for
//! `scail weights verify`.

use std::path::{Path, PathBuf};

use crate::runtime::{ElemType, IoSpec, OnnxModel, RuntimeConfig};
use crate::StageAError;

/// One downloadable Stage A file.
#[derive(Clone, Copy, Debug)]
pub struct StageAFile {
    /// Name under the Stage A weights folder.
    pub local_name: &'static str,
    /// Hugging Face repository and path in it.
    pub repo: &'static str,
    pub path: &'static str,
    /// Size in bytes where known (None where the export's size is not pinned).
    pub size: Option<u64>,
    /// Which Stage A path needs it.
    pub needed_for: &'static str,
}

/// DWPose from its authors' repository; SAM3 from a public community ONNX export of the
/// Hugging Face `Sam3Model` (see the README for exporting it yourself from the gated
/// checkpoint). `.onnx.data` files hold external weights next to their graph. The SAM3
/// decoder and tokenizer paths in that repository are unconfirmed; `verify_dir` checks
/// whatever was fetched.
pub const STAGEA_FILES: &[StageAFile] = &[
    StageAFile {
        local_name: "yolox_l.onnx",
        repo: "yzd-v/DWPose",
        path: "yolox_l.onnx",
        size: Some(216_746_733),
        needed_for: "pose (person boxes when no masks)",
    },
    StageAFile {
        local_name: "dw-ll_ucoco_384.onnx",
        repo: "yzd-v/DWPose",
        path: "dw-ll_ucoco_384.onnx",
        size: Some(134_399_116),
        needed_for: "pose",
    },
    StageAFile {
        local_name: "sam3_vision_encoder.onnx",
        repo: "danilobukvic/sam3-text-onnx",
        path: "vision_encoder.onnx",
        size: None,
        needed_for: "segmentation",
    },
    StageAFile {
        local_name: "sam3_vision_encoder.onnx.data",
        repo: "danilobukvic/sam3-text-onnx",
        path: "vision_encoder.onnx.data",
        size: None,
        needed_for: "segmentation",
    },
    StageAFile {
        local_name: "sam3_text_encoder.onnx",
        repo: "danilobukvic/sam3-text-onnx",
        path: "text_encoder.onnx",
        size: None,
        needed_for: "segmentation",
    },
    StageAFile {
        local_name: "sam3_text_encoder.onnx.data",
        repo: "danilobukvic/sam3-text-onnx",
        path: "text_encoder.onnx.data",
        size: None,
        needed_for: "segmentation",
    },
    StageAFile {
        local_name: "sam3_decoder.onnx",
        repo: "danilobukvic/sam3-text-onnx",
        path: "decoder.onnx",
        size: None,
        needed_for: "segmentation",
    },
    StageAFile {
        local_name: "sam3_tokenizer.json",
        repo: "danilobukvic/sam3-text-onnx",
        path: "tokenizer.json",
        size: None,
        needed_for: "segmentation",
    },
];

/// What a graph must declare: (name or None for "any"), element type, shape with -1 for
/// "any size" (symbolic dimensions are accepted everywhere).
type Want = (Option<&'static str>, ElemType, &'static [i64]);

/// The expected signature of each graph, from the published exports (spec/stagea.md).
pub fn expected_signature(local_name: &str) -> Option<(Vec<Want>, Vec<Want>)> {
    use ElemType::*;
    Some(match local_name {
        "yolox_l.onnx" => (
            vec![(None, F32, &[1, 3, 640, 640])],
            vec![(None, F32, &[1, 8400, 85])],
        ),
        "dw-ll_ucoco_384.onnx" => (
            vec![(None, F32, &[1, 3, 384, 288])],
            vec![
                (Some("simcc_x"), F32, &[1, 133, 576]),
                (Some("simcc_y"), F32, &[1, 133, 768]),
            ],
        ),
        "sam3_vision_encoder.onnx" => (
            vec![(Some("images"), F32, &[-1, 3, 1008, 1008])],
            vec![
                (Some("fpn_feat_0"), F32, &[-1, 256, 288, 288]),
                (Some("fpn_feat_1"), F32, &[-1, 256, 144, 144]),
                (Some("fpn_feat_2"), F32, &[-1, 256, 72, 72]),
                (Some("fpn_pos_2"), F32, &[-1, 256, 72, 72]),
            ],
        ),
        "sam3_text_encoder.onnx" => (
            vec![
                (Some("input_ids"), I64, &[-1, 32]),
                (Some("attention_mask"), I64, &[-1, 32]),
            ],
            vec![(None, F32, &[-1, 32, 256]), (None, Bool, &[-1, 32])],
        ),
        "sam3_decoder.onnx" => (
            vec![
                (Some("fpn_feat_0"), F32, &[-1, 256, 288, 288]),
                (Some("fpn_feat_1"), F32, &[-1, 256, 144, 144]),
                (Some("fpn_feat_2"), F32, &[-1, 256, 72, 72]),
                (Some("fpn_pos_2"), F32, &[-1, 256, 72, 72]),
                (None, F32, &[-1, 32, 256]),
                (None, Bool, &[-1, 32]),
            ],
            vec![
                (Some("pred_masks"), F32, &[-1, -1, 288, 288]),
                (Some("pred_boxes"), F32, &[-1, -1, 4]),
                (Some("pred_logits"), F32, &[-1, -1]),
                (Some("presence_logits"), F32, &[-1, 1]),
            ],
        ),
        _ => return None,
    })
}

fn matches(spec: &IoSpec, want: &Want) -> bool {
    want.0.is_none_or(|n| n == spec.name)
        && spec.elem == want.1
        && spec.shape.len() == want.2.len()
        && spec
            .shape
            .iter()
            .zip(want.2)
            .all(|(&g, &w)| w == -1 || g == -1 || g == w)
}

fn check_side(side: &str, got: &[IoSpec], want: &[Want]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!(
            "{} {side}s, expected {}: {}",
            got.len(),
            want.len(),
            crate::runtime::names(got)
        ));
    }
    let mut used = vec![false; got.len()];
    for w in want {
        match got
            .iter()
            .enumerate()
            .find(|(i, g)| !used[*i] && matches(g, w))
        {
            Some((i, _)) => used[i] = true,
            None => {
                return Err(format!(
                    "no {side} {} of type {:?} and shape {:?}; found {}",
                    w.0.unwrap_or("(any name)"),
                    w.1,
                    w.2,
                    crate::runtime::names(got)
                ))
            }
        }
    }
    Ok(())
}

/// Loads a graph and checks its declared inputs and outputs.
pub fn verify_graph(path: &Path, local_name: &str, rt: &RuntimeConfig) -> Result<(), StageAError> {
    let (ins, outs) = expected_signature(local_name)
        .ok_or_else(|| StageAError::Invalid(format!("{local_name} is not a Stage A graph")))?;
    let m = OnnxModel::load(path, rt)?;
    check_side("input", m.inputs(), &ins)
        .and_then(|_| check_side("output", m.outputs(), &outs))
        .map_err(|detail| {
            StageAError::Runtime(crate::runtime::RuntimeError::Signature {
                model: path.display().to_string(),
                detail,
            })
        })
}

/// Checks every Stage A graph present in `dir`; returns the graphs checked. Missing
/// files are reported by name, not skipped silently.
pub fn verify_dir(dir: &Path, rt: &RuntimeConfig) -> Result<Vec<PathBuf>, StageAError> {
    let mut checked = Vec::new();
    let mut missing = Vec::new();
    for f in STAGEA_FILES {
        if expected_signature(f.local_name).is_none() {
            continue;
        }
        let p = dir.join(f.local_name);
        if !p.is_file() {
            missing.push(f.local_name);
            continue;
        }
        verify_graph(&p, f.local_name, rt)?;
        checked.push(p);
    }
    if !missing.is_empty() {
        return Err(StageAError::Invalid(format!(
            "Stage A files missing from {}: {}",
            dir.display(),
            missing.join(", ")
        )));
    }
    Ok(checked)
}
