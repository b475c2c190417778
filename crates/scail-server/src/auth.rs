//! Signed tokens that let upload URLs work without `Authorization`, and private-file helpers.
//! API keys live in [`crate::keys`] (re-exported here).

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub use crate::keys::{ensure_generated_key, Keys};

type HmacSha256 = Hmac<Sha256>;

pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::fill(&mut b[..]);
    hex::encode(b)
}

/// Writes a file readable by its owner only (keys and secrets).
pub fn write_private(path: &Path, data: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Signs and checks short-lived capability tokens (upload URLs, CDN upload tokens).
#[derive(Clone)]
pub struct Signer {
    secret: Vec<u8>,
}

impl Signer {
    /// Loads the server secret from the data directory, creating it on first start.
    /// The secret shared by a fleet's nodes, kept in the job store.
    pub async fn shared(store: &crate::store::Store) -> anyhow::Result<Signer> {
        let hex_secret = store
            .shared_secret("signing_secret", &random_hex(32))
            .await?;
        Ok(Signer {
            secret: hex::decode(hex_secret.trim())?,
        })
    }

    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Signer> {
        let path = data_dir.join("signing_secret");
        let secret = match std::fs::read_to_string(&path) {
            Ok(s) => hex::decode(s.trim()).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let s = random_hex(32);
                write_private(&path, s.as_bytes())?;
                hex::decode(s).expect("fresh hex")
            }
            Err(e) => return Err(e),
        };
        Ok(Signer { secret })
    }

    fn mac(&self, purpose: &str, subject: &str, exp: i64) -> String {
        let mut m = HmacSha256::new_from_slice(&self.secret).expect("any key length");
        m.update(format!("{purpose}\n{subject}\n{exp}").as_bytes());
        hex::encode(m.finalize().into_bytes())
    }

    /// `token` for the subject, valid until `exp` (unix seconds).
    pub fn sign(&self, purpose: &str, subject: &str, exp: i64) -> String {
        format!("{exp}.{}", self.mac(purpose, subject, exp))
    }

    /// Checks a token from [`Signer::sign`]; constant-time in the signature.
    pub fn verify(&self, purpose: &str, subject: &str, token: &str) -> Result<(), &'static str> {
        let (exp, sig) = token.split_once('.').ok_or("malformed token")?;
        let exp: i64 = exp.parse().map_err(|_| "malformed token")?;
        if exp < chrono::Utc::now().timestamp() {
            return Err("token expired");
        }
        let want = self.mac(purpose, subject, exp);
        let ok = want.len() == sig.len()
            && want
                .bytes()
                .zip(sig.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if ok {
            Ok(())
        } else {
            Err("bad token signature")
        }
    }

    /// A bearer token for the CDN upload calls, carrying the owner.
    pub fn cdn_token(&self, owner: &str, exp: i64) -> String {
        use base64::Engine;
        let o = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(owner);
        format!("{o}.{}", self.sign("cdn", owner, exp))
    }

    /// The owner of a CDN bearer token, when it is valid.
    pub fn cdn_owner(&self, token: &str) -> Result<String, &'static str> {
        use base64::Engine;
        let (o, rest) = token.split_once('.').ok_or("malformed token")?;
        let owner = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(o)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or("malformed token")?;
        self.verify("cdn", &owner, rest)?;
        Ok(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        let d = tempfile::tempdir().unwrap();
        let s = Signer::load_or_create(d.path()).unwrap();
        let again = Signer::load_or_create(d.path()).unwrap();
        let exp = chrono::Utc::now().timestamp() + 60;
        let t = s.sign("upload", "f1", exp);
        assert!(again.verify("upload", "f1", &t).is_ok(), "secret persists");
        assert!(s.verify("upload", "f2", &t).is_err());
        assert!(s.verify("cdn", "f1", &t).is_err());
        let old = s.sign("upload", "f1", exp - 120);
        assert_eq!(s.verify("upload", "f1", &old), Err("token expired"));
        let c = s.cdn_token("alice", exp);
        assert_eq!(s.cdn_owner(&c).unwrap(), "alice");
        use base64::Engine;
        let b64 = |o: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(o);
        let forged = c.replacen(&b64("alice"), &b64("bob"), 1);
        assert_ne!(forged, c);
        assert!(
            s.cdn_owner(&forged).is_err(),
            "a token names its owner unforgeably"
        );
    }
}
