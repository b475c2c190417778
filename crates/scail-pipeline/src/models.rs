//! The four networks of a weights folder (as `scail weights` lays it out, official or canonical
//! names), loaded once and kept for many jobs. The 11 GB umT5 encoder is the exception: it is
//! loaded for the text encode of a job and freed right after (unless `keep_text_encoder`). A
//! one-job run (`dit_after_text`) treats CLIP the same and loads the DiT after both.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use candle_core::{DType, Device, Tensor};
use scail_model::clip::ClipVision;
use scail_model::dit::Dit;
use scail_model::lora::{LoraCheckpoint, LoraSpec};
use scail_model::memory::{self, Estimate, JobShape, WeightBytes};
use scail_model::offload::Offload;
use scail_model::t5::T5Encoder;
use scail_model::tokenizer::T5Tokenizer;
use scail_model::vae::WanVae;
use scail_model::weights::{self, Checkpoint, Contract, ModelSize};

use crate::{PipelineError, Result};

/// Precision and placement.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Matmul weights of the DiT, umT5 and CLIP (bf16 for memory; the DiT keeps f32 islands).
    /// The VAE always runs in f32, as the reference does.
    pub dtype: DType,
    pub device: Device,
    /// Keep umT5 loaded between jobs instead of freeing it after each encode.
    pub keep_text_encoder: bool,
    /// LoRAs fused into the DiT weights as they load, in order, each with its scale.
    pub loras: Vec<LoraSpec>,
    /// Where the networks' blocks live between uses (`--offload`).
    pub offload: Offload,
    /// Host memory the jobs may use; detected (cgroup limit, available memory) when unset.
    pub host_memory: Option<u64>,
    /// One-job runs (`generate`): umT5 and CLIP are loaded for their encode and freed, and the
    /// DiT loads after them, so no two are ever resident together.
    pub dit_after_text: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            dtype: DType::F32,
            device: Device::Cpu,
            keep_text_encoder: false,
            loras: Vec::new(),
            offload: Offload::None,
            host_memory: None,
            dit_after_text: false,
        }
    }
}

/// Loaded networks of one weights folder.
pub struct Models {
    pub dir: PathBuf,
    pub contract: Contract,
    /// Loaded at [`Models::load`], or at the first [`Models::dit`] with `dit_after_text`.
    dit: OnceLock<Dit>,
    pub vae: WanVae,
    /// Resident, or (one-job runs, `dit_after_text`) loaded for its encode and freed.
    clip: Mutex<Option<ClipVision>>,
    clip_path: PathBuf,
    pub tokenizer: T5Tokenizer,
    dit_path: PathBuf,
    t5_path: PathBuf,
    t5: Mutex<Option<T5Encoder>>,
    pub opts: LoadOptions,
    /// Every network's size as loaded, for the memory estimate of each job.
    pub weight_bytes: WeightBytes,
}

fn werr(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Weights(e.to_string())
}

/// The VAE runs in bf16 on a GPU for bf16 jobs (half the activation memory, tensor-core
/// convolutions), taking and returning f32; in f32 otherwise, and always on the CPU, whose fast
/// convolution kernels are f32 (the reference runs it in f32).
pub fn vae_dtype(precision: DType, dev: &Device) -> DType {
    if dev.is_cuda() && precision == DType::BF16 {
        DType::BF16
    } else {
        DType::F32
    }
}

fn open_ck(path: &Path) -> Result<Checkpoint> {
    Checkpoint::open(path).map_err(|e| werr(format!("{}: {e}", path.display())))
}

fn open(path: &Path, dtype: DType, dev: &Device) -> Result<candle_nn::VarBuilder<'static>> {
    Ok(open_ck(path)?.var_builder(dtype, dev))
}

