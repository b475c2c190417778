//! The worker loop: claim a job (with a lease), fetch its inputs, run the generator on a blocking
//! thread while its progress and logs flow into the store, store the outputs, record the outcome
//! and queue the webhook. A heartbeat renews the lease; cancellation and timeouts stop the
//! generator at its next step boundary.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scail_core::generator::{GenerateError, GenerateRequest, LogLevel, Progress};
use scail_core::{ScailInput, ScailOutput};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::fetch::MediaKind;
use crate::store::{now, Job, Outcome};
use crate::AppState;

/// Why a running job was asked to stop.
pub const STOP_NONE: u8 = 0;
pub const STOP_CANCEL: u8 = 1;
pub const STOP_TIMEOUT: u8 = 2;
pub const STOP_SHUTDOWN: u8 = 3;

#[derive(Debug, Clone, serde::Serialize)]
pub struct ProgressInfo {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    pub eta_s: Option<f64>,
}

/// In-memory handle of a job this process is running.
#[derive(Default)]
pub struct RunningJob {
    pub stop: AtomicU8,
    pub progress: Mutex<Option<ProgressInfo>>,
    stage_start: Mutex<Option<(String, Instant, u64)>>,
}

enum Event {
    Log(LogLevel, String),
}

struct JobProgress {
    tx: mpsc::UnboundedSender<Event>,
    job: Arc<RunningJob>,
}

impl Progress for JobProgress {
    fn log(&self, level: LogLevel, message: &str) {
        let _ = self.tx.send(Event::Log(level, message.to_string()));
    }

    fn progress(&self, stage: &str, done: u64, total: u64) {
        let eta = {
            let mut s = self.job.stage_start.lock().unwrap();
            match &*s {
                Some((name, _, _)) if name == stage => {}
                _ => *s = Some((stage.to_string(), Instant::now(), done)),
            }
            let (_, t0, d0) = s.as_ref().unwrap();
            let el = t0.elapsed().as_secs_f64();
            (done > *d0 && total >= done).then(|| el / (done - d0) as f64 * (total - done) as f64)
        };
        *self.job.progress.lock().unwrap() = Some(ProgressInfo {
            stage: stage.to_string(),
            done,
            total,
            eta_s: eta,
        });
        let pct = if total > 0 {
            100.0 * done as f64 / total as f64
        } else {
            0.0
        };
        let eta_text = eta.map(|e| format!(", ETA {e:.0} s")).unwrap_or_default();
        let _ = self.tx.send(Event::Log(
            LogLevel::Info,
            format!("{stage}: {done}/{total} ({pct:.0}%){eta_text}"),
        ));
    }

    fn is_cancelled(&self) -> bool {
        self.job.stop.load(Ordering::Relaxed) != STOP_NONE
    }
}

fn err_outcome(
    status: u16,
    error_type: &str,
    message: String,
    body: Value,
    t: Option<f64>,
) -> Outcome {
    Outcome::Err {
        status,
        error_type: error_type.into(),
        message,
        body,
        inference_time: t,
    }
}

/// The error body of a failed request, fal-style.
fn detail_body(message: &str, error_type: &str) -> Value {
    json!({"detail": message, "error_type": error_type})
}

