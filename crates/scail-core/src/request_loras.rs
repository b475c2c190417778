//! The request's `loras` field: `[{"name": "...", "scale": 1.0}, ...]`, names of files inside
//! the server's LoRA folder (the server checks they exist; here only their form is checked).

use serde_json::{json, Value};

use crate::recipe::{lora_name_problem, LoraRef, LORA_EXTENSIONS, LORA_SCALE_RANGE, MAX_LORAS};
use crate::request::{FromJson, Kind};
use crate::validate::{FieldError, Parser};

/// A list of LoRAs, empty when absent.
pub(crate) struct LoraList;

/// An error about one entry's `key` (`loc` = body, loras, index, key).
fn entry_error(field: &str, i: usize, key: &str, msg: impl Into<String>, kind: &str) -> FieldError {
    let mut e = FieldError::new(field, msg, kind);
    e.loc.push(i.to_string());
    e.loc.push(key.into());
    e
}

impl<F> Kind<F> for LoraList {
    type Given = Vec<LoraRef>;
    type Valid = Vec<LoraRef>;
    fn check(
        &self,
        field: &str,
        given: Option<Vec<LoraRef>>,
        e: &mut Vec<FieldError>,
    ) -> Option<Vec<LoraRef>> {
        let list = given.unwrap_or_default();
        let before = e.len();
        if list.len() > MAX_LORAS {
            e.push(
                FieldError::new(
                    field,
                    format!("ensure this value has at most {MAX_LORAS} items"),
                    "value_error.list.max_items",
                )
                .ctx(json!({"limit_value": MAX_LORAS})),
            );
        }
        for (i, l) in list.iter().enumerate() {
            if let Some(msg) = lora_name_problem(&l.name) {
                e.push(
                    entry_error(field, i, "name", msg, "value_error.lora.name")
                        .input(&json!(l.name)),
                );
            }
            let (lo, hi) = LORA_SCALE_RANGE;
            if !(l.scale.is_finite() && (lo..=hi).contains(&l.scale)) {
                let msg = format!("a LoRA scale is between {lo} and {hi}");
                e.push(
                    entry_error(field, i, "scale", msg, "value_error.number")
                        .input(&json!(l.scale)),
                );
            }
        }
        (e.len() == before).then_some(list)
    }
    fn schema(&self, d: &str) -> Value {
        let (lo, hi) = LORA_SCALE_RANGE;
        json!({"type": "array", "maxItems": MAX_LORAS, "default": [], "description": d,
            "items": {"type": "object", "required": ["name"], "properties": {
                "name": {"type": "string", "description": format!(
                    "File name inside the server's LoRA folder (.{}); GET /openapi.json lists them.",
                    LORA_EXTENSIONS.join(", ."))},
                "scale": {"type": "number", "default": 1.0, "minimum": lo, "maximum": hi,
                    "description": "Strength: 0 leaves the model unchanged."}}}})
    }
}

impl FromJson for LoraList {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<Vec<LoraRef>> {
        let v = p.get(field)?;
        let Value::Array(items) = v else {
            p.errors.push(
                FieldError::new(field, "value is not a valid list", "type_error.list").input(v),
            );
            return None;
        };
        let mut out = Vec::new();
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            let Value::Object(o) = item else {
                let msg = "expected an object {\"name\": ..., \"scale\": ...}";
                p.errors
                    .push(entry_error(field, i, "name", msg, "type_error.dict").input(item));
                ok = false;
                continue;
            };
            let name = match o.get("name") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => {
                    let e = entry_error(field, i, "name", "str type expected", "type_error.str");
                    p.errors.push(e.input(v));
                    None
                }
                None => {
                    let e = entry_error(field, i, "name", "field required", "value_error.missing");
                    p.errors.push(e);
                    None
                }
            };
            let scale = match o.get("scale") {
                None | Some(Value::Null) => Some(1.0),
                Some(v) => {
                    let f = v.as_f64().filter(|f| f.is_finite());
                    if f.is_none() {
                        let msg = "value is not a valid float";
                        let e = entry_error(field, i, "scale", msg, "type_error.float");
                        p.errors.push(e.input(v));
                    }
                    f
                }
            };
            match (name, scale) {
                (Some(name), Some(scale)) => out.push(LoraRef { name, scale }),
                _ => ok = false,
            }
        }
        ok.then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::{validate_input, LoraRef, MAX_LORAS};

    fn body(loras: serde_json::Value) -> serde_json::Value {
        json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4", "loras": loras})
    }

    #[test]
    fn loras_parse_with_a_default_scale() {
        let i = validate_input(&body(json!([{"name": "a.safetensors"},
            {"name": "b.pt", "scale": -0.5}])))
        .unwrap();
        assert_eq!(
            i.loras,
            [
                LoraRef {
                    name: "a.safetensors".into(),
                    scale: 1.0
                },
                LoraRef {
                    name: "b.pt".into(),
                    scale: -0.5
                }
            ]
        );
        let none = json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4"});
        assert!(validate_input(&none).unwrap().loras.is_empty());
    }

    #[test]
    fn bad_entries_are_refused_at_their_place() {
        let cases = [
            (
                json!([{"name": "../etc/passwd.pt"}]),
                "0",
                "name",
                "not by a path",
            ),
            (
                json!([{"name": "/abs/x.safetensors"}]),
                "0",
                "name",
                "not by a path",
            ),
            (
                json!([{"name": ".hidden.pt"}]),
                "0",
                "name",
                "not by a path",
            ),
            (json!([{"name": "x.txt"}]), "0", "name", ".safetensors"),
            (
                json!([{"name": "a.pt"}, {"name": 3}]),
                "1",
                "name",
                "str type",
            ),
            (json!([{"scale": 1}]), "0", "name", "field required"),
            (
                json!([{"name": "a.pt", "scale": "big"}]),
                "0",
                "scale",
                "valid float",
            ),
            (
                json!([{"name": "a.pt", "scale": 9}]),
                "0",
                "scale",
                "between",
            ),
            (json!(["a.pt"]), "0", "name", "expected an object"),
        ];
        for (loras, idx, key, msg) in cases {
            let e = validate_input(&body(loras.clone())).unwrap_err();
            assert_eq!(e.len(), 1, "{loras}: {e:?}");
            assert_eq!(e[0].loc, ["body", "loras", idx, key], "{loras}");
            assert!(e[0].msg.contains(msg), "{loras}: {}", e[0].msg);
        }
        let e = validate_input(&body(json!("a.pt"))).unwrap_err();
        assert_eq!(e[0].loc, ["body", "loras"]);
        let many: Vec<_> = (0..=MAX_LORAS)
            .map(|i| json!({"name": format!("{i}.pt")}))
            .collect();
        let e = validate_input(&body(json!(many))).unwrap_err();
        assert_eq!(e[0].kind, "value_error.list.max_items");
    }
}
