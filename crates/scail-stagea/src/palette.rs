//! Subject colours and mask backgrounds.
//!
//! These constants mirror `spec/model.md` §4 (Segmentation) and §2 "28-channel mask
//! compression"; the media crate holds the same palette for the compression side. Keep
//! the two in step until the wiring makes one import the other.

/// Subject colours in assignment order: blue, red, green, magenta, cyan, yellow.
pub const PALETTE: [[u8; 3]; 6] = [
    [0, 0, 255],
    [255, 0, 0],
    [0, 255, 0],
    [255, 0, 255],
    [0, 255, 255],
    [255, 255, 0],
];

pub const WHITE: [u8; 3] = [255, 255, 255];
pub const BLACK: [u8; 3] = [0, 0, 0];

/// The model's "channel is on" threshold: a pixel value strictly above 225.
pub const ON_THRESHOLD: u8 = 225;

/// Animation keeps the reference's background; replacement keeps the driving scene.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Animation,
    Replacement,
}

impl Mode {
    /// Background of the reference image's colour mask.
    pub fn reference_background(self) -> [u8; 3] {
        match self {
            Mode::Animation => WHITE,
            Mode::Replacement => BLACK,
        }
    }

    /// Background of every driving frame's colour mask.
    pub fn driving_background(self) -> [u8; 3] {
        match self {
            Mode::Animation => BLACK,
            Mode::Replacement => WHITE,
        }
    }

    /// Most subjects the reference pipeline keeps in this mode.
    pub fn max_subjects(self) -> usize {
        match self {
            Mode::Animation => 2,
            Mode::Replacement => 1,
        }
    }
}

/// The palette index of a pixel, using the model's per-channel threshold; None for
/// black, white and anything the palette does not hold.
pub fn palette_index(rgb: [u8; 3]) -> Option<usize> {
    let on = rgb.map(|v| if v > ON_THRESHOLD { 255 } else { 0 });
    // Off channels must be clearly off too, so blurred edges between two colours do not
    // invent a third subject.
    if rgb.iter().zip(on).any(|(&v, o)| o == 0 && v >= 128) {
        return None;
    }
    PALETTE.iter().position(|&c| c == on)
}
