//! Peak memory of a job, estimated before it starts from the checkpoint's tensor sizes, the
//! load precision, the offload mode and the token count, so that a job that cannot fit is
//! refused with the mode that would fit instead of being killed halfway.
//!
//! The accounting follows what the loaders hold: every tensor in the load dtype (fp8_scaled
//! DiT weights at one byte), blocks resident or one at a time by [`Offload`] mode, umT5 loaded
//! for the text encode only, the VAE resident in f32; plus the DiT's activations
//! ([`DitConfig::activation_bytes`]), the VAE decode's working set and the frame buffers.

use candle_core::DType;

use crate::checkpoint::{Checkpoint, Contract, Source};
use crate::dit::DitConfig;
use crate::offload::Offload;

/// One stored tensor as the estimate sees it.
#[derive(Debug, Clone)]
pub struct TensorSize {
    pub name: String,
    pub elems: u64,
    /// Kept as fp8 with its scale (an fp8_scaled DiT weight).
    pub fp8: bool,
}

/// Bytes of one network as loaded: its repeated blocks and the rest.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NetBytes {
    pub blocks: u64,
    pub largest_block: u64,
    pub rest: u64,
}

impl NetBytes {
    pub fn total(&self) -> u64 {
        self.blocks + self.rest
    }

    /// Sizes of `tensors` in `dtype` (fp8 ones at one byte); a tensor whose name starts with
    /// `block_prefix` + an index `< max_blocks` counts in that block, others under the prefix
    /// are not loaded at all, the remainder is `rest`.
    pub fn of(tensors: &[TensorSize], dtype: DType, block_prefix: &str, max_blocks: usize) -> Self {
        let mut per_block = vec![0u64; max_blocks];
        let mut rest = 0;
        for t in tensors {
            let bytes = if t.fp8 {
                t.elems
            } else {
                t.elems * dtype.size_in_bytes() as u64
            };
            match t.name.strip_prefix(block_prefix) {
                Some(tail) => {
                    let i: Option<usize> = tail.split('.').next().and_then(|s| s.parse().ok());
                    if let Some(b) = i.and_then(|i| per_block.get_mut(i)) {
                        *b += bytes;
                    }
                }
                None => rest += bytes,
            }
        }
        Self {
            blocks: per_block.iter().sum(),
            largest_block: per_block.iter().copied().max().unwrap_or(0),
            rest,
        }
    }
}

/// The four networks of a weights folder as loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct WeightBytes {
    pub dit: NetBytes,
    pub t5: NetBytes,
    /// umT5's token embedding as stored (read whole at each encode under `stream`) and as
    /// loaded (part of `t5.rest` when resident).
    pub t5_embedding_stored: u64,
    pub t5_embedding_loaded: u64,
    pub clip: NetBytes,
    pub vae: u64,
}

impl WeightBytes {
    /// From the tensors of each network (`dit`, `t5`, `clip`, `vae`) and their stored dtype
    /// for the umT5 embedding; `dtype` is the load precision (the VAE is always f32).
    pub fn from_tensors(
        contract: &Contract,
        dtype: DType,
        dit: &[TensorSize],
        t5: &[TensorSize],
        t5_embedding_dtype: DType,
        clip: &[TensorSize],
        vae: &[TensorSize],
    ) -> Self {
        let emb = (contract.t5.vocab_size * contract.t5.dim) as u64;
        let clip_visual: Vec<TensorSize> = clip
            .iter()
            .filter(|t| t.name.starts_with("visual."))
            .cloned()
            .collect();
        Self {
            dit: NetBytes::of(dit, dtype, "blocks.", contract.dit.num_layers),
            t5: NetBytes::of(t5, dtype, "blocks.", contract.t5.num_layers),
            t5_embedding_stored: emb * t5_embedding_dtype.size_in_bytes() as u64,
            t5_embedding_loaded: emb * dtype.size_in_bytes() as u64,
            clip: NetBytes::of(
                &clip_visual,
                dtype,
                "visual.transformer.",
                contract.clip.layers.saturating_sub(1),
            ),
            vae: vae.iter().map(|t| t.elems * 4).sum(),
        }
    }

