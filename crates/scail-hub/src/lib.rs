//! Downloads a model repository's files from the Hugging Face hub (or a mirror with the same URL
//! layout) with resume and checksum verification: the network side of `scail weights fetch`,
//! kept out of the model crate so the networks build without an HTTP stack.
//!
//! Layout used: `GET {endpoint}/api/models/{repo}/tree/{revision}?recursive=true` lists the
//! files (size, git blob id, and for LFS files the SHA-256), and
//! `GET {endpoint}/{repo}/resolve/{revision}/{path}` serves each file (with `Range` support).
//! A download goes to `{path}.incomplete`, resumes from its length with a `Range` request, is
//! checked against the listed SHA-256 (LFS) or git blob id (small files), and only then renamed.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::Digest;
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {source}")]
    Http { url: String, source: reqwest::Error },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("file listing of {url} is not valid JSON: {msg}")]
    Listing { url: String, msg: String },
    #[error(
        "{path}: checksum mismatch (expected {expected}, got {got}); the partial file was removed"
    )]
    Checksum {
        path: String,
        expected: String,
        got: String,
    },
    #[error("{path}: size mismatch (expected {expected} bytes, got {got})")]
    Size {
        path: String,
        expected: u64,
        got: u64,
    },
    #[error("no file of {repo} matches {include:?}")]
    NothingToFetch { repo: String, include: Vec<String> },
    #[error("refusing unsafe path `{0}` from the listing")]
    UnsafePath(String),
}

pub type Result<T> = std::result::Result<T, FetchError>;

/// Progress of one file: (path, bytes done, total bytes).
pub type ProgressFn = Arc<dyn Fn(&str, u64, u64) + Send + Sync>;

#[derive(Clone)]
pub struct FetchOptions {
    /// Hub base URL (no trailing slash), e.g. from `HF_ENDPOINT`.
    pub endpoint: String,
    pub repo: String,
    pub revision: String,
    /// Files to fetch: an entry matches a path equal to it or, if it ends with `/`, any path
    /// under it.
    pub include: Vec<String>,
    pub dest: PathBuf,
    /// Bearer token (`HF_TOKEN`) for gated or private repositories.
    pub token: Option<String>,
    pub progress: Option<ProgressFn>,
}

impl FetchOptions {
    /// `repo` at `main` into `dest` with nothing included yet; endpoint from `HF_ENDPOINT`
    /// else the public hub, token from `HF_TOKEN`.
    pub fn from_env(repo: &str, dest: impl Into<PathBuf>) -> Self {
        Self {
            endpoint: std::env::var("HF_ENDPOINT")
                .unwrap_or_else(|_| "https://huggingface.co".into()),
            repo: repo.into(),
            revision: "main".into(),
            include: Vec::new(),
            dest: dest.into(),
            token: std::env::var("HF_TOKEN").ok(),
            progress: None,
        }
    }

    fn matches(&self, path: &str) -> bool {
        self.include.iter().any(|i| {
            if i.ends_with('/') {
                path.starts_with(i.as_str())
            } else {
                path == i
            }
        })
    }
}

/// One listed file.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteFile {
    pub path: String,
    pub size: u64,
    /// SHA-256 hex for LFS files.
    pub sha256: Option<String>,
    /// Git blob id (SHA-1 hex) for files stored in git directly.
    pub git_oid: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// (path, bytes downloaded in this run, verified).
    pub downloaded: Vec<(String, u64)>,
    /// Already present and verified.
    pub skipped: Vec<String>,
    /// Bytes that a previous run had already fetched and this run resumed from.
    pub resumed_bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn client(opts: &FetchOptions) -> Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(t) = &opts.token {
        if let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}")) {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
    }
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .map_err(|source| FetchError::Http {
            url: opts.endpoint.clone(),
            source,
        })
}

