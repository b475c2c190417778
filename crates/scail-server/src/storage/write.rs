//! Streaming bodies into one object with a size limit, hashing on the way, so that a large
//! upload never sits in memory and a refused or broken one leaves nothing behind.

use futures_util::StreamExt;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};

use super::StorageError;

/// Parts in flight at once (each up to the multipart chunk size, 5 MiB).
const IN_FLIGHT: usize = 4;

/// One object being written. The object appears only at [`Writer::finish`]; an aborted (or
/// dropped) multipart upload leaves none.
pub struct Writer {
    w: WriteMultipart,
    n: u64,
    limit: u64,
    hasher: sha2::Sha256,
}

impl Writer {
    pub async fn new(
        objects: &dyn ObjectStore,
        key: &Key,
        limit: u64,
    ) -> Result<Writer, StorageError> {
        use sha2::Digest;
        let upload = objects.put_multipart(key).await?;
        Ok(Writer {
            w: WriteMultipart::new(upload),
            n: 0,
            limit,
            hasher: sha2::Sha256::new(),
        })
    }

    pub async fn push(&mut self, chunk: bytes::Bytes) -> Result<(), StorageError> {
        use sha2::Digest;
        self.n += chunk.len() as u64;
        if self.n > self.limit {
            return Err(StorageError::TooLarge(self.limit));
        }
        self.hasher.update(&chunk);
        self.w.wait_for_capacity(IN_FLIGHT).await?;
        self.w.put(chunk);
        Ok(())
    }

    /// Appends a whole stored object.
    pub async fn copy_from(
        &mut self,
        objects: &dyn ObjectStore,
        key: &Key,
    ) -> Result<(), StorageError> {
        let mut s = objects.get(key).await?.into_stream();
        while let Some(chunk) = s.next().await {
            self.push(chunk?).await?;
        }
        Ok(())
    }

    /// Size and hex SHA-256 of what was written.
    pub async fn finish(self) -> Result<(u64, String), StorageError> {
        use sha2::Digest;
        self.w.finish().await?;
        Ok((self.n, hex::encode(self.hasher.finalize())))
    }

    pub async fn abort(self) {
        let _ = self.w.abort().await;
    }
}

/// Writes `body` to `key`; returns its size and hex SHA-256.
pub async fn write_stream<S, E>(
    objects: &dyn ObjectStore,
    key: &Key,
    mut body: S,
    limit: u64,
) -> Result<(u64, String), StorageError>
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut w = Writer::new(objects, key, limit).await?;
    loop {
        let chunk = match body.next().await {
            None => return w.finish().await,
            Some(Ok(c)) => Ok(c),
            Some(Err(e)) => Err(StorageError::Body(e.to_string())),
        };
        let pushed = match chunk {
            Ok(c) => w.push(c).await,
            Err(e) => Err(e),
        };
        if let Err(e) = pushed {
            w.abort().await;
            return Err(e);
        }
    }
}
