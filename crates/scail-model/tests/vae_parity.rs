//! Wan 2.1 VAE against the reference: every recorded output of `vae_video9` and `vae_image1`.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use scail_model::fixtures;
use scail_model::vae::{VaeConfig, WanVae};

fn build() -> WanVae {
    build_in(DType::F32)
}

/// f64 runs candle's generic path (the CPU f32 kernels are skipped).
fn build_in(dtype: DType) -> WanVae {
    let m = fixtures::manifest();
    let dim = m["config"]["vae_dim"].as_u64().expect("config.vae_dim") as usize;
    let path = fixtures::dir().join("vae_weights.safetensors");
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[path], dtype, &Device::Cpu) }
        .expect("vae weights");
    WanVae::new(&VaeConfig::with_dim(dim), vb).expect("build vae")
}

fn check(file: &str) {
    let m = fixtures::manifest();
    let vae = build();
    let t = fixtures::load(file);
    let video = &t["in.video"];
    let raw = vae.encode_raw(video).unwrap();
    fixtures::assert_close(&m, file, "out.latent_raw_mu", &raw, &t["out.latent_raw_mu"]);
    let lat = vae.encode(video).unwrap();
    fixtures::assert_close(&m, file, "out.latent_normalized", &lat, &t["out.latent_normalized"]);
    // Decode the reference latent, so decode is checked independently of encode.
    let want_lat = &t["out.latent_normalized"];
    let dec = vae.decode_unclamped(want_lat).unwrap();
    fixtures::assert_close(&m, file, "out.decoded_unclamped", &dec, &t["out.decoded_unclamped"]);
    let dec = vae.decode(want_lat).unwrap();
    fixtures::assert_close(&m, file, "out.decoded", &dec, &t["out.decoded"]);
    assert_eq!(dec.dim(1).unwrap(), video.dim(1).unwrap());
}

#[test]
fn vae_video9_parity() {
    check("vae_video9.safetensors");
}

#[test]
fn vae_image1_parity() {
    check("vae_image1.safetensors");
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
fn vae_video9_generic_path_parity() {
    let m = fixtures::manifest();
    let file = "vae_video9.safetensors";
    let vae = build_in(DType::F64);
    let t = fixtures::load(file);
    let video = t["in.video"].to_dtype(DType::F64).unwrap();
    let lat = vae.encode(&video).unwrap();
    fixtures::assert_close(&m, file, "out.latent_normalized", &lat, &t["out.latent_normalized"]);
    let dec = vae.decode(&t["out.latent_normalized"].to_dtype(DType::F64).unwrap()).unwrap();
    fixtures::assert_close(&m, file, "out.decoded", &dec, &t["out.decoded"]);
}
