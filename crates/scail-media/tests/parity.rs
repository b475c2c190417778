//! Parity with the reference preprocessing (fixtures `clip_preprocess` and `mask_compress`).
//! Sizes come from the fixture folder's manifest; tolerances are the manifest's.

mod common;

use common::{assert_matches, load, manifest, Fx};
use scail_media::mask::{
    compress_mask, driving_mask_latent, mask_video_tensor, reference_mask_latent,
};
use scail_media::resize::{
    clip_preprocess, cover_crop, half_bilinear, normalize_video_u8, oriented_target,
    reference_image_to_model, video_frame_resize_crop,
};
use scail_media::{ImageU8, Tensor};

const CLIP: &str = "clip_preprocess.safetensors";
const MASK: &str = "mask_compress.safetensors";

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

fn hwc_image(fx: &Fx) -> ImageU8 {
    let [h, w, c]: [usize; 3] = fx.shape.as_slice().try_into().unwrap();
    ImageU8::from_vec(w, h, c, fx.u8s())
}

fn check_image_case(prefix: &str, target_key: &str) {
    let m = manifest();
    let fx = load(CLIP);
    let targets = &m["files"][CLIP]["targets"];
    let req = (
        targets[target_key][0].as_u64().unwrap() as usize,
        targets[target_key][1].as_u64().unwrap() as usize,
    );
    let img = hwc_image(&fx[&format!("{prefix}.in.image_u8_hwc")]);
    let (th, tw) = oriented_target(img.height, img.width, req);
    let used = &fx[&format!("{prefix}.out.target_hw_used")];
    assert_matches(
        &m,
        CLIP,
        &format!("{prefix}.out.target_hw_used"),
        used,
        &[2],
        &[th as f64, tw as f64],
    );

    let model_in = reference_image_to_model(&img, th, tw);
    let name = format!("{prefix}.out.image_model_input");
    let d = assert_matches(
        &m,
        CLIP,
        &name,
        &fx[&name],
        &[3, th, tw],
        &f64s(&model_in.to_chw()),
    );
    eprintln!("{name}: max diff {d:e}");

    let clip = clip_preprocess(&model_in);
    let name = format!("{prefix}.out.clip_input_224");
    let d = assert_matches(&m, CLIP, &name, &fx[&name], &clip.shape, &f64s(&clip.data));
    eprintln!("{name}: max diff {d:e}");
}

#[test]
fn clip_preprocess_landscape() {
    check_image_case("landscape", "target");
}

#[test]
fn clip_preprocess_portrait_swaps_target() {
    check_image_case("portrait", "target_portrait");
}

#[test]
fn pose_frames_uint8_resize_normalise_half() {
    let m = manifest();
    let fx = load(CLIP);
    let t = &m["files"][CLIP]["targets"]["pose_target"];
    let (th, tw) = (
        t[0].as_u64().unwrap() as usize,
        t[1].as_u64().unwrap() as usize,
    );
    let input = &fx["pose.in.frames_u8_tchw"];
    let [n, c, h, w]: [usize; 4] = input.shape.as_slice().try_into().unwrap();
    let cc = cover_crop(h, w, th, tw);
    let mut resized = Vec::new();
    for f in 0..n {
        let chw = &input.u8s()[f * c * h * w..(f + 1) * c * h * w];
        let img = ImageU8::from_chw(w, h, c, chw);
        resized.extend(video_frame_resize_crop(&img, &cc).to_chw());
    }
    let got: Vec<f64> = resized.iter().map(|&v| v as f64).collect();
    assert_matches(
        &m,
        CLIP,
        "pose.out.resized_u8",
        &fx["pose.out.resized_u8"],
        &[n, c, th, tw],
        &got,
    );

    let norm: Vec<f32> = resized.iter().map(|&v| normalize_video_u8(v)).collect();
    assert_matches(
        &m,
        CLIP,
        "pose.out.normalized",
        &fx["pose.out.normalized"],
        &[n, c, th, tw],
        &f64s(&norm),
    );

    let half = half_bilinear(&Tensor::new(vec![n, c, th, tw], norm));
    assert_matches(
        &m,
        CLIP,
        "pose.out.half_bilinear",
        &fx["pose.out.half_bilinear"],
        &half.shape,
        &f64s(&half.data),
    );
}

fn mask_frames(fx: &Fx) -> Vec<ImageU8> {
    let [t, h, w, c]: [usize; 4] = fx.shape.as_slice().try_into().unwrap();
    let all = fx.u8s();
    (0..t)
        .map(|f| ImageU8::from_vec(w, h, c, all[f * h * w * c..(f + 1) * h * w * c].to_vec()))
        .collect()
}

#[test]
fn mask_reference_path_exact() {
    let m = manifest();
    let fx = load(MASK);
    let frames = mask_frames(&fx["in.mask_video_u8_thwc"]);
    let lat = reference_mask_latent(&frames[0]).unwrap();
    assert_matches(
        &m,
        MASK,
        "out.ref_mask_latent",
        &fx["out.ref_mask_latent"],
        &lat.shape,
        &f64s(&lat.data),
    );
}

#[test]
fn mask_driving_path_exact() {
    let m = manifest();
    let fx = load(MASK);
    let frames = mask_frames(&fx["in.mask_video_u8_thwc"]);
    let input = mask_video_tensor(&frames).unwrap();
    assert_matches(
        &m,
        MASK,
        "out.driving_mask_input",
        &fx["out.driving_mask_input"],
        &input.shape,
        &f64s(&input.data),
    );
    let half = half_bilinear(&input);
    assert_matches(
        &m,
        MASK,
        "out.driving_mask_half",
        &fx["out.driving_mask_half"],
        &half.shape,
        &f64s(&half.data),
    );
    let lat = driving_mask_latent(&frames).unwrap();
    assert_matches(
        &m,
        MASK,
        "out.driving_mask_latent",
        &fx["out.driving_mask_latent"],
        &lat.shape,
        &f64s(&lat.data),
    );
}

#[test]
fn mask_fullres_video_paths_exact() {
    let m = manifest();
    let fx = load(MASK);
    let frames = mask_frames(&fx["in.mask_video_u8_thwc"]);
    let input = mask_video_tensor(&frames).unwrap();
    let lat = compress_mask(&input, 1).unwrap();
    assert_matches(
        &m,
        MASK,
        "out.fullres_video_mask_latent",
        &fx["out.fullres_video_mask_latent"],
        &lat.shape,
        &f64s(&lat.data),
    );
    let lat2 = compress_mask(&input, 2).unwrap();
    assert_matches(
        &m,
        MASK,
        "out.fullres_video_mask_latent_asd2",
        &fx["out.fullres_video_mask_latent_asd2"],
        &lat2.shape,
        &f64s(&lat2.data),
    );
}

/// The fixture's threshold-probe rows hold 225 and 226: the compression must see 225 as off and
/// 226 as on. This checks the fixture really probes the edge, so the exact match above means
/// something.
#[test]
fn mask_fixture_probes_threshold_edge() {
    let fx = load(MASK);
    let v = fx["in.mask_video_u8_thwc"].u8s();
    assert!(v.contains(&225) && v.contains(&226));
}