/// Runs worker `index` until `stop` fires.
pub async fn run_worker(
    state: Arc<AppState>,
    index: usize,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let worker_id = format!("{}-{index}", state.instance_id);
    loop {
        if *stop.borrow() {
            return;
        }
        match state.store.claim(&worker_id, state.config.lease).await {
            Ok(Some(job)) => {
                let id = job.id.clone();
                if let Err(e) = run_job(&state, &worker_id, job).await {
                    tracing::error!(request_id = %id, "worker: {e:#}");
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = state.job_notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                tracing::error!("claiming a job: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

async fn run_job(state: &Arc<AppState>, worker_id: &str, job: Job) -> anyhow::Result<()> {
    let id = job.id.clone();
    let store = &state.store;
    let handle = Arc::new(RunningJob::default());
    state
        .running
        .lock()
        .unwrap()
        .insert(id.clone(), handle.clone());
    if job.cancel_requested {
        handle.stop.store(STOP_CANCEL, Ordering::Relaxed);
    }
    if job.attempts > 1 {
        store
            .add_log(
                &id,
                "WARN",
                &format!(
                    "restarted (attempt {}): the previous run was interrupted",
                    job.attempts
                ),
            )
            .await?;
    }
    let started = Instant::now();

    // Heartbeat and watchdog: renew the lease, and flag timeouts and cancellations coming through
    // the store (another process may have set them).
    let hb = {
        let state = state.clone();
        let id = id.clone();
        let worker = worker_id.to_string();
        let handle = handle.clone();
        let deadline = job.deadline;
        tokio::spawn(async move {
            loop {
                if let Some(d) = deadline {
                    if now() > d {
                        let _ = handle.stop.compare_exchange(
                            STOP_NONE,
                            STOP_TIMEOUT,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
                match state
                    .store
                    .heartbeat(&id, &worker, state.config.lease)
                    .await
                {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => tracing::warn!("heartbeat: {e}"),
                }
                if let Ok(Some(j)) = state.store.job(&id).await {
                    if j.cancel_requested {
                        let _ = handle.stop.compare_exchange(
                            STOP_NONE,
                            STOP_CANCEL,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        );
                    }
                }
                tokio::time::sleep(state.config.lease / 6).await;
            }
        })
    };

    let outcome = execute(state, &job, &handle).await;
    hb.abort();
    state.running.lock().unwrap().remove(&id);

    let outcome = match outcome {
        Some(o) => o,
        None => {
            // Released for a later run (graceful shutdown): back to the queue, nothing recorded.
            store
                .add_log(
                    &id,
                    "WARN",
                    "released by a shutting-down worker; it will run again",
                )
                .await?;
            store.requeue_running(Some(worker_id)).await?;
            return Ok(());
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    match &outcome {
        Outcome::Ok { .. } => {
            store
                .add_log(&id, "INFO", &format!("completed in {elapsed:.2} s"))
                .await?
        }
        Outcome::Err { message, .. } => store.add_log(&id, "ERROR", message).await?,
    }
    finish(state, &job, &outcome).await?;
    Ok(())
}

/// Records how a job ended and, in the same transaction, queues its webhook. Returns false when
/// the job had already finished.
pub async fn finish(state: &AppState, job: &Job, outcome: &Outcome) -> Result<bool, sqlx::Error> {
    let body = job
        .webhook_url
        .as_ref()
        .map(|_| webhook_payload(job, outcome).to_string());
    let hook = job
        .webhook_url
        .as_deref()
        .zip(body.as_deref())
        .map(|(url, body)| (url, job.owner.as_str(), body));
    let changed = state.store.complete(&job.id, outcome, hook).await?;
    if changed && hook.is_some() {
        state.webhook_notify.notify_one();
    }
    Ok(changed)
}

/// The body POSTed to `fal_webhook` (spec/api.md §5).
pub fn webhook_payload(job: &Job, outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Ok { result, .. } => json!({"request_id": job.id, "gateway_request_id": job.id,
            "status": "OK", "payload": result, "error": null}),
        Outcome::Err { message, body, .. } => {
            json!({"request_id": job.id, "gateway_request_id": job.id,
            "status": "ERROR", "error": message, "payload": body})
        }
    }
}

/// Runs one job; `None` means it was released by shutdown and must run again.
async fn execute(state: &Arc<AppState>, job: &Job, handle: &Arc<RunningJob>) -> Option<Outcome> {
    let id = &job.id;
    let store = &state.store;
    let stop_outcome = |why: u8, t: Option<f64>| -> Option<Outcome> {
        match why {
            STOP_CANCEL => Some(err_outcome(
                400,
                "request_cancelled",
                "Request was cancelled".into(),
                detail_body("Request was cancelled", "request_cancelled"),
                t,
            )),
            STOP_TIMEOUT => Some(err_outcome(
                504,
                "request_timeout",
                "Request timed out (x-fal-request-timeout)".into(),
                detail_body(
                    "Request timed out (x-fal-request-timeout)",
                    "request_timeout",
                ),
                t,
            )),
            _ => None,
        }
    };
    if let Some(d) = job.deadline {
        if now() > d {
            return stop_outcome(STOP_TIMEOUT, None);
        }
    }
    if handle.stop.load(Ordering::Relaxed) != STOP_NONE {
        return stop_outcome(handle.stop.load(Ordering::Relaxed), None);
    }
    let input: ScailInput = match scail_core::validate_input(&job.input) {
        Ok(i) => i,
        Err(errors) => {
            return Some(err_outcome(
                422,
                "validation_error",
                "invalid input".into(),
                json!({"detail": errors}),
                None,
            ));
        }
    };
    let work_dir = state.config.data_dir.join("work").join(id);
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    if let Err(e) = tokio::fs::create_dir_all(&work_dir).await {
        return Some(err_outcome(
            500,
            "internal_error",
            format!("creating the work folder: {e}"),
            detail_body(&e.to_string(), "internal_error"),
            None,
        ));
    }
    let _ = store.add_log(id, "INFO", "fetching inputs").await;
    let mut paths: Vec<Option<PathBuf>> = Vec::new();
    let fields: [(&str, Option<&String>, MediaKind); 5] = [
        ("image_url", Some(&input.image_url), MediaKind::Image),
        ("video_url", Some(&input.video_url), MediaKind::Video),
        (
            "reference_mask_url",
            input.reference_mask_url.as_ref(),
            MediaKind::Image,
        ),
        (
            "driving_mask_url",
            input.driving_mask_url.as_ref(),
            MediaKind::Any,
        ),
        (
            "pose_video_url",
            input.pose_video_url.as_ref(),
            MediaKind::Video,
        ),
    ];
    for (field, url, kind) in fields {
        let Some(url) = url else {
            paths.push(None);
            continue;
        };
        let dest = work_dir.join(field.trim_end_matches("_url"));
        match state.fetcher.fetch(field, url, kind, &dest).await {
            Ok(f) => {
                let _ = store
                    .add_log(
                        id,
                        "INFO",
                        &format!("{field}: {} bytes, {}", f.size, f.mime),
                    )
                    .await;
                paths.push(Some(dest));
            }
            Err(e) => {
                let _ = tokio::fs::remove_dir_all(&work_dir).await;
                let detail = json!([{"loc": ["body", field], "msg": e.message, "type": format!("value_error.{}", e.kind)}]);
                let status = if e.kind == "internal_error" { 500 } else { 422 };
                return Some(err_outcome(
                    status,
                    e.kind,
                    e.message.clone(),
                    json!({"detail": detail}),
                    None,
                ));
            }
        }
    }
    let seed = input.seed.unwrap_or_else(|| rand::random::<u32>() as u64);
    let request = GenerateRequest {
        request_id: id.clone(),
        input,
        seed,
        image: paths[0].clone().expect("required"),
        video: paths[1].clone().expect("required"),
        reference_mask: paths[2].clone(),
        driving_mask: paths[3].clone(),
        pose_video: paths[4].clone(),
        work_dir: work_dir.clone(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let progress = JobProgress {
        tx,
        job: handle.clone(),
    };
    let generator = state.generator.clone();
    let t0 = Instant::now();
    let mut gen_task = tokio::task::spawn_blocking(move || generator.generate(&request, &progress));
    // Drain progress events into the store while the generator runs.
    let result = loop {
        tokio::select! {
            r = &mut gen_task => break r,
            Some(ev) = rx.recv() => {
                let Event::Log(level, msg) = ev;
                let _ = store.add_log(id, level.as_str(), &msg).await;
            }
        }
    };
    while let Ok(Event::Log(level, msg)) = rx.try_recv() {
        let _ = store.add_log(id, level.as_str(), &msg).await;
    }
    let inference_time = t0.elapsed().as_secs_f64();
    let out = match result {
        Ok(r) => r,
        Err(e) => Err(GenerateError::Failed(format!("the generator crashed: {e}"))),
    };
    let outcome = match out {
        Ok(files) => match store_outputs(state, job, seed, files).await {
            Ok(result) => Outcome::Ok {
                result,
                inference_time,
            },
            Err(e) => err_outcome(
                500,
                "internal_error",
                format!("storing the output: {e}"),
                detail_body(&e.to_string(), "internal_error"),
                Some(inference_time),
            ),
        },
        Err(GenerateError::Cancelled) => {
            let why = handle.stop.load(Ordering::Relaxed);
            let o = stop_outcome(
                if why == STOP_NONE { STOP_CANCEL } else { why },
                Some(inference_time),
            );
            if o.is_none() {
                let _ = tokio::fs::remove_dir_all(&work_dir).await;
            }
            return o;
        }
        Err(GenerateError::Input { field, message }) => {
            let loc = match &field {
                Some(f) => json!(["body", f]),
                None => json!(["body"]),
            };
            err_outcome(
                422,
                "input_error",
                message.clone(),
                json!({"detail": [{"loc": loc, "msg": message, "type": "value_error.input"}]}),
                Some(inference_time),
            )
        }
        Err(GenerateError::NotConfigured(m)) => err_outcome(
            503,
            "model_not_configured",
            m.clone(),
            detail_body(&m, "model_not_configured"),
            None,
        ),
        Err(GenerateError::Failed(m)) => err_outcome(
            500,
            "generation_error",
            m.clone(),
            detail_body(&m, "generation_error"),
            Some(inference_time),
        ),
    };
    let _ = tokio::fs::remove_dir_all(&work_dir).await;
    Some(outcome)
}

async fn store_outputs(
    state: &Arc<AppState>,
    job: &Job,
    seed: u64,
    files: scail_core::generator::GenerateOutput,
) -> Result<Value, crate::storage::StorageError> {
    let put = |f: scail_core::generator::GeneratedFile| {
        let storage = state.storage.clone();
        let owner = job.owner.clone();
        async move {
            storage
                .import(&owner, &f.path, &f.file_name, &f.content_type)
                .await
        }
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
    let out = ScailOutput {
        video,
        seed,
        preprocessing_video,
        preprocessing_mask_video,
    };
    Ok(serde_json::to_value(out).expect("serialisable"))
}