    /// The published layout of `contract` with stored dtypes as given: the official f32 DiT
    /// (`dit_fp8` for an fp8_scaled one: its block matrices at one byte), bf16 umT5.
    pub fn for_contract(contract: &Contract, dtype: DType, dit_fp8: bool) -> Self {
        let sizes = |keys: Vec<(String, Vec<usize>)>, fp8: bool| -> Vec<TensorSize> {
            keys.into_iter()
                .map(|(name, shape)| TensorSize {
                    fp8: fp8 && shape.len() == 2 && name.starts_with("blocks."),
                    elems: shape.iter().product::<usize>() as u64,
                    name,
                })
                .collect()
        };
        Self::from_tensors(
            contract,
            dtype,
            &sizes(contract.dit.weight_shapes(), dit_fp8),
            &sizes(contract.t5.expected_keys(), false),
            DType::BF16,
            &sizes(contract.clip.expected_keys(), false),
            &sizes(contract.vae.expected_keys(), false),
        )
    }
}

/// The tensors of an opened checkpoint (fp8_scaled weights marked when `keep_fp8`).
pub fn tensor_sizes(ck: &Checkpoint, keep_fp8: bool) -> Vec<TensorSize> {
    ck.metas()
        .map(|(name, meta)| TensorSize {
            name: name.clone(),
            elems: meta.shape.iter().product::<usize>() as u64,
            fp8: keep_fp8 && matches!(ck.source(name), Some(Source::Fp8Scaled { .. })),
        })
        .collect()
}

/// What a job runs at: pixel size, frames per segment and the frames of the whole output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobShape {
    pub width: usize,
    pub height: usize,
    pub segment_frames: usize,
    pub total_frames: usize,
    /// Guidance branches run as one batch (2 with classifier-free guidance).
    pub branches: usize,
}

impl JobShape {
    /// The smallest job (32x32, one frame, one branch): what loading the weights must leave
    /// room for.
    pub const SMALLEST: JobShape = JobShape {
        width: 32,
        height: 32,
        segment_frames: 1,
        total_frames: 1,
        branches: 1,
    };

    /// `81` or `81 of 160` (frames per segment of the whole video).
    pub fn frames_label(&self) -> String {
        if self.total_frames == self.segment_frames {
            self.segment_frames.to_string()
        } else {
            format!("{} of {}", self.segment_frames, self.total_frames)
        }
    }

    /// Tokens of one DiT branch: reference + video frames at full latent size, pose at half.
    pub fn tokens(&self, cfg: &DitConfig) -> usize {
        let t = self.segment_frames.saturating_sub(1) / 4 + 1;
        cfg.seq_len((t, self.height / 8, self.width / 8), 0)
    }

    /// Working set outside the DiT: the VAE decode of one latent frame at full resolution (its
    /// widest stage: 96 channels with causal caches, about 12 maps) and the frame buffers (the
    /// output video in f32, the driving video and masks in u8).
    pub fn pixel_bytes(&self) -> u64 {
        let px = (self.width * self.height) as u64;
        let vae = 96 * 12 * px * 4;
        let buffers = self.total_frames as u64 * px * (3 * 4 + 3 + 3 + 3);
        vae + buffers
    }
}

/// Guidance branches the sampler batches: 2 when guidance is on and two branches' activations
/// fit in `batch_limit` bytes, else 1 (the branches then run one after the other).
pub fn guidance_branches(cfg: &DitConfig, tokens: usize, guidance: f64, batch_limit: u64) -> usize {
    if guidance > 1.0 && cfg.activation_bytes(tokens, 2) <= batch_limit {
        2
    } else {
        1
    }
}

/// Peak host and device memory of one job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub offload: Offload,
    pub host: u64,
    /// On a GPU; 0 on the CPU (everything is host memory).
    pub device: u64,
    pub weights_resident: u64,
    pub activations: u64,
}

