//! Video entry points (probe, streaming decode, 16 fps resampling) on arbitrary bytes. ffmpeg
//! reads files, so each input is written to a per-process scratch file first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scail_media::video::{decode_resampled, DecodeOptions};
use scail_media::Limits;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("scail-media-fuzz-{}.bin", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let limits = Limits {
        max_pixels: 1 << 20,
        max_side: 4096,
        max_duration_s: 60.0,
        max_frames: 256,
        max_file_bytes: 16 << 20,
    };
    let _ = scail_media::probe::probe_with(&path, &limits);
    let opts = DecodeOptions {
        limits,
        max_output: Some((64, 64)),
    };
    let mut frames = 0u64;
    let _ = decode_resampled(&path, &opts, 16, |_, f| {
        assert!(f.image.width <= 64 && f.image.height <= 64);
        frames += 1;
        // Output frames are bounded by duration x 16 fps.
        assert!(frames <= 60 * 16 + 1);
        Ok(())
    });
});
