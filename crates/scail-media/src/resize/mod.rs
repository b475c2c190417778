//! Resize and crop with the reference's arithmetic (PyTorch CPU kernels, float32).
//!
//! The reference resizes through torchvision `resize(..., BICUBIC)` (antialiased, PIL-style
//! kernel a = -0.5, support widened by the scale factor, horizontal pass then vertical pass),
//! CLIP uses `F.interpolate(mode="bicubic")` without antialias (a = -0.75) and the pose/mask
//! stream `F.interpolate(scale_factor=0.5, mode="bilinear")`. The weight formulas below keep
//! PyTorch's mix of float and double intermediates, because the uint8 path rounds the result
//! and a one-ulp change flips a pixel.
//!
//! One job per file: [`crop`] plans the cover crop, [`aa_taps`] and [`band`] hold the
//! antialiased bicubic's weights and horizontal kernels, [`planned`] runs whole frames,
//! [`planes`] the float tensor kernels and CLIP, [`opencv`] the OpenCV filters Stage A uses
//! on RGB8 frames, [`aa_u8`] PyTorch's uint8 antialiased bilinear (SAM3's input).

mod aa_taps;
mod aa_u8;
mod band;
mod crop;
pub mod opencv;
mod planes;
mod planned;

pub use band::Sample;
pub use crop::{cover_crop, oriented_target, CoverCrop};
pub use planes::{
    bicubic_planes, clip_preprocess, half_bilinear, normalize_image_u8, normalize_video_u8,
    CLIP_MEAN, CLIP_SIZE, CLIP_STD,
};
pub use planned::{
    reference_image_to_model, resize_aa_bicubic_crop, video_frame_resize_crop, FrameResizer,
};

#[cfg(test)]
pub(crate) mod testing {
    use crate::frame::ImageU8;

    /// A deterministic pseudo-random u8 image (xorshift), no fixture needed.
    pub(crate) fn noise_image(w: usize, h: usize, c: usize, seed: u32) -> ImageU8 {
        let mut x = seed | 1;
        let data = (0..w * h * c)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        ImageU8::from_vec(w, h, c, data)
    }
}
