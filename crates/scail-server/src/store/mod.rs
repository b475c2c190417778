//! The durable job store: SQLite in WAL mode in the data directory. Everything a client can ask
//! for later (jobs, logs, results, webhook deliveries, files) lives here, so a SIGKILL loses nothing.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[macro_use]
mod types;
mod files;
mod retention;
mod webhooks;

pub use retention::Swept;

pub use types::*;

pub type Result<T> = std::result::Result<T, sqlx::Error>;

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        input TEXT NOT NULL,
        status TEXT NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        deadline REAL,
        lease_until REAL,
        worker TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        error TEXT,
        error_type TEXT,
        error_status INTEGER,
        error_body TEXT,
        inference_time REAL,
        webhook_url TEXT,
        retain_s REAL)",
    "CREATE INDEX IF NOT EXISTS jobs_queue ON jobs(status, priority, seq)",
    // A job's input lives apart from its status row: SQLite reads a row's columns in order
    // through its overflow pages, so a large input in `jobs` would make every status call on
    // that job pay for it. `jobs.input` stays (older databases have it) and is left empty.
    "CREATE TABLE IF NOT EXISTS job_inputs (
        job_id TEXT PRIMARY KEY,
        input TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS logs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        message TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS logs_job ON logs(job_id, seq)",
    "CREATE TABLE IF NOT EXISTS webhooks (
        job_id TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        user_id TEXT NOT NULL,
        body TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        delivered_at REAL,
        gave_up INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS webhook_attempts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        at REAL NOT NULL,
        status INTEGER,
        error TEXT)",
    "CREATE TABLE IF NOT EXISTS files (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        complete INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        expires_at REAL)",
];

#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
}

fn job_from_row(r: &sqlx::sqlite::SqliteRow) -> Job {
    let json = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    Job {
        seq: r.get("seq"),
        id: r.get("id"),
        owner: r.get("owner"),
        input: json(r.get("input")).unwrap_or(Value::Null),
        status: JobStatus::from_db(r.get("status")),
        priority: r.get("priority"),
        deadline: r.get("deadline"),
        started_at: r.get("started_at"),
        result: json(r.get("result")),
        error: r.get("error"),
        error_type: r.get("error_type"),
        error_status: r.get("error_status"),
        error_body: json(r.get("error_body")),
        inference_time: r.get("inference_time"),
        webhook_url: r.get("webhook_url"),
        cancel_requested: r.get::<i64, _>("cancel_requested") != 0,
        attempts: r.get("attempts"),
    }
}

impl Store {
    pub async fn open(path: &Path) -> Result<Store> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode survives a process kill (only power loss can drop the last
            // transactions), and is several times faster than FULL.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        // Freed pages go back to the file system as expired jobs are swept; a database made
        // before this setting is converted once (VACUUM is what applies it).
        let mode: i64 = sqlx::query_scalar("PRAGMA auto_vacuum")
            .fetch_one(&pool)
            .await?;
        if mode != 2 {
            sqlx::query("PRAGMA auto_vacuum = INCREMENTAL")
                .execute(&pool)
                .await?;
            sqlx::query("VACUUM").execute(&pool).await?;
        }
        for stmt in SCHEMA {
            sqlx::query(*stmt).execute(&pool).await?;
        }
        let store = Store { pool };
        store.migrate_retention().await?;
        store.migrate_inputs().await?;
        Ok(store)
    }

    /// Queues a job; returns its status columns.
    pub async fn insert_job(&self, job: &NewJob<'_>) -> Result<JobHead> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, owner, endpoint, input, status, priority, created_at, deadline,
                 webhook_url, retain_s)
             VALUES (?, ?, ?, '', 'IN_QUEUE', ?, ?, ?, ?, ?) RETURNING ",
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
        sqlx::query("INSERT INTO job_inputs (job_id, input) VALUES (?, ?)")
            .bind(job.id)
            .bind(job.input.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(head_from_row(&row))
    }

