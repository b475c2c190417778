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

#[test]
fn tiled_decode_matches_untiled() {
    use scail_model::vae::Tiling;
    let vae = build();
    let t = fixtures::load("vae_video9.safetensors");
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
    let tiled = vae
        .decode_tiled(
            z,
            Tiling {
                tile: h.min(w) - 1,
                overlap: 2,
            },
        )
        .unwrap();
    assert_eq!(tiled.dims(), full.dims());
    // Pixels covered by a single tile are exactly that tile's own decode (the blend only acts
    // on the overlaps): check the top-left and bottom-right corners.
    let tile = h.min(w) - 1;
    let corner = |y0: usize, x0: usize| {
        let zt = z.narrow(2, y0, tile).unwrap().narrow(3, x0, tile).unwrap();
        vae.decode(&zt).unwrap()
    };
    let own = 8 * (tile - 2); // pixels of a tile outside the 2-latent overlap
    let tl = corner(0, 0)
        .narrow(2, 0, own)
        .unwrap()
        .narrow(3, 0, own)
        .unwrap();
    let got = tiled.narrow(2, 0, own).unwrap().narrow(3, 0, own).unwrap();
    assert_eq!(fixtures::max_abs_diff(&got, &tl), 0.0);
    let (ph, pw) = (8 * h, 8 * w);
    let br = corner(h - tile, w - tile);
    let br = br
        .narrow(2, 8 * tile - own, own)
        .unwrap()
        .narrow(3, 8 * tile - own, own)
        .unwrap();
    let got = tiled
        .narrow(2, ph - own, own)
        .unwrap()
        .narrow(3, pw - own, own)
        .unwrap();
    assert_eq!(fixtures::max_abs_diff(&got, &br), 0.0);
}
