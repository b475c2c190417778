//! Demo mode (`scail serve --demo`): tiny random weights made once in the data directory, so the
//! whole flow (upload, queue, Stage A, sampling, mp4) runs offline on any machine. Its videos
//! are noise, and every place a user looks says so: the start-up banner, `/health`, each job's
//! log and the output's file name.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use scail_core::generator::{
    GenerateError, GenerateOutput, GenerateRequest, Generator, LogLevel, Progress,
};

/// What `/health` and the banner say about demo weights.
pub const DEMO_NOTE: &str =
    "demo: tiny random weights, every video is noise (run `scail weights fetch` for the real model)";

/// The demo weights folder in `data_dir`, made on first use, with a LoRA folder beside the
/// weights (`demo-weights/loras`) holding one small random LoRA, so requests can try `loras`.
pub fn ensure_weights(data_dir: &Path) -> anyhow::Result<PathBuf> {
    let dir = weights_dir(data_dir);
    let done = dir.join(".complete");
    if !done.exists() {
        eprintln!(
            "demo mode: making tiny random weights in {} …",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        crate::weights::init_random(scail_model::weights::ModelSize::Tiny, &dir, false, 0)?;
        // Written last: a half-made folder from an interrupted start is made again.
        std::fs::write(&done, b"")?;
    }
    // Also for a demo folder made before demo LoRAs existed.
    if !lora_dir(&dir).join(DEMO_LORA).exists() {
        write_demo_lora(&lora_dir(&dir))?;
    }
    Ok(dir)
}

/// Where demo mode keeps its weights.
pub fn weights_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-weights")
}

/// The demo LoRA's file name.
pub const DEMO_LORA: &str = "demo-lora.safetensors";

/// The demo LoRA folder of a demo weights folder.
pub fn lora_dir(weights: &Path) -> PathBuf {
    weights.join("loras")
}

/// A rank-4 kijai-named LoRA on every block's self-attention q and k of the tiny DiT.
fn write_demo_lora(dir: &Path) -> anyhow::Result<()> {
    use candle_core::{Device, Tensor};
    let cfg = scail_model::weights::Contract::new(scail_model::weights::ModelSize::Tiny).dit;
    std::fs::create_dir_all(dir)?;
    let mut m = std::collections::HashMap::new();
    for b in 0..cfg.num_layers {
        for p in ["q", "k"] {
            let k = format!("diffusion_model.blocks.{b}.self_attn.{p}");
            let down = Tensor::randn(0f32, 0.05, (4, cfg.dim), &Device::Cpu)?;
            let up = Tensor::randn(0f32, 0.05, (cfg.dim, 4), &Device::Cpu)?;
            m.insert(format!("{k}.lora_down.weight"), down);
            m.insert(format!("{k}.lora_up.weight"), up);
            m.insert(format!("{k}.alpha"), Tensor::new(4f32, &Device::Cpu)?);
        }
    }
    // Saved under a temporary name and renamed: never a half-written LoRA under the real one.
    let tmp = dir.join(format!(".{DEMO_LORA}.part"));
    candle_core::safetensors::save(&m, &tmp)?;
    std::fs::rename(&tmp, dir.join(DEMO_LORA))?;
    Ok(())
}

/// A generator that labels its output as demo noise.
pub struct DemoGenerator(pub Arc<dyn Generator>);

impl Generator for DemoGenerator {
    fn generate(
        &self,
        request: &GenerateRequest,
        progress: &dyn Progress,
    ) -> Result<GenerateOutput, GenerateError> {
        progress.log(LogLevel::Warn, DEMO_NOTE);
        let mut out = self.0.generate(request, progress)?;
        for f in [
            Some(&mut out.video),
            out.preprocessing_video.as_mut(),
            out.preprocessing_mask_video.as_mut(),
            out.preprocessing_mask_video_lossless.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            f.file_name = format!("demo-noise-{}", f.file_name);
        }
        Ok(out)
    }
}
