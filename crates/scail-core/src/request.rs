//! The request, declared once: each field's name, how it is given, its bounds, default and help
//! text sit in one table ([`request_fields!`] below). From it come the validated type
//! [`ScailInput`], the as-given type [`Fields`] both front doors fill, the checks and defaults,
//! the JSON parsing and the OpenAPI properties. Adding a field is one line of the table.

use serde_json::{json, Map, Value};

use crate::schema::*;
use crate::validate::{enum_error, in_range_f, in_range_i, FieldError, Parser};

/// How one field is given, checked and documented. `F` is how files are given.
pub(crate) trait Kind<F> {
    /// What a front door supplies.
    type Given;
    /// What the validated request holds.
    type Valid;
    /// The validated value; `None` when an error was pushed (or a required value is missing).
    fn check(
        &self,
        field: &str,
        given: Option<Self::Given>,
        e: &mut Vec<FieldError>,
    ) -> Option<Self::Valid>;
    /// The OpenAPI property.
    fn schema(&self, description: &str) -> Value;
}

/// Reading the field from a JSON body (the HTTP door).
pub(crate) trait FromJson: Kind<String> {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<Self::Given>;
}

fn missing(e: &mut Vec<FieldError>, field: &str) {
    // A field whose value was already refused is not reported missing as well.
    if !e.iter().any(|x| x.field() == Some(field)) {
        e.push(FieldError::new(
            field,
            "field required",
            "value_error.missing",
        ));
    }
}

/// Required text with a length bound.
pub(crate) struct Text {
    pub max_chars: usize,
}

impl<F> Kind<F> for Text {
    type Given = String;
    type Valid = String;
    fn check(&self, field: &str, given: Option<String>, e: &mut Vec<FieldError>) -> Option<String> {
        let Some(s) = given else {
            missing(e, field);
            return None;
        };
        if s.chars().count() > self.max_chars {
            e.push(
                FieldError::new(
                    field,
                    format!(
                        "ensure this value has at most {} characters",
                        self.max_chars
                    ),
                    "value_error.any_str.max_length",
                )
                .ctx(json!({"limit_value": self.max_chars}))
                .input(&json!(s)),
            );
            return None;
        }
        Some(s)
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "string", "maxLength": self.max_chars, "description": d})
    }
}

impl FromJson for Text {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<String> {
        p.string(field)
    }
}

fn file_schema(d: &str) -> Value {
    json!({"type": "string", "description": d,
        "examples": ["https://example.com/file.mp4", "data:video/mp4;base64,..."]})
}

/// A required input file.
pub(crate) struct RequiredFile;
/// An optional input file (the scail extensions).
pub(crate) struct OptionalFile;

impl<F> Kind<F> for RequiredFile {
    type Given = F;
    type Valid = F;
    fn check(&self, field: &str, given: Option<F>, e: &mut Vec<FieldError>) -> Option<F> {
        if given.is_none() {
            missing(e, field);
        }
        given
    }
    fn schema(&self, d: &str) -> Value {
        file_schema(d)
    }
}

impl<F> Kind<F> for OptionalFile {
    type Given = F;
    type Valid = Option<F>;
    fn check(&self, _: &str, given: Option<F>, _: &mut Vec<FieldError>) -> Option<Option<F>> {
        Some(given)
    }
    fn schema(&self, d: &str) -> Value {
        file_schema(d)
    }
}

impl FromJson for RequiredFile {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<String> {
        p.url(field)
    }
}

impl FromJson for OptionalFile {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<String> {
        p.url(field)
    }
}

/// One of a string enum's wire names; its `#[default]` variant when absent.
pub(crate) struct Choice<T>(std::marker::PhantomData<T>);

impl<T> Choice<T> {
    pub const fn new() -> Self {
        Choice(std::marker::PhantomData)
    }
}

impl<F, T: WireEnum + PartialEq> Kind<F> for Choice<T> {
    type Given = T;
    type Valid = T;
    fn check(&self, _: &str, given: Option<T>, _: &mut Vec<FieldError>) -> Option<T> {
        Some(given.unwrap_or_default())
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "string", "enum": T::names(), "default": T::default().as_str(),
            "description": d})
    }
}

impl<T: WireEnum + PartialEq> FromJson for Choice<T> {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<T> {
        let v = p.get(field)?;
        let t = v.as_str().and_then(T::parse);
        if t.is_none() {
            p.errors.push(enum_error::<T>(v));
        }
        t
    }
}

/// One of a string enum's wire names, or nothing (no default).
pub(crate) struct OptionalChoice<T>(std::marker::PhantomData<T>);

impl<T> OptionalChoice<T> {
    pub const fn new() -> Self {
        OptionalChoice(std::marker::PhantomData)
    }
}

impl<F, T: WireEnum + PartialEq> Kind<F> for OptionalChoice<T> {
    type Given = T;
    type Valid = Option<T>;
    fn check(&self, _: &str, given: Option<T>, _: &mut Vec<FieldError>) -> Option<Option<T>> {
        Some(given)
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "string", "enum": T::names(), "description": d})
    }
}

