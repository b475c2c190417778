//! Stage A of scail: who moves, and how.
//!
//! Turns a driving video and a reference image into what the SCAIL-2 model consumes
//! (`spec/model.md` §2 "Modes" and §4): palette-coded subject masks for the reference and
//! every driving frame, the masked driving video (`end_to_end`) or a rendered skeleton
//! video (`pose`). Frames are the media crate's RGB8 images ([`RgbImage`] is
//! [`scail_media::ImageU8`]) and the mode, driving and subject types are scail-core's, so
//! callers pass what they decoded and parsed without translating.
//!
//! Host code (testable without models): [`yolox`], [`dwpose`], [`skeleton`], [`track`],
//! [`compose`]. Model execution: [`runtime`] (ONNX Runtime via `ort`, loaded at run
//! time), [`sam3`], [`pose`]. Orchestration: [`stagea`].

pub mod compose;
pub mod dwpose;
pub mod frame;
pub mod palette;
pub mod pose;
pub mod raster;
pub mod runtime;
pub mod sam3;
pub mod skeleton;
pub mod stagea;
pub mod standin;
pub mod tokenizer;
pub mod track;
pub mod weights;
pub mod yolox;

pub use frame::{BBox, Mask, RgbImage};
pub use palette::ModeMasks;
pub use scail_core::schema::{DrivingType, Mode, SubjectType};

/// Everything Stage A can refuse or fail with. Messages name what was found.
#[derive(Debug, thiserror::Error)]
pub enum StageAError {
    #[error("{what}: buffer holds {got} bytes, expected {expected}")]
    BadBuffer {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("{what} is {}x{}, expected {}x{}", got.0, got.1, expected.0, expected.1)]
    SizeMismatch {
        what: &'static str,
        expected: (u32, u32),
        got: (u32, u32),
    },
    #[error("{found} subjects found, at most {max} can be coloured")]
    TooManySubjects { found: usize, max: usize },
    #[error("{model} output is not what the host code expects: {detail}")]
    BadModelOutput { model: &'static str, detail: String },
    #[error("no subject found in the {what}{frames} (prompts: {prompts})")]
    NoSubject {
        what: &'static str,
        /// Which frames were searched (` in frames 0–31, 0.00–1.94 s`), empty for an image.
        frames: String,
        prompts: String,
    },
    #[error(
        "the reference image has {reference} subject(s) but the driving video has {driving}; \
         they must match (supply masks with reference_mask_url / driving_mask_url to choose)"
    )]
    SubjectCountMismatch { reference: usize, driving: usize },
    #[error("driving_type=pose is not available for subject_type=animal: the pose model only knows human bodies; use driving_type=end_to_end")]
    PoseForAnimal,
    #[error("{what} has {got} frames covering {got_secs:.3} s but the driving video needs {needed_secs:.3} s")]
    TooShort {
        what: &'static str,
        got: usize,
        got_secs: f64,
        needed_secs: f64,
    },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
    /// A [`stagea::StageAProgress`] hook asked Stage A to stop.
    #[error("cancelled")]
    Cancelled,
}