/// Where the networks live during a job.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Placement {
    pub offload: Offload,
    /// On a GPU (else the device is host memory).
    pub on_gpu: bool,
    /// umT5 stays loaded between jobs (`serve`).
    pub keep_t5: bool,
    /// One-job runs (`generate`): umT5 and then CLIP are loaded for their encode and freed,
    /// and the DiT loads after them, so under `none` no two are resident together.
    pub dit_after_t5: bool,
}

/// The peak of a job at `shape` with weights `w` placed as `p`. umT5 is loaded for the text
/// encode and freed before sampling unless `keep_t5`.
pub fn estimate(w: &WeightBytes, cfg: &DitConfig, shape: &JobShape, p: Placement) -> Estimate {
    let (offload, on_gpu, keep_t5) = (p.offload, p.on_gpu, p.keep_t5);
    if !on_gpu && offload == Offload::Blocks {
        // On the CPU `blocks` keeps every block in host memory: the same as `none`.
        let none = Placement {
            offload: Offload::None,
            ..p
        };
        return Estimate {
            offload,
            ..estimate(w, cfg, shape, none)
        };
    }
    let dit_act = cfg.activation_bytes(shape.tokens(cfg), shape.branches);
    let act = dit_act + shape.pixel_bytes();
    // Outside `none`, three blocks at most: the one in use, the next being read by the
    // prefetch thread, and that read's stored copy while it is converted. A streamed umT5
    // reads its embedding as stored instead of holding it converted.
    let t5_rest = w.t5.rest.saturating_sub(w.t5_embedding_loaded);
    let t5_streamed = w.t5_embedding_stored + t5_rest + 3 * w.t5.largest_block;
    let (resident, t5_phase, sample_phase) = match offload {
        Offload::None if p.dit_after_t5 && !keep_t5 => {
            // umT5, then CLIP, then the DiT: one at a time.
            let encoders = w.t5.total().max(w.clip.total());
            (w.vae, encoders, w.dit.total() + act)
        }
        Offload::None => {
            let r = w.dit.total() + w.clip.total() + w.vae;
            let t5 = if keep_t5 { 0 } else { w.t5.total() };
            (r + if keep_t5 { w.t5.total() } else { 0 }, t5, act)
        }
        Offload::Blocks | Offload::Stream => {
            let r = w.dit.rest + w.clip.rest + w.vae;
            let t5 = if offload == Offload::Stream {
                t5_streamed
            } else {
                w.t5.rest + 3 * w.t5.largest_block
            };
            (
                r,
                t5,
                3 * w.dit.largest_block.max(w.clip.largest_block) + act,
            )
        }
    };
    let device_peak = resident + t5_phase.max(sample_phase);
    if !on_gpu {
        let host = device_peak;
        return Estimate {
            offload,
            host: with_overhead(host),
            device: 0,
            weights_resident: host - act.min(host),
            activations: act,
        };
    }
    // On a GPU the host holds what is not on the device: the blocks (`blocks`) or one block
    // being read (`stream`, `none` while loading).
    let host = match offload {
        Offload::None => 2 * w.dit.largest_block.max(w.t5.largest_block),
        Offload::Blocks => w.dit.blocks + w.clip.blocks + w.t5.blocks,
        Offload::Stream => 3 * w.dit.largest_block + w.t5_embedding_stored,
    };
    Estimate {
        offload,
        host: with_overhead(host),
        device: with_overhead(device_peak),
        weights_resident: resident,
        activations: act,
    }
}

/// What the allocator holds beyond the tensors (freed blocks kept by the allocator, the prefetch
/// thread's own arena): 15%, from the 14B run under `stream` (peak resident 6.2 GiB against 6.0
/// GiB of tensors, bench/offload-14b.sh).
fn with_overhead(bytes: u64) -> u64 {
    bytes + bytes * 15 / 100
}

/// Bytes of host memory this process may use in all: the smaller of its cgroup's limit (v1 or
/// v2) and what the kernel reports available plus what the process already holds (the
/// estimates count the weights already loaded, which are no longer "available").
pub fn host_budget() -> Option<u64> {
    budget(
        kb_field("/proc/meminfo", "MemAvailable:"),
        anon_rss_bytes().unwrap_or(0),
        cgroup_limit(),
    )
}

