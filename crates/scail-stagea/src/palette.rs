//! What each mode means for Stage A's masks. The colours themselves are the media crate's
//! ([`scail_media::mask::PALETTE`]), shared with the 28-channel compression, so the two
//! sides cannot drift apart.

use scail_core::schema::Mode;
use scail_media::mask::{BLACK, WHITE};

/// Stage A's per-mode mask rules (`spec/model.md` §2 "Modes"). A trait because [`Mode`]
/// belongs to scail-core, which knows nothing of masks.
pub trait ModeMasks {
    /// Background of the reference image's colour mask.
    fn reference_background(self) -> [u8; 3];
    /// Background of every driving frame's colour mask.
    fn driving_background(self) -> [u8; 3];
    /// Most subjects the reference pipeline keeps in this mode.
    fn max_subjects(self) -> usize;
}

/// Animation keeps the reference's background; replacement keeps the driving scene.
impl ModeMasks for Mode {
    fn reference_background(self) -> [u8; 3] {
        match self {
            Mode::Animation => WHITE,
            Mode::Replacement => BLACK,
        }
    }

    fn driving_background(self) -> [u8; 3] {
        match self {
            Mode::Animation => BLACK,
            Mode::Replacement => WHITE,
        }
    }

    fn max_subjects(self) -> usize {
        match self {
            Mode::Animation => 2,
            Mode::Replacement => 1,
        }
    }
}
