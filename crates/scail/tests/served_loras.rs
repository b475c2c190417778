//! `scail serve --lora-dir` with tiny random weights: `/openapi.json` lists the folder's LoRAs
//! and the presets; the official JS client runs `preset: "fast"` with a LoRA from the folder
//! end to end (the distilled recipe: 4 Euler steps at CFG 1) and is refused, at the field, a
//! LoRA the server does not have. The server runs `--offload stream`, so the LoRA is fused
//! into each block as it is read.

mod common;

use common::*;

#[test]
fn preset_fast_with_a_lora_through_the_official_client() {
    if std::env::var("SCAIL_SKIP_CONFORMANCE").is_ok_and(|v| v == "1") {
        eprintln!("SCAIL_SKIP_CONFORMANCE=1: skipped");
        return;
    }
    let w = tempfile::tempdir().unwrap();
    ok(scail()
        .args(["weights", "init-random", "--config", "tiny"])
        .arg(w.path()));
    let loras = tempfile::tempdir().unwrap();
    let lora = kijai_lora(loras.path(), &[0, 1]);
    let lora_name = lora.file_name().unwrap().to_str().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let s = serve(
        data.path(),
        &[
            "--weights",
            w.path().to_str().unwrap(),
            "--size",
            "128x96",
            "--lora-dir",
            loras.path().to_str().unwrap(),
            // Blocks read (and LoRA-fused) at every use: the served path under `stream`.
            "--offload",
            "stream",
        ],
    );

    let doc = http_get(&format!("{}/openapi.json", s.url));
    let doc: serde_json::Value =
        serde_json::from_str(doc.split_once("\r\n\r\n").unwrap().1).unwrap();
    let props = &doc["components"]["schemas"]["ScailInput"]["properties"];
    assert_eq!(
        props["loras"]["items"]["properties"]["name"]["enum"],
        serde_json::json!([lora_name])
    );
    assert_eq!(
        props["preset"]["enum"],
        serde_json::json!(["fast", "balanced", "quality"])
    );

    let v = run_client_script(
        &s.url,
        "model/lora_fast.mjs",
        &[("SCAIL_LORA", lora_name.as_str())],
    );
    assert_eq!(v["video"]["content_type"], "video/mp4");

    // The job ran the distilled recipe with the LoRA fused: its log says so.
    let id = v["request_id"].as_str().unwrap();
    let (code, status) = http_json(
        "GET",
        &format!("{}/queue/fal-ai/scail-2/requests/{id}/status?logs=1", s.url),
        "k-test",
        "",
    );
    assert_eq!(code, 200, "{status}");
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let lines: Vec<&str> = status["logs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["message"].as_str())
        .collect();
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    assert!(has("reloading the DiT with LoRAs"), "{lines:#?}");
    assert!(has(&lora_name), "{lines:#?}");
    assert!(has("4 steps, guidance 1, shift 5, euler"), "{lines:#?}");
}
