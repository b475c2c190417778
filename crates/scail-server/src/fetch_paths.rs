//! Local paths out of job error messages. Fetched inputs land in `DATA_DIR/work/<id>/<name>`,
//! and the media decoder names the file it failed on, so a bad upload used to come back as
//! `/srv/scail/data/work/<id>/video: not a recognised video…`: the server's layout, and no help
//! to the client, who knows the input as `video_url`.

use std::path::Path;

/// Names the worker gives fetched inputs in a job's work folder, and the request fields they
/// come from.
const INPUTS: &[(&str, &str)] = &[
    ("image", "image_url"),
    ("video", "video_url"),
    ("reference_mask", "reference_mask_url"),
    ("driving_mask", "driving_mask_url"),
    ("pose_video", "pose_video_url"),
];

/// Where a path written in a message ends (the media errors write `{path}: reason`).
fn ends_path(c: char) -> bool {
    c.is_whitespace() || matches!(c, ':' | '\'' | '"' | ',' | ')' | ']' | '`')
}

/// Part of a name, so a match preceded by one is not the start of the path.
fn in_name(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// What a client sees instead of a local path under `data_dir`: the request field for a fetched
/// input, otherwise a neutral phrase.
fn replacement(rest_after_dir: &str) -> String {
    let mut parts = rest_after_dir.trim_start_matches('/').split('/');
    if let (Some("work"), Some(_id), Some(name), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    {
        if let Some((_, field)) = INPUTS.iter().find(|(n, _)| *n == name) {
            return (*field).to_string();
        }
    }
    "a file on the server".to_string()
}

fn scrub_one(message: &str, dir: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() {
        return message.to_string();
    }
    let needle = format!("{dir}/");
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(&needle) {
        let before_ok = rest[..at].chars().next_back().is_none_or(|c| !in_name(c));
        let after = &rest[at + dir.len()..];
        let len = after.find(ends_path).unwrap_or(after.len());
        if before_ok {
            out.push_str(&rest[..at]);
            out.push_str(&replacement(&after[..len]));
        } else {
            out.push_str(&rest[..at + dir.len() + len]);
        }
        rest = &after[len..];
    }
    out.push_str(rest);
    out
}

/// `message` with every path under `data_dir` (as configured, and as its absolute canonical
/// form) replaced: inputs by their request field (`video_url`), anything else by "a file on the
/// server". For job errors built from decoder and generator messages.
pub fn scrub_local_paths(message: &str, data_dir: &Path) -> String {
    let mut forms: Vec<String> = vec![data_dir.display().to_string()];
    if let Ok(abs) = std::fs::canonicalize(data_dir) {
        forms.push(abs.display().to_string());
    }
    if let Ok(abs) = std::path::absolute(data_dir) {
        forms.push(abs.display().to_string());
    }
    // Longest first, so an absolute form is not cut by a relative one it ends with.
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
        .iter()
        .fold(message.to_string(), |m, dir| scrub_one(&m, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_their_fields() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let w = data.join("work").join("0b6e-11");
        std::fs::create_dir_all(&w).unwrap();
        let m = format!(
            "{}: not a recognised video or image container (no header)",
            w.join("video").display()
        );
        assert_eq!(
            scrub_local_paths(&m, &data),
            "video_url: not a recognised video or image container (no header)"
        );
        let m = format!(
            "{}: codec x; {}: corrupt",
            w.join("pose_video").display(),
            w.join("image").display()
        );
        assert_eq!(
            scrub_local_paths(&m, &data),
            "pose_video_url: codec x; image_url: corrupt"
        );
        let m = format!("writing {}: disk full", w.join("out.mp4").display());
        assert_eq!(
            scrub_local_paths(&m, &data),
            "writing a file on the server: disk full"
        );
    }

    #[cfg(unix)]
    #[test]
    fn relative_and_symlinked_data_dirs() {
        let d = tempfile::tempdir().unwrap();
        let real = d.path().join("real");
        std::fs::create_dir_all(real.join("work/j1")).unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        // The message names the canonical path, the config the link.
        let m = format!("{}: empty", real.join("work/j1/driving_mask").display());
        assert_eq!(scrub_local_paths(&m, &link), "driving_mask_url: empty");
        // A relative data dir matches only as a whole path component.
        let rel = Path::new("scail-data");
        assert_eq!(
            scrub_local_paths("scail-data/work/j/video: bad", rel),
            "video_url: bad"
        );
        assert_eq!(
            scrub_local_paths("my-scail-data/work/j/video: bad", rel),
            "my-scail-data/work/j/video: bad"
        );
        assert_eq!(
            scrub_local_paths("no path here: scail-data is fine", rel),
            "no path here: scail-data is fine"
        );
    }

    /// A server-side failure (here: the work folder is gone) is an internal error that names
    /// the input, not the local path or the OS error.
    #[tokio::test]
    async fn fetch_faults_of_the_server_show_no_local_path() {
        use crate::fetch::{Fetcher, MediaKind};
        let d = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(&d.path().join("scail.db"))
            .await
            .unwrap();
        let storage = crate::storage::Storage::local(d.path(), store, "http://x".into()).unwrap();
        let f = Fetcher {
            max_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(5),
            allow: Vec::new(),
            storage,
        };
        let dest = d.path().join("work").join("gone").join("image");
        let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
        let e = f
            .fetch("image_url", png, MediaKind::Image, &dest)
            .await
            .unwrap_err();
        assert_eq!(e.kind, "internal_error");
        assert!(e.message.starts_with("image_url: "), "{}", e.message);
        let root = d.path().display().to_string();
        assert!(!e.message.contains(&root), "{}", e.message);
        assert!(!e.message.contains("os error"), "{}", e.message);
        // A fault of the request stays specific.
        let e = f
            .fetch("video_url", png, MediaKind::Video, &dest)
            .await
            .unwrap_err();
        assert_eq!(e.kind, "unsupported_media");
        assert!(e.message.contains("expected a video"), "{}", e.message);
    }
}
