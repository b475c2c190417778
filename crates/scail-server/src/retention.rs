//! Retention: finished jobs, their outputs and uploads expire after a configurable time (fal's
//! `x-fal-object-lifecycle-preference` header may ask for less), leftovers of failed uploads are
//! swept, and the database is compacted after each sweep that removed something.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;

use crate::store::{now, Swept};
use crate::AppState;

/// The retention a request asks for with `x-fal-object-lifecycle-preference`
/// (`{"expiration_duration_seconds": N}`), capped by the server's own; `Err` for a header that
/// is not that JSON.
pub fn requested_retention(headers: &HeaderMap, cap: Duration) -> Result<Option<f64>, String> {
    let Some(v) = headers.get("x-fal-object-lifecycle-preference") else {
        return Ok(None);
    };
    let bad = || {
        "x-fal-object-lifecycle-preference must be JSON like {\"expiration_duration_seconds\": 3600}"
            .to_string()
    };
    let v: serde_json::Value = v
        .to_str()
        .ok()
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(bad)?;
    match v.get("expiration_duration_seconds") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(n) => {
            let s = n
                .as_f64()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or_else(bad)?;
            Ok(Some(s.min(cap.as_secs_f64())))
        }
    }
}

/// Sweeps every `sweep_interval` until `stop` fires.
pub async fn run_sweeper(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        match sweep_once(&state).await {
            Ok(s) if s.jobs > 0 || !s.files.is_empty() => tracing::info!(
                "retention: removed {} finished job(s) and {} file(s)",
                s.jobs,
                s.files.len()
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("retention sweep: {e}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.sweep_interval) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One sweep: expired rows, their files' bytes, and leftovers no row owns.
pub async fn sweep_once(state: &AppState) -> Result<Swept, sqlx::Error> {
    let t = now();
    // An upload URL is dead once it expires: an upload still incomplete then (and any
    // temporary file that old) belongs to no live request.
    let stale_uploads = t - state.config.upload_url_ttl.as_secs_f64();
    let swept = state
        .store
        .sweep(t, state.config.retention.as_secs_f64(), stale_uploads)
        .await?;
    for id in &swept.files {
        state.storage.remove(id).await;
    }
    let leftovers = remove_leftovers(state).await;
    if swept.jobs > 0 || !swept.files.is_empty() || leftovers > 0 {
        state.store.compact().await?;
    }
    Ok(swept)
}

fn older_than(meta: &std::fs::Metadata, age: Duration) -> bool {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .is_some_and(|d| d > age)
}

/// Staging files of writes that never finished, and upload parts whose upload no longer exists.
async fn remove_leftovers(state: &AppState) -> usize {
    let age = state.config.upload_url_ttl;
    let mut n = remove_old_entries(&state.config.data_dir.join("tmp"), age, |_| true).await;
    if let Some(root) = state.storage.local_root() {
        // The local object store stages a write as `<id>#<n>` beside its final name; a process
        // killed mid-write leaves one. (S3 drops unfinished multipart uploads by its own rules.)
        n += remove_old_entries(&root.join("files"), age, |name| name.contains('#')).await;
    }
    let Ok(ids) = state.storage.part_ids().await else {
        return n;
    };
    for id in ids {
        let done = match state.store.file(&id).await {
            Ok(Some(row)) => row.complete,
            Ok(None) => true,
            Err(_) => false,
        };
        if done {
            state.storage.remove_parts(&id).await;
            n += 1;
        }
    }
    n
}

async fn remove_old_entries(dir: &Path, age: Duration, wanted: impl Fn(&str) -> bool) -> usize {
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return 0;
    };
    let mut n = 0;
    while let Ok(Some(e)) = rd.next_entry().await {
        let name = e.file_name().to_string_lossy().to_string();
        let old = e.metadata().await.is_ok_and(|m| older_than(&m, age));
        if wanted(&name) && old && tokio::fs::remove_file(e.path()).await.is_ok() {
            n += 1;
        }
    }
    n
}
