//! The endpoint's input and output, as the hosted model page defines them (spec/api.md §7), plus
//! scail's documented extensions.

use serde::{Deserialize, Serialize};

/// The endpoint id this server answers for.
pub const ENDPOINT_ID: &str = "fal-ai/scail-2";

/// Largest accepted seed: 2^32 - 1, the range fal's model pages use, so a seed round-trips through
/// every client (JavaScript numbers included).
pub const MAX_SEED: u64 = u32::MAX as u64;
/// Inclusive bounds of `num_inference_steps`.
pub const STEPS_RANGE: (i64, i64) = (1, 100);
/// Inclusive bounds of `guidance_scale`.
pub const GUIDANCE_RANGE: (f64, f64) = (0.0, 20.0);
/// Longest prompt in characters: umT5 reads 512 tokens, so more is never used, and the job row
/// keeps the prompt.
pub const MAX_PROMPT_CHARS: usize = 10_000;
/// Inclusive bounds of `shift`.
pub const SHIFT_RANGE: (f64, f64) = (0.1, 20.0);

/// The one home of every numeric default: validation, the OpenAPI document, the CLI and the
/// pipeline all read these (the enums' defaults are their `#[default]` variants).
pub mod defaults {
    /// The hosted endpoint's UniPC step count.
    pub const NUM_INFERENCE_STEPS: u32 = 40;
    pub const GUIDANCE_SCALE: f64 = 5.0;
    pub const SHIFT: f64 = 3.0;
}

/// A string-valued enum of the schema: its wire names, in schema order.
pub trait WireEnum: Copy + Default + Sized + 'static {
    /// The field it is the type of (for error messages).
    const FIELD: &'static str;
    const ALL: &'static [(&'static str, Self)];

    fn as_str(self) -> &'static str
    where
        Self: PartialEq,
    {
        Self::ALL
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .expect("every variant is listed")
    }

    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|(n, _)| *n).collect()
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
    }
}

/// Display and FromStr from the wire names, so clap and error messages use them too.
macro_rules! wire_enum {
    ($t:ty, $field:literal, [$(($name:literal, $v:expr)),+ $(,)?]) => {
        impl WireEnum for $t {
            const FIELD: &'static str = $field;
            const ALL: &'static [(&'static str, Self)] = &[$(($name, $v)),+];
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                <$t as WireEnum>::parse(s).ok_or_else(crate::validate::enum_message::<$t>)
            }
        }
    };
}
pub(crate) use wire_enum;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The character performs the driving motion on the reference's background.
    #[default]
    Animation,
    /// The driving scene's subject is replaced by the character.
    Replacement,
}
wire_enum!(
    Mode,
    "mode",
    [
        ("animation", Mode::Animation),
        ("replacement", Mode::Replacement)
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DrivingType {
    /// The (masked) driving video itself drives the model.
    #[default]
    EndToEnd,
    /// A rendered skeleton drives the model.
    Pose,
}
wire_enum!(
    DrivingType,
    "driving_type",
    [
        ("end_to_end", DrivingType::EndToEnd),
        ("pose", DrivingType::Pose)
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    #[default]
    Human,
    Animal,
}
wire_enum!(
    SubjectType,
    "subject_type",
    [
        ("human", SubjectType::Human),
        ("animal", SubjectType::Animal)
    ]
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Resolution {
    #[default]
    #[serde(rename = "512p")]
    R512p,
    #[serde(rename = "704p")]
    R704p,
}
wire_enum!(
    Resolution,
    "resolution",
    [("512p", Resolution::R512p), ("704p", Resolution::R704p)]
);

impl Resolution {
    /// Landscape (width, height) of this resolution.
    pub fn landscape(self) -> (u32, u32) {
        match self {
            Resolution::R512p => (896, 512),
            Resolution::R704p => (1280, 704),
        }
    }

    /// Output (width, height) for a reference image of the given size: a portrait reference swaps
    /// the target; a square one stays landscape (spec/model.md §4).
    pub fn target_size(self, ref_width: u32, ref_height: u32) -> (u32, u32) {
        let (w, h) = self.landscape();
        if ref_height > ref_width {
            (h, w)
        } else {
            (w, h)
        }
    }
}

/// What an input file must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Video,
    /// A still image or a video (a driving mask may be either).
    Any,
}

/// The request's input files, by name. `F` is how a file is given: a URL or data URI (`String`)
/// at the HTTP door, a local path once fetched or at the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputFile {
    Image,
    Video,
    ReferenceMask,
    DrivingMask,
    PoseVideo,
}

impl InputFile {
    pub const ALL: [InputFile; 5] = [
        InputFile::Image,
        InputFile::Video,
        InputFile::ReferenceMask,
        InputFile::DrivingMask,
        InputFile::PoseVideo,
    ];

    /// The request field that carries it.
    pub fn field(self) -> &'static str {
        match self {
            InputFile::Image => "image_url",
            InputFile::Video => "video_url",
            InputFile::ReferenceMask => "reference_mask_url",
            InputFile::DrivingMask => "driving_mask_url",
            InputFile::PoseVideo => "pose_video_url",
        }
    }

    /// A short name for files and messages (`image`, `video`, `reference_mask`, ...).
    pub fn stem(self) -> &'static str {
        self.field().trim_end_matches("_url")
    }

    pub fn kind(self) -> MediaKind {
        match self {
            InputFile::Image | InputFile::ReferenceMask => MediaKind::Image,
            InputFile::Video | InputFile::PoseVideo => MediaKind::Video,
            InputFile::DrivingMask => MediaKind::Any,
        }
    }

    pub fn required(self) -> bool {
        matches!(self, InputFile::Image | InputFile::Video)
    }
}

