//! Image decode: PNG (8/16-bit, palette, grey, RGBA), JPEG (EXIF orientation applied), WebP,
//! GIF (first frame). The alpha channel is kept: a transparent reference's alpha is a ready-made
//! character mask.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageFormat};

use crate::error::{MediaError, Result};
use crate::frame::ImageU8;
use crate::limits::Limits;

/// A decoded image, orientation applied, 8 bits per sample.
#[derive(Clone, Debug)]
pub struct DecodedImage {
    /// RGB (3 channels) or RGBA (4 channels) when the file has an alpha channel.
    pub image: ImageU8,
    /// Container format, lower case (png, jpeg, webp, gif).
    pub format: String,
    /// Width and height as stored, before orientation.
    pub stored_width: u32,
    pub stored_height: u32,
    /// EXIF orientation (1..=8) found in the file, 1 when absent.
    pub exif_orientation: u8,
}

impl DecodedImage {
    pub fn has_alpha(&self) -> bool {
        self.image.channels == 4
    }

    /// The RGB part (alpha dropped).
    pub fn rgb(&self) -> ImageU8 {
        self.image.take_channels(3)
    }
}

/// Format of the bytes by magic number, if it is an image this crate decodes.
pub fn sniff_image_format(bytes: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(bytes).ok()? {
        f @ (ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP | ImageFormat::Gif) => {
            Some(f)
        }
        _ => None,
    }
}

fn format_name(f: ImageFormat) -> &'static str {
    match f {
        ImageFormat::Png => "png",
        ImageFormat::Jpeg => "jpeg",
        ImageFormat::WebP => "webp",
        ImageFormat::Gif => "gif",
        _ => "other",
    }
}

fn orientation_code(o: image::metadata::Orientation) -> u8 {
    use image::metadata::Orientation::*;
    match o {
        NoTransforms => 1,
        FlipHorizontal => 2,
        Rotate180 => 3,
        FlipVertical => 4,
        Rotate90FlipH => 5,
        Rotate90 => 6,
        Rotate270FlipH => 7,
        Rotate270 => 8,
    }
}

/// Decode an image file within `limits`.
pub fn decode_image(path: &Path, limits: &Limits) -> Result<DecodedImage> {
    limits.check_file(path)?;
    let bytes = std::fs::read(path).map_err(|source| MediaError::Io {
        path: path.into(),
        source,
    })?;
    decode_image_bytes(&bytes, path, limits)
}

/// Decode image bytes within `limits`; `path` only names the input in errors.
pub fn decode_image_bytes(bytes: &[u8], path: &Path, limits: &Limits) -> Result<DecodedImage> {
    if bytes.is_empty() {
        return Err(MediaError::EmptyFile(path.into()));
    }
    let format = sniff_image_format(bytes).ok_or_else(|| MediaError::UnrecognisedFormat {
        path: path.into(),
        reason: "not PNG, JPEG, WebP or GIF".into(),
    })?;
    let err = |e: image::ImageError| match e {
        image::ImageError::Limits(l) => MediaError::Image {
            path: path.into(),
            reason: format!("exceeds decode limits: {l}"),
        },
        other => MediaError::Corrupt {
            path: path.into(),
            reason: other.to_string(),
        },
    };
    let mut reader = image::ImageReader::with_format(Cursor::new(bytes), format);
    let mut lim = image::Limits::default();
    lim.max_image_width = Some(limits.max_side);
    lim.max_image_height = Some(limits.max_side);
    // Decoded RGBA16 at the pixel limit plus headroom for the decoder's own buffers.
    lim.max_alloc = Some(limits.max_pixels.saturating_mul(8) + (64 << 20));
    reader.limits(lim);
    let mut decoder = reader.into_decoder().map_err(err)?;
    let (w, h) = decoder.dimensions();
    // Checked before any pixel buffer exists: an image bomb declares a huge size in a tiny file.
    if w == 0 || h == 0 {
        return Err(MediaError::Corrupt {
            path: path.into(),
            reason: format!("zero image size {w}x{h}"),
        });
    }
    if (w as u64) * (h as u64) > limits.max_pixels {
        return Err(MediaError::TooManyPixels {
            path: path.into(),
            width: w as u64,
            height: h as u64,
            max_pixels: limits.max_pixels,
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(err)?;
    img.apply_orientation(orientation);
    let has_alpha = img.color().has_alpha();
    let image = if has_alpha {
        let b = img.into_rgba8();
        let (w, h) = b.dimensions();
        ImageU8::from_vec(w as usize, h as usize, 4, b.into_raw())
    } else {
        let b = img.into_rgb8();
        let (w, h) = b.dimensions();
        ImageU8::from_vec(w as usize, h as usize, 3, b.into_raw())
    };
    Ok(DecodedImage {
        image,
        format: format_name(format).into(),
        stored_width: w,
        stored_height: h,
        exif_orientation: orientation_code(orientation),
    })
}

/// Write an 8-bit RGB/RGBA image as PNG (lossless: masks survive it).
pub fn save_png(img: &ImageU8, path: &Path) -> Result<()> {
    let color = match img.channels {
        3 => image::ExtendedColorType::Rgb8,
        4 => image::ExtendedColorType::Rgba8,
        1 => image::ExtendedColorType::L8,
        c => return Err(MediaError::Invalid(format!("cannot write {c}-channel PNG"))),
    };
    image::save_buffer_with_format(
        path,
        &img.data,
        img.width as u32,
        img.height as u32,
        color,
        ImageFormat::Png,
    )
    .map_err(|e| MediaError::Encode {
        path: path.into(),
        reason: e.to_string(),
    })
}
