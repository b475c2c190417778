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
/// Inclusive bounds of `shift`.
pub const SHIFT_RANGE: (f64, f64) = (0.1, 20.0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The character performs the driving motion on the reference's background.
    #[default]
    Animation,
    /// The driving scene's subject is replaced by the character.
    Replacement,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DrivingType {
    /// The (masked) driving video itself drives the model.
    #[default]
    EndToEnd,
    /// A rendered skeleton drives the model.
    Pose,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    #[default]
    Human,
    Animal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Resolution {
    #[default]
    #[serde(rename = "512p")]
    R512p,
    #[serde(rename = "704p")]
    R704p,
}

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

/// A validated request with every default applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScailInput {
    pub prompt: String,
    pub image_url: String,
    pub video_url: String,
    pub mode: Mode,
    pub driving_type: DrivingType,
    pub subject_type: SubjectType,
    pub resolution: Resolution,
    pub num_inference_steps: u32,
    pub guidance_scale: f64,
    pub shift: f64,
    /// `None`: the worker draws one and returns it.
    pub seed: Option<u64>,
    pub output_preprocessing: bool,
    /// Extension: a palette-coded reference mask (skips segmentation of the reference).
    pub reference_mask_url: Option<String>,
    /// Extension: a palette-coded driving mask video (skips segmentation of the driving video).
    pub driving_mask_url: Option<String>,
    /// Extension: a pre-rendered skeleton video (skips pose estimation).
    pub pose_video_url: Option<String>,
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
}

/// The names of the URL-valued input fields, in schema order.
pub const URL_FIELDS: [&str; 5] = [
    "image_url",
    "video_url",
    "reference_mask_url",
    "driving_mask_url",
    "pose_video_url",
];

/// OpenAPI 3 document of the endpoint: input/output schemas with their defaults and bounds.
pub fn openapi(public_url: &str) -> serde_json::Value {
    use serde_json::json;
    let url_field = |desc: &str| {
        json!({"type": "string", "description": desc,
        "examples": ["https://example.com/file.mp4", "data:video/mp4;base64,..."]})
    };
    let file = json!({"type": "object", "title": "File", "required": ["url"],
        "properties": {"url": {"type": "string"}, "content_type": {"type": "string"},
            "file_name": {"type": "string"}, "file_size": {"type": "integer"}}});
    json!({
        "openapi": "3.0.3",
        "info": {"title": "scail: fal-ai/scail-2", "version": env!("CARGO_PKG_VERSION"),
            "description": "Self-hosted SCAIL-2 character animation, fal queue protocol."},
        "servers": [{"url": public_url}],
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "`Key <your key>`"}},
            "schemas": {
                "File": file,
                "ScailInput": {
                    "type": "object",
                    "required": ["prompt", "image_url", "video_url"],
                    "properties": {
                        "prompt": {"type": "string", "description": "What the output should show."},
                        "image_url": url_field("The reference character image (URL or data URI)."),
                        "video_url": url_field("The driving video (URL or data URI)."),
                        "mode": {"type": "string", "enum": ["animation", "replacement"], "default": "animation"},
                        "driving_type": {"type": "string", "enum": ["end_to_end", "pose"], "default": "end_to_end"},
                        "subject_type": {"type": "string", "enum": ["human", "animal"], "default": "human"},
                        "resolution": {"type": "string", "enum": ["512p", "704p"], "default": "512p",
                            "description": "512p: 896x512 or 512x896; 704p: 1280x704 or 704x1280; orientation from the reference image."},
                        "num_inference_steps": {"type": "integer", "default": 40,
                            "minimum": STEPS_RANGE.0, "maximum": STEPS_RANGE.1},
                        "guidance_scale": {"type": "number", "default": 5.0,
                            "minimum": GUIDANCE_RANGE.0, "maximum": GUIDANCE_RANGE.1},
                        "shift": {"type": "number", "default": 3.0,
                            "minimum": SHIFT_RANGE.0, "maximum": SHIFT_RANGE.1},
                        "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
                            "description": "Random when absent; the seed used is returned."},
                        "output_preprocessing": {"type": "boolean", "default": false,
                            "description": "Also return the Stage A videos."},
                        "reference_mask_url": url_field("scail extension: palette-coded reference mask; skips segmentation."),
                        "driving_mask_url": url_field("scail extension: palette-coded driving mask video; skips segmentation."),
                        "pose_video_url": url_field("scail extension: pre-rendered skeleton video; skips pose estimation.")
                    }
                },
                "ScailOutput": {
                    "type": "object",
                    "required": ["video", "seed"],
                    "properties": {
                        "video": {"$ref": "#/components/schemas/File"},
                        "seed": {"type": "integer"},
                        "preprocessing_video": {"$ref": "#/components/schemas/File"},
                        "preprocessing_mask_video": {"$ref": "#/components/schemas/File"}
                    }
                }
            }
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/queue/fal-ai/scail-2": {"post": {
                "summary": "Submit a request to the queue",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScailInput"}}}},
                "responses": {"200": {"description": "Queued"}, "401": {"description": "Bad or missing key"},
                    "422": {"description": "Validation error"}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}/status": {"get": {"summary": "Request status",
                "responses": {"200": {"description": "Status"}, "404": {"description": "Unknown request"}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}": {"get": {"summary": "Request result",
                "responses": {"200": {"description": "Result", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScailOutput"}}}}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}/cancel": {"put": {"summary": "Cancel",
                "responses": {"202": {"description": "Cancellation requested"}, "400": {"description": "Already completed"}, "404": {"description": "Unknown request"}}}},
            "/run/fal-ai/scail-2": {"post": {"summary": "Run synchronously",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScailInput"}}}},
                "responses": {"200": {"description": "Result", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ScailOutput"}}}}}}}
        }
    })
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
        };
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(v["seed"], 7);
        assert!(v.get("preprocessing_video").is_none());
    }
}
