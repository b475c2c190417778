//! Where stored files' bytes live (`--storage file://path` or `s3://bucket/prefix`), and the
//! object store that reaches them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};

/// A parsed `--storage` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    File(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl StorageUrl {
    pub fn parse(s: &str) -> Result<StorageUrl, String> {
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err(format!("--storage {s}: the file:// URL names no folder"));
            }
            return Ok(StorageUrl::File(path.into()));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("--storage {s}: the s3:// URL names no bucket"));
            }
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
            });
        }
        Err(format!(
            "--storage {s}: expected s3://bucket/prefix or file://path"
        ))
    }

    pub fn is_local(&self) -> bool {
        matches!(self, StorageUrl::File(_))
    }

    /// The object store and the key prefix every object goes under. S3 settings (endpoint,
    /// credentials, region, plain HTTP) come from the standard `AWS_*` variables.
    pub fn open(&self) -> anyhow::Result<(Arc<dyn ObjectStore>, Key)> {
        match self {
            StorageUrl::File(root) => {
                std::fs::create_dir_all(root)
                    .with_context(|| format!("creating the storage folder {}", root.display()))?;
                // Cleanup: deleting an upload's last part removes its folder too.
                let fs = LocalFileSystem::new_with_prefix(root)
                    .with_context(|| format!("opening the storage folder {}", root.display()))?
                    .with_automatic_cleanup(true);
                Ok((Arc::new(fs), Key::default()))
            }
            StorageUrl::S3 { bucket, prefix } => {
                let s3 = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .build()
                    .with_context(|| format!("configuring S3 storage s3://{bucket}"))?;
                Ok((Arc::new(s3), Key::from(prefix.as_str())))
            }
        }
    }
}

/// Fails unless the storage answers: a write, a read and a delete of a probe object, so a wrong
/// endpoint, bucket or credential stops the process at start, not at the first upload.
pub async fn check_reachable(
    objects: &dyn ObjectStore,
    prefix: &Key,
    what: &str,
) -> anyhow::Result<()> {
    let key = prefix.clone().join(".scail-probe");
    let probe = async {
        objects
            .put(&key, bytes::Bytes::from_static(b"ok").into())
            .await?;
        objects.get(&key).await?.bytes().await?;
        objects.delete(&key).await
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), probe).await {
        Ok(r) => r.with_context(|| format!("storage {what} is not usable")),
        Err(_) => anyhow::bail!("storage {what} did not answer within 10 s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_urls_parse_or_say_why_not() {
        assert_eq!(
            StorageUrl::parse("s3://media/scail/out/").unwrap(),
            StorageUrl::S3 {
                bucket: "media".into(),
                prefix: "scail/out".into()
            }
        );
        assert_eq!(
            StorageUrl::parse("s3://media").unwrap(),
            StorageUrl::S3 {
                bucket: "media".into(),
                prefix: String::new()
            }
        );
        assert_eq!(
            StorageUrl::parse("file:///srv/x").unwrap(),
            StorageUrl::File("/srv/x".into())
        );
        for bad in ["s3://", "file://", "gs://b/p", "/srv/x"] {
            assert!(StorageUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
