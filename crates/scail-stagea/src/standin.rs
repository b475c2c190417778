//! The tiny stand-in graphs (built by `scripts/make_standin_onnx.py`, committed) so tests
//! and `scail weights init-random --config tiny` work offline.

use std::path::{Path, PathBuf};

use crate::StageAError;

/// (file name, bytes) of every stand-in Stage A file.
pub const STANDIN_FILES: [(&str, &[u8]); 6] = [
    ("yolox_l.onnx", include_bytes!("../standin/yolox_l.onnx")),
    (
        "dw-ll_ucoco_384.onnx",
        include_bytes!("../standin/dw-ll_ucoco_384.onnx"),
    ),
    (
        "sam3_vision_encoder.onnx",
        include_bytes!("../standin/sam3_vision_encoder.onnx"),
    ),
    (
        "sam3_text_encoder.onnx",
        include_bytes!("../standin/sam3_text_encoder.onnx"),
    ),
    (
        "sam3_decoder.onnx",
        include_bytes!("../standin/sam3_decoder.onnx"),
    ),
    (
        "sam3_tokenizer.json",
        include_bytes!("../standin/sam3_tokenizer.json"),
    ),
];

/// Writes the stand-ins into `dir` (created if needed); returns the paths written.
pub fn write_standin_files(dir: &Path) -> Result<Vec<PathBuf>, StageAError> {
    let io = |e: std::io::Error| {
        StageAError::Invalid(format!("writing stand-in graphs to {}: {e}", dir.display()))
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut out = Vec::new();
    for (name, bytes) in STANDIN_FILES {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(io)?;
        out.push(p);
    }
    Ok(out)
}
