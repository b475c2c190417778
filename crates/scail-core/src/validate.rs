//! Request validation with fal-style (FastAPI/pydantic) 422 details: one entry per violation, each
//! with `loc`, `msg` and `type`, so the JS client's `ValidationError.fieldErrors` points at the field.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::schema::*;

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    pub loc: Vec<String>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ctx: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

impl FieldError {
    fn new(field: &str, msg: impl Into<String>, kind: &str) -> Self {
        FieldError {
            loc: vec!["body".into(), field.into()],
            msg: msg.into(),
            kind: kind.into(),
            ctx: None,
            input: None,
        }
    }
    fn ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
    fn input(mut self, v: &Value) -> Self {
        self.input = Some(v.clone());
        self
    }
    /// An error about the body as a whole (not JSON, not an object).
    pub fn body(msg: impl Into<String>, kind: &str) -> Self {
        FieldError {
            loc: vec!["body".into()],
            msg: msg.into(),
            kind: kind.into(),
            ctx: None,
            input: None,
        }
    }
}

struct Checker<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Checker<'a> {
    fn get(&self, field: &str) -> Option<&'a Value> {
        // An explicit null means "not given", as pydantic treats Optional fields.
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn required_str(&mut self, field: &str) -> Option<String> {
        match self.obj.get(field) {
            None | Some(Value::Null) => {
                self.errors.push(FieldError::new(
                    field,
                    "field required",
                    "value_error.missing",
                ));
                None
            }
            Some(v) => self.str_value(field, v),
        }
    }

    fn str_value(&mut self, field: &str, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.errors
                    .push(FieldError::new(field, "str type expected", "type_error.str").input(v));
                None
            }
        }
    }

    fn url(&mut self, field: &str, required: bool) -> Option<String> {
        let s = if required {
            self.required_str(field)?
        } else {
            let v = self.get(field)?;
            self.str_value(field, v)?
        };
        match check_url(&s) {
            Ok(()) => Some(s),
            Err((msg, kind)) => {
                let shown = if s.len() > 80 {
                    format!("{}…", &s[..s.floor_char_boundary(80)])
                } else {
                    s.clone()
                };
                self.errors
                    .push(FieldError::new(field, msg, kind).input(&Value::String(shown)));
                None
            }
        }
    }

    fn enumeration<T: Copy>(&mut self, field: &str, options: &[(&str, T)], default: T) -> T {
        let Some(v) = self.get(field) else {
            return default;
        };
        let permitted: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
        if let Value::String(s) = v {
            if let Some((_, t)) = options.iter().find(|(n, _)| n == s) {
                return *t;
            }
        }
        let list = permitted
            .iter()
            .map(|p| format!("'{p}'"))
            .collect::<Vec<_>>()
            .join(", ");
        self.errors.push(
            FieldError::new(
                field,
                format!("value is not a valid enumeration member; permitted: {list}"),
                "type_error.enum",
            )
            .ctx(json!({"enum_values": permitted}))
            .input(v),
        );
        default
    }

    fn integer(&mut self, field: &str, lo: i64, hi: i64) -> Option<i64> {
        let v = self.get(field)?;
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                // 40.0 is an integer to pydantic; 40.5 is not. Out-of-i64 values are out of range.
                n.as_f64()
                    .and_then(|f| (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64))
            }),
            _ => None,
        };
        let Some(n) = n else {
            let huge = matches!(v, Value::Number(n) if n.as_u64().is_some());
            if huge {
                self.errors.push(
                    FieldError::new(
                        field,
                        format!("ensure this value is less than or equal to {hi}"),
                        "value_error.number.not_le",
                    )
                    .ctx(json!({"limit_value": hi}))
                    .input(v),
                );
            } else {
                self.errors.push(
                    FieldError::new(field, "value is not a valid integer", "type_error.integer")
                        .input(v),
                );
            }
            return None;
        };
        self.bounds(
            field,
            v,
            n as f64,
            lo as f64,
            hi as f64,
            json!(lo),
            json!(hi),
        )
        .then_some(n)
    }

    fn float(&mut self, field: &str, lo: f64, hi: f64) -> Option<f64> {
        let v = self.get(field)?;
        let Some(f) = v.as_f64().filter(|f| f.is_finite()) else {
            self.errors.push(
                FieldError::new(field, "value is not a valid float", "type_error.float").input(v),
            );
            return None;
        };
        self.bounds(field, v, f, lo, hi, json!(lo), json!(hi))
            .then_some(f)
    }

    #[allow(clippy::too_many_arguments)]
    fn bounds(
        &mut self,
        field: &str,
        v: &Value,
        x: f64,
        lo: f64,
        hi: f64,
        jl: Value,
        jh: Value,
    ) -> bool {
        if x < lo {
            self.errors.push(
                FieldError::new(
                    field,
                    format!("ensure this value is greater than or equal to {jl}"),
                    "value_error.number.not_ge",
                )
                .ctx(json!({"limit_value": jl}))
                .input(v),
            );
            false
        } else if x > hi {
            self.errors.push(
                FieldError::new(
                    field,
                    format!("ensure this value is less than or equal to {jh}"),
                    "value_error.number.not_le",
                )
                .ctx(json!({"limit_value": jh}))
                .input(v),
            );
            false
        } else {
            true
        }
    }

    fn boolean(&mut self, field: &str) -> bool {
        match self.get(field) {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(v) => {
                self.errors.push(
                    FieldError::new(
                        field,
                        "value could not be parsed to a boolean",
                        "type_error.bool",
                    )
                    .input(v),
                );
                false
            }
        }
    }
}

