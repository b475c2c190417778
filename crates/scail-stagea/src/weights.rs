//! The Stage A files `scail weights fetch` downloads, how each is found in its repository,
//! and signature checks for `scail weights verify`.

use std::path::{Path, PathBuf};

use crate::runtime::{ElemType, IoSpec, OnnxModel, RuntimeConfig};
use crate::StageAError;

/// Where a Stage A file lives in its repository.
#[derive(Clone, Copy, Debug)]
pub enum Remote {
    /// Exactly this path.
    Exact(&'static str),
    /// The first of `names` the repository lists; else the one file ending in `ext` whose
    /// name contains `stem` and carries no reduced-precision marker. Community exports name
    /// their files differently and add fp16/int8 variants, so the fetch picks from the
    /// repository's listing instead of trusting a guessed path.
    Find {
        names: &'static [&'static str],
        stem: &'static str,
        ext: &'static str,
    },
}

/// One downloadable Stage A file.
#[derive(Clone, Copy, Debug)]
pub struct StageAFile {
    /// Path under the Stage A weights folder.
    pub local_name: &'static str,
    /// Hugging Face repository and the file's place in it.
    pub repo: &'static str,
    pub remote: Remote,
    /// Size in bytes where known (None where the export's size is not pinned).
    pub size: Option<u64>,
    /// SHA-256 of the published file where known (the hub's LFS object id; DWPose's two
    /// graphs at revision 1a7144101628d69ee7a3768d1ee3a094070dc388). The community SAM3
    /// export is not pinned: it has no release to pin to.
    pub sha256: Option<&'static str>,
    /// Which Stage A path needs it.
    pub needed_for: &'static str,
    /// Another repository holding an equivalent file, used when `repo` lists none.
    pub fallback: Option<(&'static str, &'static str)>,
}

/// The folder under the Stage A weights folder that holds the SAM3 graphs under the export's
/// own file names, so each graph finds its external `.onnx.data` file next to it.
pub const SAM3_DIR: &str = "sam3";

const SAM3_REPO: &str = "danilobukvic/sam3-text-onnx";

/// DWPose from its authors' repository; SAM3 from a public community ONNX export of the
/// Hugging Face `Sam3Model` (see the README for exporting it yourself from the gated
/// checkpoint). A graph's external weights (`<graph>.data` or `<graph>_data`) are fetched
/// with it. SAM3's tokenizer is the OpenAI CLIP BPE; when the export does not ship a
/// `tokenizer.json`, the one from `openai/clip-vit-large-patch14` is the same vocabulary.
pub const STAGEA_FILES: &[StageAFile] = &[
    StageAFile {
        local_name: "yolox_l.onnx",
        repo: "yzd-v/DWPose",
        remote: Remote::Exact("yolox_l.onnx"),
        size: Some(216_746_733),
        sha256: Some("7860ae79de6c89a3c1eb72ae9a2756c0ccfbe04b7791bb5880afabd97855a411"),
        needed_for: "pose (person boxes when no masks)",
        fallback: None,
    },
    StageAFile {
        local_name: "dw-ll_ucoco_384.onnx",
        repo: "yzd-v/DWPose",
        remote: Remote::Exact("dw-ll_ucoco_384.onnx"),
        size: Some(134_399_116),
        sha256: Some("724f4ff2439ed61afb86fb8a1951ec39c6220682803b4a8bd4f598cd913b1843"),
        needed_for: "pose",
        fallback: None,
    },
    StageAFile {
        local_name: "sam3/vision_encoder.onnx",
        repo: SAM3_REPO,
        remote: Remote::Find {
            names: &["vision_encoder.onnx"],
            stem: "vision",
            ext: ".onnx",
        },
        size: None,
        sha256: None,
        needed_for: "segmentation",
        fallback: None,
    },
    StageAFile {
        local_name: "sam3/text_encoder.onnx",
        repo: SAM3_REPO,
        remote: Remote::Find {
            names: &["text_encoder.onnx"],
            stem: "text",
            ext: ".onnx",
        },
        size: None,
        sha256: None,
        needed_for: "segmentation",
        fallback: None,
    },
    StageAFile {
        local_name: "sam3/decoder.onnx",
        repo: SAM3_REPO,
        remote: Remote::Find {
            names: &["decoder.onnx", "mask_decoder.onnx", "sam3_decoder.onnx"],
            stem: "decoder",
            ext: ".onnx",
        },
        size: None,
        sha256: None,
        needed_for: "segmentation",
        fallback: None,
    },
    StageAFile {
        local_name: "sam3/tokenizer.json",
        repo: SAM3_REPO,
        remote: Remote::Find {
            names: &["tokenizer.json"],
            stem: "tokenizer",
            ext: ".json",
        },
        size: None,
        sha256: None,
        needed_for: "segmentation",
        fallback: Some(("openai/clip-vit-large-patch14", "tokenizer.json")),
    },
];