/// Lists the repository's files at the revision.
pub async fn list_files(opts: &FetchOptions) -> Result<Vec<RemoteFile>> {
    let url = format!(
        "{}/api/models/{}/tree/{}?recursive=true",
        opts.endpoint, opts.repo, opts.revision
    );
    let http = |source| FetchError::Http {
        url: url.clone(),
        source,
    };
    let resp = client(opts)?.get(&url).send().await.map_err(http)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status {
            url: url.clone(),
            status: resp.status().as_u16(),
        });
    }
    let body = resp.bytes().await.map_err(http)?;
    let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| FetchError::Listing {
        url: url.clone(),
        msg: e.to_string(),
    })?;
    let arr = v.as_array().ok_or_else(|| FetchError::Listing {
        url: url.clone(),
        msg: "not an array".into(),
    })?;
    let mut out = Vec::new();
    for e in arr {
        if e["type"] != "file" {
            continue;
        }
        let path = e["path"].as_str().ok_or_else(|| FetchError::Listing {
            url: url.clone(),
            msg: "entry without path".into(),
        })?;
        out.push(RemoteFile {
            path: path.to_string(),
            size: e["lfs"]["size"]
                .as_u64()
                .or(e["size"].as_u64())
                .unwrap_or(0),
            sha256: e["lfs"]["oid"].as_str().map(str::to_string),
            git_oid: e["oid"].as_str().map(str::to_string),
        });
    }
    Ok(out)
}

enum Hasher {
    Sha256(sha2::Sha256),
    GitBlob(Sha1),
}

impl Hasher {
    fn new(f: &RemoteFile) -> Option<Self> {
        if f.sha256.is_some() {
            Some(Self::Sha256(sha2::Sha256::new()))
        } else if f.git_oid.is_some() {
            let mut h = Sha1::new();
            h.update(format!("blob {}\0", f.size).as_bytes());
            Some(Self::GitBlob(h))
        } else {
            None
        }
    }
    fn update(&mut self, b: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(b),
            Self::GitBlob(h) => h.update(b),
        }
    }
    fn finish(self) -> String {
        match self {
            Self::Sha256(h) => hex(&h.finalize()),
            Self::GitBlob(h) => hex(&h.finish()),
        }
    }
}

async fn hash_file(path: &Path, f: &RemoteFile) -> Result<Option<String>> {
    use tokio::io::AsyncReadExt;
    let Some(mut h) = Hasher::new(f) else {
        return Ok(None);
    };
    let mut file = tokio::fs::File::open(path).await.map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).await.map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(Some(h.finish()))
}

fn expected(f: &RemoteFile) -> Option<&str> {
    f.sha256.as_deref().or(f.git_oid.as_deref())
}

/// Downloads every matching file into `opts.dest`, resuming partial downloads and verifying
/// checksums. Files already present with the right checksum are skipped.
pub async fn fetch(opts: &FetchOptions) -> Result<FetchReport> {
    let files: Vec<RemoteFile> = list_files(opts)
        .await?
        .into_iter()
        .filter(|f| opts.matches(&f.path))
        .collect();
    if files.is_empty() {
        return Err(FetchError::NothingToFetch {
            repo: opts.repo.clone(),
            include: opts.include.clone(),
        });
    }
    let http = client(opts)?;
    let mut report = FetchReport::default();
    for f in &files {
        if f.path.split('/').any(|c| c == ".." || c.is_empty()) || f.path.starts_with('/') {
            return Err(FetchError::UnsafePath(f.path.clone()));
        }
        let dst = opts.dest.join(&f.path);
        if let Some(parent) = dst.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(io(parent))?;
        }
        if is_verified(&dst, f).await? {
            report.skipped.push(f.path.clone());
            continue;
        }
        let part = PathBuf::from(format!("{}.incomplete", dst.display()));
        let got = download(&http, opts, f, &part, &mut report).await?;
        verify_and_place(f, &part, &dst).await?;
        report.downloaded.push((f.path.clone(), got));
    }
    Ok(report)
}

/// `dst` exists with the listed size and checksum.
async fn is_verified(dst: &Path, f: &RemoteFile) -> Result<bool> {
    if !dst.is_file() {
        return Ok(false);
    }
    let len = std::fs::metadata(dst).map_err(io(dst))?.len();
    Ok(len == f.size && hash_file(dst, f).await?.as_deref() == expected(f))
}

