//! Jobs: queueing, claims with leases, heartbeats, outcomes, cancellation, logs, progress.

use std::time::Duration;

use sqlx::Row;

use super::{head_from_row, job_from_row, now, Db, Job, JobHead, LogLine, NewJob, Outcome};
use super::{Result, Store};

/// PostgreSQL notification channels (a fleet's nodes wake on them instead of polling).
pub const CHANNEL_JOBS: &str = "scail_jobs";
pub const CHANNEL_CANCEL: &str = "scail_cancel";
pub const CHANNEL_WEBHOOKS: &str = "scail_webhooks";

/// The claim statement up to the end of its subquery's row choice (each back end closes it).
macro_rules! claim_sql {
    () => {
        "UPDATE jobs SET status = 'IN_PROGRESS', worker = $1, lease_until = $2, started_at = $3,
             attempts = attempts + 1, progress = NULL
         WHERE id = (SELECT id FROM jobs
                     WHERE status = 'IN_QUEUE' OR (status = 'IN_PROGRESS' AND lease_until < $3)
                     ORDER BY priority, seq LIMIT 1"
    };
}

impl Store {
    /// Queues a job; returns its status columns.
    pub async fn insert_job(&self, job: &NewJob<'_>) -> Result<JobHead> {
        db!(self, p => {
            let mut tx = p.begin().await?;
            let row = sqlx::query(concat!(
                "INSERT INTO jobs (id, owner, endpoint, input, status, priority, created_at, deadline,
                     webhook_url, retain_s)
                 VALUES ($1, $2, $3, '', 'IN_QUEUE', $4, $5, $6, $7, $8) RETURNING ",
                head_columns!()
            ))
            .bind(job.id)
            .bind(job.owner)
            .bind(job.endpoint)
            .bind(job.priority)
            .bind(now())
            .bind(job.deadline)
            .bind(job.webhook_url)
            .bind(job.retain_s)
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO job_inputs (job_id, input) VALUES ($1, $2)")
                .bind(job.id)
                .bind(job.input.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            self.notify(CHANNEL_JOBS, job.id).await;
            Ok(head_from_row(&row))
        })
    }

    /// Wakes the fleet's listeners (PostgreSQL only; one host needs no message).
    pub(crate) async fn notify(&self, channel: &str, payload: &str) {
        if let Db::Pg(p) = &self.db {
            let r = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(p)
                .await;
            if let Err(e) = r {
                // Listeners also poll: a lost wake-up costs latency, not a job.
                tracing::debug!("notify {channel}: {e}");
            }
        }
    }

    /// A whole job, input included.
    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        let job = db!(self, p => sqlx::query("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| job_from_row(&r)));
        match job {
            Some(j) => Ok(Some(self.with_input(j).await?)),
            None => Ok(None),
        }
    }

    /// Fills a job's input from `job_inputs`.
    async fn with_input(&self, mut job: Job) -> Result<Job> {
        let input: Option<String> = db!(self, p => {
            sqlx::query_scalar("SELECT input FROM job_inputs WHERE job_id = $1")
                .bind(&job.id)
                .fetch_optional(p)
                .await?
        });
        if let Some(v) = input.and_then(|s| serde_json::from_str(&s).ok()) {
            job.input = v;
        }
        Ok(job)
    }

    /// The status columns of a job (see [`JobHead`]).
    pub async fn job_head(&self, id: &str) -> Result<Option<JobHead>> {
        db!(self, p => Ok(sqlx::query(concat!("SELECT ", head_columns!(), " FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| head_from_row(&r))))
    }

    /// Jobs ahead of this one in the queue (0 = next to run).
    pub async fn queue_position(&self, job: &JobHead) -> Result<i64> {
        db!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE status = 'IN_QUEUE'
             AND (priority < $1 OR (priority = $1 AND seq < $2))",
        )
        .bind(job.priority)
        .bind(job.seq)
        .fetch_one(p)
        .await)
    }

    /// Takes the next queued job, or one whose worker's lease ran out, counting the attempt.
    /// Workers of a fleet never take the same row: PostgreSQL skips rows another claim holds.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let t = now();
        let job = db!(self, p => {
            let sql = match &self.db {
                Db::Sqlite(_) => concat!(claim_sql!(), ")
                     RETURNING *"),
                Db::Pg(_) => concat!(claim_sql!(), " FOR UPDATE SKIP LOCKED)
                     RETURNING *"),
            };
            sqlx::query(sql)
                .bind(worker)
                .bind(t + lease.as_secs_f64())
                .bind(t)
                .fetch_optional(p)
                .await?
                .map(|r| job_from_row(&r))
        });
        match job {
            Some(j) => Ok(Some(self.with_input(j).await?)),
            None => Ok(None),
        }
    }

    /// Extends a running job's lease; false when the job is no longer this worker's.
    pub async fn heartbeat(&self, id: &str, worker: &str, lease: Duration) -> Result<bool> {
        db!(self, p => Ok(sqlx::query(
            "UPDATE jobs SET lease_until = $1 WHERE id = $2 AND worker = $3 AND status = 'IN_PROGRESS'",
        )
        .bind(now() + lease.as_secs_f64())
        .bind(id)
        .bind(worker)
        .execute(p)
        .await?
        .rows_affected() == 1))
    }

    /// Puts running jobs back in the queue: at start-up of the embedded store (one host, so any
    /// IN_PROGRESS job was left by a process that died) and on graceful shutdown (`worker`).
    pub async fn requeue_running(&self, worker: Option<&str>) -> Result<Vec<String>> {
        let ids: Vec<String> = db!(self, p => sqlx::query(
            "UPDATE jobs SET status = 'IN_QUEUE', worker = NULL, lease_until = NULL, progress = NULL
             WHERE status = 'IN_PROGRESS' AND ($1 IS NULL OR worker = $1) RETURNING id",
        )
        .bind(worker)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect());
        if !ids.is_empty() {
            self.notify(CHANNEL_JOBS, "").await;
        }
        Ok(ids)
    }

    /// Records how a job ended (and its webhook, in the same transaction). `worker`: only if
    /// the job is still this worker's (one whose lease ran out and was taken by another records
    /// nothing, so no job completes twice). Returns false when nothing was recorded.
    pub async fn complete(
        &self,
        id: &str,
        worker: Option<&str>,
        outcome: &Outcome,
        webhook: Option<(&str, &str, &str)>,
    ) -> Result<bool> {
        let changed = db!(self, p => {
            let mut tx = p.begin().await?;
            let q = match outcome {
                Outcome::Ok { result, inference_time } => sqlx::query(
                    "UPDATE jobs SET status = 'COMPLETED', finished_at = $1, result = $2,
                         inference_time = $3, lease_until = NULL, progress = NULL
                     WHERE id = $4 AND status != 'COMPLETED' AND ($5 IS NULL OR worker = $5)",
                )
                .bind(now())
                .bind(result.to_string())
                .bind(inference_time)
                .bind(id)
                .bind(worker),
                Outcome::Err { status, error_type, message, body, inference_time } => sqlx::query(
                    "UPDATE jobs SET status = 'COMPLETED', finished_at = $1, error = $2,
                         error_type = $3, error_status = $4, error_body = $5, inference_time = $6,
                         lease_until = NULL, progress = NULL
                     WHERE id = $7 AND status != 'COMPLETED' AND ($8 IS NULL OR worker = $8)",
                )
                .bind(now())
                .bind(message)
                .bind(error_type)
                .bind(*status as i64)
                .bind(body.to_string())
                .bind(inference_time)
                .bind(id)
                .bind(worker),
            };
            let changed = q.execute(&mut *tx).await?.rows_affected() == 1;
            if changed {
                if let Some((url, user, body)) = webhook {
                    sqlx::query(
                        "INSERT INTO webhooks (job_id, url, user_id, body, next_at)
                         VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (job_id) DO UPDATE SET url = $2, user_id = $3, body = $4,
                             next_at = $5, attempts = 0, delivered_at = NULL, gave_up = 0,
                             lease_until = NULL",
                    )
                    .bind(id)
                    .bind(url)
                    .bind(user)
                    .bind(body)
                    .bind(now())
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            changed
        });
        if changed && webhook.is_some() {
            self.notify(CHANNEL_WEBHOOKS, id).await;
        }
        Ok(changed)
    }

    /// Whether a cancel was asked for (read by the running job's heartbeat).
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let v: Option<i64> = db!(self, p => sqlx::query_scalar(
            "SELECT cancel_requested FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?);
        Ok(v.is_some_and(|v| v != 0))
    }

    pub async fn request_cancel(&self, id: &str) -> Result<()> {
        db!(self, p => sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1")
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())?);
        self.notify(CHANNEL_CANCEL, id).await;
        Ok(())
    }

    /// The latest progress update of a running job (JSON), for status calls on any node.
    pub async fn set_progress(&self, id: &str, worker: &str, progress: &str) -> Result<()> {
        db!(self, p => sqlx::query(
            "UPDATE jobs SET progress = $1 WHERE id = $2 AND worker = $3 AND status = 'IN_PROGRESS'",
        )
        .bind(progress)
        .bind(id)
        .bind(worker)
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn add_log(&self, job_id: &str, level: &str, message: &str) -> Result<()> {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        db!(self, p => sqlx::query("INSERT INTO logs (job_id, ts, level, message) VALUES ($1, $2, $3, $4)")
            .bind(job_id)
            .bind(ts)
            .bind(level)
            .bind(message)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    pub async fn logs(&self, job_id: &str) -> Result<Vec<LogLine>> {
        db!(self, p => Ok(sqlx::query(
            "SELECT ts, level, message FROM logs WHERE job_id = $1 ORDER BY seq",
        )
        .bind(job_id)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| LogLine {
            message: r.get("message"),
            level: r.get("level"),
            source: "USER",
            timestamp: r.get("ts"),
        })
        .collect()))
    }

    pub async fn queued_count(&self) -> Result<i64> {
        db!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'IN_QUEUE'")
            .fetch_one(p)
            .await)
    }
}