/// Checks that a string is an `http(s)` URL with a host, or a base64 `data:` URI.
pub fn check_url(s: &str) -> Result<(), (&'static str, &'static str)> {
    if let Some(rest) = s.strip_prefix("data:") {
        let Some((meta, payload)) = rest.split_once(',') else {
            return Err((
                "invalid data URI: no ',' separating the header from the data",
                "value_error.url.data",
            ));
        };
        if !meta.ends_with(";base64") {
            return Err((
                "invalid data URI: only base64 data URIs are accepted",
                "value_error.url.data",
            ));
        }
        let ok = !payload.is_empty()
            && payload.bytes().all(|b| {
                b.is_ascii_alphanumeric()
                    || matches!(b, b'+' | b'/' | b'=' | b'-' | b'_' | b'\n' | b'\r')
            });
        if !ok {
            return Err((
                "invalid data URI: the data is not base64",
                "value_error.url.data",
            ));
        }
        return Ok(());
    }
    let rest = if let Some(r) = s.strip_prefix("https://") {
        r
    } else if let Some(r) = s.strip_prefix("http://") {
        r
    } else {
        return Err(("invalid or missing URL scheme", "value_error.url.scheme"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    if host.is_empty() || host.starts_with(':') || host.contains(char::is_whitespace) {
        return Err(("URL host invalid", "value_error.url.host"));
    }
    if s.contains(char::is_whitespace) {
        return Err(("URL invalid, contains whitespace", "value_error.url"));
    }
    Ok(())
}

/// Validates a submitted JSON body, applying defaults. Unknown fields are ignored.
pub fn validate_input(body: &Value) -> Result<ScailInput, Vec<FieldError>> {
    let Value::Object(obj) = body else {
        return Err(vec![FieldError::body(
            "value is not a valid dict",
            "type_error.dict",
        )]);
    };
    let mut c = Checker {
        obj,
        errors: Vec::new(),
    };
    let prompt = c.required_str("prompt");
    let image_url = c.url("image_url", true);
    let video_url = c.url("video_url", true);
    let mode = c.enumeration(
        "mode",
        &[
            ("animation", Mode::Animation),
            ("replacement", Mode::Replacement),
        ],
        Mode::Animation,
    );
    let driving_type = c.enumeration(
        "driving_type",
        &[
            ("end_to_end", DrivingType::EndToEnd),
            ("pose", DrivingType::Pose),
        ],
        DrivingType::EndToEnd,
    );
    let subject_type = c.enumeration(
        "subject_type",
        &[
            ("human", SubjectType::Human),
            ("animal", SubjectType::Animal),
        ],
        SubjectType::Human,
    );
    let resolution = c.enumeration(
        "resolution",
        &[("512p", Resolution::R512p), ("704p", Resolution::R704p)],
        Resolution::R512p,
    );
    let steps = c.integer("num_inference_steps", STEPS_RANGE.0, STEPS_RANGE.1);
    let guidance = c.float("guidance_scale", GUIDANCE_RANGE.0, GUIDANCE_RANGE.1);
    let shift = c.float("shift", SHIFT_RANGE.0, SHIFT_RANGE.1);
    let seed = c.integer("seed", 0, MAX_SEED as i64);
    let output_preprocessing = c.boolean("output_preprocessing");
    let reference_mask_url = c.url("reference_mask_url", false);
    let driving_mask_url = c.url("driving_mask_url", false);
    let pose_video_url = c.url("pose_video_url", false);

    if driving_type == DrivingType::Pose && subject_type == SubjectType::Animal {
        c.errors.push(
            FieldError::new(
                "driving_type",
                "pose driving is not available for subject_type 'animal': the pose estimator is a human model; use driving_type 'end_to_end'",
                "value_error.unsupported_combination",
            )
            .input(&json!("pose")),
        );
    }

    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(ScailInput {
        prompt: prompt.unwrap_or_default(),
        image_url: image_url.unwrap_or_default(),
        video_url: video_url.unwrap_or_default(),
        mode,
        driving_type,
        subject_type,
        resolution,
        num_inference_steps: steps.unwrap_or(40) as u32,
        guidance_scale: guidance.unwrap_or(5.0),
        shift: shift.unwrap_or(3.0),
        seed: c.get("seed").and(seed.map(|s| s as u64)),
        output_preprocessing,
        reference_mask_url,
        driving_mask_url,
        pose_video_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Value {
        json!({"prompt": "a dancer", "image_url": "https://example.com/a.png",
               "video_url": "https://example.com/b.mp4"})
    }

    fn errs(v: Value) -> Vec<FieldError> {
        validate_input(&v).expect_err("should fail")
    }

    fn with(k: &str, v: Value) -> Value {
        let mut b = base();
        b[k] = v;
        b
    }

    #[test]
    fn defaults_applied_and_extras_ignored() {
        let mut b = base();
        b["something_else"] = json!(123);
        let i = validate_input(&b).unwrap();
        assert_eq!(i.mode, Mode::Animation);
        assert_eq!(i.driving_type, DrivingType::EndToEnd);
        assert_eq!(i.subject_type, SubjectType::Human);
        assert_eq!(i.resolution, Resolution::R512p);
        assert_eq!(i.num_inference_steps, 40);
        assert_eq!(i.guidance_scale, 5.0);
        assert_eq!(i.shift, 3.0);
        assert_eq!(i.seed, None);
        assert!(!i.output_preprocessing);
    }

    #[test]
    fn every_missing_required_field_is_reported() {
        let e = errs(json!({}));
        let locs: Vec<_> = e.iter().map(|e| e.loc[1].clone()).collect();
        assert_eq!(locs, ["prompt", "image_url", "video_url"]);
        assert!(e
            .iter()
            .all(|e| e.kind == "value_error.missing" && e.loc[0] == "body"));
    }

    #[test]
    fn wrong_types() {
        assert_eq!(errs(with("prompt", json!(5)))[0].kind, "type_error.str");
        assert_eq!(
            errs(with("num_inference_steps", json!("x")))[0].kind,
            "type_error.integer"
        );
        assert_eq!(
            errs(with("num_inference_steps", json!(2.5)))[0].kind,
            "type_error.integer"
        );
        assert_eq!(
            errs(with("guidance_scale", json!("x")))[0].kind,
            "type_error.float"
        );
        assert_eq!(
            errs(with("output_preprocessing", json!("yes")))[0].kind,
            "type_error.bool"
        );
        assert_eq!(errs(json!([1]))[0].kind, "type_error.dict");
    }

    #[test]
    fn enums() {
        let e = errs(with("mode", json!("dance")));
        assert_eq!(e[0].loc, ["body", "mode"]);
        assert_eq!(e[0].kind, "type_error.enum");
        assert!(e[0].msg.contains("'animation', 'replacement'"));
        assert_eq!(
            errs(with("resolution", json!("1080p")))[0].loc[1],
            "resolution"
        );
        assert_eq!(
            errs(with("driving_type", json!(1)))[0].loc[1],
            "driving_type"
        );
        assert_eq!(
            errs(with("subject_type", json!("robot")))[0].loc[1],
            "subject_type"
        );
        let ok = validate_input(&with("resolution", json!("704p"))).unwrap();
        assert_eq!(ok.resolution, Resolution::R704p);
    }

    #[test]
    fn ranges() {
        for (k, v, kind) in [
            ("num_inference_steps", json!(0), "value_error.number.not_ge"),
            (
                "num_inference_steps",
                json!(101),
                "value_error.number.not_le",
            ),
            ("guidance_scale", json!(-0.5), "value_error.number.not_ge"),
            ("guidance_scale", json!(20.5), "value_error.number.not_le"),
            ("shift", json!(0), "value_error.number.not_ge"),
            ("shift", json!(25), "value_error.number.not_le"),
            ("seed", json!(-1), "value_error.number.not_ge"),
            ("seed", json!(4294967296u64), "value_error.number.not_le"),
            (
                "seed",
                json!(18446744073709551615u64),
                "value_error.number.not_le",
            ),
        ] {
            let e = errs(with(k, v.clone()));
            assert_eq!(e.len(), 1, "{k}={v}");
            assert_eq!(e[0].loc, ["body", k]);
            assert_eq!(e[0].kind, kind, "{k}={v}");
            assert!(e[0].ctx.is_some());
        }
        let i = validate_input(&with("seed", json!(4294967295u64))).unwrap();
        assert_eq!(i.seed, Some(4294967295));
        let i = validate_input(&with("num_inference_steps", json!(8.0))).unwrap();
        assert_eq!(i.num_inference_steps, 8);
    }

    #[test]
    fn urls_and_data_uris() {
        for bad in [
            "ftp://x/y",
            "example.com/a.png",
            "https:///a.png",
            "data:image/png,abc",
            "data:image/png;base64,!!!",
            "data:image/png;base64",
        ] {
            let e = errs(with("image_url", json!(bad)));
            assert_eq!(e[0].loc, ["body", "image_url"], "{bad}");
            assert!(
                e[0].kind.starts_with("value_error.url"),
                "{bad}: {}",
                e[0].kind
            );
        }
        let ok = validate_input(&with(
            "image_url",
            json!("data:image/png;base64,iVBORw0KGgo="),
        ))
        .unwrap();
        assert!(ok.image_url.starts_with("data:"));
        let e = errs(with("pose_video_url", json!("nope")));
        assert_eq!(e[0].loc, ["body", "pose_video_url"]);
    }

    #[test]
    fn animal_pose_is_refused() {
        let mut b = with("subject_type", json!("animal"));
        b["driving_type"] = json!("pose");
        let e = errs(b);
        assert_eq!(e[0].loc, ["body", "driving_type"]);
        assert!(e[0].msg.contains("animal"));
    }

    #[test]
    fn several_errors_at_once() {
        let mut b = with("mode", json!("x"));
        b["shift"] = json!(100);
        b.as_object_mut().unwrap().remove("prompt");
        assert_eq!(errs(b).len(), 3);
    }
}
