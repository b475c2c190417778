//! Fetching the media a request names: http(s) URLs (size limit, timeout, no private addresses
//! unless allowed, no redirect to one either), data URIs (same limits), and this server's own file
//! URLs (read from storage directly). Content is identified by magic bytes, not by what the URL or
//! the remote server claims.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

pub use scail_core::sniff::sniff;
pub use scail_core::MediaKind;

use crate::storage::Storage;

#[path = "addr_class.rs"]
mod addr_class;
#[path = "fetch_paths.rs"]
mod paths;
pub use addr_class::{embedded_v4, is_non_public, non_public_reason};
pub use paths::scrub_local_paths;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub message: String,
    /// fal-style error type, e.g. `file_download_error`.
    pub kind: &'static str,
}

fn err(kind: &'static str, message: impl Into<String>) -> FetchError {
    FetchError {
        message: message.into(),
        kind,
    }
}

/// A fault of this server, not of the request: the detail (OS and database errors, which can
/// name local paths) goes to the log; the client learns only which input and that it was ours.
fn internal(field: &str, what: &str, detail: impl std::fmt::Display) -> FetchError {
    tracing::error!("{field}: {what}: {detail}");
    err(
        "internal_error",
        format!("{field}: {what} failed on the server (internal error; see the server log)"),
    )
}

/// A range of addresses a fetch may reach although it is private (configuration; tests allow
/// 127.0.0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllowNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for AllowNet {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .trim()
            .parse()
            .map_err(|_| format!("not an IP address: {a}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or(format!("bad prefix length: {p}"))?,
            None => max,
        };
        Ok(AllowNet { addr, prefix })
    }
}

impl AllowNet {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                (u32::from(n) & m) == (u32::from(a) & m)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                (u128::from(n) & m) == (u128::from(a) & m)
            }
            _ => false,
        }
    }
}

#[derive(Clone)]
pub struct Fetcher {
    pub max_bytes: u64,
    pub timeout: Duration,
    pub allow: Vec<AllowNet>,
    pub storage: Storage,
}

fn describe_head(h: &[u8]) -> &'static str {
    let text = h
        .iter()
        .take(256)
        .all(|b| b.is_ascii_graphic() || b.is_ascii_whitespace());
    if h.is_empty() {
        "an empty file"
    } else if text && (h.starts_with(b"<") || h.iter().take(64).any(|b| *b == b'<')) {
        "an HTML/XML document"
    } else if text {
        "a text file"
    } else {
        "a file of unknown format"
    }
}

/// What a fetched file turned out to be.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub size: u64,
    pub mime: &'static str,
}

