//! Webhook deliveries: queued with a job's outcome, retried with backoff, every attempt kept.

use sqlx::Row;

use super::{now, Result, Store, Webhook};

impl Store {
    pub async fn due_webhooks(&self, limit: i64) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT job_id, url, user_id, body, attempts FROM webhooks
             WHERE delivered_at IS NULL AND gave_up = 0 AND next_at <= ? ORDER BY next_at LIMIT ?",
        )
        .bind(now())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| Webhook {
                job_id: r.get("job_id"),
                url: r.get("url"),
                user_id: r.get("user_id"),
                body: r.get("body"),
                attempts: r.get("attempts"),
            })
            .collect())
    }

    pub async fn next_webhook_at(&self) -> Result<Option<f64>> {
        sqlx::query_scalar(
            "SELECT MIN(next_at) FROM webhooks WHERE delivered_at IS NULL AND gave_up = 0",
        )
        .fetch_one(&self.pool)
        .await
    }

    /// Records one delivery attempt; `next_at` None means delivered (ok) or given up (not ok).
    pub async fn record_webhook_attempt(
        &self,
        job_id: &str,
        attempt: i64,
        status: Option<u16>,
        error: Option<&str>,
        ok: bool,
        next_at: Option<f64>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("INSERT INTO webhook_attempts (job_id, attempt, at, status, error) VALUES (?, ?, ?, ?, ?)")
            .bind(job_id)
            .bind(attempt)
            .bind(now())
            .bind(status.map(|s| s as i64))
            .bind(error)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE webhooks SET attempts = ?, delivered_at = CASE WHEN ? THEN ? ELSE NULL END,
                 gave_up = CASE WHEN ? = 0 AND ? IS NULL THEN 1 ELSE 0 END,
                 next_at = COALESCE(?, next_at) WHERE job_id = ?",
        )
        .bind(attempt)
        .bind(ok)
        .bind(now())
        .bind(ok as i64)
        .bind(next_at)
        .bind(next_at)
        .bind(job_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// (attempt, http status, error) of every delivery attempt of a job's webhook.
    pub async fn webhook_attempts(
        &self,
        job_id: &str,
    ) -> Result<Vec<(i64, Option<i64>, Option<String>)>> {
        let rows = sqlx::query(
            "SELECT attempt, status, error FROM webhook_attempts WHERE job_id = ? ORDER BY seq",
        )
        .bind(job_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .iter()
            .map(|r| (r.get("attempt"), r.get("status"), r.get("error")))
            .collect())
    }
}