pub use crate::recipe::{
    lora_name_problem, LoraFile, LoraRef, Preset, Recipe, Sampler, LORA_EXTENSIONS,
    LORA_SCALE_RANGE, MAX_LORAS,
};
pub use crate::request::ScailInput;

impl<F> ScailInput<F> {
    /// The file given for `which`, if any.
    pub fn file(&self, which: InputFile) -> Option<&F> {
        match which {
            InputFile::Image => Some(&self.image_url),
            InputFile::Video => Some(&self.video_url),
            InputFile::ReferenceMask => self.reference_mask_url.as_ref(),
            InputFile::DrivingMask => self.driving_mask_url.as_ref(),
            InputFile::PoseVideo => self.pose_video_url.as_ref(),
        }
    }

    /// Every file given, by name, in schema order.
    pub fn files(&self) -> impl Iterator<Item = (InputFile, &F)> {
        InputFile::ALL
            .into_iter()
            .filter_map(move |k| self.file(k).map(|f| (k, f)))
    }

    /// The same request with each file replaced (e.g. URLs by the local files fetched from
    /// them). It goes through the serialised form, so every other field rides along whatever
    /// the request declares.
    pub fn try_map_files<G, E>(
        self,
        mut f: impl FnMut(InputFile, F) -> Result<G, E>,
    ) -> Result<ScailInput<G>, E>
    where
        F: Serialize + serde::de::DeserializeOwned,
        G: Serialize + serde::de::DeserializeOwned,
    {
        let mut v = serde_json::to_value(&self).expect("a request serialises");
        for which in InputFile::ALL {
            let slot = &mut v[which.field()];
            if slot.is_null() {
                continue;
            }
            let given: F = serde_json::from_value(slot.take()).expect("the file serialised above");
            *slot = serde_json::to_value(f(which, given)?).expect("a file value serialises");
        }
        Ok(serde_json::from_value(v).expect("the same fields, files mapped"))
    }
}

/// A file in a result, as fal returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct File {
    pub url: String,
    pub content_type: String,
    pub file_name: String,
    pub file_size: u64,
}

/// The endpoint's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScailOutput {
    pub video: File,
    pub seed: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preprocessing_video: Option<File>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preprocessing_mask_video: Option<File>,
    /// scail extension: the palette masks lossless (FFV1 in Matroska), every colour exact, to
    /// edit and pass back as `driving_mask_url`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub preprocessing_mask_video_lossless: Option<File>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_rule() {
        assert_eq!(Resolution::R512p.target_size(1920, 1080), (896, 512));
        assert_eq!(Resolution::R512p.target_size(463, 615), (512, 896));
        assert_eq!(Resolution::R512p.target_size(600, 600), (896, 512));
        assert_eq!(Resolution::R704p.target_size(720, 1280), (704, 1280));
    }

    #[test]
    fn output_omits_absent_preprocessing_files() {
        let f = File {
            url: "u".into(),
            content_type: "video/mp4".into(),
            file_name: "out.mp4".into(),
            file_size: 3,
        };
        let out = ScailOutput {
            video: f,
            seed: 7,
            preprocessing_video: None,
            preprocessing_mask_video: None,
            preprocessing_mask_video_lossless: None,
        };
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["seed"], 7);
        assert!(v.get("preprocessing_video").is_none());
    }
}
