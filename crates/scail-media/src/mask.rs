//! Colour-coded masks and the 28-channel mask compression (`extract_and_compress_mask_to_latent`).
//!
//! A mask pixel's channel is "on" when its normalised value is above (225 - 127.5) / 127.5,
//! compared in float32: pixel 225 is off, 226 is on. Seven one-hot colours (white, red, green,
//! blue, yellow, magenta, cyan; black = none) are area-downsampled to the latent grid and packed
//! four frames per latent frame (frame 0 repeated four times), channel = 7 * sub-frame + colour.

use crate::error::MediaError;
use crate::frame::{ImageU8, Tensor};
use crate::resize::{half_bilinear, normalize_image_u8, normalize_video_u8};

/// The mask colours in channel order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MaskColor {
    White,
    Red,
    Green,
    Blue,
    Yellow,
    Magenta,
    Cyan,
}

impl MaskColor {
    /// Channel order of the compression.
    pub const ALL: [MaskColor; 7] = [
        MaskColor::White,
        MaskColor::Red,
        MaskColor::Green,
        MaskColor::Blue,
        MaskColor::Yellow,
        MaskColor::Magenta,
        MaskColor::Cyan,
    ];

    /// Order in which the segmentation step colours people (left to right).
    pub const PEOPLE: [MaskColor; 6] = [
        MaskColor::Blue,
        MaskColor::Red,
        MaskColor::Green,
        MaskColor::Magenta,
        MaskColor::Cyan,
        MaskColor::Yellow,
    ];

    pub const fn rgb(self) -> [u8; 3] {
        match self {
            MaskColor::White => [255, 255, 255],
            MaskColor::Red => [255, 0, 0],
            MaskColor::Green => [0, 255, 0],
            MaskColor::Blue => [0, 0, 255],
            MaskColor::Yellow => [255, 255, 0],
            MaskColor::Magenta => [255, 0, 255],
            MaskColor::Cyan => [0, 255, 255],
        }
    }

    pub fn channel(self) -> usize {
        Self::ALL.iter().position(|&c| c == self).unwrap()
    }

    /// The colour of an RGB triple by the on-rule (component > [`ON_THRESHOLD`]), `None` for
    /// black.
    pub fn classify(rgb: [u8; 3]) -> Option<MaskColor> {
        let on = rgb.map(|v| v > ON_THRESHOLD);
        colour_of(on)
    }
}

/// The model's "channel is on" threshold: a pixel value strictly above 225.
pub const ON_THRESHOLD: u8 = 225;

pub const WHITE: [u8; 3] = MaskColor::White.rgb();
pub const BLACK: [u8; 3] = [0, 0, 0];

/// Subject colours as RGB, in the order segmentation assigns them ([`MaskColor::PEOPLE`]):
/// blue, red, green, magenta, cyan, yellow.
pub const PALETTE: [[u8; 3]; 6] = {
    let mut out = [[0; 3]; 6];
    let mut i = 0;
    while i < out.len() {
        out[i] = MaskColor::PEOPLE[i].rgb();
        i += 1;
    }
    out
};

/// The [`PALETTE`] index of a pixel by the on-rule; None for black, white and anything the
/// palette does not hold.
pub fn palette_index(rgb: [u8; 3]) -> Option<usize> {
    let on = rgb.map(|v| if v > ON_THRESHOLD { 255 } else { 0 });
    // Off channels must be clearly off too, so blurred edges between two colours do not
    // invent a third subject.
    if rgb.iter().zip(on).any(|(&v, o)| o == 0 && v >= 128) {
        return None;
    }
    PALETTE.iter().position(|&c| c == on)
}

fn colour_of(on: [bool; 3]) -> Option<MaskColor> {
    match on {
        [true, true, true] => Some(MaskColor::White),
        [true, false, false] => Some(MaskColor::Red),
        [false, true, false] => Some(MaskColor::Green),
        [false, false, true] => Some(MaskColor::Blue),
        [true, true, false] => Some(MaskColor::Yellow),
        [true, false, true] => Some(MaskColor::Magenta),
        [false, true, true] => Some(MaskColor::Cyan),
        [false, false, false] => None,
    }
}

/// The float32 threshold: Python's double (225-127.5)/127.5, cast to the tensor's float32.
fn on_threshold() -> f32 {
    ((225.0f64 - 127.5) / 127.5) as f32
}

/// Latent side after the VAE's three stride-2 stages (each `ceil(x / 2)`), after an optional
/// extra integer downsample.
pub fn latent_side(side: usize, additional_spatial_downsample: usize) -> usize {
    let mut s = side / additional_spatial_downsample.max(1);
    for _ in 0..3 {
        s = s.div_ceil(2);
    }
    s
}

