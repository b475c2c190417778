//! API keys and their owners.
//!
//! An entry is either a bare key (the whole entry is the key, whatever characters it holds, so
//! base64 `=` padding and fal's `id:secret` are never split) or `owner@@key`, the only way to
//! name an owner. `@@` occurs in no base64, hex, UUID or fal key, and the owner before it must be
//! a short plain name, so a key cannot be taken for an owner by accident.
//!
//! Lookups hash the presented key and compare it with every configured key's hash in constant
//! time, so neither a map lookup nor an early exit tells an attacker how close a guess was.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Separates an owner from its key in an entry.
pub const OWNER_SEP: &str = "@@";

/// Owners derived from bare keys start with this; explicit owners may not, so an explicit entry
/// can never share a bare key's owner (and see its requests).
const DERIVED_PREFIX: &str = "key-";

/// The exact line older versions generated in `DATA_DIR/keys`, accepted and rewritten there.
const LEGACY_OWNER: &str = "local=";
const LEGACY_HEADER: &str = "# scail API keys: one `owner=key` a line.";

/// Header of a generated keys file: it documents the format where people will edit it.
pub const KEYS_FILE_HEADER: &str = "\
# scail API keys, one entry a line. Clients send `Authorization: Key <key>`.
# A bare entry is a whole key (its owner is derived from it); `owner@@key` names the owner
# (letters, digits, `.`, `_`, `-`; up to 64). Keys are never split: `=`, `:`, `+`, `/` are kept.
# Requests are visible only to keys of the owner that submitted them.
";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("entry {0}: empty key after `@@`")]
    EmptyKey(String),
    // The text before `@@` is not shown: it may be part of a secret.
    #[error(
        "entry {0}: the text before `@@` is not an owner name (letters, digits, `.`, `_`, `-`, \
         up to 64, not starting with `key-`); a key containing `@@` must be given as owner@@key"
    )]
    BadOwner(String),
    #[error("entry {0}: this key is already configured for another owner")]
    Conflict(String),
}

#[derive(Clone)]
struct Entry {
    digest: [u8; 32],
    owner: String,
}

