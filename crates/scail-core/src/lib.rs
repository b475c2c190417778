//! scail-core: the `fal-ai/scail-2` request and response schema, its validation (fal-style 422
//! details), the resolution/orientation rules and the boundary to whatever generates videos.
//! No I/O and no heavy dependencies, so that the API crates rebuild fast.

pub mod generator;
pub mod openapi;
mod recipe;
mod request;
mod request_loras;
pub mod schema;
pub mod sniff;
pub mod validate;

pub use openapi::openapi;
pub use schema::*;
pub use validate::{validate_input, FieldError, Fields};
