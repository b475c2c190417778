//! Stored files (uploads and generated outputs) in a local folder, named by unguessable ids:
//! file URLs are capability URLs, as on fal's CDN.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::store::{FileRow, Store};

#[derive(Clone)]
pub struct Storage {
    root: PathBuf,
    pub store: Store,
    public_url: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("the upload is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the upload was interrupted: {0}")]
    Body(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Keeps a file name safe for a URL path segment and a Content-Disposition header.
pub fn sanitize_name(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let s: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(120)
        .collect();
    let s = s.trim_start_matches('.').to_string();
    if s.is_empty() {
        "file.bin".into()
    } else {
        s
    }
}

impl Storage {
    pub fn new(root: PathBuf, store: Store, public_url: String) -> std::io::Result<Storage> {
        std::fs::create_dir_all(root.join("files"))?;
        std::fs::create_dir_all(root.join("parts"))?;
        Ok(Storage {
            root,
            store,
            public_url,
        })
    }

    pub fn path(&self, id: &str) -> PathBuf {
        self.root.join("files").join(id)
    }

    pub fn parts_dir(&self, id: &str) -> PathBuf {
        self.root.join("parts").join(id)
    }

    pub fn url(&self, id: &str, name: &str) -> String {
        format!("{}/files/{id}/{name}", self.public_url)
    }

    /// The id of a URL that points at one of this server's files.
    pub fn own_file_id<'a>(&self, url: &'a str) -> Option<&'a str> {
        let rest = url
            .strip_prefix(&self.public_url)?
            .strip_prefix("/files/")?;
        rest.split('/').next().filter(|s| !s.is_empty())
    }

    /// Registers a new, empty file and returns its id.
    pub async fn create(
        &self,
        owner: &str,
        name: &str,
        content_type: &str,
    ) -> Result<String, StorageError> {
        let id = crate::auth::random_hex(16);
        self.store
            .insert_file(&id, owner, &sanitize_name(name), content_type)
            .await?;
        Ok(id)
    }

    pub async fn get(&self, id: &str) -> Result<Option<FileRow>, StorageError> {
        if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        Ok(self.store.file(id).await?)
    }

    /// Streams a body to `dest` through a temporary file, enforcing `limit`; the file appears
    /// only when complete (a crash mid-upload leaves no half file behind).
    pub async fn write_stream<S, E>(
        &self,
        dest: &Path,
        body: S,
        limit: u64,
    ) -> Result<u64, StorageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        Ok(self.write_stream_hashed(dest, body, limit).await?.0)
    }

    /// [`Storage::write_stream`], also returning the SHA-256 of the bytes, hashed as they stream
    /// so that a large part never sits in memory.
    pub async fn write_stream_hashed<S, E>(
        &self,
        dest: &Path,
        mut body: S,
        limit: u64,
    ) -> Result<(u64, String), StorageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use sha2::Digest;
        let tmp = dest.with_extension(format!("tmp{}", crate::auth::random_hex(4)));
        let mut f = tokio::fs::File::create(&tmp).await?;
        let mut n = 0u64;
        let mut hasher = sha2::Sha256::new();
        let res: Result<(), StorageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| StorageError::Body(e.to_string()))?;
                n += chunk.len() as u64;
                if n > limit {
                    return Err(StorageError::TooLarge(limit));
                }
                hasher.update(&chunk);
                f.write_all(&chunk).await?;
            }
            f.sync_all().await?;
            Ok(())
        }
        .await;
        drop(f);
        match res {
            Ok(()) => {
                tokio::fs::rename(&tmp, dest).await?;
                Ok((n, hex::encode(hasher.finalize())))
            }
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                Err(e)
            }
        }
    }

    /// Writes a whole upload for a registered file and marks it complete.
    pub async fn put<S, E>(&self, id: &str, body: S, limit: u64) -> Result<u64, StorageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let n = self.write_stream(&self.path(id), body, limit).await?;
        self.store.finish_file(id, n).await?;
        Ok(n)
    }

    /// Stores one part of a multipart upload; returns its ETag (the part's SHA-256 prefix, kept
    /// beside the part so completion never re-reads it).
    pub async fn put_part<S, E>(
        &self,
        id: &str,
        part: u32,
        body: S,
        limit: u64,
    ) -> Result<String, StorageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let dir = self.parts_dir(id);
        tokio::fs::create_dir_all(&dir).await?;
        let dest = dir.join(format!("{part:06}"));
        let (_, sha) = self.write_stream_hashed(&dest, body, limit).await?;
        let etag = format!("\"{}\"", &sha[..32]);
        tokio::fs::write(dir.join(format!("{part:06}.etag")), &etag).await?;
        Ok(etag)
    }

    /// Joins the listed parts in part-number order (they may arrive in any order) into the file,
    /// streaming each part.
    pub async fn complete_parts(
        &self,
        id: &str,
        parts: &mut [(u32, String)],
        limit: u64,
    ) -> Result<u64, String> {
        parts.sort_by_key(|p| p.0);
        let tmp = self.path(id).with_extension("assembling");
        let r = self.assemble(id, parts, limit, &tmp).await;
        if r.is_err() {
            // A refused completion leaves nothing half-written behind.
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        r
    }

    async fn assemble(
        &self,
        id: &str,
        parts: &[(u32, String)],
        limit: u64,
        tmp: &Path,
    ) -> Result<u64, String> {
        let dir = self.parts_dir(id);
        let mut out = tokio::fs::File::create(tmp)
            .await
            .map_err(|e| e.to_string())?;
        let mut total = 0u64;
        for (n, etag) in parts.iter() {
            let want = tokio::fs::read_to_string(dir.join(format!("{n:06}.etag")))
                .await
                .map_err(|_| format!("part {n} was never uploaded"))?;
            if etag.trim_matches('"') != want.trim_matches('"') {
                return Err(format!("part {n}: etag does not match the uploaded data"));
            }
            let mut f = tokio::fs::File::open(dir.join(format!("{n:06}")))
                .await
                .map_err(|_| format!("part {n} was never uploaded"))?;
            total += tokio::io::copy(&mut f, &mut out)
                .await
                .map_err(|e| e.to_string())?;
            if total > limit {
                return Err(format!(
                    "the upload is larger than the limit of {limit} bytes"
                ));
            }
        }
        out.sync_all().await.map_err(|e| e.to_string())?;
        drop(out);
        tokio::fs::rename(tmp, self.path(id))
            .await
            .map_err(|e| e.to_string())?;
        self.store
            .finish_file(id, total)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tokio::fs::remove_dir_all(&dir).await;
        Ok(total)
    }

    /// Copies a generated file into storage and returns its public description.
    pub async fn import(
        &self,
        owner: &str,
        src: &Path,
        name: &str,
        content_type: &str,
    ) -> Result<scail_core::File, StorageError> {
        let id = self.create(owner, name, content_type).await?;
        let dest = self.path(&id);
        let tmp = dest.with_extension("importing");
        let n = tokio::fs::copy(src, &tmp).await?;
        tokio::fs::rename(&tmp, &dest).await?;
        self.store.finish_file(&id, n).await?;
        let row = self.store.file(&id).await?.expect("just inserted");
        Ok(scail_core::File {
            url: self.url(&id, &row.name),
            content_type: content_type.to_string(),
            file_name: row.name,
            file_size: n,
        })
    }
}