    /// A whole job, input included.
    pub async fn job(&self, id: &str) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.with_input(job_from_row(&r)).await?)),
            None => Ok(None),
        }
    }

    /// Fills a job's input from `job_inputs`.
    async fn with_input(&self, mut job: Job) -> Result<Job> {
        let input: Option<String> =
            sqlx::query_scalar("SELECT input FROM job_inputs WHERE job_id = ?")
                .bind(&job.id)
                .fetch_optional(&self.pool)
                .await?;
        if let Some(v) = input.and_then(|s| serde_json::from_str(&s).ok()) {
            job.input = v;
        }
        Ok(job)
    }

    /// The status columns of a job (see [`JobHead`]).
    pub async fn job_head(&self, id: &str) -> Result<Option<JobHead>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            head_columns!(),
            " FROM jobs WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(head_from_row))
    }

    /// Jobs ahead of this one in the queue (0 = next to run).
    pub async fn queue_position(&self, job: &JobHead) -> Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE status = 'IN_QUEUE'
             AND (priority < ? OR (priority = ? AND seq < ?))",
        )
        .bind(job.priority)
        .bind(job.priority)
        .bind(job.seq)
        .fetch_one(&self.pool)
        .await
    }

    /// Takes the next queued job, or one whose worker's lease ran out.
    pub async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>> {
        let t = now();
        let row = sqlx::query(
            "UPDATE jobs SET status = 'IN_PROGRESS', worker = ?, lease_until = ?, started_at = ?,
                 attempts = attempts + 1
             WHERE id = (SELECT id FROM jobs
                         WHERE status = 'IN_QUEUE' OR (status = 'IN_PROGRESS' AND lease_until < ?)
                         ORDER BY priority, seq LIMIT 1)
             RETURNING *",
        )
        .bind(worker)
        .bind(t + lease.as_secs_f64())
        .bind(t)
        .bind(t)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(self.with_input(job_from_row(&r)).await?)),
            None => Ok(None),
        }
    }

    /// Extends a running job's lease; false when the job is no longer this worker's.
    pub async fn heartbeat(&self, id: &str, worker: &str, lease: Duration) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE jobs SET lease_until = ? WHERE id = ? AND worker = ? AND status = 'IN_PROGRESS'",
        )
        .bind(now() + lease.as_secs_f64())
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Puts running jobs back in the queue: at start-up (the embedded store has one host, so any
    /// IN_PROGRESS job was left by a process that died) and on graceful shutdown.
    pub async fn requeue_running(&self, worker: Option<&str>) -> Result<Vec<String>> {
        let rows = match worker {
            Some(w) => {
                sqlx::query(
                    "UPDATE jobs SET status = 'IN_QUEUE', worker = NULL, lease_until = NULL
                     WHERE status = 'IN_PROGRESS' AND worker = ? RETURNING id",
                )
                .bind(w)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(
                    "UPDATE jobs SET status = 'IN_QUEUE', worker = NULL, lease_until = NULL
                     WHERE status = 'IN_PROGRESS' RETURNING id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.iter().map(|r| r.get("id")).collect())
    }

    /// Records how a job ended (and its webhook, in the same transaction). Returns false when the
    /// job had already finished.
    pub async fn complete(
        &self,
        id: &str,
        outcome: &Outcome,
        webhook: Option<(&str, &str, &str)>,
    ) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let q = match outcome {
            Outcome::Ok { result, inference_time } => sqlx::query(
                "UPDATE jobs SET status = 'COMPLETED', finished_at = ?, result = ?, inference_time = ?,
                     lease_until = NULL WHERE id = ? AND status != 'COMPLETED'",
            )
            .bind(now())
            .bind(result.to_string())
            .bind(inference_time)
            .bind(id),
            Outcome::Err { status, error_type, message, body, inference_time } => sqlx::query(
                "UPDATE jobs SET status = 'COMPLETED', finished_at = ?, error = ?, error_type = ?,
                     error_status = ?, error_body = ?, inference_time = ?, lease_until = NULL
                 WHERE id = ? AND status != 'COMPLETED'",
            )
            .bind(now())
            .bind(message)
            .bind(error_type)
            .bind(*status as i64)
            .bind(body.to_string())
            .bind(inference_time)
            .bind(id),
        };
        let changed = q.execute(&mut *tx).await?.rows_affected() == 1;
        if changed {
            if let Some((url, user, body)) = webhook {
                sqlx::query(
                    "INSERT OR REPLACE INTO webhooks (job_id, url, user_id, body, next_at) VALUES (?, ?, ?, ?, ?)",
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
        Ok(changed)
    }

    /// Whether a cancel was asked for (read by the running job's heartbeat).
    pub async fn cancel_requested(&self, id: &str) -> Result<bool> {
        let v: Option<i64> = sqlx::query_scalar("SELECT cancel_requested FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.is_some_and(|v| v != 0))
    }

    pub async fn request_cancel(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn add_log(&self, job_id: &str, level: &str, message: &str) -> Result<()> {
        let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        sqlx::query("INSERT INTO logs (job_id, ts, level, message) VALUES (?, ?, ?, ?)")
            .bind(job_id)
            .bind(ts)
            .bind(level)
            .bind(message)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn logs(&self, job_id: &str) -> Result<Vec<LogLine>> {
        let rows = sqlx::query("SELECT ts, level, message FROM logs WHERE job_id = ? ORDER BY seq")
            .bind(job_id)
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .iter()
            .map(|r| LogLine {
                message: r.get("message"),
                level: r.get("level"),
                source: "USER",
                timestamp: r.get("ts"),
            })
            .collect())
    }

    pub async fn queued_count(&self) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE status = 'IN_QUEUE'")
            .fetch_one(&self.pool)
            .await
    }
}
