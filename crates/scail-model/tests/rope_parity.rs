//! RoPE parity against every `rope_*` fixture of the folder: factor tables per segment, the f64
//! frequency table and the rotation itself. Sizes come from the manifest's `rope_kwargs`.

use candle_core::{DType, Device, Tensor};
use scail_model::fixtures;
use scail_model::rope::{self, ScailRope};

fn rope_files(manifest: &serde_json::Value) -> Vec<String> {
    fixtures::files_of_kind(manifest, "rope")
}

fn layout(entry: &serde_json::Value) -> ScailRope {
    let kw = &entry["rope_kwargs"];
    let u = |v: &serde_json::Value| v.as_u64().expect("integer kwarg") as usize;
    ScailRope {
        head_dim: u(&kw["hidden_size_head"]),
        grid: (u(&kw["rope_T"]), u(&kw["rope_H"]), u(&kw["rope_W"])),
        n_additional_refs: u(&kw["rope_ref_T"]["additional_ref"]),
        replace: entry["case_params"]["replace"]
            .as_bool()
            .expect("replace flag"),
    }
}

#[test]
fn rope_fixtures_cover_every_mode() {
    let m = fixtures::manifest();
    let files = rope_files(&m);
    assert!(
        !files.is_empty(),
        "no rope_* fixtures in {:?}",
        fixtures::dir()
    );
}

#[test]
fn rope_layout_matches_reference_kwargs() {
    // The shifts the reference builds, re-derived from (n_additional_refs, replace) alone.
    let m = fixtures::manifest();
    for file in rope_files(&m) {
        let entry = &m["files"][&file];
        let r = layout(entry);
        let kw = &entry["rope_kwargs"];
        let n = r.n_additional_refs as u64;
        let video_t = n + u64::from(!r.replace);
        let ref_h = if r.replace { 120 } else { 0 };
        assert_eq!(kw["rope_T_shift"]["ref"], n, "{file}");
        assert_eq!(kw["rope_T_shift"]["video"], video_t, "{file}");
        assert_eq!(kw["rope_T_shift"]["pose"], video_t, "{file}");
        assert_eq!(kw["rope_H_shift"]["ref"], ref_h, "{file}");
        assert_eq!(kw["rope_H_shift"]["additional_ref"], ref_h, "{file}");
        assert_eq!(kw["rope_W_shift"]["pose"], 120, "{file}");
        let total = kw["additional_ref_length"].as_u64().unwrap()
            + kw["ref_length"].as_u64().unwrap()
            + kw["seq_length"].as_u64().unwrap()
            + kw["pose_length"].as_u64().unwrap();
        assert_eq!(r.seq_len() as u64, total, "{file}");
    }
}

#[test]
fn rope_frequency_table_matches_f64_reference() {
    let m = fixtures::manifest();
    for file in rope_files(&m) {
        let r = layout(&m["files"][&file]);
        let data = fixtures::load(&file);
        let want = &data["freqs_table_first136"];
        let rows = want.dim(0).unwrap();
        let table = rope::freq_table(r.head_dim, rows).unwrap();
        let flat: Vec<f64> = table
            .iter()
            .flat_map(|row| row.iter().flat_map(|&(c, s)| [c, s]))
            .collect();
        let got = Tensor::from_vec(flat, want.dims(), &Device::Cpu).unwrap();
        fixtures::assert_close(&m, &file, "freqs_table_first136", &got, want);
    }
}

#[test]
fn rope_segment_factors_match() {
    let m = fixtures::manifest();
    for file in rope_files(&m) {
        let r = layout(&m["files"][&file]);
        let data = fixtures::load(&file);
        let s = r.segments().unwrap();
        let dev = Device::Cpu;
        let mut checked = 0;
        for (name, f) in [
            ("out.factors_ref", &s.reference),
            ("out.factors_video", &s.video),
            ("out.factors_pose_pooled", &s.pose),
            ("out.factors_pose_unpooled", &s.pose_unpooled),
            ("out.factors_additional_ref", &s.additional_ref),
        ] {
            let Some(want) = data.get(name) else {
                assert_eq!(
                    f.rows, 0,
                    "{file}: {name} missing but we built {} rows",
                    f.rows
                );
                continue;
            };
            let got = f.interleaved(&dev).unwrap();
            fixtures::assert_close(&m, &file, name, &got, want);
            checked += 1;
        }
        assert!(
            checked >= 4,
            "{file}: only {checked} factor tables compared"
        );
    }
}

#[test]
fn rope_pooled_pose_factors_are_not_unit() {
    // By design: averaged rotations shrink; renormalising them would break parity.
    let r = ScailRope {
        head_dim: 32,
        grid: (2, 4, 4),
        n_additional_refs: 0,
        replace: false,
    };
    let s = r.segments().unwrap();
    let min_mod = s
        .pose
        .re
        .iter()
        .zip(&s.pose.im)
        .map(|(a, b)| (a * a + b * b).sqrt())
        .fold(f64::INFINITY, f64::min);
    assert!(
        min_mod < 0.999,
        "pooled factors unexpectedly unit: {min_mod}"
    );
}

#[test]
fn rope_rotation_matches() {
    let m = fixtures::manifest();
    for file in rope_files(&m) {
        let r = layout(&m["files"][&file]);
        let data = fixtures::load(&file);
        let x = &data["in.x"]; // [1, L, heads, head_dim]
        let (cos, sin) = r.tables(DType::F32, &Device::Cpu).unwrap();
        let xt = x.transpose(1, 2).unwrap().contiguous().unwrap();
        let got = rope::apply(&xt, &cos, &sin)
            .unwrap()
            .transpose(1, 2)
            .unwrap()
            .contiguous()
            .unwrap();
        fixtures::assert_close(&m, &file, "out.x_rotated", &got, &data["out.x_rotated"]);
    }
}

#[test]
fn rope_rejects_positions_beyond_table() {
    let r = ScailRope {
        head_dim: 32,
        grid: (2, 4, rope::MAX_POSITIONS),
        n_additional_refs: 0,
        replace: false,
    };
    assert!(matches!(
        r.segments(),
        Err(rope::RopeError::OutOfTable { axis: "w", .. })
    ));
}
