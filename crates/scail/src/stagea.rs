//! `scail stagea`: Stage A alone (segmentation, pose), writing what the DiT would see so it can
//! be checked, edited and passed back to `generate` (`--reference-mask`, `--driving-mask`).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use scail_core::schema::{DrivingType, Mode, Resolution, SubjectType};
use scail_core::Fields;
use scail_pipeline::job::{run_stage_a_only, RunOptions};

#[derive(Args, Debug)]
pub struct StageAArgs {
    /// Reference character image.
    #[arg(long)]
    image: PathBuf,
    /// Driving video.
    #[arg(long)]
    video: PathBuf,
    /// Folder for reference_mask.png, driving_mask.mkv (lossless FFV1), driving_video.mp4 and
    /// preview.mp4.
    #[arg(long)]
    out: PathBuf,
    /// animation or replacement.
    #[arg(long, default_value_t)]
    mode: Mode,
    /// end_to_end or pose.
    #[arg(long, default_value_t)]
    driving_type: DrivingType,
    /// human or animal.
    #[arg(long, default_value_t)]
    subject_type: SubjectType,
    /// 512p or 704p (orientation from the reference image).
    #[arg(long, default_value_t)]
    resolution: Resolution,
    /// WxH overriding --resolution (multiples of 32).
    #[arg(long, value_parser = crate::generate::parse_size)]
    size: Option<(u32, u32)>,
    /// Palette-coded reference mask (skips segmentation of the reference).
    #[arg(long)]
    reference_mask: Option<PathBuf>,
    /// Palette-coded driving mask video (skips segmentation of the driving video).
    #[arg(long)]
    driving_mask: Option<PathBuf>,
    /// Pre-rendered skeleton video for --driving-type pose.
    #[arg(long)]
    pose_video: Option<PathBuf>,
    /// Folder of the Stage A ONNX models (default WEIGHTS/stagea with --weights).
    #[arg(long)]
    stagea_dir: Option<PathBuf>,
    /// Weights folder whose stagea/ holds the Stage A models.
    #[arg(long, env = "SCAIL_WEIGHTS")]
    weights: Option<PathBuf>,
    /// Also write every driving-mask frame as a PNG (OUT/driving_mask/00000.png, ...).
    #[arg(long)]
    png_frames: bool,
}

pub fn run(a: StageAArgs) -> anyhow::Result<()> {
    // The same validation as a request (the prompt plays no part in Stage A).
    #[allow(clippy::needless_update)]
    let fields = Fields {
        prompt: Some(String::new()),
        image_url: Some(a.image.clone()),
        video_url: Some(a.video.clone()),
        mode: Some(a.mode),
        driving_type: Some(a.driving_type),
        subject_type: Some(a.subject_type),
        resolution: Some(a.resolution),
        reference_mask_url: a.reference_mask.clone(),
        driving_mask_url: a.driving_mask.clone(),
        pose_video_url: a.pose_video.clone(),
        ..Fields::default()
    };
    let input = crate::generate::validate_local(fields)?;
    let stagea_dir = a.stagea_dir.clone().or_else(|| {
        a.weights
            .as_ref()
            .map(|w| w.join("stagea"))
            .filter(|d| d.is_dir())
    });
    let run = RunOptions {
        size: a.size,
        stagea_dir,
        ..RunOptions::default()
    };
    let bar = crate::generate::Bar {
        start: Instant::now(),
    };
    let files = run_stage_a_only(&input, &run, &a.out, a.png_frames, &bar)?;
    println!("{}", serde_json::to_string(&files)?);
    Ok(())
}
