//! Binary masks and boxes. Frames are the media crate's RGB8 [`ImageU8`] (re-exported as
//! [`RgbImage`]), whose filters live in `scail_media::resize::opencv`.

use scail_media::resize::opencv::nearest_src;
pub use scail_media::ImageU8 as RgbImage;

/// An image's (width, height) in the `u32` pixel units of masks, boxes and tracks.
pub fn dims(img: &RgbImage) -> (u32, u32) {
    (img.width as u32, img.height as u32)
}

/// A binary mask, row-major, one byte per pixel (0 or 1).
#[derive(Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Mask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Mask({}x{}, area {})",
            self.width,
            self.height,
            self.area()
        )
    }
}

impl Mask {
    pub fn empty(width: u32, height: u32) -> Self {
        Self {
            width,
            height,
            data: vec![0; width as usize * height as usize],
        }
    }

    /// A mask that is set inside the axis-aligned rectangle [x0, x1) x [y0, y1).
    pub fn from_rect(width: u32, height: u32, x0: u32, y0: u32, x1: u32, y1: u32) -> Self {
        let mut m = Self::empty(width, height);
        for y in y0.min(height)..y1.min(height) {
            for x in x0.min(width)..x1.min(width) {
                m.data[(y * width + x) as usize] = 1;
            }
        }
        m
    }

    #[inline]
    pub fn get(&self, x: u32, y: u32) -> bool {
        self.data[(y * self.width + x) as usize] != 0
    }

    pub fn area(&self) -> usize {
        self.data.iter().filter(|&&v| v != 0).count()
    }

    /// Fraction of the frame covered.
    pub fn coverage(&self) -> f32 {
        self.area() as f32 / (self.width as f32 * self.height as f32).max(1.0)
    }

    /// Intersection over union; two empty masks have IoU 0.
    pub fn iou(&self, other: &Mask) -> f32 {
        debug_assert_eq!((self.width, self.height), (other.width, other.height));
        let (mut inter, mut uni) = (0usize, 0usize);
        for (&a, &b) in self.data.iter().zip(&other.data) {
            let (a, b) = (a != 0, b != 0);
            inter += (a && b) as usize;
            uni += (a || b) as usize;
        }
        if uni == 0 {
            0.0
        } else {
            inter as f32 / uni as f32
        }
    }

    /// Tight bounding box (x0, y0, x1, y1) in pixel edges, or None when empty.
    pub fn bbox(&self) -> Option<BBox> {
        let (mut x0, mut y0, mut x1, mut y1) = (u32::MAX, u32::MAX, 0u32, 0u32);
        for y in 0..self.height {
            for x in 0..self.width {
                if self.get(x, y) {
                    x0 = x0.min(x);
                    y0 = y0.min(y);
                    x1 = x1.max(x + 1);
                    y1 = y1.max(y + 1);
                }
            }
        }
        (x0 != u32::MAX).then(|| BBox::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32))
    }

    /// Centre of mass (x, y) of the set pixels, or None when empty.
    pub fn centroid(&self) -> Option<(f32, f32)> {
        let (mut sx, mut sy, mut n) = (0f64, 0f64, 0usize);
        for (i, &v) in self.data.iter().enumerate() {
            if v != 0 {
                sx += (i % self.width as usize) as f64 + 0.5;
                sy += (i / self.width as usize) as f64 + 0.5;
                n += 1;
            }
        }
        (n > 0).then(|| ((sx / n as f64) as f32, (sy / n as f64) as f32))
    }

    /// The mask moved by (dx, dy) whole pixels; what leaves the frame is lost.
    pub fn shifted(&self, dx: i64, dy: i64) -> Mask {
        let (w, h) = (self.width as i64, self.height as i64);
        let mut out = Mask::empty(self.width, self.height);
        for y in 0..h {
            let sy = y - dy;
            if !(0..h).contains(&sy) {
                continue;
            }
            for x in 0..w {
                let sx = x - dx;
                if (0..w).contains(&sx) {
                    out.data[(y * w + x) as usize] = self.data[(sy * w + sx) as usize];
                }
            }
        }
        out
    }

    /// Nearest-neighbour resize (half-pixel centres).
    pub fn resize_nearest(&self, width: u32, height: u32) -> Mask {
        let mut out = Mask::empty(width, height);
        for y in 0..height {
            let sy = nearest_src(y as usize, height as usize, self.height as usize);
            for x in 0..width {
                let sx = nearest_src(x as usize, width as usize, self.width as usize);
                out.data[(y * width + x) as usize] = self.data[sy * self.width as usize + sx];
            }
        }
        out
    }

    /// True when any pixel within `radius` (Chebyshev) of (x, y) is set.
    pub fn near(&self, x: i64, y: i64, radius: i64) -> bool {
        let (w, h) = (self.width as i64, self.height as i64);
        for yy in (y - radius).max(0)..=(y + radius).min(h - 1) {
            for xx in (x - radius).max(0)..=(x + radius).min(w - 1) {
                if self.data[(yy * w + xx) as usize] != 0 {
                    return true;
                }
            }
        }
        false
    }
}

/// An axis-aligned box in pixel coordinates, corners (x0, y0) and (x1, y1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BBox {
    pub x0: f32,
    pub y0: f32,
    pub x1: f32,
    pub y1: f32,
}

impl BBox {
    pub fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        Self { x0, y0, x1, y1 }
    }
    pub fn centre(&self) -> (f32, f32) {
        ((self.x0 + self.x1) * 0.5, (self.y0 + self.y1) * 0.5)
    }
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0).max(0.0) * (self.y1 - self.y0).max(0.0)
    }
    pub fn iou(&self, o: &BBox) -> f32 {
        let iw = (self.x1.min(o.x1) - self.x0.max(o.x0)).max(0.0);
        let ih = (self.y1.min(o.y1) - self.y0.max(o.y0)).max(0.0);
        let inter = iw * ih;
        let uni = self.area() + o.area() - inter;
        if uni <= 0.0 {
            0.0
        } else {
            inter / uni
        }
    }
}
