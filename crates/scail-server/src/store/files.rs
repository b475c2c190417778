//! Stored files' rows (the bytes live in object storage, see [`crate::storage`]).

use super::{now, Cols, FileRow, Result, Store};

impl Store {
    pub async fn insert_file(
        &self,
        id: &str,
        owner: &str,
        name: &str,
        content_type: &str,
    ) -> Result<()> {
        db!(self, p => sqlx::query(
            "INSERT INTO files (id, owner, name, content_type, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(owner)
        .bind(name)
        .bind(content_type)
        .bind(now())
        .execute(p)
        .await
        .map(|_| ())?);
        Ok(())
    }

    pub async fn finish_file(&self, id: &str, size: u64) -> Result<()> {
        db!(self, p => sqlx::query("UPDATE files SET complete = 1, size = $1 WHERE id = $2")
            .bind(size as i64)
            .bind(id)
            .execute(p)
            .await
            .map(|_| ())?);
        Ok(())
    }

    pub async fn file(&self, id: &str) -> Result<Option<FileRow>> {
        db!(self, p => Ok(sqlx::query("SELECT * FROM files WHERE id = $1")
            .bind(id)
            .fetch_optional(p)
            .await?
            .map(|r| file_from_row(&r))))
    }
}

fn file_from_row(r: &impl Cols) -> FileRow {
    FileRow {
        id: r.text("id"),
        owner: r.text("owner"),
        name: r.text("name"),
        content_type: r.text("content_type"),
        size: r.int("size"),
        complete: r.int("complete") != 0,
    }
}
