//! The tiny stand-in graphs (built by `scripts/make_standin_onnx.py`, committed) so tests
//! and `scail weights init-random --config tiny` work offline.

use std::path::{Path, PathBuf};

use crate::StageAError;

/// (path under the Stage A folder, bytes) of every stand-in Stage A file. The SAM3 encoders
/// keep their weights in `.onnx.data` files, like the published export.
pub const STANDIN_FILES: [(&str, &[u8]); 8] = [
    ("yolox_l.onnx", include_bytes!("../standin/yolox_l.onnx")),
    (
        "dw-ll_ucoco_384.onnx",
        include_bytes!("../standin/dw-ll_ucoco_384.onnx"),
    ),
    (
        "sam3/vision_encoder.onnx",
        include_bytes!("../standin/sam3/vision_encoder.onnx"),
    ),
    (
        "sam3/vision_encoder.onnx.data",
        include_bytes!("../standin/sam3/vision_encoder.onnx.data"),
    ),
    (
        "sam3/text_encoder.onnx",
        include_bytes!("../standin/sam3/text_encoder.onnx"),
    ),
    (
        "sam3/text_encoder.onnx.data",
        include_bytes!("../standin/sam3/text_encoder.onnx.data"),
    ),
    (
        "sam3/decoder.onnx",
        include_bytes!("../standin/sam3/decoder.onnx"),
    ),
    (
        "sam3/tokenizer.json",
        include_bytes!("../standin/sam3/tokenizer.json"),
    ),
];

/// Writes the stand-ins into `dir` (created if needed); returns the paths written.
pub fn write_standin_files(dir: &Path) -> Result<Vec<PathBuf>, StageAError> {
    let io = |e: std::io::Error| {
        StageAError::Invalid(format!("writing stand-in graphs to {}: {e}", dir.display()))
    };
    let mut out = Vec::new();
    for (name, bytes) in STANDIN_FILES {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&p, bytes).map_err(io)?;
        out.push(p);
    }
    Ok(out)
}