/// [`host_budget`] from its readings: available memory, what this process holds, the limit.
fn budget(available: Option<u64>, held: u64, limit: Option<u64>) -> Option<u64> {
    match (available.map(|a| a + held), limit) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    }
}

/// Anonymous resident memory of this process now (Linux `RssAnon`: heap and tensors, not the
/// page cache of mapped checkpoint files).
pub fn anon_rss_bytes() -> Option<u64> {
    kb_field("/proc/self/status", "RssAnon:")
}

/// Peak resident set size of this process (Linux `VmHWM`).
pub fn peak_rss_bytes() -> Option<u64> {
    kb_field("/proc/self/status", "VmHWM:")
}

/// A `Key:   N kB` line of a /proc file, in bytes.
fn kb_field(path: &str, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    let kb: u64 = s
        .lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The memory limit of this process's cgroup (v2 `memory.max`, v1 `memory.limit_in_bytes`).
fn cgroup_limit() -> Option<u64> {
    let cg = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
        let file = if ctrl.is_empty() {
            format!("/sys/fs/cgroup{path}/memory.max")
        } else if ctrl.split(',').any(|c| c == "memory") {
            format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
        } else {
            continue;
        };
        if let Ok(v) = std::fs::read_to_string(&file) {
            // "max" (v2) or a huge page-rounded number (v1) mean no limit.
            if let Ok(n) = v.trim().parse::<u64>() {
                if n < (1u64 << 60) {
                    return Some(n);
                }
            }
        }
    }
    None
}

/// `12.3 GiB`, or `512.0 MiB` below a GiB.
pub fn gib(bytes: u64) -> String {
    if bytes < 1 << 30 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    }
}

/// Parses `10GiB`, `10G`, `512MiB`, `512M` or plain bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a size such as 10GiB or 512MiB"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        u => {
            return Err(format!(
                "`{s}`: unknown unit `{u}` (use KiB, MiB, GiB or TiB)"
            ))
        }
    };
    Ok((n * mult as f64) as u64)
}

/// [`estimate`] checked against `budget` bytes of host memory (none: not checked). The error
/// says what the job needs, what is available, and which `--offload` mode would fit, if any.
pub fn check(
    w: &WeightBytes,
    cfg: &DitConfig,
    shape: &JobShape,
    p: Placement,
    budget: Option<u64>,
) -> Result<Estimate, String> {
    let offload = p.offload;
    let est = estimate(w, cfg, shape, p);
    let Some(budget) = budget else {
        return Ok(est);
    };
    if est.host <= budget {
        return Ok(est);
    }
    let what = if *shape == JobShape::SMALLEST {
        "loading these weights".to_string()
    } else {
        format!(
            "this job ({}x{}, {} frames per segment)",
            shape.width, shape.height, shape.segment_frames
        )
    };
    let need = format!(
        "{what} needs about {} of host memory with --offload {offload} ({} of weights, {} of \
         activations and frames), but {} is available (--host-memory sets the budget)",
        gib(est.host),
        gib(est.weights_resident),
        gib(est.activations),
        gib(budget)
    );
    let fits = Offload::ALL
        .into_iter()
        .map(|m| estimate(w, cfg, shape, Placement { offload: m, ..p }))
        .find(|e| e.host <= budget);
    Err(match fits {
        Some(e) => format!(
            "{need}; --offload {} would need about {}: run with --offload {}",
            e.offload,
            gib(e.host),
            e.offload
        ),
        None => {
            let stream = Placement {
                offload: Offload::Stream,
                ..p
            };
            let s = estimate(w, cfg, shape, stream);
            format!(
                "{need}; no offload mode fits (--offload stream needs about {}): use a smaller \
                 size, --precision bf16 or fp8_scaled weights",
                gib(s.host)
            )
        }
    })
}

#[cfg(test)]
#[path = "memory_tests.rs"]
mod tests;
