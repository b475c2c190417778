//! One claimed job from its stored input to its outcome, cut at its stages: stop checks, input
//! fetch, generation on a blocking thread (logs drained into the store as they come), outputs
//! stored, errors mapped to fal's statuses and types.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, GeneratedFile, ProgressUpdate,
};
use scail_core::{InputFile, ScailInput, ScailOutput};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::progress::{JobProgress, RunningJob, STOP_CANCEL, STOP_NONE, STOP_TIMEOUT};
use crate::store::{now, Job, Outcome};
use crate::AppState;

/// An error outcome, fal-style: the message and type in the body and the stored row.
fn failed(status: u16, error_type: &str, message: &str, body: Value, t: Option<f64>) -> Outcome {
    Outcome::Err {
        status,
        error_type: error_type.into(),
        message: message.into(),
        body,
        inference_time: t,
    }
}

/// An error outcome whose body is `{"detail": message, "error_type": ...}`.
fn failed_detail(status: u16, error_type: &str, message: &str, t: Option<f64>) -> Outcome {
    let body = json!({"detail": message, "error_type": error_type});
    failed(status, error_type, message, body, t)
}

/// The outcome of a stop request; `None` for a shutdown (the job runs again later).
fn stopped(why: u8, t: Option<f64>) -> Option<Outcome> {
    match why {
        STOP_CANCEL => Some(failed_detail(
            400,
            "request_cancelled",
            "Request was cancelled",
            t,
        )),
        STOP_TIMEOUT => Some(failed_detail(
            504,
            "request_timeout",
            "Request timed out (x-fal-request-timeout)",
            t,
        )),
        _ => None,
    }
}

/// Runs one job; `None` means it was released by shutdown and must run again.
pub(super) async fn execute(
    state: &Arc<AppState>,
    job: &Job,
    handle: &Arc<RunningJob>,
) -> Option<Outcome> {
    if job.deadline.is_some_and(|d| now() > d) {
        return stopped(STOP_TIMEOUT, None);
    }
    if handle.stop_reason() != STOP_NONE {
        return stopped(handle.stop_reason(), None);
    }
    // The row holds the input validated at submit; it is run as it is.
    let input: ScailInput = match serde_json::from_value(job.input.clone()) {
        Ok(i) => i,
        Err(e) => {
            let m = format!("the stored input of this job cannot be read: {e}");
            return Some(failed_detail(500, "internal_error", &m, None));
        }
    };
    let work_dir = state.config.data_dir.join("work").join(&job.id);
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&work_dir).await {
        tracing::error!(request_id = %job.id, "creating {}: {e}", work_dir.display());
        let m = "the server could not create the job's working folder";
        return Some(failed_detail(500, "internal_error", m, None));
    }
    let outcome = match fetch_inputs(state, &job.id, input, &work_dir).await {
        Ok(input) => run_generator(state, job, handle, input, &work_dir).await,
        Err(o) => Some(o),
    };
    // A shutdown keeps nothing either: the next run fetches again.
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    outcome
}

/// A fetch error as a 422 `detail` list located at its field.
pub(crate) fn fetch_error_detail(field: &str, e: &crate::fetch::FetchError) -> Value {
    json!([{"loc": ["body", field], "msg": e.message, "type": format!("value_error.{}", e.kind)}])
}

/// Fetches every input file into the work folder, by name.
async fn fetch_inputs(
    state: &AppState,
    id: &str,
    input: ScailInput,
    work_dir: &Path,
) -> Result<ScailInput<PathBuf>, Outcome> {
    let store = &state.store;
    let _ = store.add_log(id, "INFO", "fetching inputs").await;
    let mut fetched: HashMap<InputFile, PathBuf> = HashMap::new();
    for (which, url) in input.files() {
        let field = which.field();
        let dest = work_dir.join(which.stem());
        match state.fetcher.fetch(field, url, which.kind(), &dest).await {
            Ok(f) => {
                let line = format!("{field}: {} bytes, {}", f.size, f.mime);
                let _ = store.add_log(id, "INFO", &line).await;
                fetched.insert(which, dest);
            }
            Err(e) => {
                let status = if e.kind == "internal_error" { 500 } else { 422 };
                let body = json!({"detail": fetch_error_detail(field, &e)});
                return Err(failed(status, e.kind, &e.message, body, None));
            }
        }
    }
    input
        .try_map_files(|which, _| fetched.remove(&which).ok_or(()))
        .map_err(|()| failed_detail(500, "internal_error", "an input file went missing", None))
}

/// Copies the latest progress update into the store, where any API node's status call reads it;
/// only when it changed (most log lines carry no new progress), remembered in `last`.
async fn publish_progress(
    state: &AppState,
    job: &Job,
    handle: &RunningJob,
    last: &mut Option<ProgressUpdate>,
) {
    let update = handle.progress.lock().unwrap().clone();
    if update.is_none() || update == *last {
        return;
    }
    let text = json!(update).to_string();
    let _ = state
        .store
        .set_progress(&job.id, &handle.worker, &text)
        .await;
    *last = update;
}