/// Maps keys to owners. A request is visible only to keys of the owner that submitted it.
#[derive(Clone, Default)]
pub struct Keys {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for Keys {
    // Owners only: even key hashes stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let owners: Vec<&str> = self.entries.iter().map(|e| e.owner.as_str()).collect();
        f.debug_struct("Keys").field("owners", &owners).finish()
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Equal without an early exit.
fn ct_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn valid_owner(o: &str) -> bool {
    !o.is_empty()
        && o.len() <= 64
        && !o.starts_with(DERIVED_PREFIX)
        && o.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The owner of a bare key, named by a hash so the key never appears in stored rows or webhooks.
fn owner_of_bare_key(key: &str) -> String {
    format!("{DERIVED_PREFIX}{}", &hex::encode(digest(key))[..12])
}

/// Splits one entry into (owner, key); `where_` names it in errors (never the key itself).
fn parse_entry(entry: &str, where_: &str) -> Result<(String, String), KeyError> {
    match entry.split_once(OWNER_SEP) {
        None => Ok((owner_of_bare_key(entry), entry.to_string())),
        Some((owner, key)) => {
            let owner = owner.trim();
            if !valid_owner(owner) {
                return Err(KeyError::BadOwner(where_.into()));
            }
            let key = key.trim();
            if key.is_empty() {
                return Err(KeyError::EmptyKey(where_.into()));
            }
            Ok((owner.to_string(), key.to_string()))
        }
    }
}

/// Whether an entry looks like the old `owner=key` form, now read as one whole key.
fn looks_like_old_form(entry: &str) -> bool {
    match entry.split_once('=') {
        // Base64 padding only ever ends a key; `name=more` is the old form.
        Some((o, rest)) => valid_owner(o) && !rest.trim_start_matches('=').is_empty(),
        None => false,
    }
}

impl Keys {
    /// Parses entries (bare `key` or `owner@@key`; blank lines and `#` comments skipped).
    /// `source` names where they came from in errors, e.g. `SCAIL_API_KEYS`.
    pub fn parse<'a>(
        source: &str,
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Keys, KeyError> {
        let mut keys = Keys::default();
        for (i, e) in entries.into_iter().enumerate() {
            let e = e.trim();
            if e.is_empty() || e.starts_with('#') {
                continue;
            }
            let where_ = format!("{} of {source}", i + 1);
            if looks_like_old_form(e) && !e.contains(OWNER_SEP) {
                tracing::warn!(
                    "key entry {where_} has the old `owner=key` form; it is now read as one whole \
                     key (write `owner@@key` to name an owner)"
                );
            }
            let (owner, key) = parse_entry(e, &where_)?;
            keys.insert(owner, &key, &where_)?;
        }
        Ok(keys)
    }

    fn insert(&mut self, owner: String, key: &str, where_: &str) -> Result<(), KeyError> {
        let d = digest(key);
        match self.entries.iter().find(|e| ct_eq(&e.digest, &d)) {
            Some(e) if e.owner == owner => Ok(()),
            // One key, two owners: which requests it may see would be ambiguous.
            Some(_) => Err(KeyError::Conflict(where_.into())),
            None => {
                self.entries.push(Entry { digest: d, owner });
                Ok(())
            }
        }
    }

    /// Reads a keys file: one entry a line, as in [`Keys::parse`].
    pub fn from_file(path: &Path) -> anyhow::Result<Keys> {
        let text = std::fs::read_to_string(path)?;
        Ok(Keys::parse(&path.display().to_string(), text.lines())?)
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds another set (e.g. a keys file to the environment's keys).
    pub fn merge(&mut self, other: Keys) -> Result<(), KeyError> {
        for e in other.entries {
            match self.entries.iter().find(|x| ct_eq(&x.digest, &e.digest)) {
                Some(x) if x.owner == e.owner => {}
                Some(_) => return Err(KeyError::Conflict(format!("for owner {}", e.owner))),
                None => self.entries.push(e),
            }
        }
        Ok(())
    }

    /// The owner of a key, if it is configured. Every entry is compared, match or not.
    pub fn owner_of_key(&self, key: &str) -> Option<&str> {
        if key.is_empty() {
            return None;
        }
        let d = digest(key);
        let mut found = None;
        for e in &self.entries {
            if ct_eq(&e.digest, &d) {
                found = Some(e.owner.as_str());
            }
        }
        found
    }

    /// The owner of an `Authorization` header value (`Key <key>`), if the key is known.
    pub fn owner_of_header(&self, value: &str) -> Option<&str> {
        let key = value
            .strip_prefix("Key ")
            .or_else(|| value.strip_prefix("key "))?;
        self.owner_of_key(key.trim())
    }
}

/// Rewrites a keys file of the old generated form (`local=scail_<48 hex>` under the old header)
/// in the current form; returns whether it did. Other lines are kept as they are.
fn migrate_legacy(path: &Path) -> std::io::Result<bool> {
    let text = std::fs::read_to_string(path)?;
    let is_legacy_key = |l: &str| {
        l.strip_prefix(LEGACY_OWNER)
            .and_then(|k| k.strip_prefix("scail_"))
            .is_some_and(|h| h.len() == 48 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    };
    if !text.lines().any(|l| is_legacy_key(l.trim())) {
        return Ok(false);
    }
    let mut out = String::from(KEYS_FILE_HEADER);
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with(LEGACY_HEADER) {
            continue;
        }
        if is_legacy_key(t) {
            out.push_str(&format!("local{OWNER_SEP}{}\n", &t[LEGACY_OWNER.len()..]));
        } else {
            out.push_str(l);
            out.push('\n');
        }
    }
    let tmp = path.with_extension("migrating");
    crate::auth::write_private(&tmp, out.as_bytes())?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Makes sure the data directory has at least one key: with none configured, a key is generated
/// at first start, stored in `keys` there and returned so the caller can print it.
pub fn ensure_generated_key(data_dir: &Path) -> anyhow::Result<(Keys, Option<String>)> {
    let path = data_dir.join("keys");
    if path.exists() {
        if migrate_legacy(&path)? {
            tracing::info!(
                "rewrote {} in the current key format (owner@@key)",
                path.display()
            );
        }
        return Ok((Keys::from_file(&path)?, None));
    }
    let key = format!("scail_{}", crate::auth::random_hex(24));
    let text = format!("{KEYS_FILE_HEADER}local{OWNER_SEP}{key}\n");
    crate::auth::write_private(&path, text.as_bytes())?;
    Ok((Keys::from_file(&path)?, Some(key)))
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
