//! Request validation with fal-style (FastAPI/pydantic) 422 details: one entry per violation, each
//! with `loc`, `msg` and `type`, so the JS client's `ValidationError.fieldErrors` points at the field.
//!
//! Two layers, so both front doors apply one rule set: the HTTP door parses JSON into [`Fields`]
//! (type, enum and URL errors), `scail generate` fills [`Fields`] from its flags; then
//! [`Fields::validate`] applies required fields, defaults, ranges and combinations for both.

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

/// Longest echo of an offending value in an error: a 100 KB value is not sent back whole.
const ECHO_CHARS: usize = 80;

/// The offending value as echoed in an error: long strings cut, big arrays and objects named.
fn echo(v: &Value) -> Value {
    match v {
        Value::String(s) if s.chars().count() > ECHO_CHARS => {
            Value::String(format!("{}…", &s[..s.floor_char_boundary(ECHO_CHARS)]))
        }
        Value::Array(a) if v.to_string().len() > ECHO_CHARS => {
            Value::String(format!("<array of {} items>", a.len()))
        }
        Value::Object(o) if v.to_string().len() > ECHO_CHARS => {
            Value::String(format!("<object with {} keys>", o.len()))
        }
        v => v.clone(),
    }
}

impl FieldError {
    pub fn new(field: &str, msg: impl Into<String>, kind: &str) -> Self {
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
        self.input = Some(echo(v));
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
    /// The field it is about (`None` for the body as a whole).
    pub fn field(&self) -> Option<&str> {
        self.loc.get(1).map(String::as_str)
    }
}

/// `field: message`, as the command line prints it.
impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.field() {
            Some(field) => write!(f, "{field}: {}", self.msg),
            None => f.write_str(&self.msg),
        }
    }
}