/// Runs the generator on a blocking thread, its logs drained into the store meanwhile.
async fn run_generator(
    state: &Arc<AppState>,
    job: &Job,
    handle: &Arc<RunningJob>,
    input: ScailInput<PathBuf>,
    work_dir: &Path,
) -> Option<Outcome> {
    let store = &state.store;
    let seed = input.seed.unwrap_or_else(|| rand::random::<u32>() as u64);
    // Checked at submit; a file removed from the folder since is the caller's 422 still.
    let loras = match crate::loras::resolve(state.config.lora_dir.as_deref(), &input.loras) {
        Ok(l) => l,
        Err(errs) => {
            let msg = errs
                .iter()
                .map(|e| e.msg.clone())
                .collect::<Vec<_>>()
                .join("; ");
            let body = json!({ "detail": errs });
            return Some(failed(422, "validation_error", &msg, body, None));
        }
    };
    let request = GenerateRequest {
        request_id: job.id.clone(),
        input,
        seed,
        work_dir: work_dir.to_path_buf(),
        loras,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let progress = JobProgress {
        tx,
        job: handle.clone(),
        data_dir: state.config.data_dir.clone(),
    };
    let generator = state.generator.clone();
    let t0 = Instant::now();
    let mut task = tokio::task::spawn_blocking(move || generator.generate(&request, &progress));
    let mut published = None;
    let result = loop {
        tokio::select! {
            r = &mut task => break r,
            Some((level, msg)) = rx.recv() => {
                let _ = store.add_log(&job.id, level.as_str(), &msg).await;
                publish_progress(state, job, handle, &mut published).await;
            }
        }
    };
    while let Ok((level, msg)) = rx.try_recv() {
        let _ = store.add_log(&job.id, level.as_str(), &msg).await;
    }
    let t = t0.elapsed().as_secs_f64();
    let out = result
        .unwrap_or_else(|e| Err(GenerateError::Failed(format!("the generator crashed: {e}"))));
    match out {
        Ok(files) => Some(
            match store_outputs_retrying(state, job, seed, files).await {
                Ok(result) => Outcome::Ok {
                    result,
                    inference_time: t,
                },
                Err(e) => {
                    tracing::error!(request_id = %job.id, "storing the output: {e}");
                    failed_detail(
                        500,
                        "internal_error",
                        "the server could not store the output",
                        Some(t),
                    )
                }
            },
        ),
        Err(GenerateError::Cancelled) => {
            let why = handle.stop_reason();
            stopped(if why == STOP_NONE { STOP_CANCEL } else { why }, Some(t))
        }
        Err(e) => Some(error_outcome(e, t, &state.config.data_dir)),
    }
}

/// How a generator error reads to the caller: the user's inputs (422), the server's set-up
/// (503) or a fault (500). Decoder and model messages name local files: those paths become the
/// request field they came from, or "a file on the server".
fn error_outcome(e: GenerateError, t: f64, data_dir: &Path) -> Outcome {
    let scrub = |m: String| crate::fetch::scrub_local_paths(&m, data_dir);
    let e = match e {
        GenerateError::Input { field, message } => GenerateError::Input {
            field,
            message: scrub(message),
        },
        GenerateError::NotConfigured(m) => GenerateError::NotConfigured(scrub(m)),
        GenerateError::Failed(m) => GenerateError::Failed(scrub(m)),
        GenerateError::Cancelled => GenerateError::Cancelled,
    };
    match e {
        GenerateError::Input { field, message } => {
            let loc = match &field {
                Some(f) => json!(["body", f]),
                None => json!(["body"]),
            };
            let body =
                json!({"detail": [{"loc": loc, "msg": message, "type": "value_error.input"}]});
            failed(422, "input_error", &message, body, Some(t))
        }
        GenerateError::NotConfigured(m) => failed_detail(503, "model_not_configured", &m, None),
        GenerateError::Failed(m) => failed_detail(500, "generation_error", &m, Some(t)),
        GenerateError::Cancelled => {
            failed_detail(400, "request_cancelled", "Request was cancelled", Some(t))
        }
    }
}

/// [`store_outputs`], retried while the store or the storage is unreachable (a restart, a
/// network blip): the video was paid for. Gives up when the lease has long passed.
async fn store_outputs_retrying(
    state: &AppState,
    job: &Job,
    seed: u64,
    files: GenerateOutput,
) -> Result<Value, crate::storage::StorageError> {
    use crate::storage::StorageError;
    let give_up_at = Instant::now() + state.config.lease * 4;
    let mut wait = std::time::Duration::from_millis(250);
    loop {
        match store_outputs(state, job, seed, files.clone()).await {
            Err(e @ (StorageError::Db(_) | StorageError::Object(_)))
                if Instant::now() < give_up_at =>
            {
                tracing::warn!(request_id = %job.id, "storing the output: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(std::time::Duration::from_secs(5));
            }
            r => return r,
        }
    }
}

async fn store_outputs(
    state: &AppState,
    job: &Job,
    seed: u64,
    files: GenerateOutput,
) -> Result<Value, crate::storage::StorageError> {
    // Outputs live as long as the job that made them.
    let retain = match state.store.job_retention(&job.id).await? {
        Some(s) => s,
        None => state.config.retention.as_secs_f64(),
    };
    let put = |f: GeneratedFile| async move {
        let file = state
            .storage
            .import(&job.owner, &f.path, &f.file_name, &f.content_type)
            .await?;
        if let Some(id) = state.storage.own_file_id(&file.url) {
            state
                .store
                .set_file_expiry(id, crate::store::now() + retain)
                .await?;
        }
        Ok::<_, crate::storage::StorageError>(file)
    };
    let video = put(files.video).await?;
    let preprocessing_video = match files.preprocessing_video {
        Some(f) => Some(put(f).await?),
        None => None,
    };
    let preprocessing_mask_video = match files.preprocessing_mask_video {
        Some(f) => Some(put(f).await?),
        None => None,
    };
    let preprocessing_mask_video_lossless = match files.preprocessing_mask_video_lossless {
        Some(f) => Some(put(f).await?),
        None => None,
    };
    let out = ScailOutput {
        video,
        seed,
        preprocessing_video,
        preprocessing_mask_video,
        preprocessing_mask_video_lossless,
    };
    Ok(serde_json::to_value(out).expect("serialisable"))
}
