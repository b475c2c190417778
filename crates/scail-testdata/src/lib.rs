//! The repository's test data: the numerical oracle in `testdata/fixtures` and the real clips
//! and images in `testdata/media`. Environment variables point a run at another set (a held-out
//! fixture set with other shapes must pass too), so nothing else hard-codes these paths.

use std::path::{Path, PathBuf};

/// The workspace root (this crate sits at `crates/scail-testdata`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/scail-testdata sits two folders below the workspace root")
        .to_path_buf()
}

/// `SCAIL_FIXTURES_DIR`, else `testdata/fixtures`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("SCAIL_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("testdata/fixtures"))
}

/// `SCAIL_MEDIA_DIR`, else `testdata/media`.
pub fn media_dir() -> PathBuf {
    std::env::var_os("SCAIL_MEDIA_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("testdata/media"))
}

/// `SCAIL_REFERENCE_DIR`, else `testdata/reference`: Stage A's reference fixtures, made by the
/// models' own Python code (scripts/sam3_reference.py, scripts/dwpose_reference.py).
pub fn reference_dir() -> PathBuf {
    std::env::var_os("SCAIL_REFERENCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("testdata/reference"))
}

/// A file of the media folder.
pub fn media(name: &str) -> PathBuf {
    media_dir().join(name)
}

#[cfg(test)]
mod tests {
    #[test]
    fn folders_hold_their_markers() {
        assert!(super::fixtures_dir().join("manifest.json").is_file());
        assert!(super::media_dir().join("SOURCES.md").is_file());
    }
}