impl<T: WireEnum + PartialEq> FromJson for OptionalChoice<T> {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<T> {
        Choice::<T>::new().parse(p, field)
    }
}

/// A whole number in an inclusive range, with a default.
pub(crate) struct Count {
    pub range: (i64, i64),
    pub default: u32,
}

impl<F> Kind<F> for Count {
    type Given = i64;
    type Valid = u32;
    fn check(&self, field: &str, given: Option<i64>, e: &mut Vec<FieldError>) -> Option<u32> {
        if given.is_none() {
            return Some(self.default);
        }
        in_range_i(e, field, given, self.range.0, self.range.1).map(|n| n as u32)
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "integer", "default": self.default, "minimum": self.range.0,
            "maximum": self.range.1, "description": d})
    }
}

impl FromJson for Count {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<i64> {
        p.integer(field, self.range.1)
    }
}

/// An optional whole number from 0 to `max` (the seed: drawn by the worker when absent).
pub(crate) struct Seed {
    pub max: u64,
}

impl<F> Kind<F> for Seed {
    type Given = i64;
    type Valid = Option<u64>;
    fn check(
        &self,
        field: &str,
        given: Option<i64>,
        e: &mut Vec<FieldError>,
    ) -> Option<Option<u64>> {
        if given.is_none() {
            return Some(None);
        }
        in_range_i(e, field, given, 0, self.max as i64).map(|n| Some(n as u64))
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "integer", "minimum": 0, "maximum": self.max, "description": d})
    }
}

impl FromJson for Seed {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<i64> {
        p.integer(field, self.max as i64)
    }
}

/// A finite number in an inclusive range, with a default.
pub(crate) struct Number {
    pub range: (f64, f64),
    pub default: f64,
}

impl<F> Kind<F> for Number {
    type Given = f64;
    type Valid = f64;
    fn check(&self, field: &str, given: Option<f64>, e: &mut Vec<FieldError>) -> Option<f64> {
        if given.is_none() {
            return Some(self.default);
        }
        in_range_f(e, field, given, self.range.0, self.range.1)
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "number", "default": self.default, "minimum": self.range.0,
            "maximum": self.range.1, "description": d})
    }
}

impl FromJson for Number {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<f64> {
        p.float(field)
    }
}

/// A boolean, false when absent.
pub(crate) struct Flag;

impl<F> Kind<F> for Flag {
    type Given = bool;
    type Valid = bool;
    fn check(&self, _: &str, given: Option<bool>, _: &mut Vec<FieldError>) -> Option<bool> {
        Some(given.unwrap_or(false))
    }
    fn schema(&self, d: &str) -> Value {
        json!({"type": "boolean", "default": false, "description": d})
    }
}

impl FromJson for Flag {
    fn parse(&self, p: &mut Parser, field: &str) -> Option<bool> {
        p.boolean(field)
    }
}

