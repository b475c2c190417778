//! Requests Stage A refuses up front: pose driving for animals, and Stage A models the
//! installation lacks.

use super::*;

#[test]
fn pose_driving_for_animals_is_refused_even_with_user_inputs() {
    let test = "pose_driving_for_animals_is_refused_even_with_user_inputs";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let (ref_mask, drv_mask) = animation_masks(&inp);
    // Masks and a pose video supplied: no model is loaded, the refusal is about the request.
    let pose = media_dir().join("pose_dwpose_skeleton_30fps.mp4");
    let out = d.join("animal.mp4");
    let (success, _, all) = run(&mut generate(
        &inp,
        &out,
        &[
            "--subject-type".as_ref(),
            "animal".as_ref(),
            "--driving-type".as_ref(),
            "pose".as_ref(),
            "--reference-mask".as_ref(),
            ref_mask.as_os_str(),
            "--driving-mask".as_ref(),
            drv_mask.as_os_str(),
            "--pose-video".as_ref(),
            pose.as_os_str(),
        ],
    ));
    assert!(
        !success,
        "pose driving for an animal must be refused:\n{all}"
    );
    assert!(
        // The request rule both front doors share refuses it, before any file is read.
        all.contains("driving_type: pose driving is not available for subject_type 'animal'"),
        "{all}"
    );
    assert!(!out.exists());
}

#[test]
fn pose_driving_for_animals_is_refused_before_any_model_is_loaded() {
    let test = "pose_driving_for_animals_is_refused_before_any_model_is_loaded";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let out = inp.dir.path().join("animal.mp4");
    // No masks (segmentation would be needed) and no ONNX Runtime to be found.
    let (success, _, all) = run(generate(
        &inp,
        &out,
        &[
            "--subject-type".as_ref(),
            "animal".as_ref(),
            "--driving-type".as_ref(),
            "pose".as_ref(),
        ],
    )
    .env_remove("ORT_DYLIB_PATH")
    .env_remove("VIRTUAL_ENV"));
    assert!(!success, "{all}");
    assert!(
        // The request rule both front doors share refuses it, before any file is read.
        all.contains("driving_type: pose driving is not available for subject_type 'animal'"),
        "{all}"
    );
}

/// A Stage A model the request needs but the installation lacks fails the job with the
/// missing path, the command that fetches it, and the inputs that avoid it; no video.
#[test]
fn missing_stage_a_models_are_named_with_the_way_to_get_them() {
    let test = "missing_stage_a_models_are_named_with_the_way_to_get_them";
    let Some(inp) = inputs(test, CLIP_S) else {
        return;
    };
    let d = inp.dir.path();
    let stagea = inp.weights.join("stagea");
    std::fs::remove_dir_all(stagea.join("sam3")).unwrap();
    std::fs::remove_file(stagea.join("dw-ll_ucoco_384.onnx")).unwrap();
    let out = d.join("no_seg.mp4");
    let (success, _, all) = run(&mut generate(&inp, &out, &[]));
    assert!(!success, "segmentation without SAM3 must fail:\n{all}");
    let want = stagea.join("sam3/vision_encoder.onnx");
    assert!(
        all.contains(&format!("segmentation needs {}", want.display()))
            && all.contains("scail weights fetch")
            && all.contains("reference_mask_url and driving_mask_url"),
        "{all}"
    );
    assert!(!out.exists());
    // With both masks supplied segmentation is not needed, but pose still is.
    let (ref_mask, drv_mask) = animation_masks(&inp);
    let out = d.join("no_pose.mp4");
    let (success, _, all) = run(&mut generate(
        &inp,
        &out,
        &with_masks(
            &ref_mask,
            &drv_mask,
            &["--driving-type".as_ref(), "pose".as_ref()],
        ),
    ));
    assert!(!success, "pose without DWPose must fail:\n{all}");
    let want = stagea.join("dw-ll_ucoco_384.onnx");
    assert!(
        all.contains(&format!("pose estimation needs {}", want.display()))
            && all.contains("pose_video_url"),
        "{all}"
    );
    assert!(!out.exists());
}
