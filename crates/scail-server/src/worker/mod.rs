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
    let mut backoff = Duration::from_millis(250);
    loop {
        if *stop.borrow() {
            return;
        }
        match state.store.claim(&worker_id, state.config.lease).await {
            Ok(Some(job)) => {
                backoff = Duration::from_millis(250);
                let id = job.id.clone();
                let r = if job.attempts > state.config.max_attempts {
                    give_up(&state, &worker_id, &job).await
                } else {
                    run_job(&state, &worker_id, job).await
                };
                if let Err(e) = r {
                    tracing::error!(request_id = %id, "worker: {e:#}");
                }
            }
            Ok(None) => {
                backoff = Duration::from_millis(250);
                tokio::select! {
                    _ = state.job_notify.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = stop.changed() => {}
                }
            }
            Err(e) => {
                // The store went away (restart, network): wait, longer each time, and go on;
                // the jobs are in the store, not here.
                tracing::error!("claiming a job: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// A job whose runs kept dying with their worker (killed, out of memory, machine lost) fails
/// instead of taking down worker after worker.
async fn give_up(state: &Arc<AppState>, worker_id: &str, job: &Job) -> anyhow::Result<()> {
    let runs = job.attempts - 1;
    let message = format!(
        "the job was started {runs} times and each time its worker stopped responding \
         (killed, out of memory or lost) before it finished; it is not retried again"
    );
    state.store.add_log(&job.id, "ERROR", &message).await?;
    let outcome = Outcome::Err {
        status: 500,
        error_type: "worker_lost".into(),
        body: json!({"detail": message, "error_type": "worker_lost"}),
        message,
        inference_time: None,
    };
    finish_retrying(state, worker_id, job, &outcome).await;
    Ok(())
}

async fn run_job(state: &Arc<AppState>, worker_id: &str, job: Job) -> anyhow::Result<()> {
    let id = job.id.clone();
    let store = &state.store;
    let handle = Arc::new(RunningJob {
        worker: worker_id.to_string(),
        ..RunningJob::default()
    });
    state
        .running
        .lock()
        .unwrap()
        .insert(id.clone(), handle.clone());
    if job.cancel_requested {
        handle.request_stop(STOP_CANCEL);
    }
    // Log lines are best effort here: a store that is away for a moment must not cost the
    // job its outcome (which is retried until recorded).
    if job.attempts > 1 {
        let line = format!(
            "restarted (attempt {}): the previous run was interrupted",
            job.attempts
        );
        let _ = store.add_log(&id, "WARN", &line).await;
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
    let _ = match &outcome {
        Outcome::Ok { .. } => {
            store
                .add_log(&id, "INFO", &format!("completed in {elapsed:.2} s"))
                .await
        }
        Outcome::Err { message, .. } => store.add_log(&id, "ERROR", message).await,
    };
    finish_retrying(state, worker_id, &job, &outcome).await;
    Ok(())
}

/// [`finish`] as this worker, retried while the store is unreachable: the outcome was paid for.
/// Gives up only when the lease has long passed (another worker has the job by then).
async fn finish_retrying(state: &AppState, worker_id: &str, job: &Job, outcome: &Outcome) {
    let mut wait = Duration::from_millis(250);
    let give_up_at = Instant::now() + state.config.lease * 4;
    loop {
        match finish(state, Some(worker_id), job, outcome).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(request_id = %job.id, "the job was no longer this worker's; its outcome is dropped");
                return;
            }
            Err(e) if Instant::now() < give_up_at => {
                tracing::warn!(request_id = %job.id, "recording the outcome: {e}; retrying in {wait:?}");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                tracing::error!(request_id = %job.id, "recording the outcome failed: {e}");
                return;
            }
        }
    }
}

/// Records how a job ended and, in the same transaction, queues its webhook. `worker`: only
/// while the job is still that worker's. Returns false when nothing was recorded.
pub async fn finish(
    state: &AppState,
    worker: Option<&str>,
    job: &Job,
    outcome: &Outcome,
) -> Result<bool, sqlx::Error> {
    let body = job
        .webhook_url
        .as_ref()
        .map(|_| webhook_payload(job, outcome).to_string());
    let hook = job
        .webhook_url
        .as_deref()
        .zip(body.as_deref())
        .map(|(url, body)| (url, job.owner.as_str(), body));
    let changed = state.store.complete(&job.id, worker, outcome, hook).await?;
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
        // A cancel from another node arrives by notification at once (PostgreSQL); this poll
        // is the bound otherwise.
        tokio::time::sleep((state.config.lease / 6).min(Duration::from_secs(1))).await;
    }
}