impl Fetcher {
    fn check_kind(
        &self,
        field: &str,
        want: MediaKind,
        head: &[u8],
    ) -> Result<&'static str, FetchError> {
        let Some((kind, mime)) = sniff(head) else {
            return Err(err(
                "unsupported_media",
                format!(
                    "{field}: the file is {}, not a supported {}",
                    describe_head(head),
                    match want {
                        MediaKind::Image => "image (PNG, JPEG, WebP, BMP, GIF)",
                        MediaKind::Video => "video (MP4, MOV, WebM, MKV, AVI, GIF)",
                        MediaKind::Any => "image or video",
                    }
                ),
            ));
        };
        let ok = match want {
            MediaKind::Any => true,
            MediaKind::Image => kind != MediaKind::Video,
            MediaKind::Video => kind != MediaKind::Image,
        };
        if !ok {
            let what = if kind == MediaKind::Image {
                "an image"
            } else {
                "a video"
            };
            let need = if want == MediaKind::Image {
                "an image"
            } else {
                "a video"
            };
            return Err(err(
                "unsupported_media",
                format!("{field}: expected {need}, got {what} ({mime})"),
            ));
        }
        Ok(mime)
    }

    /// Fetches `url` for `field` into `dest`.
    pub async fn fetch(
        &self,
        field: &str,
        url: &str,
        want: MediaKind,
        dest: &Path,
    ) -> Result<Fetched, FetchError> {
        let fut = self.fetch_inner(field, url, want, dest);
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => {
                let _ = tokio::fs::remove_file(dest).await;
                Err(err(
                    "file_download_error",
                    format!(
                        "{field}: downloading the file took longer than {} s",
                        self.timeout.as_secs_f64()
                    ),
                ))
            }
        }
    }

    async fn fetch_inner(
        &self,
        field: &str,
        url: &str,
        want: MediaKind,
        dest: &Path,
    ) -> Result<Fetched, FetchError> {
        let io = |e: std::io::Error| internal(field, "storing the input", e);
        if let Some(rest) = url.strip_prefix("data:") {
            let (_, payload) = rest
                .split_once(',')
                .ok_or_else(|| err("invalid_data_uri", format!("{field}: malformed data URI")))?;
            if (payload.len() as u64) / 4 * 3 > self.max_bytes + 3 {
                return Err(err(
                    "file_too_large",
                    format!(
                        "{field}: the data URI is larger than the limit of {} bytes",
                        self.max_bytes
                    ),
                ));
            }
            let cleaned: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
            let data = base64::engine::general_purpose::STANDARD
                .decode(cleaned.trim_end_matches('='))
                .or_else(|_| {
                    base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(cleaned.trim_end_matches('='))
                })
                .or_else(|_| {
                    base64::engine::general_purpose::URL_SAFE_NO_PAD
                        .decode(cleaned.trim_end_matches('='))
                })
                .map_err(|e| {
                    err(
                        "invalid_data_uri",
                        format!("{field}: the data URI is not valid base64: {e}"),
                    )
                })?;
            let mime = self.check_kind(field, want, &data)?;
            tokio::fs::write(dest, &data).await.map_err(io)?;
            return Ok(Fetched {
                size: data.len() as u64,
                mime,
            });
        }
        if let Some(id) = self.storage.own_file_id(url) {
            let row = self
                .storage
                .get(id)
                .await
                .map_err(|e| internal(field, "looking up the stored file", e))?
                .filter(|r| r.complete)
                .ok_or_else(|| {
                    err(
                        "file_download_error",
                        format!("{field}: no such file on this server: {url}"),
                    )
                })?;
            let stored = |e| internal(field, "reading the stored file", e);
            let head = self
                .storage
                .head_bytes(&row.id, 512, row.size as u64)
                .await
                .map_err(stored)?;
            let mime = self.check_kind(field, want, &head)?;
            self.storage.download(&row.id, dest).await.map_err(stored)?;
            return Ok(Fetched {
                size: row.size as u64,
                mime,
            });
        }
        let mut current = reqwest::Url::parse(url)
            .map_err(|e| err("invalid_url", format!("{field}: invalid URL: {e}")))?;
        for _hop in 0..6 {
            let resp = self.get_once(field, &current).await?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| {
                        err(
                            "file_download_error",
                            format!("{field}: redirect without a Location"),
                        )
                    })?;
                current = current.join(loc).map_err(|e| {
                    err("file_download_error", format!("{field}: bad redirect: {e}"))
                })?;
                continue;
            }
            if !status.is_success() {
                return Err(err(
                    "file_download_error",
                    format!(
                        "{field}: downloading {} failed with HTTP {}",
                        redact(&current),
                        status.as_u16()
                    ),
                ));
            }
            if let Some(len) = resp.content_length() {
                if len > self.max_bytes {
                    return Err(err(
                        "file_too_large",
                        format!(
                            "{field}: the file is {len} bytes, over the limit of {} bytes",
                            self.max_bytes
                        ),
                    ));
                }
            }
            let mut f = tokio::fs::File::create(dest).await.map_err(io)?;
            let mut stream = resp.bytes_stream();
            let mut n = 0u64;
            let mut head: Vec<u8> = Vec::with_capacity(512);
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| {
                    err(
                        "file_download_error",
                        format!("{field}: the download broke off: {e}"),
                    )
                })?;
                n += chunk.len() as u64;
                if n > self.max_bytes {
                    drop(f);
                    let _ = tokio::fs::remove_file(dest).await;
                    return Err(err(
                        "file_too_large",
                        format!(
                            "{field}: the file is over the limit of {} bytes",
                            self.max_bytes
                        ),
                    ));
                }
                if head.len() < 512 {
                    let take = (512 - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                f.write_all(&chunk).await.map_err(io)?;
            }
            f.flush().await.map_err(io)?;
            let mime = self.check_kind(field, want, &head)?;
            return Ok(Fetched { size: n, mime });
        }
        Err(err(
            "file_download_error",
            format!("{field}: too many redirects"),
        ))
    }

    /// Resolves the host, refuses non-public addresses unless allowed, and connects to exactly the
    /// address that was checked (no second lookup an attacker's DNS could answer differently).
    async fn get_once(
        &self,
        field: &str,
        url: &reqwest::Url,
    ) -> Result<reqwest::Response, FetchError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(err(
                "invalid_url",
                format!("{field}: only http and https URLs can be fetched"),
            ));
        }
        let addr = self.resolve_checked(field, url).await?;
        let host = url.host_str().unwrap_or_default().to_string();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10).min(self.timeout))
            .resolve(&host, addr)
            .no_proxy()
            .build()
            .map_err(|e| internal(field, "setting up the download", e))?;
        client.get(url.clone()).send().await.map_err(|e| {
            err(
                "file_download_error",
                format!(
                    "{field}: could not download {}: {}",
                    redact(url),
                    root_cause(&e)
                ),
            )
        })
    }

    /// The checked address a URL may be fetched from (also used for webhooks).
    pub async fn resolve_checked(
        &self,
        field: &str,
        url: &reqwest::Url,
    ) -> Result<SocketAddr, FetchError> {
        let host = url
            .host_str()
            .ok_or_else(|| err("invalid_url", format!("{field}: the URL has no host")))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let host_for_lookup = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host_for_lookup, port))
            .await
            .map_err(|e| {
                err(
                    "file_download_error",
                    format!("{field}: cannot resolve host {host}: {e}"),
                )
            })?
            .collect();
        let mut refused = None;
        for a in addrs {
            match non_public_reason(a.ip()) {
                None => return Ok(a),
                Some(_) if self.allow.iter().any(|n| n.contains(a.ip())) => return Ok(a),
                Some(why) => refused = Some((a.ip(), why)),
            }
        }
        match refused {
            Some((ip, why)) => Err(err(
                "forbidden_address",
                format!("{field}: {host} resolves to {ip} ({why}), not a public address; this server does not fetch from those (see --allow-fetch-from)"),
            )),
            None => Err(err("file_download_error", format!("{field}: host {host} has no address"))),
        }
    }
}

fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_password(None);
    u.set_query(None);
    u.to_string()
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur = e;
    let mut msg = cur.to_string();
    while let Some(s) = cur.source() {
        msg = s.to_string();
        cur = s;
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_non_public(a.parse().unwrap()), "{a}");
        }
        for a in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_non_public(a.parse().unwrap()), "{a}");
        }
    }

    #[test]
    fn allow_nets() {
        let n: AllowNet = "127.0.0.0/8".parse().unwrap();
        assert!(n.contains("127.5.5.5".parse().unwrap()));
        assert!(!n.contains("128.0.0.1".parse().unwrap()));
        let one: AllowNet = "127.0.0.1".parse().unwrap();
        assert!(!one.contains("127.0.0.2".parse().unwrap()));
        assert!("1.2.3.4/33".parse::<AllowNet>().is_err());
        assert!("nope".parse::<AllowNet>().is_err());
    }

    #[test]
    fn describing() {
        assert_eq!(describe_head(b"<html>"), "an HTML/XML document");
        assert_eq!(describe_head(b"hello world"), "a text file");
    }
}