/// Declares the request: for each field its help text, name, kind (how it is given, checked,
/// defaulted and documented), validated type and given type.
macro_rules! request_fields {
    ($( $(#[doc = $doc:literal])+ $name:ident : $kind:expr => $valid:ty, $given:ty; )*) => {
        /// The one validated request, with every default applied; both front doors (HTTP and
        /// `scail generate`) produce it through [`Fields::validate`], the store keeps it, the
        /// worker and the pipeline run it without checking again. `F` is how files are given
        /// (see [`InputFile`]).
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        pub struct ScailInput<F = String> {
            $( $(#[doc = $doc])+ pub $name: $valid, )*
        }

        /// The request's fields as given, typed but not yet checked: `None` is "not given".
        /// `F` is how files are given (URL strings at the HTTP door, paths at the command line).
        #[derive(Debug, Clone)]
        pub struct Fields<F> {
            $( pub $name: Option<$given>, )*
        }

        impl<F> Default for Fields<F> {
            fn default() -> Self {
                Fields { $( $name: None, )* }
            }
        }

        impl<F> Fields<F> {
            /// Every field's own check and default, errors collected in `e`.
            pub(crate) fn check_fields(self, e: &mut Vec<FieldError>) -> Option<ScailInput<F>> {
                $( let $name = Kind::<F>::check(&$kind, stringify!($name), self.$name, e); )*
                Some(ScailInput { $( $name: $name?, )* })
            }
        }

        /// Reads every field of a JSON body, collecting type, enum and URL errors.
        pub(crate) fn parse_fields(p: &mut Parser) -> Fields<String> {
            Fields { $( $name: FromJson::parse(&$kind, p, stringify!($name)), )* }
        }

        /// The OpenAPI properties of the request, in field order.
        pub fn properties() -> Map<String, Value> {
            let mut m = Map::new();
            $(
                let doc = [$($doc),+].map(str::trim).join(" ");
                m.insert(stringify!($name).into(), Kind::<String>::schema(&$kind, &doc));
            )*
            m
        }
    };
}

/// The request table. Extra lines passed in are appended (the test below adds a field this way,
/// which is all adding a field takes).
macro_rules! scail_request {
    ($($extra:tt)*) => {
        request_fields! {
            /// What the output should show.
            prompt: Text { max_chars: MAX_PROMPT_CHARS } => String, String;
            /// The reference character image (URL or data URI).
            image_url: RequiredFile => F, F;
            /// The driving video (URL or data URI).
            video_url: RequiredFile => F, F;
            /// animation: the character performs the driving motion on the reference's background;
            /// replacement: the driving scene's subject is replaced by the character.
            mode: Choice::<Mode>::new() => Mode, Mode;
            /// end_to_end: the masked driving video drives the model; pose: a rendered skeleton does.
            driving_type: Choice::<DrivingType>::new() => DrivingType, DrivingType;
            /// What the driving subject is (animal needs driving_type end_to_end).
            subject_type: Choice::<SubjectType>::new() => SubjectType, SubjectType;
            /// 512p: 896x512 or 512x896; 704p: 1280x704 or 704x1280; orientation from the reference image.
            resolution: Choice::<Resolution>::new() => Resolution, Resolution;
            /// Sampling steps per segment.
            num_inference_steps: Count { range: STEPS_RANGE, default: defaults::NUM_INFERENCE_STEPS } => u32, i64;
            /// Classifier-free guidance; 1 runs one forward per step.
            guidance_scale: Number { range: GUIDANCE_RANGE, default: defaults::GUIDANCE_SCALE } => f64, f64;
            /// Flow-matching timestep shift.
            shift: Number { range: SHIFT_RANGE, default: defaults::SHIFT } => f64, f64;
            /// Random when absent; the seed used is returned.
            seed: Seed { max: MAX_SEED } => Option<u64>, i64;
            /// Also return the Stage A videos.
            output_preprocessing: Flag => bool, bool;
            /// scail extension: palette-coded reference mask; skips segmentation.
            reference_mask_url: OptionalFile => Option<F>, F;
            /// scail extension: palette-coded driving mask video; skips segmentation.
            driving_mask_url: OptionalFile => Option<F>, F;
            /// scail extension: pre-rendered skeleton video; skips pose estimation.
            pose_video_url: OptionalFile => Option<F>, F;
            /// scail extension: a sampling recipe. fast: 4 steps, CFG 1, shift 5, euler (the
            /// lightx2v step-distillation LoRA's published recipe; name that LoRA in loras);
            /// balanced: the same at 8 steps; quality: the hosted defaults. Steps, guidance
            /// scale, shift and sampler given in the request win over the preset's.
            preset: OptionalChoice::<Preset>::new() => Option<Preset>, Preset;
            /// scail extension: the solver (unipc as hosted; euler for step-distilled LoRAs).
            sampler: Choice::<Sampler>::new() => Sampler, Sampler;
            /// scail extension: LoRAs fused into the DiT for this request, each a file name in
            /// the server's LoRA folder (scail serve --lora-dir) with its scale.
            loras: crate::request_loras::LoraList => Vec<LoraRef>, Vec<LoraRef>;
            $($extra)*
        }
    };
}

scail_request!();

#[cfg(test)]
mod a_field_added_in_one_place {
    use crate::schema::*;
    use crate::validate::{FieldError, Parser};
    use serde_json::json;

    use super::*;

    // One more line of the table: the type, its parsing, checks, default and document follow.
    scail_request! {
        /// Frames per second of the output.
        fps: Count { range: (1, 60), default: 16 } => u32, i64;
    }

    fn check(body: serde_json::Value) -> (Option<ScailInput>, Vec<FieldError>) {
        let mut p = Parser::new(body.as_object().unwrap());
        let fields = parse_fields(&mut p);
        let mut e = p.errors;
        (fields.check_fields(&mut e), e)
    }

    #[test]
    fn the_new_field_is_parsed_checked_defaulted_and_documented() {
        let base = json!({"prompt": "p", "image_url": "https://e.com/a.png",
            "video_url": "https://e.com/b.mp4"});
        let (input, e) = check(base.clone());
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(input.unwrap().fps, 16);
        let mut body = base.clone();
        body["fps"] = json!(24);
        assert_eq!(check(body).0.unwrap().fps, 24);
        let mut body = base;
        body["fps"] = json!(120);
        let (_, e) = check(body);
        assert_eq!(e[0].field(), Some("fps"));
        assert_eq!(e[0].kind, "value_error.number.not_le");
        let props = properties();
        assert_eq!(props["fps"]["default"], 16);
        assert_eq!(props["fps"]["maximum"], 60);
        assert_eq!(
            props["fps"]["description"],
            "Frames per second of the output."
        );
        // The request's own fields are all still there.
        assert_eq!(props.len(), crate::request::properties().len() + 1);
        let stored = serde_json::to_value(
            check(json!({"prompt": "p",
            "image_url": "https://e.com/a.png", "video_url": "https://e.com/b.mp4"}))
            .0
            .unwrap(),
        )
        .unwrap();
        assert_eq!(stored["fps"], 16);
    }
}
