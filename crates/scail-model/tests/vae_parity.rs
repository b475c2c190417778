//! Wan 2.1 VAE against the reference: every recorded output of every `vae` case (clips and
//! single images).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use scail_model::fixtures;
use scail_model::vae::WanVae;

/// The `vae` cases whose clip has one frame (`images`) or several.
fn cases(m: &serde_json::Value, images: bool) -> Vec<String> {
    let cases: Vec<String> = fixtures::files_of_kind(m, "vae")
        .into_iter()
        .filter(|f| {
            let e = fixtures::tensor_entry(m, f, "in.video").expect("in.video entry");
            (e["shape"][1].as_u64() == Some(1)) == images
        })
        .collect();
    assert!(!cases.is_empty(), "no vae case with images = {images}");
    cases
}

fn video_case(m: &serde_json::Value) -> String {
    cases(m, false).remove(0)
}

fn build(file: &str) -> WanVae {
    build_in(file, DType::F32)
}

/// f64 runs candle's generic path (the CPU f32 kernels are skipped).
fn build_in(file: &str, dtype: DType) -> WanVae {
    let m = fixtures::manifest();
    let path = fixtures::weights_of(&m, file);
    // SAFETY: read-only mapping of a fixture file nobody writes.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }
        .expect("vae weights");
    WanVae::new(&fixtures::vae_config(&m, file), vb).expect("build vae")
}

fn check(file: &str) {
    let m = fixtures::manifest();
    let vae = build(file);
    let t = fixtures::load(file);
    let video = &t["in.video"];
    let raw = vae.encode_raw(video).unwrap();
    fixtures::assert_close(&m, file, "out.latent_raw_mu", &raw, &t["out.latent_raw_mu"]);
    let lat = vae.encode(video).unwrap();
    fixtures::assert_close(
        &m,
        file,
        "out.latent_normalized",
        &lat,
        &t["out.latent_normalized"],
    );
    // Decode the reference latent, so decode is checked independently of encode.
    let want_lat = &t["out.latent_normalized"];
    let dec = vae.decode_unclamped(want_lat).unwrap();
    fixtures::assert_close(
        &m,
        file,
        "out.decoded_unclamped",
        &dec,
        &t["out.decoded_unclamped"],
    );
    let dec = vae.decode(want_lat).unwrap();
    fixtures::assert_close(&m, file, "out.decoded", &dec, &t["out.decoded"]);
    assert_eq!(dec.dim(1).unwrap(), video.dim(1).unwrap());
}

#[test]
fn vae_video_parity() {
    for file in cases(&fixtures::manifest(), false) {
        check(&file);
    }
}

#[test]
fn vae_image_parity() {
    for file in cases(&fixtures::manifest(), true) {
        check(&file);
    }
}

#[test]
fn frame_mapping() {
    use scail_model::vae::{latent_frames, pixel_frames};
    for k in 0..30 {
        assert_eq!(latent_frames(4 * k + 1), k + 1);
        assert_eq!(pixel_frames(k + 1), 4 * k + 1);
    }
}

#[test]
fn vae_video_generic_path_parity() {
    let m = fixtures::manifest();
    let file = &video_case(&m);
    let vae = build_in(file, DType::F64);
    let t = fixtures::load(file);
    let video = t["in.video"].to_dtype(DType::F64).unwrap();
    let lat = vae.encode(&video).unwrap();
    fixtures::assert_close(
        &m,
        file,
        "out.latent_normalized",
        &lat,
        &t["out.latent_normalized"],
    );
    let dec = vae
        .decode(&t["out.latent_normalized"].to_dtype(DType::F64).unwrap())
        .unwrap();
    fixtures::assert_close(&m, file, "out.decoded", &dec, &t["out.decoded"]);
}

/// Latents at the start and at the end of an axis of `n` that only the first / last tile of
/// `Tiling { tile, overlap }` covers (tiles every `tile - overlap`, the last one flush with the
/// end).
fn single_tile_spans(n: usize, tile: usize, overlap: usize) -> (usize, usize) {
    let step = tile - overlap;
    let second_last = (0..).map(|i| i * step).take_while(|s| s + tile < n).last();
    let second_last = second_last.expect("at least two tiles along the axis");
    (step, n - (second_last + tile))
}

#[test]
fn tiled_decode_matches_untiled() {
    use scail_model::vae::Tiling;
    let file = video_case(&fixtures::manifest());
    let vae = build(&file);
    let t = fixtures::load(&file);
    let z = &t["out.latent_normalized"];
    let (h, w) = (z.dim(2).unwrap(), z.dim(3).unwrap());
    let full = vae.decode(z).unwrap();
    // One tile covering the latent is the plain decode.
    let one = vae
        .decode_tiled(
            z,
            Tiling {
                tile: h.max(w),
                overlap: 1,
            },
        )
        .unwrap();
    assert_eq!(fixtures::max_abs_diff(&one, &full), 0.0);
    // Overlapping tiles.
    // Two latents of overlap, or one where the latent is too small for that.
    let tile = h.min(w) - 1;
    let overlap = 2.min(tile - 1);
    assert!(overlap > 0, "latent {h}x{w} too small to tile");
    let tiled = vae.decode_tiled(z, Tiling { tile, overlap }).unwrap();
    assert_eq!(tiled.dims(), full.dims());
    // Pixels covered by a single tile are exactly that tile's own decode (the blend only acts
    // on the overlaps): check the top-left and bottom-right corners.
    let (top, bottom) = single_tile_spans(h, tile, overlap);
    let (left, right) = single_tile_spans(w, tile, overlap);
    let corner = |y0: usize, x0: usize| {
        let zt = z.narrow(2, y0, tile).unwrap().narrow(3, x0, tile).unwrap();
        vae.decode(&zt).unwrap()
    };
    let crop = |x: &Tensor, y0: usize, x0: usize, hh: usize, ww: usize| {
        x.narrow(2, 8 * y0, 8 * hh)
            .unwrap()
            .narrow(3, 8 * x0, 8 * ww)
            .unwrap()
    };
    let tl = crop(&corner(0, 0), 0, 0, top, left);
    assert_eq!(
        fixtures::max_abs_diff(&crop(&tiled, 0, 0, top, left), &tl),
        0.0
    );
    let br = crop(
        &corner(h - tile, w - tile),
        tile - bottom,
        tile - right,
        bottom,
        right,
    );
    let got = crop(&tiled, h - bottom, w - right, bottom, right);
    assert_eq!(fixtures::max_abs_diff(&got, &br), 0.0);
}
