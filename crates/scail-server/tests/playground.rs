//! The playground's files at `/`: served from the binary with their types and a self-only
//! content policy, every script and style the page loads present, nothing from another origin.
//! (The page itself is driven in Chromium by tests/browser/playground.mjs, from .ci/run.)

mod common;

use common::*;

#[tokio::test]
async fn the_page_and_everything_it_loads_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let api = Api::new(&srv.public_url);
    let page = api.send("GET", "/", None, None, &[]).await;
    assert_eq!(page.status, 200);
    assert!(page
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    let html = String::from_utf8(page.body.clone()).unwrap();
    // Every local script and stylesheet, and the modules the scripts import.
    let mut queue: Vec<String> = refs(&html);
    assert!(queue.iter().any(|r| r.ends_with(".js")), "{html}");
    let mut seen = Vec::new();
    while let Some(path) = queue.pop() {
        if seen.contains(&path) {
            continue;
        }
        let r = api.send("GET", &path, None, None, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        let ct = r.header("content-type").unwrap();
        let body = String::from_utf8(r.body.clone()).unwrap();
        if path.ends_with(".js") {
            assert!(ct.starts_with("text/javascript"), "{path}: {ct}");
            queue.extend(refs(&body));
        } else {
            assert!(ct.starts_with("text/css"), "{path}: {ct}");
        }
        // No CDN, no fonts or scripts from elsewhere.
        assert!(!body.contains("<script src=\"http"), "{path}");
        seen.push(path);
    }
    assert!(seen.len() >= 3, "{seen:?}");
    let missing = api
        .send("GET", "/playground/nope.js", None, None, &[])
        .await;
    assert_eq!(missing.status, 404);
    assert!(missing.header("content-type").unwrap().contains("json"));
}

/// `/playground/…` paths a page or script names (src=, href=), and its relative module imports
/// (`from './form.js'`).
fn refs(text: &str) -> Vec<String> {
    let quoted = |rest: &str| -> String {
        let end = rest.find(['"', '\'']).unwrap_or(rest.len());
        rest[..end].to_string()
    };
    let mut out = Vec::new();
    for (i, _) in text.match_indices("\"/playground/") {
        out.push(quoted(&text[i + 1..]));
    }
    for pat in ["from './", "from \"./"] {
        for (i, _) in text.match_indices(pat) {
            out.push(format!("/playground/{}", quoted(&text[i + pat.len()..])));
        }
    }
    out.retain(|p| p.ends_with(".js") || p.ends_with(".css"));
    out
}
