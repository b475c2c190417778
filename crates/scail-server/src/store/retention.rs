//! What expires: finished jobs (with their logs and webhook rows) after their retention, stored
//! files after theirs, uploads that were never completed; per-key usage for the quotas; the
//! database shrunk after a sweep.

use sqlx::Row;

use super::{now, Result, Store};

/// What one sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Swept {
    pub jobs: u64,
    /// Ids of file rows deleted (their bytes are the caller's to remove).
    pub files: Vec<String>,
}

impl Store {
    /// Adds the retention columns to a database made before they existed (new databases are
    /// created with them).
    pub(super) async fn migrate_retention(&self) -> Result<()> {
        for (table, column) in [("jobs", "retain_s"), ("files", "expires_at")] {
            let has: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
                    .bind(table)
                    .bind(column)
                    .fetch_one(&self.pool)
                    .await?;
            if has == 0 {
                let sql = match (table, column) {
                    ("jobs", _) => "ALTER TABLE jobs ADD COLUMN retain_s REAL",
                    _ => "ALTER TABLE files ADD COLUMN expires_at REAL",
                };
                sqlx::query(sql).execute(&self.pool).await?;
            }
        }
        Ok(())
    }

    /// Moves inputs an older server kept in `jobs.input` into `job_inputs` (once).
    pub(super) async fn migrate_inputs(&self) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let moved = sqlx::query(
            "INSERT OR IGNORE INTO job_inputs (job_id, input)
             SELECT id, input FROM jobs WHERE input != ''",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved > 0 {
            sqlx::query("UPDATE jobs SET input = '' WHERE input != ''")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if moved > 0 {
            self.compact().await?;
        }
        Ok(())
    }

    /// Sets how long a job is kept after it finishes.
    pub async fn set_job_retention(&self, id: &str, retain_s: f64) -> Result<()> {
        sqlx::query("UPDATE jobs SET retain_s = ? WHERE id = ?")
            .bind(retain_s)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The retention a job asked for, if it asked.
    pub async fn job_retention(&self, id: &str) -> Result<Option<f64>> {
        let v: Option<Option<f64>> = sqlx::query_scalar("SELECT retain_s FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(v.flatten())
    }

    /// Sets when a stored file expires (unix seconds).
    pub async fn set_file_expiry(&self, id: &str, expires_at: f64) -> Result<()> {
        sqlx::query("UPDATE files SET expires_at = ? WHERE id = ?")
            .bind(expires_at)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Jobs of an owner not yet finished (queued or running).
    pub async fn open_jobs_of(&self, owner: &str) -> Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE owner = ? AND status != 'COMPLETED'")
            .bind(owner)
            .fetch_one(&self.pool)
            .await
    }

    /// Bytes an owner keeps in storage.
    pub async fn stored_bytes_of(&self, owner: &str) -> Result<i64> {
        let v: Option<i64> = sqlx::query_scalar("SELECT SUM(size) FROM files WHERE owner = ?")
            .bind(owner)
            .fetch_one(&self.pool)
            .await?;
        Ok(v.unwrap_or(0))
    }

    /// Deletes what has expired at `t`: finished jobs past their retention (`default_s` when
    /// they set none), files past theirs, and uploads never completed since `stale_before`.
    pub async fn sweep(&self, t: f64, default_s: f64, stale_before: f64) -> Result<Swept> {
        let mut tx = self.pool.begin().await?;
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM jobs WHERE status = 'COMPLETED'
               AND finished_at + COALESCE(retain_s, ?) < ?",
        )
        .bind(default_s)
        .bind(t)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect();
        for id in &ids {
            for sql in [
                "DELETE FROM logs WHERE job_id = ?",
                "DELETE FROM job_inputs WHERE job_id = ?",
                "DELETE FROM webhook_attempts WHERE job_id = ?",
                "DELETE FROM webhooks WHERE job_id = ? AND (delivered_at IS NOT NULL OR gave_up = 1)",
                "DELETE FROM jobs WHERE id = ?",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        let files: Vec<String> = sqlx::query(
            "DELETE FROM files WHERE (complete = 1 AND COALESCE(expires_at, created_at + ?) < ?)
                OR (complete = 0 AND created_at < ?) RETURNING id",
        )
        .bind(default_s)
        .bind(t)
        .bind(stale_before)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.get("id"))
        .collect();
        tx.commit().await?;
        Ok(Swept {
            jobs: ids.len() as u64,
            files,
        })
    }

    /// Whether a file row exists (a parts folder without one is a leftover).
    pub async fn file_exists(&self, id: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE id = ?")
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Gives freed pages back to the file system and empties the write-ahead log.
    pub async fn compact(&self) -> Result<()> {
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(&self.pool)
            .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Now, for callers that only hold the store.
    pub fn now(&self) -> f64 {
        now()
    }
}