/// The message for a value that is none of an enum's wire names.
pub fn enum_message<T: WireEnum + PartialEq>() -> String {
    let list = T::names()
        .iter()
        .map(|p| format!("'{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("value is not a valid enumeration member; permitted: {list}")
}

fn enum_error<T: WireEnum + PartialEq>(given: &Value) -> FieldError {
    FieldError::new(T::FIELD, enum_message::<T>(), "type_error.enum")
        .ctx(json!({"enum_values": T::names()}))
        .input(given)
}

fn not_ge(field: &str, limit: Value, given: Value) -> FieldError {
    FieldError::new(
        field,
        format!("ensure this value is greater than or equal to {limit}"),
        "value_error.number.not_ge",
    )
    .ctx(json!({"limit_value": limit}))
    .input(&given)
}

fn not_le(field: &str, limit: Value, given: Value) -> FieldError {
    FieldError::new(
        field,
        format!("ensure this value is less than or equal to {limit}"),
        "value_error.number.not_le",
    )
    .ctx(json!({"limit_value": limit}))
    .input(&given)
}

/// The request's fields as given, typed but not yet checked: `None` is "not given". `F` is how
/// files are given (URL strings at the HTTP door, paths at the command line).
#[derive(Debug, Clone)]
pub struct Fields<F> {
    pub prompt: Option<String>,
    pub image_url: Option<F>,
    pub video_url: Option<F>,
    pub mode: Option<Mode>,
    pub driving_type: Option<DrivingType>,
    pub subject_type: Option<SubjectType>,
    pub resolution: Option<Resolution>,
    pub num_inference_steps: Option<i64>,
    pub guidance_scale: Option<f64>,
    pub shift: Option<f64>,
    pub seed: Option<i64>,
    pub output_preprocessing: Option<bool>,
    pub reference_mask_url: Option<F>,
    pub driving_mask_url: Option<F>,
    pub pose_video_url: Option<F>,
}

impl<F> Default for Fields<F> {
    fn default() -> Self {
        Fields {
            prompt: None,
            image_url: None,
            video_url: None,
            mode: None,
            driving_type: None,
            subject_type: None,
            resolution: None,
            num_inference_steps: None,
            guidance_scale: None,
            shift: None,
            seed: None,
            output_preprocessing: None,
            reference_mask_url: None,
            driving_mask_url: None,
            pose_video_url: None,
        }
    }
}

fn in_range_i(
    e: &mut Vec<FieldError>,
    field: &str,
    v: Option<i64>,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let n = v?;
    if n < lo {
        e.push(not_ge(field, json!(lo), json!(n)));
        None
    } else if n > hi {
        e.push(not_le(field, json!(hi), json!(n)));
        None
    } else {
        Some(n)
    }
}

fn in_range_f(
    e: &mut Vec<FieldError>,
    field: &str,
    v: Option<f64>,
    lo: f64,
    hi: f64,
) -> Option<f64> {
    let x = v?;
    if !x.is_finite() {
        e.push(FieldError::new(
            field,
            "value is not a valid float",
            "type_error.float",
        ));
        None
    } else if x < lo {
        e.push(not_ge(field, json!(lo), json!(x)));
        None
    } else if x > hi {
        e.push(not_le(field, json!(hi), json!(x)));
        None
    } else {
        Some(x)
    }
}

impl<F> Fields<F> {
    /// Required fields, defaults, ranges and combinations: the rules both front doors share.
    pub fn validate(self) -> Result<ScailInput<F>, Vec<FieldError>> {
        self.validate_after(Vec::new())
    }

    /// [`Fields::validate`] after a parse that already found `errors` (a field with an error
    /// there is not reported missing again).
    fn validate_after(self, mut e: Vec<FieldError>) -> Result<ScailInput<F>, Vec<FieldError>> {
        let had = |e: &Vec<FieldError>, f: &str| e.iter().any(|x| x.field() == Some(f));
        let required = |e: &mut Vec<FieldError>, field: &str, given: bool| {
            if !given && !had(e, field) {
                e.push(FieldError::new(
                    field,
                    "field required",
                    "value_error.missing",
                ));
            }
        };
        required(&mut e, "prompt", self.prompt.is_some());
        if let Some(p) = &self.prompt {
            if p.chars().count() > MAX_PROMPT_CHARS {
                e.push(
                    FieldError::new(
                        "prompt",
                        format!("ensure this value has at most {MAX_PROMPT_CHARS} characters"),
                        "value_error.any_str.max_length",
                    )
                    .ctx(json!({"limit_value": MAX_PROMPT_CHARS}))
                    .input(&json!(p)),
                );
            }
        }
        required(&mut e, "image_url", self.image_url.is_some());
        required(&mut e, "video_url", self.video_url.is_some());
        let (lo, hi) = STEPS_RANGE;
        let steps = in_range_i(
            &mut e,
            "num_inference_steps",
            self.num_inference_steps,
            lo,
            hi,
        );
        let (lo, hi) = GUIDANCE_RANGE;
        let guidance = in_range_f(&mut e, "guidance_scale", self.guidance_scale, lo, hi);
        let (lo, hi) = SHIFT_RANGE;
        let shift = in_range_f(&mut e, "shift", self.shift, lo, hi);
        let seed = in_range_i(&mut e, "seed", self.seed, 0, MAX_SEED as i64);
        let driving_type = self.driving_type.unwrap_or_default();
        let subject_type = self.subject_type.unwrap_or_default();
        if driving_type == DrivingType::Pose && subject_type == SubjectType::Animal {
            e.push(
                FieldError::new(
                    "driving_type",
                    "pose driving is not available for subject_type 'animal': the pose estimator is a human model; use driving_type 'end_to_end'",
                    "value_error.unsupported_combination",
                )
                .input(&json!("pose")),
            );
        }
        let (Some(prompt), Some(image_url), Some(video_url), true) =
            (self.prompt, self.image_url, self.video_url, e.is_empty())
        else {
            return Err(e);
        };
        Ok(ScailInput {
            prompt,
            image_url,
            video_url,
            mode: self.mode.unwrap_or_default(),
            driving_type,
            subject_type,
            resolution: self.resolution.unwrap_or_default(),
            num_inference_steps: steps.map_or(defaults::NUM_INFERENCE_STEPS, |s| s as u32),
            guidance_scale: guidance.unwrap_or(defaults::GUIDANCE_SCALE),
            shift: shift.unwrap_or(defaults::SHIFT),
            seed: seed.map(|s| s as u64),
            output_preprocessing: self.output_preprocessing.unwrap_or(false),
            reference_mask_url: self.reference_mask_url,
            driving_mask_url: self.driving_mask_url,
            pose_video_url: self.pose_video_url,
        })
    }
}

/// Parses a JSON body's values into [`Fields`], collecting type, enum and URL errors.
struct Parser<'a> {
    obj: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl<'a> Parser<'a> {
    fn get(&self, field: &str) -> Option<&'a Value> {
        // An explicit null means "not given", as pydantic treats Optional fields.
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            v => {
                self.errors
                    .push(FieldError::new(field, "str type expected", "type_error.str").input(v));
                None
            }
        }
    }

    fn url(&mut self, field: &str) -> Option<String> {
        let s = self.string(field)?;
        match check_url(&s) {
            Ok(()) => Some(s),
            Err((msg, kind)) => {
                self.errors
                    .push(FieldError::new(field, msg, kind).input(&Value::String(s)));
                None
            }
        }
    }

    fn enumeration<T: WireEnum + PartialEq>(&mut self) -> Option<T> {
        let v = self.get(T::FIELD)?;
        match v.as_str().and_then(T::parse) {
            Some(t) => Some(t),
            None => {
                self.errors.push(enum_error::<T>(v));
                None
            }
        }
    }

    fn integer(&mut self, field: &str) -> Option<i64> {
        let v = self.get(field)?;
        let n = match v {
            Value::Number(n) => n.as_i64().or_else(|| {
                // 40.0 is an integer to pydantic; 40.5 is not. Out-of-i64 values are out of range.
                n.as_f64()
                    .and_then(|f| (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64))
            }),
            _ => None,
        };
        if n.is_none() {
            if matches!(v, Value::Number(n) if n.as_u64().is_some()) {
                // Beyond i64: above every upper bound. The bound named is the field's own.
                let hi = if field == "seed" {
                    MAX_SEED as i64
                } else {
                    STEPS_RANGE.1
                };
                self.errors.push(not_le(field, json!(hi), v.clone()));
            } else {
                self.errors.push(
                    FieldError::new(field, "value is not a valid integer", "type_error.integer")
                        .input(v),
                );
            }
        }
        n
    }

    fn float(&mut self, field: &str) -> Option<f64> {
        let v = self.get(field)?;
        let f = v.as_f64().filter(|f| f.is_finite());
        if f.is_none() {
            self.errors.push(
                FieldError::new(field, "value is not a valid float", "type_error.float").input(v),
            );
        }
        f
    }

    fn boolean(&mut self, field: &str) -> Option<bool> {
        match self.get(field)? {
            Value::Bool(b) => Some(*b),
            v => {
                self.errors.push(
                    FieldError::new(
                        field,
                        "value could not be parsed to a boolean",
                        "type_error.bool",
                    )
                    .input(v),
                );
                None
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

/// Validates a submitted JSON body, applying defaults. Unknown fields are dropped: the result
/// holds only what the schema defines.
pub fn validate_input(body: &Value) -> Result<ScailInput, Vec<FieldError>> {
    let Value::Object(obj) = body else {
        return Err(vec![FieldError::body(
            "value is not a valid dict",
            "type_error.dict",
        )]);
    };
    let mut p = Parser {
        obj,
        errors: Vec::new(),
    };
    let fields = Fields {
        prompt: p.string("prompt"),
        image_url: p.url("image_url"),
        video_url: p.url("video_url"),
        mode: p.enumeration(),
        driving_type: p.enumeration(),
        subject_type: p.enumeration(),
        resolution: p.enumeration(),
        num_inference_steps: p.integer("num_inference_steps"),
        guidance_scale: p.float("guidance_scale"),
        shift: p.float("shift"),
        seed: p.integer("seed"),
        output_preprocessing: p.boolean("output_preprocessing"),
        reference_mask_url: p.url("reference_mask_url"),
        driving_mask_url: p.url("driving_mask_url"),
        pose_video_url: p.url("pose_video_url"),
    };
    let errors = p.errors;
    fields.validate_after(errors)
}
