//! Image decode entry point on arbitrary bytes: must return Ok or a typed error, within limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scail_media::image_io::decode_image_bytes;
use scail_media::Limits;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_pixels: 1 << 20,
        max_side: 4096,
        ..Limits::default()
    };
    if let Ok(img) = decode_image_bytes(data, std::path::Path::new("fuzz"), &limits) {
        assert!(img.image.width * img.image.height <= 1 << 20);
        assert_eq!(
            img.image.data.len(),
            img.image.width * img.image.height * img.image.channels
        );
    }
});
