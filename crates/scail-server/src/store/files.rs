//! Stored files' rows (the bytes live in the storage folder).

use sqlx::Row;

use super::{now, FileRow, Result, Store};

impl Store {
    pub async fn insert_file(
        &self,
        id: &str,
        owner: &str,
        name: &str,
        content_type: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO files (id, owner, name, content_type, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(owner)
        .bind(name)
        .bind(content_type)
        .bind(now())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn finish_file(&self, id: &str, size: u64) -> Result<()> {
        sqlx::query("UPDATE files SET complete = 1, size = ? WHERE id = ?")
            .bind(size as i64)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn file(&self, id: &str) -> Result<Option<FileRow>> {
        let row = sqlx::query("SELECT * FROM files WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| FileRow {
            id: r.get("id"),
            owner: r.get("owner"),
            name: r.get("name"),
            content_type: r.get("content_type"),
            size: r.get("size"),
            complete: r.get::<i64, _>("complete") != 0,
        }))
    }
}
