//! Limits that bound work and memory on hostile inputs.

/// Checked before any frame buffer is allocated.
#[derive(Clone, Debug, PartialEq)]
pub struct Limits {
    /// Largest frame or image, in pixels (width x height as stored).
    pub max_pixels: u64,
    /// Largest width or height on its own.
    pub max_side: u32,
    /// Longest video, in seconds (declared duration, and decoded timestamps).
    pub max_duration_s: f64,
    /// Most decoded video frames.
    pub max_frames: u64,
    /// Largest input file, in bytes.
    pub max_file_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // 4096x4096: more than any 4K upload, far below a decompression bomb.
            max_pixels: 4096 * 4096,
            max_side: 8192,
            max_duration_s: 600.0,
            max_frames: 20_000,
            max_file_bytes: 2 << 30,
        }
    }
}

impl Limits {
    /// The file exists, is not empty, and is within the size limit (images and videos alike).
    pub fn check_file(&self, path: &std::path::Path) -> crate::Result<()> {
        use crate::MediaError;
        let meta = std::fs::metadata(path).map_err(|source| MediaError::Io {
            path: path.into(),
            source,
        })?;
        if meta.len() == 0 {
            return Err(MediaError::EmptyFile(path.into()));
        }
        if meta.len() > self.max_file_bytes {
            return Err(MediaError::Invalid(format!(
                "{}: {} bytes exceeds the file size limit of {}",
                path.display(),
                meta.len(),
                self.max_file_bytes
            )));
        }
        Ok(())
    }
}
