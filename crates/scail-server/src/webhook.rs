//! Signed webhook delivery (spec/api.md §5): Ed25519 over
//! `"{request_id}\n{user_id}\n{timestamp}\n{sha256_hex(body)}"`, the public key in the JWKS,
//! retried with exponential backoff until a 2xx. Deliveries are rows in the store, so they
//! survive a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::fetch::Fetcher;
use crate::store::{now, Store, Webhook};

/// Deliveries stop after this many attempts.
pub const MAX_ATTEMPTS: i64 = 10;

pub struct WebhookKey {
    key: SigningKey,
    pub kid: String,
}

impl WebhookKey {
    /// The server's signing key, created on first start and kept in the data directory.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<WebhookKey> {
        let path = data_dir.join("webhook_ed25519.key");
        let bytes: [u8; 32] = match std::fs::read_to_string(&path) {
            Ok(s) => hex::decode(s.trim())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: not a 32-byte hex key", path.display()),
                    )
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = [0u8; 32];
                rand::fill(&mut b);
                crate::auth::write_private(&path, hex::encode(b).as_bytes())?;
                b
            }
            Err(e) => return Err(e),
        };
        Ok(WebhookKey::from_bytes(&bytes))
    }

    fn from_bytes(bytes: &[u8; 32]) -> WebhookKey {
        let key = SigningKey::from_bytes(bytes);
        let kid = hex::encode(&Sha256::digest(key.verifying_key().as_bytes())[..8]);
        WebhookKey { key, kid }
    }

    /// The key shared by a fleet's API nodes (any of them may sign a delivery, and each
    /// publishes the same JWKS), kept in the job store.
    pub async fn shared(store: &crate::store::Store) -> anyhow::Result<WebhookKey> {
        let mut fresh = [0u8; 32];
        rand::fill(&mut fresh);
        let stored = store
            .shared_secret("webhook_ed25519", &hex::encode(fresh))
            .await?;
        let bytes: [u8; 32] = hex::decode(stored.trim())
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| anyhow::anyhow!("the stored webhook key is not 32 hex bytes"))?;
        Ok(WebhookKey::from_bytes(&bytes))
    }

    pub fn jwks(&self) -> serde_json::Value {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.key.verifying_key().as_bytes());
        serde_json::json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid, "use": "sig", "alg": "EdDSA"}]})
    }

    /// Hex signature of one delivery.
    pub fn sign(&self, request_id: &str, user_id: &str, timestamp: i64, body: &[u8]) -> String {
        let msg = format!(
            "{request_id}\n{user_id}\n{timestamp}\n{}",
            hex::encode(Sha256::digest(body))
        );
        hex::encode(self.key.sign(msg.as_bytes()).to_bytes())
    }
}

/// Runs deliveries until `stop` fires.
pub async fn run_deliveries(
    store: Store,
    key: Arc<WebhookKey>,
    fetcher: Fetcher,
    notify: Arc<Notify>,
    retry_base: Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        match store.due_webhooks(16).await {
            Ok(due) => {
                for w in due {
                    deliver(&store, &key, &fetcher, &w, retry_base).await;
                }
            }
            Err(e) => tracing::warn!("webhook queue: {e}"),
        }
        let wait = match store.next_webhook_at().await {
            Ok(Some(t)) => Duration::from_secs_f64((t - now()).clamp(0.0, 5.0)),
            _ => Duration::from_secs(5),
        };
        tokio::select! {
            _ = notify.notified() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(20))) => {}
            _ = stop.changed() => {}
        }
    }
}

async fn deliver(
    store: &Store,
    key: &WebhookKey,
    fetcher: &Fetcher,
    w: &Webhook,
    retry_base: Duration,
) {
    let attempt = w.attempts + 1;
    let ts = chrono::Utc::now().timestamp();
    let sig = key.sign(&w.job_id, &w.user_id, ts, w.body.as_bytes());
    let result: Result<u16, String> = async {
        let url = reqwest::Url::parse(&w.url).map_err(|e| format!("bad webhook URL: {e}"))?;
        let addr = fetcher
            .resolve_checked("fal_webhook", &url)
            .await
            .map_err(|e| e.message)?;
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .resolve(url.host_str().unwrap_or_default(), addr)
            .no_proxy()
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-fal-webhook-request-id", &w.job_id)
            .header("x-fal-webhook-user-id", &w.user_id)
            .header("x-fal-webhook-timestamp", ts.to_string())
            .header("x-fal-webhook-signature", sig)
            .body(w.body.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        Ok(resp.status().as_u16())
    }
    .await;
    let ok = matches!(result, Ok(s) if (200..300).contains(&s));
    let next_at = if ok || attempt >= MAX_ATTEMPTS {
        None
    } else {
        // Exponential backoff: base, 2*base, 4*base, ... (fal: 10 attempts over about 2 hours).
        Some(now() + retry_base.as_secs_f64() * 2f64.powi((attempt - 1) as i32))
    };
    let (status, error) = match &result {
        Ok(s) => (Some(*s), (!ok).then(|| format!("HTTP {s}"))),
        Err(e) => (None, Some(e.clone())),
    };
    if !ok {
        tracing::warn!(request_id = %w.job_id, attempt, "webhook delivery failed: {}", error.as_deref().unwrap_or(""));
    }
    if let Err(e) = store
        .record_webhook_attempt(&w.job_id, attempt, status, error.as_deref(), ok, next_at)
        .await
    {
        tracing::error!("recording a webhook attempt: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    #[test]
    fn signature_verifies_against_the_jwks_key() {
        let d = tempfile::tempdir().unwrap();
        let k = WebhookKey::load_or_create(d.path()).unwrap();
        let k2 = WebhookKey::load_or_create(d.path()).unwrap();
        assert_eq!(k.jwks(), k2.jwks(), "key persists");
        let jwks = k.jwks();
        let x = jwks["keys"][0]["x"].as_str().unwrap();
        let pk: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(x)
            .unwrap()
            .try_into()
            .unwrap();
        let vk = VerifyingKey::from_bytes(&pk).unwrap();
        let body = br#"{"status":"OK"}"#;
        let sig = k.sign("req1", "alice", 1700000000, body);
        let sig = Signature::from_slice(&hex::decode(sig).unwrap()).unwrap();
        let msg = format!(
            "req1\nalice\n1700000000\n{}",
            hex::encode(Sha256::digest(body))
        );
        assert!(vk.verify(msg.as_bytes(), &sig).is_ok());
        let tampered = format!(
            "req1\nalice\n1700000001\n{}",
            hex::encode(Sha256::digest(body))
        );
        assert!(vk.verify(tampered.as_bytes(), &sig).is_err());
    }
}
