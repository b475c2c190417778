//! What expires: finished jobs (with their logs and webhook rows) after their retention, stored
//! files after theirs, uploads that were never completed; per-key usage for the quotas; the
//! database shrunk after a sweep.

use sqlx::Row;

use super::{now, Db, Result, Store};

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
        let Db::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        for (table, column) in [("jobs", "retain_s"), ("files", "expires_at")] {
            let has: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info($1) WHERE name = $2")
                    .bind(table)
                    .bind(column)
                    .fetch_one(pool)
                    .await?;
            if has == 0 {
                let sql = match (table, column) {
                    ("jobs", _) => "ALTER TABLE jobs ADD COLUMN retain_s REAL",
                    _ => "ALTER TABLE files ADD COLUMN expires_at REAL",
                };
                sqlx::query(sql).execute(pool).await?;
            }
        }
        Ok(())
    }

    /// Moves inputs an older server kept in `jobs.input` into `job_inputs` (once).
    pub(super) async fn migrate_inputs(&self) -> Result<()> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        let mut tx = pool.begin().await?;
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
        db!(self, p => sqlx::query("UPDATE jobs SET retain_s = $1 WHERE id = $2")
            .bind(retain_s)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// The retention a job asked for, if it asked.
    pub async fn job_retention(&self, id: &str) -> Result<Option<f64>> {
        let v: Option<Option<f64>> = db!(self, p => sqlx::query_scalar(
            "SELECT retain_s FROM jobs WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(p)
        .await?);
        Ok(v.flatten())
    }

    /// Sets when a stored file expires (unix seconds).
    pub async fn set_file_expiry(&self, id: &str, expires_at: f64) -> Result<()> {
        db!(self, p => sqlx::query("UPDATE files SET expires_at = $1 WHERE id = $2")
            .bind(expires_at)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    /// Jobs of an owner not yet finished (queued or running).
    pub async fn open_jobs_of(&self, owner: &str) -> Result<i64> {
        db!(self, p => sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE owner = $1 AND status != 'COMPLETED'",
        )
        .bind(owner)
        .fetch_one(p)
        .await)
    }

    /// Bytes an owner keeps in storage.
    pub async fn stored_bytes_of(&self, owner: &str) -> Result<i64> {
        // PostgreSQL's SUM of BIGINT is NUMERIC: cast back for one decoder on both.
        db!(self, p => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM files WHERE owner = $1",
        )
        .bind(owner)
        .fetch_one(p)
        .await)
    }

    /// Deletes what has expired at `t`: finished jobs past their retention (`default_s` when
    /// they set none), files past theirs, and uploads never completed since `stale_before`.
    pub async fn sweep(&self, t: f64, default_s: f64, stale_before: f64) -> Result<Swept> {
        db!(self, p => {
        let mut tx = p.begin().await?;
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM jobs WHERE status = 'COMPLETED'
               AND finished_at + COALESCE(retain_s, $1) < $2",
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
                "DELETE FROM logs WHERE job_id = $1",
                "DELETE FROM job_inputs WHERE job_id = $1",
                "DELETE FROM webhook_attempts WHERE job_id = $1",
                "DELETE FROM webhooks WHERE job_id = $1 AND (delivered_at IS NOT NULL OR gave_up = 1)",
                "DELETE FROM jobs WHERE id = $1",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *tx).await?;
            }
        }
        let files: Vec<String> = sqlx::query(
            "DELETE FROM files WHERE (complete = 1 AND COALESCE(expires_at, created_at + $1) < $2)
                OR (complete = 0 AND created_at < $3) RETURNING id",
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
        })
    }

    /// Whether a file row exists (a parts folder without one is a leftover).
    pub async fn file_exists(&self, id: &str) -> Result<bool> {
        let n: i64 = db!(self, p => sqlx::query_scalar("SELECT COUNT(*) FROM files WHERE id = $1")
            .bind(id)
            .fetch_one(p)
            .await?);
        Ok(n > 0)
    }

    /// Gives freed pages back to the file system and empties the write-ahead log.
    /// (PostgreSQL's autovacuum does this itself.)
    pub async fn compact(&self) -> Result<()> {
        let Db::Sqlite(pool) = &self.db else {
            return Ok(());
        };
        sqlx::query("PRAGMA incremental_vacuum")
            .execute(pool)
            .await?;
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await?;
        Ok(())
    }

    /// Now, for callers that only hold the store.
    pub fn now(&self) -> f64 {
        now()
    }
}
