//! Colour-mask frames, masked driving frames, and reading masks back from images.

use crate::frame::{dims, Mask, RgbImage};
use crate::StageAError;
use scail_media::mask::{palette_index, PALETTE};

/// Paints subject `i` with `PALETTE[i]` over `background`. Absent subjects (None) leave
/// their colour unused so identities keep their colours through occlusions. Where masks
/// overlap, the earlier (left-most) subject wins.
pub fn colour_mask_frame(
    width: u32,
    height: u32,
    masks: &[Option<&Mask>],
    background: [u8; 3],
) -> Result<RgbImage, StageAError> {
    if masks.len() > PALETTE.len() {
        return Err(StageAError::TooManySubjects {
            found: masks.len(),
            max: PALETTE.len(),
        });
    }
    let mut out = RgbImage::filled_rgb(width as usize, height as usize, background);
    for (i, m) in masks.iter().enumerate().rev() {
        let Some(m) = m else { continue };
        check_size(m, width, height)?;
        for (p, &v) in m.data.iter().enumerate() {
            if v != 0 {
                out.data[p * 3..p * 3 + 3].copy_from_slice(&PALETTE[i]);
            }
        }
    }
    Ok(out)
}

/// The driving frame with every pixel outside the union of `masks` set to black.
pub fn masked_frame(frame: &RgbImage, masks: &[Option<&Mask>]) -> Result<RgbImage, StageAError> {
    let mut out = RgbImage::new(frame.width, frame.height, 3);
    let (w, h) = dims(frame);
    for m in masks.iter().flatten() {
        check_size(m, w, h)?;
        for (p, &v) in m.data.iter().enumerate() {
            if v != 0 {
                out.data[p * 3..p * 3 + 3].copy_from_slice(&frame.data[p * 3..p * 3 + 3]);
            }
        }
    }
    Ok(out)
}

fn check_size(m: &Mask, width: u32, height: u32) -> Result<(), StageAError> {
    if (m.width, m.height) != (width, height) {
        return Err(StageAError::SizeMismatch {
            what: "mask",
            expected: (width, height),
            got: (m.width, m.height),
        });
    }
    Ok(())
}

/// Splits a palette-coded mask image (user supplied, or one we wrote) into one mask per
/// palette colour, in palette order, trimmed after the last colour present. Black and
/// white are background in either mode.
pub fn decode_palette_mask(img: &RgbImage) -> Vec<Option<Mask>> {
    let mut masks: Vec<Option<Mask>> = vec![None; PALETTE.len()];
    let (w, h) = dims(img);
    for y in 0..img.height {
        for x in 0..img.width {
            if let Some(i) = palette_index(img.rgb(x, y)) {
                let m = masks[i].get_or_insert_with(|| Mask::empty(w, h));
                m.data[y * img.width + x] = 1;
            }
        }
    }
    while matches!(masks.last(), Some(None)) {
        masks.pop();
    }
    masks
}

/// The subject mask from an RGBA reference when its alpha is real (some pixel is not
/// fully opaque): alpha >= 128 is the subject. None for an opaque image.
pub fn mask_from_alpha(width: u32, height: u32, rgba: &[u8]) -> Result<Option<Mask>, StageAError> {
    let want = width as usize * height as usize * 4;
    if rgba.len() != want {
        return Err(StageAError::BadBuffer {
            what: "RGBA reference",
            expected: want,
            got: rgba.len(),
        });
    }
    if rgba.chunks_exact(4).all(|p| p[3] == 255) {
        return Ok(None);
    }
    let data = rgba.chunks_exact(4).map(|p| (p[3] >= 128) as u8).collect();
    Ok(Some(Mask {
        width,
        height,
        data,
    }))
}

/// Splits a mask into 8-connected components, largest first.
pub fn connected_components(mask: &Mask) -> Vec<Mask> {
    let (w, h) = (mask.width as i64, mask.height as i64);
    let mut label = vec![0u32; mask.data.len()];
    let mut comps = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mask.data.len() {
        if mask.data[start] == 0 || label[start] != 0 {
            continue;
        }
        let id = comps.len() as u32 + 1;
        let mut comp = Mask::empty(mask.width, mask.height);
        label[start] = id;
        stack.push(start);
        while let Some(p) = stack.pop() {
            comp.data[p] = 1;
            let (px, py) = ((p as i64) % w, (p as i64) / w);
            for dy in -1..=1 {
                for dx in -1..=1 {
                    let (nx, ny) = (px + dx, py + dy);
                    if nx < 0 || ny < 0 || nx >= w || ny >= h {
                        continue;
                    }
                    let q = (ny * w + nx) as usize;
                    if mask.data[q] != 0 && label[q] == 0 {
                        label[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        comps.push(comp);
    }
    comps.sort_by_key(|m| std::cmp::Reverse(m.area()));
    comps
}
