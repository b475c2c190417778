//! Stored files (uploads, fetched inputs, generated outputs) named by unguessable ids: file
//! URLs are capability URLs, as on fal's CDN. Rows live in the job store; bytes in an object
//! store (a local folder, or S3 for a fleet), under `files/<id>` and `parts/<id>/<n>`.

mod location;
mod write;

use std::path::Path;
use std::sync::Arc;

use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

pub use location::{check_reachable, StorageUrl};

use crate::store::{FileRow, Store};

#[derive(Clone)]
pub struct Storage {
    objects: Arc<dyn ObjectStore>,
    prefix: Key,
    /// The folder, for local storage (its staging leftovers are swept by name).
    local_root: Option<std::path::PathBuf>,
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
    #[error("storage: {0}")]
    Object(#[from] object_store::Error),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// A byte stream read from storage.
pub type ByteStream = futures_util::stream::BoxStream<'static, Result<bytes::Bytes, StorageError>>;

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
    pub fn open(url: &StorageUrl, store: Store, public_url: String) -> anyhow::Result<Storage> {
        let (objects, prefix) = url.open()?;
        Ok(Storage {
            objects,
            prefix,
            local_root: match url {
                StorageUrl::File(p) => Some(p.clone()),
                StorageUrl::S3 { .. } => None,
            },
            store,
            public_url,
        })
    }

    /// Storage in a local folder (the embedded default: the data directory).
    pub fn local(root: &Path, store: Store, public_url: String) -> anyhow::Result<Storage> {
        Storage::open(&StorageUrl::File(root.to_path_buf()), store, public_url)
    }

    /// Fails unless the storage answers (see [`check_reachable`]).
    pub async fn check(&self, what: &str) -> anyhow::Result<()> {
        check_reachable(&*self.objects, &self.prefix, what).await
    }

    pub fn local_root(&self) -> Option<&Path> {
        self.local_root.as_deref()
    }

    fn key(&self, id: &str) -> Key {
        self.prefix.clone().join("files").join(id)
    }

    fn parts_key(&self, id: &str) -> Key {
        self.prefix.clone().join("parts").join(id)
    }

    fn part_key(&self, id: &str, part: u32, ext: &str) -> Key {
        self.parts_key(id).join(format!("{part:06}{ext}"))
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

    /// Writes a whole upload for a registered file and marks it complete.
    pub async fn put<S, E>(&self, id: &str, body: S, limit: u64) -> Result<u64, StorageError>
    where
        S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let (n, _) = write::write_stream(&*self.objects, &self.key(id), body, limit).await?;
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
        let key = self.part_key(id, part, "");
        let (_, sha) = write::write_stream(&*self.objects, &key, body, limit).await?;
        let etag = format!("\"{}\"", &sha[..32]);
        let tag_key = self.part_key(id, part, ".etag");
        self.objects
            .put(&tag_key, bytes::Bytes::from(etag.clone()).into())
            .await?;
        Ok(etag)
    }

    /// Joins the listed parts in part-number order (they may arrive in any order) into the file,
    /// streaming each part; the file appears only when whole.
    pub async fn complete_parts(
        &self,
        id: &str,
        parts: &mut [(u32, String)],
        limit: u64,
    ) -> Result<u64, String> {
        parts.sort_by_key(|p| p.0);
        for (n, etag) in parts.iter() {
            let want = self
                .objects
                .get(&self.part_key(id, *n, ".etag"))
                .await
                .map_err(|_| format!("part {n} was never uploaded"))?
                .bytes()
                .await
                .map_err(|e| e.to_string())?;
            let want = String::from_utf8_lossy(&want);
            if etag.trim_matches('"') != want.trim_matches('"') {
                return Err(format!("part {n}: etag does not match the uploaded data"));
            }
        }
        let mut w = write::Writer::new(&*self.objects, &self.key(id), limit)
            .await
            .map_err(|e| e.to_string())?;
        for (n, _) in parts.iter() {
            if let Err(e) = w
                .copy_from(&*self.objects, &self.part_key(id, *n, ""))
                .await
            {
                w.abort().await;
                return Err(match e {
                    StorageError::TooLarge(l) => {
                        format!("the upload is larger than the limit of {l} bytes")
                    }
                    e => format!("part {n}: {e}"),
                });
            }
        }
        let (total, _) = w.finish().await.map_err(|e| e.to_string())?;
        self.store
            .finish_file(id, total)
            .await
            .map_err(|e| e.to_string())?;
        self.remove_parts(id).await;
        Ok(total)
    }

    /// Copies a local file (a generated output) into storage and returns its public description.
    pub async fn import(
        &self,
        owner: &str,
        src: &Path,
        name: &str,
        content_type: &str,
    ) -> Result<scail_core::File, StorageError> {
        let id = self.create(owner, name, content_type).await?;
        let f = tokio::fs::File::open(src).await?;
        let body = tokio_util::io::ReaderStream::new(f);
        let (n, _) = write::write_stream(&*self.objects, &self.key(&id), body, u64::MAX).await?;
        self.store.finish_file(&id, n).await?;
        let row = self.store.file(&id).await?.expect("just inserted");
        Ok(scail_core::File {
            url: self.url(&id, &row.name),
            content_type: content_type.to_string(),
            file_name: row.name,
            file_size: n,
        })
    }

    /// Reads bytes `start..end` of a stored file (the whole of it with `None`).
    pub async fn read(
        &self,
        id: &str,
        range: Option<(u64, u64)>,
    ) -> Result<ByteStream, StorageError> {
        let opts = GetOptions {
            range: range.map(|(s, e)| GetRange::Bounded(s..e)),
            ..Default::default()
        };
        let got = self.objects.get_opts(&self.key(id), opts).await?;
        Ok(got
            .into_stream()
            .map(|r| r.map_err(StorageError::from))
            .boxed())
    }

    /// The first bytes of a stored file (to check what kind of file it is).
    pub async fn head_bytes(
        &self,
        id: &str,
        n: u64,
        size: u64,
    ) -> Result<bytes::Bytes, StorageError> {
        if size == 0 {
            return Ok(bytes::Bytes::new());
        }
        Ok(self
            .objects
            .get_range(&self.key(id), 0..n.min(size))
            .await?)
    }

    /// Copies a stored file to a local path (a job's input).
    pub async fn download(&self, id: &str, dest: &Path) -> Result<u64, StorageError> {
        let mut stream = self.read(id, None).await?;
        let mut f = tokio::fs::File::create(dest).await?;
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk?;
            n += chunk.len() as u64;
            f.write_all(&chunk).await?;
        }
        f.flush().await?;
        Ok(n)
    }

    /// Deletes a file's bytes and any parts of its upload (missing ones are fine).
    pub async fn remove(&self, id: &str) {
        let _ = self.objects.delete(&self.key(id)).await;
        self.remove_parts(id).await;
    }

    pub async fn remove_parts(&self, id: &str) {
        let prefix = self.parts_key(id);
        let keys: Vec<Key> = self
            .objects
            .list(Some(&prefix))
            .filter_map(|m| async move { m.ok().map(|m| m.location) })
            .collect()
            .await;
        for k in keys {
            let _ = self.objects.delete(&k).await;
        }
    }

    /// Ids that have a parts folder (uploads in progress, or leftovers).
    pub async fn part_ids(&self) -> Result<Vec<String>, StorageError> {
        let listed = self
            .objects
            .list_with_delimiter(Some(&self.prefix.clone().join("parts")))
            .await?;
        Ok(listed
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .collect())
    }
}
