//! The cover resize and centre crop the reference applies to every image and frame.

/// The target (h, w) the reference CLI uses for a reference image of this size: the requested
/// target is swapped when the reference is portrait; a square reference keeps it.
pub fn oriented_target(ref_h: usize, ref_w: usize, target_hw: (usize, usize)) -> (usize, usize) {
    if ref_h > ref_w {
        (target_hw.1, target_hw.0)
    } else {
        target_hw
    }
}

/// The crop of `resize_for_rectangle_crop(.., "center")`: the size the source is resized to so
/// that it covers the target, and the (top, left) of the centre crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoverCrop {
    pub src_h: usize,
    pub src_w: usize,
    pub resize_h: usize,
    pub resize_w: usize,
    pub top: usize,
    pub left: usize,
    pub out_h: usize,
    pub out_w: usize,
}

pub fn cover_crop(src_h: usize, src_w: usize, target_h: usize, target_w: usize) -> CoverCrop {
    // Python: `w / h > tw / th` in double, then `int(w * th / h)` (truncation).
    let (resize_h, resize_w) =
        if (src_w as f64) / (src_h as f64) > (target_w as f64) / (target_h as f64) {
            (
                target_h,
                ((src_w * target_h) as f64 / src_h as f64) as usize,
            )
        } else {
            (
                ((src_h * target_w) as f64 / src_w as f64) as usize,
                target_w,
            )
        };
    // The truncation can leave a side one short of the target on extreme aspect ratios; the
    // reference would then fail in crop, here the side is clamped so the crop stays inside.
    let resize_h = resize_h.max(target_h);
    let resize_w = resize_w.max(target_w);
    CoverCrop {
        src_h,
        src_w,
        resize_h,
        resize_w,
        top: (resize_h - target_h) / 2,
        left: (resize_w - target_w) / 2,
        out_h: target_h,
        out_w: target_w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_rule() {
        assert_eq!(oriented_target(1080, 1920, (512, 896)), (512, 896));
        assert_eq!(oriented_target(1920, 1080, (512, 896)), (896, 512));
        assert_eq!(oriented_target(700, 700, (512, 896)), (512, 896));
    }

    #[test]
    fn cover_crop_wide_and_tall() {
        // 2048x1080 to 896x512: height fits, width 970 cropped by 37 on the left.
        let c = cover_crop(1080, 2048, 512, 896);
        assert_eq!((c.resize_h, c.resize_w, c.top, c.left), (512, 970, 0, 37));
        let c = cover_crop(1000, 500, 512, 896);
        assert_eq!((c.resize_h, c.resize_w), (1792, 896));
        assert_eq!(c.top, (1792 - 512) / 2);
    }
}
