//! The OpenAPI 3 document of the endpoint. Enums, defaults and bounds come from the schema's
//! types and constants, so the document cannot drift from what validation enforces.

use serde_json::{json, Value};

use crate::schema::*;

fn enum_field<T: WireEnum + PartialEq>(description: &str) -> Value {
    json!({"type": "string", "enum": T::names(), "default": T::default().as_str(),
        "description": description})
}

fn url_field(description: &str) -> Value {
    json!({"type": "string", "description": description,
        "examples": ["https://example.com/file.mp4", "data:video/mp4;base64,..."]})
}

/// The `ScailInput` schema: every field with its default, bounds, enum and help text.
pub fn input_schema() -> Value {
    json!({
        "type": "object",
        "required": ["prompt", "image_url", "video_url"],
        "properties": {
            "prompt": {"type": "string", "maxLength": MAX_PROMPT_CHARS,
                "description": "What the output should show."},
            "image_url": url_field("The reference character image (URL or data URI)."),
            "video_url": url_field("The driving video (URL or data URI)."),
            "mode": enum_field::<Mode>("animation: the character performs the driving motion on the reference's background; replacement: the driving scene's subject is replaced by the character."),
            "driving_type": enum_field::<DrivingType>("end_to_end: the masked driving video drives the model; pose: a rendered skeleton does."),
            "subject_type": enum_field::<SubjectType>("What the driving subject is (animal needs driving_type end_to_end)."),
            "resolution": enum_field::<Resolution>("512p: 896x512 or 512x896; 704p: 1280x704 or 704x1280; orientation from the reference image."),
            "num_inference_steps": {"type": "integer", "default": defaults::NUM_INFERENCE_STEPS,
                "minimum": STEPS_RANGE.0, "maximum": STEPS_RANGE.1,
                "description": "Sampling steps per segment."},
            "guidance_scale": {"type": "number", "default": defaults::GUIDANCE_SCALE,
                "minimum": GUIDANCE_RANGE.0, "maximum": GUIDANCE_RANGE.1,
                "description": "Classifier-free guidance; 1 runs one forward per step."},
            "shift": {"type": "number", "default": defaults::SHIFT,
                "minimum": SHIFT_RANGE.0, "maximum": SHIFT_RANGE.1,
                "description": "Flow-matching timestep shift."},
            "seed": {"type": "integer", "minimum": 0, "maximum": MAX_SEED,
                "description": "Random when absent; the seed used is returned."},
            "output_preprocessing": {"type": "boolean", "default": false,
                "description": "Also return the Stage A videos."},
            "reference_mask_url": url_field("scail extension: palette-coded reference mask; skips segmentation."),
            "driving_mask_url": url_field("scail extension: palette-coded driving mask video; skips segmentation."),
            "pose_video_url": url_field("scail extension: pre-rendered skeleton video; skips pose estimation.")
        }
    })
}

/// OpenAPI 3 document of the endpoint: input/output schemas with their defaults and bounds.
pub fn openapi(public_url: &str) -> Value {
    let file = json!({"type": "object", "title": "File", "required": ["url"],
        "properties": {"url": {"type": "string"}, "content_type": {"type": "string"},
            "file_name": {"type": "string"}, "file_size": {"type": "integer"}}});
    let request_id = json!([{"name": "request_id", "in": "path", "required": true,
        "schema": {"type": "string"}, "description": "The id the submit call returned."}]);
    let input_body = json!({"required": true, "content": {"application/json": {"schema":
        {"$ref": "#/components/schemas/ScailInput"}}}});
    let output =
        json!({"application/json": {"schema": {"$ref": "#/components/schemas/ScailOutput"}}});
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
                "ScailInput": input_schema(),
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
                "requestBody": input_body,
                "responses": {"200": {"description": "Queued"}, "401": {"description": "Bad or missing key"},
                    "422": {"description": "Validation error"}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}/status": {"get": {"summary": "Request status",
                "parameters": request_id,
                "responses": {"200": {"description": "Status"}, "404": {"description": "Unknown request"}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}": {"get": {"summary": "Request result",
                "parameters": request_id,
                "responses": {"200": {"description": "Result", "content": output}}}},
            "/queue/fal-ai/scail-2/requests/{request_id}/cancel": {"put": {"summary": "Cancel",
                "parameters": request_id,
                "responses": {"202": {"description": "Cancellation requested"}, "400": {"description": "Already completed"}, "404": {"description": "Unknown request"}}}},
            "/run/fal-ai/scail-2": {"post": {"summary": "Run synchronously",
                "requestBody": input_body,
                "responses": {"200": {"description": "Result", "content": output}}}}
        }
    })
}
