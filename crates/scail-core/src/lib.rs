//! scail-core: the `fal-ai/scail-2` request and response schema, its validation (fal-style 422
//! details), and the resolution/orientation rules. No I/O and no heavy dependencies, so that the
//! API crates rebuild fast.

pub mod generator;
pub mod schema;
pub mod validate;

pub use schema::*;
pub use validate::{validate_input, FieldError};