/// The DiT's weights with the LoRAs of `loras` fused in; every LoRA key is checked against
/// the checkpoint here, before any weight is read.
fn open_dit(
    path: &Path,
    loras: &[LoraSpec],
    dtype: DType,
    dev: &Device,
) -> Result<candle_nn::VarBuilder<'static>> {
    if loras.is_empty() {
        return open(path, dtype, dev);
    }
    let base = Checkpoint::open(path).map_err(|e| werr(format!("{}: {e}", path.display())))?;
    let fused = LoraCheckpoint::open(base, loras).map_err(werr)?;
    for s in fused.skipped() {
        tracing::warn!("LoRA {}: key `{}`: {}", s.path.display(), s.key, s.reason);
    }
    Ok(fused.var_builder(dtype, dev))
}

impl Models {
    /// Verifies the folder against the contract of its size (tiny or 14B) and loads the
    /// networks kept between jobs (all but umT5; for a one-job run only the VAE).
    pub fn load(dir: &Path, opts: LoadOptions) -> Result<Self> {
        let report = weights::verify(dir).map_err(|e| werr(format!("{}: {e}", dir.display())))?;
        if !report.ok() {
            return Err(werr(format!(
                "{} is not a complete weights folder:\n{report}",
                dir.display()
            )));
        }
        let contract = Contract::new(report.size);
        let file = |c: &str| -> Result<PathBuf> {
            report
                .components
                .iter()
                .find(|r| r.component == c)
                .and_then(|r| r.file.clone())
                .ok_or_else(|| werr(format!("{}: no {c} checkpoint", dir.display())))
        };
        let dev = &opts.device;
        let dit_path = file("dit")?;
        let t5_path = file("t5")?;
        let weight_bytes = weight_bytes(
            &contract,
            opts.dtype,
            &[&dit_path, &t5_path, &file("clip")?, &file("vae")?],
        )?;
        // The weights alone (at the smallest job) must fit before anything is read.
        check(&weight_bytes, &contract, &opts, &JobShape::SMALLEST)?;
        let dit = OnceLock::new();
        if !opts.dit_after_text {
            let vb = open_dit(&dit_path, &opts.loras, opts.dtype, dev)?;
            let _ = dit.set(Dit::load_offloaded(vb, &contract.dit, opts.offload)?);
        }
        let vae = WanVae::new(
            &contract.vae,
            open(&file("vae")?, vae_dtype(opts.dtype, dev), dev)?,
        )?;
        let clip_path = file("clip")?;
        let clip = if opts.dit_after_text {
            None
        } else {
            let vb = open(&clip_path, opts.dtype, dev)?;
            Some(ClipVision::new_offloaded(&contract.clip, vb, opts.offload)?)
        };
        let tok_path = report
            .tokenizer
            .clone()
            .or_else(|| weights::find_tokenizer(dir))
            .ok_or_else(|| werr(format!("{}: no umT5 tokenizer.json", dir.display())))?;
        let tokenizer = T5Tokenizer::from_file(&tok_path).map_err(werr)?;
        let me = Self {
            dir: dir.to_path_buf(),
            contract,
            dit,
            vae,
            clip: Mutex::new(clip),
            clip_path,
            tokenizer,
            dit_path,
            t5_path,
            t5: Mutex::new(None),
            opts,
            weight_bytes,
        };
        if me.opts.keep_text_encoder {
            let t5 = me.load_t5()?;
            *me.t5.lock().unwrap_or_else(|e| e.into_inner()) = Some(t5);
        }
        Ok(me)
    }

    /// Reloads the DiT with `loras` fused in (the base file again, then each LoRA), unless
    /// that set is already loaded. The new weights are built before the old ones go, so a LoRA
    /// that does not fit leaves the loaded model as it was (at the cost of both in memory for
    /// the moment of the swap).
    pub fn set_loras(&mut self, loras: &[LoraSpec]) -> Result<()> {
        if self.opts.loras == loras {
            return Ok(());
        }
        if self.dit.get().is_some() {
            let vb = open_dit(&self.dit_path, loras, self.opts.dtype, &self.opts.device)?;
            self.dit = OnceLock::from(Dit::load_offloaded(
                vb,
                &self.contract.dit,
                self.opts.offload,
            )?);
        }
        self.opts.loras = loras.to_vec();
        Ok(())
    }

