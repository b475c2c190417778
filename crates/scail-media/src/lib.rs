//! scail-media: everything between user files and tensors, and back.
//!
//! - [`resize`]: the reference's resize/crop arithmetic (antialiased bicubic, bilinear x0.5,
//!   CLIP bicubic + normalisation), bit-faithful to PyTorch's float32 kernels.
//! - [`mask`]: the colour palette and the 28-channel mask compression.
//! - [`image_io`]: image decode (PNG/JPEG/WebP/GIF) with EXIF orientation and alpha kept.
//! - [`timing`]: 16 fps resampling by timestamp and the 4k+1 frame rules.
//! - `video`, `encode`, `probe` (feature `ffmpeg`): streaming decode through the system ffmpeg,
//!   H.264 mp4 encode with audio copy/trim, and file facts.
//!
//! No tensor library here: buffers are [`frame::Image`] (HWC) and [`frame::Tensor`] (shape +
//! `Vec<f32>`).

#[cfg(feature = "ffmpeg")]
pub mod encode;
pub mod error;
pub mod frame;
pub mod image_io;
pub mod limits;
pub mod mask;
#[cfg(feature = "ffmpeg")]
pub mod probe;
pub mod resize;
pub mod timing;
#[cfg(feature = "ffmpeg")]
pub mod video;

#[cfg(feature = "ffmpeg")]
pub use probe::{probe, ProbeInfo};

pub use error::{MediaError, Result};
pub use frame::{Image, ImageF32, ImageU8, Tensor};
pub use limits::Limits;