/// Downloads `f` into `part`, resuming from its length with a `Range` request (or starting over
/// where the server ignores it); returns the bytes transferred in this run.
async fn download(
    http: &reqwest::Client,
    opts: &FetchOptions,
    f: &RemoteFile,
    part: &Path,
    report: &mut FetchReport,
) -> Result<u64> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > f.size {
        tokio::fs::remove_file(part).await.map_err(io(part))?;
        have = 0;
    }
    if have == f.size && f.size != 0 {
        return Ok(0);
    }
    let url = format!(
        "{}/{}/resolve/{}/{}",
        opts.endpoint, opts.repo, opts.revision, f.path
    );
    let http_err = |source| FetchError::Http {
        url: url.clone(),
        source,
    };
    let mut req = http.get(&url);
    if have > 0 {
        req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let mut resp = req.send().await.map_err(http_err)?;
    let append = match resp.status().as_u16() {
        206 => true,
        200 => false, // the server ignored the range: start over
        s => return Err(FetchError::Status { url, status: s }),
    };
    if append {
        report.resumed_bytes += have;
    } else {
        have = 0;
    }
    let mut out = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(part)
        .await
        .map_err(io(part))?;
    let mut got = 0u64;
    while let Some(chunk) = resp.chunk().await.map_err(http_err)? {
        out.write_all(&chunk).await.map_err(io(part))?;
        got += chunk.len() as u64;
        if let Some(p) = &opts.progress {
            p(&f.path, have + got, f.size);
        }
    }
    out.flush().await.map_err(io(part))?;
    Ok(got)
}

/// Checks the finished `part` against the listed size and checksum (removing it on a checksum
/// mismatch) and renames it to `dst`.
async fn verify_and_place(f: &RemoteFile, part: &Path, dst: &Path) -> Result<()> {
    let len = std::fs::metadata(part).map_err(io(part))?.len();
    if len != f.size {
        return Err(FetchError::Size {
            path: f.path.clone(),
            expected: f.size,
            got: len,
        });
    }
    if let (Some(want), Some(h)) = (expected(f), hash_file(part, f).await?) {
        if h != want {
            tokio::fs::remove_file(part).await.map_err(io(part))?;
            return Err(FetchError::Checksum {
                path: f.path.clone(),
                expected: want.to_string(),
                got: h,
            });
        }
    }
    tokio::fs::rename(part, dst).await.map_err(io(dst))
}

/// SHA-1, only to check git blob ids of the small non-LFS files (not for security).
pub(crate) struct Sha1 {
    h: [u32; 5],
    buf: Vec<u8>,
    len: u64,
}

impl Sha1 {
    pub(crate) fn new() -> Self {
        Self {
            h: [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    pub(crate) fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (64 - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 64 {
                let block: [u8; 64] = self.buf[..].try_into().expect("64 bytes");
                self.block(&block);
                self.buf.clear();
            }
        }
        let mut chunks = data.chunks_exact(64);
        for c in &mut chunks {
            self.block(c.try_into().expect("64 bytes"));
        }
        self.buf.extend_from_slice(chunks.remainder());
    }

    fn block(&mut self, b: &[u8; 64]) {
        let mut w = [0u32; 80];
        for i in 0..16 {
            w[i] = u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut bb, mut c, mut d, mut e] = self.h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((bb & c) | (!bb & d), 0x5A827999),
                20..=39 => (bb ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((bb & c) | (bb & d) | (c & d), 0x8F1BBCDC),
                _ => (bb ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = bb.rotate_left(30);
            bb = a;
            a = t;
        }
        for (h, v) in self.h.iter_mut().zip([a, bb, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }

    pub(crate) fn finish(mut self) -> [u8; 20] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = vec![0x80u8];
        while (self.buf.len() + pad.len()) % 64 != 56 {
            pad.push(0);
        }
        pad.extend_from_slice(&bits.to_be_bytes());
        let len = self.len;
        self.update(&pad);
        self.len = len;
        let mut out = [0u8; 20];
        for (i, h) in self.h.iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&h.to_be_bytes());
        }
        out
    }
}

/// The git blob id (`git hash-object`) of some bytes: the checksum the hub lists for files
/// stored in git directly.
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    hex(&h.finish())
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha1_known_vectors() {
        let h = |s: &[u8]| {
            let mut x = super::Sha1::new();
            x.update(s);
            super::hex(&x.finish())
        };
        assert_eq!(h(b""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(h(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        let long = vec![b'a'; 1000];
        assert_eq!(h(&long), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
        // git hash-object of "hello\n".
        assert_eq!(
            h(b"blob 6\0hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