/// `adaptive_avg_pool2d` (mode "area") of one plane, PyTorch's `sum / kh / kw` in float32.
fn area_pool(plane: &[f32], h: usize, w: usize, oh: usize, ow: usize, out: &mut [f32]) {
    for oy in 0..oh {
        let y0 = oy * h / oh;
        let y1 = ((oy + 1) * h).div_ceil(oh);
        for ox in 0..ow {
            let x0 = ox * w / ow;
            let x1 = ((ox + 1) * w).div_ceil(ow);
            let mut sum = 0.0f32;
            for y in y0..y1 {
                for x in x0..x1 {
                    sum += plane[y * w + x];
                }
            }
            out[oy * ow + ox] = sum / (y1 - y0) as f32 / (x1 - x0) as f32;
        }
    }
}

/// 28-channel compression of an RGB mask video `[3, T, H, W]` with values in [-1, 1].
/// T must be 1 or 4k+1 (the VAE's frame rule). Returns `[28, T_lat, H_lat, W_lat]`.
pub fn compress_mask(
    mask_cthw: &Tensor,
    additional_spatial_downsample: usize,
) -> Result<Tensor, MediaError> {
    const STRIDE: usize = 4;
    let [c, t, h, w]: [usize; 4] = mask_cthw.shape.as_slice().try_into().map_err(|_| {
        MediaError::Shape(format!("mask must be [3,T,H,W], got {:?}", mask_cthw.shape))
    })?;
    if c != 3 {
        return Err(MediaError::Shape(format!(
            "mask must have 3 colour channels, got {c}"
        )));
    }
    if t == 0 || (t - 1) % STRIDE != 0 {
        return Err(MediaError::Shape(format!(
            "mask frame count {t} is not 4k+1"
        )));
    }
    let (hl, wl) = (
        latent_side(h, additional_spatial_downsample),
        latent_side(w, additional_spatial_downsample),
    );
    let thr = on_threshold();
    let hw = h * w;
    // Per frame: 7 one-hot planes, then area-pooled.
    let mut pooled = vec![0.0f32; t * 7 * hl * wl];
    let mut planes = vec![0.0f32; 7 * hw];
    for f in 0..t {
        planes.iter_mut().for_each(|v| *v = 0.0);
        let ch = |k: usize| &mask_cthw.data[(k * t + f) * hw..(k * t + f + 1) * hw];
        let (r, g, b) = (ch(0), ch(1), ch(2));
        for i in 0..hw {
            if let Some(col) = colour_of([r[i] > thr, g[i] > thr, b[i] > thr]) {
                planes[col.channel() * hw + i] = 1.0;
            }
        }
        for k in 0..7 {
            let dst = &mut pooled[(f * 7 + k) * hl * wl..(f * 7 + k + 1) * hl * wl];
            area_pool(&planes[k * hw..(k + 1) * hw], h, w, hl, wl, dst);
        }
    }
    let t_lat = (t - 1) / STRIDE + 1;
    let plane = hl * wl;
    let mut out = vec![0.0f32; 28 * t_lat * plane];
    for tl in 0..t_lat {
        for j in 0..STRIDE {
            // Padded sequence = [f0, f0, f0, f0, f1, f2, ...].
            let padded = tl * STRIDE + j;
            let src_f = padded.saturating_sub(STRIDE - 1);
            for k in 0..7 {
                let src = &pooled[(src_f * 7 + k) * plane..(src_f * 7 + k + 1) * plane];
                let oc = 7 * j + k;
                out[(oc * t_lat + tl) * plane..(oc * t_lat + tl + 1) * plane].copy_from_slice(src);
            }
        }
    }
    Ok(Tensor::new(vec![28, t_lat, hl, wl], out))
}

/// Stack u8 RGB frames into `[3, T, H, W]` with `norm` applied to every sample.
fn frames_to_cthw(frames: &[ImageU8], norm: fn(u8) -> f32) -> Result<Tensor, MediaError> {
    let first = frames
        .first()
        .ok_or_else(|| MediaError::Shape("no mask frames".into()))?;
    let (h, w) = (first.height, first.width);
    let t = frames.len();
    let mut data = vec![0.0f32; 3 * t * h * w];
    for (f, img) in frames.iter().enumerate() {
        if img.width != w || img.height != h || img.channels < 3 {
            return Err(MediaError::Shape(format!(
                "mask frame {f} is {}x{}x{}, expected {w}x{h}x3",
                img.width, img.height, img.channels
            )));
        }
        for (i, px) in img.data.chunks_exact(img.channels).enumerate() {
            for ch in 0..3 {
                data[(ch * t + f) * h * w + i] = norm(px[ch]);
            }
        }
    }
    Ok(Tensor::new(vec![3, t, h, w], data))
}

