use super::*;

fn parse(entries: &[&str]) -> Keys {
    Keys::parse("test", entries.iter().copied()).unwrap()
}

fn header(k: &str) -> String {
    format!("Key {k}")
}

#[test]
fn the_reported_attack_is_refused() {
    // SCAIL_API_KEYS='c2VjcmV0a2V5MTIz==': once `Key =` passed and the secret became the owner.
    let secret = "c2VjcmV0a2V5MTIz==";
    let k = parse(&[secret]);
    assert_eq!(k.len(), 1);
    assert_eq!(k.owner_of_header("Key ="), None);
    assert_eq!(k.owner_of_header("Key =="), None);
    assert_eq!(k.owner_of_header("Key c2VjcmV0a2V5MTIz"), None);
    let owner = k
        .owner_of_header(&header(secret))
        .expect("the real key works");
    assert!(owner.starts_with("key-"), "{owner}");
    assert!(!owner.contains("c2Vj") && !secret.contains(&owner[4..]));
}

#[test]
fn bare_keys_are_never_split() {
    for key in [
        "abc=def",
        "a=b=c",
        "=leading",
        "trailing==",
        "id:secret",
        "9f1c2d3e-aaaa-bbbb-cccc-000000000000:0123456789abcdef",
        "a+b/c==",
        "a:b=c+d/e",
        "owner=key",
    ] {
        let k = parse(&[key]);
        let owner = k
            .owner_of_header(&header(key))
            .unwrap_or_else(|| panic!("{key}"));
        assert_eq!(owner, owner_of_bare_key(key));
        for part in key.split(['=', ':']).filter(|p| !p.is_empty() && *p != key) {
            assert_eq!(k.owner_of_header(&header(part)), None, "{key}: {part}");
        }
        assert!(!owner.contains(key));
    }
}

#[test]
fn owners_are_explicit() {
    let k = parse(&[
        "alice@@k1=",
        "bob@@k2:x+y/z==",
        "alice@@k3",
        "id:secret",
        "carol@@with@@inside",
        "",
        "# comment",
        "  dave@@  spaced  ",
    ]);
    assert_eq!(k.len(), 6);
    assert_eq!(k.owner_of_header("Key k1="), Some("alice"));
    assert_eq!(k.owner_of_header("Key k3"), Some("alice"));
    assert_eq!(k.owner_of_header("Key k2:x+y/z=="), Some("bob"));
    assert_eq!(k.owner_of_header("key k2:x+y/z=="), Some("bob"));
    assert_eq!(k.owner_of_header("Key with@@inside"), Some("carol"));
    assert_eq!(k.owner_of_header("Key spaced"), Some("dave"));
    assert!(k
        .owner_of_header("Key id:secret")
        .unwrap()
        .starts_with("key-"));
    assert_eq!(k.owner_of_header("Key k1"), None);
    assert_eq!(k.owner_of_header("Bearer k1="), None);
    assert_eq!(k.owner_of_header("Key "), None);
    assert_eq!(k.owner_of_header("Key alice@@k1="), None);
    assert_eq!(k.owner_of_header("Key nope"), None);
}

#[test]
fn bad_entries_are_refused_without_showing_secrets() {
    for e in ["@@k", "a b@@k", "key-abc@@k", "x@@", "sec/ret@@k"] {
        let err = Keys::parse("SCAIL_API_KEYS", [e]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("SCAIL_API_KEYS"), "{msg}");
        assert!(!msg.contains("sec/ret") && !msg.contains("a b"), "{msg}");
    }
    // One key, two owners.
    assert!(matches!(
        Keys::parse("t", ["alice@@k", "bob@@k"]),
        Err(KeyError::Conflict(_))
    ));
    let mut a = parse(&["alice@@k"]);
    assert!(a.merge(parse(&["bob@@k"])).is_err());
    assert!(a.merge(parse(&["alice@@k", "bob@@j"])).is_ok());
    assert_eq!(a.len(), 2);
}

#[test]
fn debug_shows_no_key_material() {
    let k = parse(&["alice@@supersecret", "otherSecret="]);
    let d = format!("{k:?}");
    assert!(
        !d.contains("supersecret") && !d.contains("otherSecret"),
        "{d}"
    );
    assert!(d.contains("alice"));
}

#[test]
fn generated_key_is_stored_once() {
    let d = tempfile::tempdir().unwrap();
    let (k, shown) = ensure_generated_key(d.path()).unwrap();
    let key = shown.expect("first start prints the key");
    assert_eq!(k.owner_of_header(&header(&key)), Some("local"));
    let text = std::fs::read_to_string(d.path().join("keys")).unwrap();
    assert!(text.starts_with(KEYS_FILE_HEADER));
    assert!(text.contains(&format!("local@@{key}")));
    let (k2, shown2) = ensure_generated_key(d.path()).unwrap();
    assert!(shown2.is_none());
    assert_eq!(k2.owner_of_header(&header(&key)), Some("local"));
}

#[test]
fn legacy_generated_keys_file_keeps_working() {
    let d = tempfile::tempdir().unwrap();
    let key = format!("scail_{}", "0123456789abcdef".repeat(3));
    let old = format!(
        "# scail API keys: one `owner=key` a line. Clients send `Authorization: Key <key>`.\n\
         local={key}\nextra@@k-other\n"
    );
    std::fs::write(d.path().join("keys"), &old).unwrap();
    let (k, shown) = ensure_generated_key(d.path()).unwrap();
    assert!(shown.is_none());
    assert_eq!(k.owner_of_header(&header(&key)), Some("local"));
    assert_eq!(k.owner_of_header("Key k-other"), Some("extra"));
    let text = std::fs::read_to_string(d.path().join("keys")).unwrap();
    assert!(text.starts_with(KEYS_FILE_HEADER), "{text}");
    assert!(
        !text.contains("local=") && !text.contains("owner=key"),
        "{text}"
    );
    // Only that exact generated line is migrated; other `x=y` lines are whole keys.
    std::fs::write(d.path().join("keys"), "local=short\n").unwrap();
    let (k, _) = ensure_generated_key(d.path()).unwrap();
    assert_eq!(k.owner_of_header("Key short"), None);
    assert!(k.owner_of_header("Key local=short").is_some());
}

#[test]
fn lookups_compare_every_entry() {
    // Later duplicates of the same owner are merged, and the last entry matches as well as the
    // first (no early exit changes the answer).
    let keys: Vec<String> = (0..50).map(|i| format!("o{i}@@k{i}")).collect();
    let k = Keys::parse("t", keys.iter().map(String::as_str)).unwrap();
    assert_eq!(k.owner_of_key("k0"), Some("o0"));
    assert_eq!(k.owner_of_key("k49"), Some("o49"));
    assert_eq!(k.owner_of_key("k50"), None);
    assert_eq!(k.owner_of_key(""), None);
}
