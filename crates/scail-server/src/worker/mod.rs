//! The worker loop: claim a job (with a lease), run it (see [`execute`]), record the outcome and
//! queue the webhook. A heartbeat renews the lease; cancellation and timeouts stop the
//! generator at its next step boundary.

mod execute;
mod progress;

pub(crate) use execute::fetch_error_detail;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use progress::{RunningJob, STOP_CANCEL, STOP_NONE, STOP_SHUTDOWN, STOP_TIMEOUT};

use crate::store::{now, Job, Outcome};
use crate::AppState;

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
        handle.request_stop(STOP_CANCEL);
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
    let hb = tokio::spawn(heartbeat(
        state.clone(),
        id.clone(),
        worker_id.to_string(),
        handle.clone(),
        job.deadline,
    ));
    let outcome = execute::execute(state, &job, &handle).await;
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

/// Renews the lease and flags timeouts and cancellations coming through the store (another
/// process may have set them), until the job is no longer this worker's.
async fn heartbeat(
    state: Arc<AppState>,
    id: String,
    worker: String,
    handle: Arc<RunningJob>,
    deadline: Option<f64>,
) {
    loop {
        if deadline.is_some_and(|d| now() > d) {
            handle.request_stop(STOP_TIMEOUT);
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
        if let Ok(true) = state.store.cancel_requested(&id).await {
            handle.request_stop(STOP_CANCEL);
        }
        tokio::time::sleep(state.config.lease / 6).await;
    }
}