/// Normalised `[3, T, H, W]` driving-mask video, as the CLI feeds it (`(x-127.5)/127.5`).
pub fn mask_video_tensor(frames: &[ImageU8]) -> Result<Tensor, MediaError> {
    frames_to_cthw(frames, normalize_video_u8)
}

/// Reference-mask path: one u8 RGB frame (image normalisation) at full resolution ->
/// `[28, 1, H/8, W/8]`.
pub fn reference_mask_latent(mask: &ImageU8) -> Result<Tensor, MediaError> {
    let t = frames_to_cthw(std::slice::from_ref(mask), normalize_image_u8)?;
    compress_mask(&t, 1)
}

/// Driving-mask path of `generate()`: video normalisation, bilinear x0.5, compression ->
/// `[28, T_lat, H/16, W/16]`.
pub fn driving_mask_latent(frames: &[ImageU8]) -> Result<Tensor, MediaError> {
    let t = mask_video_tensor(frames)?;
    compress_mask(&half_bilinear(&t), 1)
}

/// A colour mask image from per-pixel colours (None = black): used to build reference masks
/// from an alpha channel or from segmentation output.
pub fn paint_mask(
    width: usize,
    height: usize,
    colour_at: impl Fn(usize, usize) -> Option<MaskColor>,
) -> ImageU8 {
    let mut img = ImageU8::new(width, height, 3);
    for y in 0..height {
        for x in 0..width {
            if let Some(c) = colour_at(x, y) {
                let i = (y * width + x) * 3;
                img.data[i..i + 3].copy_from_slice(&c.rgb());
            }
        }
    }
    img
}

/// A character mask from an image's alpha channel: pixels with alpha >= `min_alpha` get
/// `fg`, the rest `bg` (None = black). Returns None when the image has no alpha channel or the
/// alpha is fully opaque (no information).
pub fn mask_from_alpha(
    img: &ImageU8,
    min_alpha: u8,
    fg: MaskColor,
    bg: Option<MaskColor>,
) -> Option<ImageU8> {
    if img.channels != 4 || img.data.chunks_exact(4).all(|p| p[3] == 255) {
        return None;
    }
    Some(paint_mask(img.width, img.height, |x, y| {
        if img.pixel(x, y)[3] >= min_alpha {
            Some(fg)
        } else {
            bg
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palette_round_trips_through_classify() {
        for c in MaskColor::ALL {
            assert_eq!(MaskColor::classify(c.rgb()), Some(c));
        }
        assert_eq!(MaskColor::classify([0, 0, 0]), None);
        assert_eq!(MaskColor::classify([225, 225, 225]), None);
        assert_eq!(MaskColor::classify([226, 0, 0]), Some(MaskColor::Red));
    }

    #[test]
    fn palette_is_the_people_order() {
        assert_eq!(PALETTE[0], [0, 0, 255]);
        assert_eq!(PALETTE[1], [255, 0, 0]);
        for (i, c) in MaskColor::PEOPLE.iter().enumerate() {
            assert_eq!(palette_index(c.rgb()), Some(i));
        }
        assert_eq!(palette_index(WHITE), None);
        assert_eq!(palette_index(BLACK), None);
        // Half-on off-channels are an edge blend, not a colour.
        assert_eq!(palette_index([255, 130, 0]), None);
    }

    #[test]
    fn threshold_225_off_226_on_in_both_normalisations() {
        let thr = on_threshold();
        assert!(normalize_video_u8(225) <= thr && normalize_video_u8(226) > thr);
        assert!(normalize_image_u8(225) <= thr && normalize_image_u8(226) > thr);
    }

    #[test]
    fn latent_sides_round_up() {
        assert_eq!(latent_side(64, 1), 8);
        assert_eq!(latent_side(65, 1), 9);
        assert_eq!(latent_side(100, 1), 13);
        assert_eq!(latent_side(64, 2), 4);
    }

    #[test]
    fn rejects_non_4k_plus_1() {
        let t = Tensor::zeros(vec![3, 4, 8, 8]);
        assert!(compress_mask(&t, 1).is_err());
    }

    #[test]
    fn alpha_mask() {
        let mut img = ImageU8::new(2, 1, 4);
        img.data = vec![1, 2, 3, 255, 4, 5, 6, 0];
        let m = mask_from_alpha(&img, 128, MaskColor::Blue, Some(MaskColor::White)).unwrap();
        assert_eq!(m.data, vec![0, 0, 255, 255, 255, 255]);
        img.data[7] = 255;
        assert!(mask_from_alpha(&img, 128, MaskColor::Blue, None).is_none());
    }
}
