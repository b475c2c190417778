//! Webhook deliveries: queued with a job's outcome, retried with backoff, every attempt kept.
//! A due delivery is claimed for a while before it is sent, so of several API nodes exactly
//! one sends each attempt, and one that dies mid-send leaves it to the others.

use sqlx::Row;

use super::{now, Cols, Db, Result, Store, Webhook};

/// How long a claimed delivery is left to its node before another may send it: well past one
/// attempt's HTTP timeout (15 s, `webhook::deliver`), so a live node's send is never doubled.
const CLAIM_S: f64 = 60.0;

fn webhook_from_row(r: &impl Cols) -> Webhook {
    Webhook {
        job_id: r.text("job_id"),
        url: r.text("url"),
        user_id: r.text("user_id"),
        body: r.text("body"),
        attempts: r.int("attempts"),
    }
}

macro_rules! due_sql {
    () => {
        "UPDATE webhooks SET lease_until = $1
         WHERE job_id IN (SELECT job_id FROM webhooks
             WHERE delivered_at IS NULL AND gave_up = 0 AND next_at <= $2
               AND (lease_until IS NULL OR lease_until < $2)
             ORDER BY next_at LIMIT $3"
    };
}

impl Store {
    /// Claims up to `limit` deliveries that are due.
    pub async fn due_webhooks(&self, limit: i64) -> Result<Vec<Webhook>> {
        let t = now();
        db!(self, p => {
            let sql = match &self.db {
                Db::Sqlite(_) => concat!(due_sql!(), ")
                     RETURNING job_id, url, user_id, body, attempts"),
                Db::Pg(_) => concat!(due_sql!(), " FOR UPDATE SKIP LOCKED)
                     RETURNING job_id, url, user_id, body, attempts"),
            };
            Ok(sqlx::query(sql)
                .bind(t + CLAIM_S)
                .bind(t)
                .bind(limit)
                .fetch_all(p)
                .await?
                .iter()
                .map(webhook_from_row)
                .collect())
        })
    }

    /// When the next delivery falls due (claimed ones count from their claim's end).
    pub async fn next_webhook_at(&self) -> Result<Option<f64>> {
        db!(self, p => sqlx::query_scalar(
            "SELECT MIN(CASE WHEN lease_until IS NOT NULL AND lease_until > next_at
                        THEN lease_until ELSE next_at END)
             FROM webhooks WHERE delivered_at IS NULL AND gave_up = 0",
        )
        .fetch_one(p)
        .await)
    }

    /// Records one delivery attempt and releases the claim; `next_at` None means delivered (ok)
    /// or given up (not ok).
    pub async fn record_webhook_attempt(
        &self,
        job_id: &str,
        attempt: i64,
        status: Option<u16>,
        error: Option<&str>,
        ok: bool,
        next_at: Option<f64>,
    ) -> Result<()> {
        db!(self, p => {
            let mut tx = p.begin().await?;
            sqlx::query(
                "INSERT INTO webhook_attempts (job_id, attempt, at, status, error)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(job_id)
            .bind(attempt)
            .bind(now())
            .bind(status.map(|s| s as i64))
            .bind(error)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE webhooks SET attempts = $1,
                     delivered_at = CASE WHEN $2 = 1 THEN $3 ELSE NULL END,
                     gave_up = CASE WHEN $2 = 0 AND $4 IS NULL THEN 1 ELSE 0 END,
                     next_at = COALESCE($4, next_at), lease_until = NULL
                 WHERE job_id = $5",
            )
            .bind(attempt)
            .bind(ok as i64)
            .bind(now())
            .bind(next_at)
            .bind(job_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })
    }

    /// (attempt, http status, error) of every delivery attempt of a job's webhook.
    pub async fn webhook_attempts(
        &self,
        job_id: &str,
    ) -> Result<Vec<(i64, Option<i64>, Option<String>)>> {
        db!(self, p => Ok(sqlx::query(
            "SELECT attempt, status, error FROM webhook_attempts WHERE job_id = $1 ORDER BY seq",
        )
        .bind(job_id)
        .fetch_all(p)
        .await?
        .iter()
        .map(|r| (r.get("attempt"), r.get("status"), r.get("error")))
        .collect()))
    }
}
