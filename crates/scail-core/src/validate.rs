//! Request validation with fal-style (FastAPI/pydantic) 422 details: one entry per violation, each
//! with `loc`, `msg` and `type`, so the JS client's `ValidationError.fieldErrors` points at the field.
//!
//! Two layers, so both front doors apply one rule set: the HTTP door parses JSON into [`Fields`]
//! (type, enum and URL errors), `scail generate` fills [`Fields`] from its flags; then
//! [`Fields::validate`] applies required fields, defaults, ranges and combinations for both.

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::request::parse_fields;
pub use crate::request::Fields;
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
    pub(crate) fn ctx(mut self, ctx: Value) -> Self {
        self.ctx = Some(ctx);
        self
    }
    pub(crate) fn input(mut self, v: &Value) -> Self {
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

pub(crate) fn enum_error<T: WireEnum + PartialEq>(given: &Value) -> FieldError {
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

pub(crate) fn in_range_i(
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

pub(crate) fn in_range_f(
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
    fn validate_after(mut self, mut e: Vec<FieldError>) -> Result<ScailInput<F>, Vec<FieldError>> {
        // A preset fills what the request leaves out; what it gives wins.
        if let Some(preset) = self.preset {
            let r = preset.recipe();
            self.num_inference_steps.get_or_insert(r.steps as i64);
            self.guidance_scale.get_or_insert(r.guidance_scale);
            self.shift.get_or_insert(r.shift);
            self.sampler.get_or_insert(r.sampler);
        }
        let input = self.check_fields(&mut e);
        if let Some(i) = &input {
            // Rules across fields, after each field's own.
            if i.driving_type == DrivingType::Pose && i.subject_type == SubjectType::Animal {
                e.push(
                    FieldError::new(
                        "driving_type",
                        "pose driving is not available for subject_type 'animal': the pose estimator is a human model; use driving_type 'end_to_end'",
                        "value_error.unsupported_combination",
                    )
                    .input(&json!("pose")),
                );
            }
        }
        match input {
            Some(i) if e.is_empty() => Ok(i),
            _ => Err(e),
        }
    }
}

/// Parses a JSON body's values into [`Fields`], collecting type, enum and URL errors.
pub(crate) struct Parser<'a> {
    obj: &'a Map<String, Value>,
    pub(crate) errors: Vec<FieldError>,
}

impl<'a> Parser<'a> {
    pub(crate) fn new(obj: &'a Map<String, Value>) -> Self {
        Parser {
            obj,
            errors: Vec::new(),
        }
    }

    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        // An explicit null means "not given", as pydantic treats Optional fields.
        self.obj.get(field).filter(|v| !v.is_null())
    }

    pub(crate) fn string(&mut self, field: &str) -> Option<String> {
        match self.get(field)? {
            Value::String(s) => Some(s.clone()),
            v => {
                self.errors
                    .push(FieldError::new(field, "str type expected", "type_error.str").input(v));
                None
            }
        }
    }

    pub(crate) fn url(&mut self, field: &str) -> Option<String> {
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

    /// A whole number (40.0 counts); beyond i64 it is above `hi`, the field's upper bound.
    pub(crate) fn integer(&mut self, field: &str, hi: i64) -> Option<i64> {
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
                // Beyond i64: above every upper bound.
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

    pub(crate) fn float(&mut self, field: &str) -> Option<f64> {
        let v = self.get(field)?;
        let f = v.as_f64().filter(|f| f.is_finite());
        if f.is_none() {
            self.errors.push(
                FieldError::new(field, "value is not a valid float", "type_error.float").input(v),
            );
        }
        f
    }

    pub(crate) fn boolean(&mut self, field: &str) -> Option<bool> {
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
    let mut p = Parser::new(obj);
    let fields = parse_fields(&mut p);
    let errors = p.errors;
    fields.validate_after(errors)
}
