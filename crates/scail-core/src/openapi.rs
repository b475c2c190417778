//! The OpenAPI 3 document of the endpoint. Enums, defaults and bounds come from the schema's
//! types and constants, so the document cannot drift from what validation enforces.

use serde_json::{json, Value};

use crate::schema::{Preset, WireEnum};

/// The `ScailInput` schema: every field with its default, bounds, enum and help text, from the
/// request's declaration.
pub fn input_schema() -> Value {
    let mut props = crate::request::properties();
    // What each preset fills in, so a form can show it (an OpenAPI extension key).
    let recipes: serde_json::Map<String, Value> = Preset::ALL
        .iter()
        .map(|(name, p)| {
            let r = p.recipe();
            let v = json!({"num_inference_steps": r.steps, "guidance_scale": r.guidance_scale,
                "shift": r.shift, "sampler": r.sampler.as_str()});
            (name.to_string(), v)
        })
        .collect();
    if let Some(preset) = props.get_mut("preset") {
        preset["x-recipes"] = Value::Object(recipes);
    }
    json!({
        "type": "object",
        "required": ["prompt", "image_url", "video_url"],
        "properties": props,
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
                        "preprocessing_mask_video": {"$ref": "#/components/schemas/File"},
                        "preprocessing_mask_video_lossless": {"$ref": "#/components/schemas/File",
                            "description": "scail extension: the masks lossless (FFV1 in Matroska), to edit and pass back as driving_mask_url."}
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