impl StageAFile {
    /// How the repository's listed file differs from the pinned size and checksum, if it
    /// does (a file without a pin always passes).
    pub fn pin_mismatch(&self, size: u64, sha256: Option<&str>) -> Option<String> {
        let mut diffs = Vec::new();
        if let Some(want) = self.size.filter(|&w| w != size) {
            diffs.push(format!("{size} bytes where {want} are published"));
        }
        if let Some(want) = self.sha256 {
            if sha256 != Some(want) {
                diffs.push(format!(
                    "SHA-256 {} where {want} is published",
                    sha256.unwrap_or("(none listed)")
                ));
            }
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}

/// File-name markers of reduced-precision variants, which the fetch never picks by itself.
const REDUCED: &[&str] = &[
    "fp16", "f16", "bf16", "half", "int8", "uint8", "q8", "int4", "q4", "quant", "bnb",
];

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Whether a path names a reduced-precision variant, in its file or folder names.
fn reduced(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.split('/').any(|c| REDUCED.iter().any(|m| c.contains(m)))
}

/// The repository path that holds `remote`, picked from the repository's listing; None when
/// nothing fits (or, for a pattern, when several equally good files would).
pub fn resolve(remote: &Remote, listed: &[&str]) -> Option<String> {
    match *remote {
        Remote::Exact(p) => listed.contains(&p).then(|| p.to_string()),
        Remote::Find { names, stem, ext } => {
            if let Some(n) = names.iter().find(|n| listed.contains(n)) {
                return Some(n.to_string());
            }
            // Then the same names in a folder (exports often keep graphs under onnx/).
            for n in names {
                let mut hits = listed.iter().filter(|p| file_name(p) == *n && !reduced(p));
                if let (Some(h), None) = (hits.next(), hits.next()) {
                    return Some(h.to_string());
                }
            }
            let mut hits: Vec<&str> = listed
                .iter()
                .copied()
                .filter(|p| {
                    let f = file_name(p).to_ascii_lowercase();
                    f.ends_with(ext) && f.contains(stem) && !reduced(p)
                })
                .collect();
            // The shallowest path wins; a tie is ambiguous and refused.
            hits.sort_by_key(|p| (p.matches('/').count(), p.len()));
            match hits.as_slice() {
                [one] => Some(one.to_string()),
                [a, b, ..] if a.matches('/').count() < b.matches('/').count() => {
                    Some(a.to_string())
                }
                _ => None,
            }
        }
    }
}

/// The external-weights files the repository lists for the graph at `path`.
pub fn companions(path: &str, listed: &[&str]) -> Vec<String> {
    if !path.ends_with(".onnx") {
        return Vec::new();
    }
    [format!("{path}.data"), format!("{path}_data")]
        .into_iter()
        .filter(|c| listed.contains(&c.as_str()))
        .collect()
}

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
        "sam3/vision_encoder.onnx" => (
            vec![(Some("images"), F32, &[-1, 3, 1008, 1008])],
            vec![
                (Some("fpn_feat_0"), F32, &[-1, 256, 288, 288]),
                (Some("fpn_feat_1"), F32, &[-1, 256, 144, 144]),
                (Some("fpn_feat_2"), F32, &[-1, 256, 72, 72]),
                (Some("fpn_pos_2"), F32, &[-1, 256, 72, 72]),
            ],
        ),
        "sam3/text_encoder.onnx" => (
            vec![
                (Some("input_ids"), I64, &[-1, 32]),
                (Some("attention_mask"), I64, &[-1, 32]),
            ],
            vec![(None, F32, &[-1, 32, 256]), (None, Bool, &[-1, 32])],
        ),
        "sam3/decoder.onnx" => (
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

/// Checks every Stage A file in `dir` (graph signatures, and that the tokenizer parses);
/// returns the files checked. Missing files are reported by name, not skipped silently.
pub fn verify_dir(dir: &Path, rt: &RuntimeConfig) -> Result<Vec<PathBuf>, StageAError> {
    let mut checked = Vec::new();
    let mut missing = Vec::new();
    for f in STAGEA_FILES {
        let p = dir.join(f.local_name);
        if !p.is_file() {
            missing.push(f.local_name);
            continue;
        }
        if expected_signature(f.local_name).is_some() {
            verify_graph(&p, f.local_name, rt)?;
        } else {
            // The tokenizer: it must parse and know CLIP's start and end tokens.
            crate::tokenizer::ClipTokenizer::from_file(&p)?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn find(local: &str) -> &'static StageAFile {
        STAGEA_FILES.iter().find(|f| f.local_name == local).unwrap()
    }

    #[test]
    fn sam3_files_are_picked_from_the_listing_full_precision_first() {
        let dec = &find("sam3/decoder.onnx").remote;
        let tok = &find("sam3/tokenizer.json").remote;
        // The expected names win over variants.
        let listed = [
            "README.md",
            "vision_encoder.onnx",
            "vision_encoder.onnx.data",
            "decoder.onnx",
            "decoder_fp16.onnx",
            "int8/decoder.onnx",
            "tokenizer.json",
        ];
        assert_eq!(resolve(dec, &listed).as_deref(), Some("decoder.onnx"));
        assert_eq!(resolve(tok, &listed).as_deref(), Some("tokenizer.json"));
        // Another export's names: picked by stem, reduced-precision files never.
        let other = [
            "onnx/sam3_mask_decoder.onnx",
            "onnx/sam3_mask_decoder_fp16.onnx",
            "fp16/sam3_mask_decoder.onnx",
            "onnx/sam3_clip_tokenizer.json",
        ];
        assert_eq!(
            resolve(dec, &other).as_deref(),
            Some("onnx/sam3_mask_decoder.onnx")
        );
        assert_eq!(
            resolve(tok, &other).as_deref(),
            Some("onnx/sam3_clip_tokenizer.json")
        );
        // An expected name inside one folder is found.
        assert_eq!(
            resolve(dec, &["onnx/decoder.onnx", "onnx/decoder.onnx.data"]).as_deref(),
            Some("onnx/decoder.onnx")
        );
        // Only quantised variants, or two equally good candidates: nothing is guessed.
        assert_eq!(
            resolve(dec, &["decoder_int8.onnx", "q4/decoder.onnx"]),
            None
        );
        assert_eq!(
            resolve(dec, &["a/x_decoder.onnx", "b/y_decoder.onnx"]),
            None
        );
        // An exact path is only ever itself.
        let yolox = &find("yolox_l.onnx").remote;
        assert_eq!(
            resolve(yolox, &["yolox_l.onnx"]).as_deref(),
            Some("yolox_l.onnx")
        );
        assert_eq!(resolve(yolox, &["onnx/yolox_l.onnx"]), None);
    }

    #[test]
    fn external_weights_travel_with_their_graph() {
        let listed = [
            "vision_encoder.onnx",
            "vision_encoder.onnx.data",
            "text_encoder.onnx",
            "text_encoder.onnx_data",
            "decoder.onnx",
        ];
        assert_eq!(
            companions("vision_encoder.onnx", &listed),
            ["vision_encoder.onnx.data"]
        );
        assert_eq!(
            companions("text_encoder.onnx", &listed),
            ["text_encoder.onnx_data"]
        );
        assert!(companions("decoder.onnx", &listed).is_empty());
        assert!(companions("tokenizer.json", &["tokenizer.json.data"]).is_empty());
    }

    #[test]
    fn every_graph_has_a_signature_and_sam3_lives_in_its_folder() {
        for f in STAGEA_FILES {
            let graph = f.local_name.ends_with(".onnx");
            assert_eq!(expected_signature(f.local_name).is_some(), graph, "{f:?}");
            if f.repo == SAM3_REPO {
                assert!(f.local_name.starts_with("sam3/"), "{f:?}");
            }
        }
    }
}