    /// The DiT, loaded now if it was deferred (`dit_after_text`).
    pub fn dit(&self) -> Result<&Dit> {
        if let Some(d) = self.dit.get() {
            return Ok(d);
        }
        let o = &self.opts;
        let vb = open_dit(&self.dit_path, &o.loras, o.dtype, &o.device)?;
        let _ = self
            .dit
            .set(Dit::load_offloaded(vb, &self.contract.dit, o.offload)?);
        Ok(self.dit.get().expect("just set"))
    }

    pub fn size(&self) -> ModelSize {
        self.contract.size
    }

    /// Peak memory of a job of `shape` with these weights and options, or the error that
    /// names the offload mode that would fit.
    pub fn check_memory(&self, shape: &JobShape) -> Result<Estimate> {
        check(&self.weight_bytes, &self.contract, &self.opts, shape)
    }

    fn load_t5(&self) -> Result<T5Encoder> {
        let ck = open_ck(&self.t5_path)?;
        let stored = ck
            .meta("token_embedding.weight")
            .map_or(self.opts.dtype, |m| m.dtype);
        let vb = ck.var_builder(self.opts.dtype, &self.opts.device);
        Ok(T5Encoder::new_offloaded(
            &self.contract.t5,
            vb,
            self.opts.offload,
            stored,
        )?)
    }

    /// CLIP tokens `[1, 257, 1280]` (f32) of a preprocessed image `[1, 3, 224, 224]` on the
    /// models' device. Loads the tower if needed; a one-job run frees it afterwards.
    pub fn encode_image(&self, pixels: &Tensor) -> Result<Tensor> {
        let mut guard = self.clip.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            let vb = open(&self.clip_path, self.opts.dtype, &self.opts.device)?;
            *guard = Some(ClipVision::new_offloaded(
                &self.contract.clip,
                vb,
                self.opts.offload,
            )?);
        }
        let out = guard
            .as_ref()
            .expect("just loaded")
            .forward(pixels)?
            .to_dtype(DType::F32)?;
        if self.opts.dit_after_text {
            *guard = None;
        }
        Ok(out)
    }

    /// umT5 features `[n, text_dim]` of each prompt (EOS included, trimmed to the real length).
    /// Loads the encoder if needed and frees it afterwards unless it is kept.
    pub fn encode_text(&self, prompts: &[&str]) -> Result<Vec<Tensor>> {
        let mut guard = self.t5.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(self.load_t5()?);
        }
        let t5 = guard.as_ref().expect("just loaded");
        let mut out = Vec::with_capacity(prompts.len());
        for p in prompts {
            let ids = self
                .tokenizer
                .encode(p)
                .map_err(|e| PipelineError::Input(format!("prompt: {e}")))?;
            out.push(t5.encode(&ids)?.to_dtype(DType::F32)?);
        }
        if !self.opts.keep_text_encoder {
            *guard = None;
        }
        Ok(out)
    }
}

/// Sizes of the networks in `paths` (DiT, umT5, CLIP, VAE) as they will be loaded.
fn weight_bytes(contract: &Contract, dtype: DType, paths: &[&PathBuf; 4]) -> Result<WeightBytes> {
    let cks = paths
        .iter()
        .map(|p| open_ck(p))
        .collect::<Result<Vec<_>>>()?;
    let emb = cks[1]
        .meta("token_embedding.weight")
        .map_or(dtype, |m| m.dtype);
    let sizes = |i: usize| memory::tensor_sizes(&cks[i], i == 0);
    Ok(WeightBytes::from_tensors(
        contract,
        dtype,
        &sizes(0),
        &sizes(1),
        emb,
        &sizes(2),
        &sizes(3),
    ))
}

/// The estimate of `shape` against the host memory budget.
fn check(
    w: &WeightBytes,
    contract: &Contract,
    opts: &LoadOptions,
    shape: &JobShape,
) -> Result<Estimate> {
    let budget = opts.host_memory.or_else(memory::host_budget);
    let placement = memory::Placement {
        offload: opts.offload,
        on_gpu: !opts.device.is_cpu(),
        keep_t5: opts.keep_text_encoder,
        dit_after_t5: opts.dit_after_text,
    };
    memory::check(w, &contract.dit, shape, placement, budget).map_err(PipelineError::Memory)
}
