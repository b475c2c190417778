//! The arrows between the crates (docs/ARCHITECTURE.md): the ones that must never exist are
//! checked here from `cargo metadata`, so a new dependency that breaks the layering fails CI.

use std::collections::HashMap;

/// Each workspace crate's normal (non-dev) dependencies inside the workspace.
fn workspace_edges() -> HashMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pkgs = v["packages"].as_array().unwrap();
    let names: Vec<&str> = pkgs.iter().map(|p| p["name"].as_str().unwrap()).collect();
    pkgs.iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| names.contains(&d.as_str()))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// Everything `from` reaches through normal dependencies.
fn reach(edges: &HashMap<String, Vec<String>>, from: &str) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut todo = vec![from.to_string()];
    while let Some(c) = todo.pop() {
        for d in edges.get(&c).into_iter().flatten() {
            if !seen.contains(d) {
                seen.push(d.clone());
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn no_arrow_climbs_back_up() {
    let e = workspace_edges();
    assert!(e.contains_key("scail-core") && e.contains_key("scail-server"));
    let never: &[(&str, &[&str])] = &[
        // The schema crate is everyone's base: it depends on no other crate of ours.
        (
            "scail-core",
            &[
                "scail-media",
                "scail-model",
                "scail-stagea",
                "scail-pipeline",
                "scail-server",
                "scail",
            ],
        ),
        // The API crate never compiles the networks, media or Stage A.
        (
            "scail-server",
            &[
                "scail-media",
                "scail-model",
                "scail-stagea",
                "scail-pipeline",
                "scail",
            ],
        ),
        // The networks know nothing of requests, media files, servers or downloads.
        (
            "scail-model",
            &[
                "scail-core",
                "scail-media",
                "scail-stagea",
                "scail-pipeline",
                "scail-server",
                "scail",
            ],
        ),
        (
            "scail-media",
            &[
                "scail-model",
                "scail-stagea",
                "scail-pipeline",
                "scail-server",
                "scail",
            ],
        ),
        (
            "scail-stagea",
            &["scail-model", "scail-pipeline", "scail-server", "scail"],
        ),
        ("scail-pipeline", &["scail-server", "scail"]),
    ];
    for (from, forbidden) in never {
        let r = reach(&e, from);
        for f in *forbidden {
            assert!(
                !r.iter().any(|x| x == f),
                "{from} must not depend on {f} (reaches {r:?})"
            );
        }
    }
    // Test data is for tests: only dev-dependencies (and the model crate's fixture helpers).
    for (from, deps) in &e {
        if from != "scail-model" && from != "scail-testdata" {
            assert!(
                !deps.iter().any(|d| d == "scail-testdata"),
                "{from} ships test data"
            );
        }
    }
}
