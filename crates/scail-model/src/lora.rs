//! LoRAs and weight deltas fused into the DiT's weights as they load.
//!
//! Formats (safetensors, or a PyTorch zip), told apart by each key's suffix:
//! - ComfyUI / kijai: `MODULE.lora_down.weight`, `MODULE.lora_up.weight`, optional `MODULE.alpha`;
//! - diffusers / PEFT: `MODULE.lora_A.weight` (down), `MODULE.lora_B.weight` (up), `MODULE`
//!   in the Wan layout or as the diffusers `WanTransformer3DModel` names it
//!   (`blocks.0.attn1.to_q`, `blocks.0.ffn.net.0.proj`, `condition_embedder.…`);
//! - full deltas: `MODULE.diff` (added to the weight) and `MODULE.diff_b` (to the bias);
//! - kohya / musubi-tuner: the ComfyUI suffixes on `lora_unet_` + the module path with
//!   underscores for dots (`lora_unet_blocks_0_self_attn_q.lora_down.weight`).
//!
//! `MODULE` is a DiT weight name in the Wan layout behind any community prefix
//! (`diffusion_model.`, `base_model.model.`, `transformer.`, ...) or a SAT key of the official
//! checkpoint; both go through the checkpoint's own key map ([`to_canonical`]), so a LoRA on
//! the fused SAT `query_key_value` patches q, k and v.
//!
//! Fusing: `W' = W + scale · (alpha / rank) · up @ down` (alpha defaults to the rank) and
//! `W' = W + scale · diff`, computed in f32 when a weight is read, then cast to the run's dtype.
//! Every key is checked against the base checkpoint when the LoRAs are opened, before any
//! weight is read: a key that patches no DiT weight, a rank or a shape that does not fit is an
//! error naming the file and the key. One exception, reported by [`LoraCheckpoint::skipped`]:
//! the vanilla Wan 2.1 I2V input projection that step-distillation LoRAs carry is skipped, since
//! refusing it would refuse the LoRA SCAIL-2 users run most. The files on disk are never
//! modified.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

use crate::checkpoint::{
    diffusers_to_wan, strip_wan_prefix, to_canonical, Checkpoint, RawCheckpoint, WeightsError,
};

/// One LoRA file and the strength it is applied with.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    pub path: PathBuf,
    pub scale: f64,
}

impl std::str::FromStr for LoraSpec {
    type Err = String;

    /// `FILE` (scale 1) or `FILE=SCALE`.
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (path, scale) = match s.rsplit_once('=') {
            Some((p, sc)) => {
                let scale: f64 = sc
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{s}`: bad LoRA scale `{sc}` (expected FILE=SCALE)"))?;
                if !scale.is_finite() {
                    return Err(format!("`{s}`: the LoRA scale must be finite"));
                }
                (p, scale)
            }
            None => (s, 1.0),
        };
        if path.is_empty() {
            return Err(format!("`{s}`: no LoRA file"));
        }
        Ok(Self {
            path: PathBuf::from(path),
            scale,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoraError {
    #[error("LoRA {}: {source}", path.display())]
    Open {
        path: PathBuf,
        source: Box<WeightsError>,
    },
    #[error("LoRA {}: key `{key}`: {msg}", path.display())]
    Key {
        path: PathBuf,
        key: String,
        msg: String,
    },
}

pub type Result<T> = std::result::Result<T, LoraError>;

/// What one stored tensor of a LoRA file is, by its key's suffix.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Part {
    Down,
    Up,
    Alpha,
    Diff,
    DiffBias,
}

const SUFFIXES: [(&str, Part); 7] = [
    (".lora_down.weight", Part::Down),
    (".lora_up.weight", Part::Up),
    (".lora_A.weight", Part::Down),
    (".lora_B.weight", Part::Up),
    (".alpha", Part::Alpha),
    (".diff_b", Part::DiffBias),
    (".diff", Part::Diff),
];

fn split_key(key: &str) -> Option<(&str, Part)> {
    SUFFIXES
        .iter()
        .find_map(|(s, part)| key.strip_suffix(s).map(|m| (m, *part)))
}

/// How one base tensor changes.
#[derive(Debug, Clone)]
enum Delta {
    /// `factor · up @ down`, factor = scale · alpha / rank.
    LowRank {
        up: String,
        down: String,
        factor: f64,
    },
    /// `scale · diff`.
    Full { diff: String, scale: f64 },
}

/// One delta on one canonical tensor: from file `file`, part `index` of `parts` equal chunks
/// along dim 0 of the stored up / diff tensor (a fused SAT tensor patches several weights).
#[derive(Debug, Clone)]
struct Patch {
    file: usize,
    delta: Delta,
    index: usize,
    parts: usize,
}

/// A base checkpoint with LoRAs fused into it as tensors are read; a candle `VarBuilder`
/// backend like [`Checkpoint`].
pub struct LoraCheckpoint {
    base: Checkpoint,
    files: Vec<RawCheckpoint>,
    patches: BTreeMap<String, Vec<Patch>>,
    skipped: Vec<Skipped>,
    /// Base names with dots as underscores, for kohya / musubi-tuner keys.
    kohya: HashMap<String, String>,
}

/// kohya / musubi-tuner LoRAs name a module by its path with dots turned to underscores
/// (`lora_unet_blocks_0_self_attn_q`); Wan names never collide that way.
const KOHYA_PREFIX: &str = "lora_unet_";

/// A LoRA key deliberately left out (see [`LoraCheckpoint::skipped`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Skipped {
    pub path: PathBuf,
    pub key: String,
    pub reason: String,
}

/// The stored keys of one module of a LoRA file.
#[derive(Default)]
struct Module {
    down: Option<String>,
    up: Option<String>,
    alpha: Option<String>,
    diff: Option<String>,
    diff_b: Option<String>,
}

impl LoraCheckpoint {
    /// Opens every LoRA in `specs` and checks each of its keys against `base` (names, ranks and
    /// shapes) without reading any base weight.
    pub fn open(base: Checkpoint, specs: &[LoraSpec]) -> Result<Self> {
        let kohya = base
            .metas()
            .map(|(n, _)| (n.replace('.', "_"), n.clone()))
            .collect();
        let mut me = Self {
            base,
            files: Vec::new(),
            patches: BTreeMap::new(),
            skipped: Vec::new(),
            kohya,
        };
        for spec in specs {
            me.add(spec)?;
        }
        Ok(me)
    }

    /// Keys left out: only a vanilla Wan 2.1 I2V input projection (`patch_embedding`, 36 input
    /// channels where SCAIL-2's takes 20), which the step-distillation LoRAs carry as a `.diff`;
    /// with no meaningful way to apply it, that module (bias included) is skipped, not refused,
    /// so the rest of the LoRA applies. Every other misfit is an error.
    pub fn skipped(&self) -> &[Skipped] {
        &self.skipped
    }

    /// Canonical names of the base tensors some LoRA changes.
    pub fn patched(&self) -> impl Iterator<Item = &String> {
        self.patches.keys()
    }

    fn add(&mut self, spec: &LoraSpec) -> Result<()> {
        let path = spec.path.as_path();
        let raw = RawCheckpoint::open(path).map_err(|source| LoraError::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        })?;
        let key_err = |key: &str, msg: String| LoraError::Key {
            path: path.to_path_buf(),
            key: key.to_string(),
            msg,
        };
        let mut modules: BTreeMap<&str, Module> = BTreeMap::new();
        for key in raw.metas().keys() {
            let (module, part) = split_key(key).ok_or_else(|| {
                key_err(
                    key,
                    "not a LoRA tensor (expected .lora_down/.lora_up/.lora_A/.lora_B.weight, \
                     .alpha, .diff or .diff_b)"
                        .into(),
                )
            })?;
            let m = modules.entry(module).or_default();
            let slot = match part {
                Part::Down => &mut m.down,
                Part::Up => &mut m.up,
                Part::Alpha => &mut m.alpha,
                Part::Diff => &mut m.diff,
                Part::DiffBias => &mut m.diff_b,
            };
            if let Some(other) = slot.replace(key.clone()) {
                return Err(key_err(key, format!("same tensor as `{other}`")));
            }
        }
        let file = self.files.len();
        let mut found: Vec<(String, Patch)> = Vec::new();
        for (module, m) in &modules {
            if let Some(reason) = self.foreign_input_projection(&raw, module, m) {
                for key in [&m.down, &m.up, &m.alpha, &m.diff, &m.diff_b]
                    .into_iter()
                    .flatten()
                {
                    self.skipped.push(Skipped {
                        path: path.to_path_buf(),
                        key: key.clone(),
                        reason: reason.clone(),
                    });
                }
                continue;
            }
            match (&m.down, &m.up) {
                (Some(down), Some(up)) => {
                    found.extend(self.low_rank(&raw, file, spec.scale, module, down, up, m)?)
                }
                (Some(k), None) | (None, Some(k)) => {
                    return Err(key_err(
                        k,
                        "lora_down and lora_up must come in pairs".into(),
                    ))
                }
                (None, None) => {
                    if let Some(a) = &m.alpha {
                        return Err(key_err(a, "alpha without lora_down / lora_up".into()));
                    }
                }
            }
            // A weight diff may name the tensor itself (`blocks.0.modulation.diff`).
            let full = [
                (
                    &m.diff,
                    vec![format!("{module}.weight"), module.to_string()],
                ),
                (&m.diff_b, vec![format!("{module}.bias")]),
            ];
            for (key, candidates) in full {
                let Some(key) = key else { continue };
                let targets = candidates
                    .iter()
                    .find_map(|c| self.targets(c))
                    .ok_or_else(|| key_err(key, no_weight(&candidates[0])))?;
                let stored = &raw.metas()[key].shape;
                for (name, index, parts) in targets {
                    let want = fused_shape(self.shape(&name), parts);
                    if *stored != want {
                        return Err(key_err(
                            key,
                            format!("shape mismatch: diff is {stored:?}, `{name}` needs {want:?}"),
                        ));
                    }
                    let delta = Delta::Full {
                        diff: key.clone(),
                        scale: spec.scale,
                    };
                    found.push((
                        name,
                        Patch {
                            file,
                            delta,
                            index,
                            parts,
                        },
                    ));
                }
            }
        }
        for (name, patch) in found {
            self.patches.entry(name).or_default().push(patch);
        }
        self.files.push(raw);
        Ok(())
    }

    /// Why `module` is another model's input projection: it targets `patch_embedding` with the
    /// right width and kernel but another number of input channels (vanilla Wan 2.1 I2V has 36).
    fn foreign_input_projection(
        &self,
        raw: &RawCheckpoint,
        module: &str,
        m: &Module,
    ) -> Option<String> {
        let weight = format!("{module}.weight");
        let targets = self.targets(&weight)?;
        let [(name, _, 1)] = targets.as_slice() else {
            return None;
        };
        if name != "patch_embedding.weight" {
            return None;
        }
        let base = self.shape(name);
        // The stored tensor whose dim 1 is the input channels: the diff or lora_down.
        let key = m.diff.as_ref().or(m.down.as_ref())?;
        let got = &raw.metas()[key].shape;
        let width_ok = m.diff.is_none() || got.first() == base.first();
        let foreign = got.len() == base.len()
            && base.len() > 2
            && width_ok
            && got[2..] == base[2..]
            && got[1] != base[1];
        foreign.then(|| {
            format!(
                "input projection of another model ({} input channels, SCAIL-2's `{name}` \
                 takes {}): skipped with its bias",
                got[1], base[1]
            )
        })
    }

    /// Canonical targets of a stored name when every one of them is a base tensor.
    fn targets(&self, key: &str) -> Option<Vec<(String, usize, usize)>> {
        if let Some(rest) = key.strip_prefix(KOHYA_PREFIX) {
            let name = self.kohya.get(&rest.replace('.', "_"))?;
            return Some(vec![(name.clone(), 0, 1)]);
        }
        let t = to_canonical(key);
        if t.iter().all(|(n, _, _)| self.base.contains(n)) {
            return Some(t);
        }
        // A LoRA trained on the diffusers model names its modules the diffusers way.
        let wan = diffusers_to_wan(strip_wan_prefix(key))?;
        self.base.contains(&wan).then(|| vec![(wan, 0, 1)])
    }

    fn shape(&self, name: &str) -> &[usize] {
        self.base.meta(name).map_or(&[], |m| m.shape.as_slice())
    }

    /// The patches of one lora_down / lora_up pair, checked against the base shapes.
    #[allow(clippy::too_many_arguments)]
    fn low_rank(
        &self,
        raw: &RawCheckpoint,
        file: usize,
        scale: f64,
        module: &str,
        down: &str,
        up: &str,
        m: &Module,
    ) -> Result<Vec<(String, Patch)>> {
        let key_err = |key: &str, msg: String| LoraError::Key {
            path: raw.path().to_path_buf(),
            key: key.to_string(),
            msg,
        };
        let ds = &raw.metas()[down].shape;
        let us = &raw.metas()[up].shape;
        let rank = ds.first().copied().unwrap_or(0);
        if ds.len() < 2 || rank == 0 {
            return Err(key_err(
                down,
                format!("lora_down of shape {ds:?} has no rank"),
            ));
        }
        // up is [out, rank] (trailing 1s for a convolution's LoRA).
        if us.len() < 2 || us[1] != rank || us[2..].iter().any(|&d| d != 1) {
            return Err(key_err(
                up,
                format!("rank mismatch: lora_up is {us:?}, lora_down {ds:?} has rank {rank}"),
            ));
        }
        let alpha = match &m.alpha {
            None => rank as f64,
            Some(a) => {
                let t = raw.load(a).map_err(|e| key_err(a, e.to_string()))?;
                if t.elem_count() != 1 {
                    return Err(key_err(a, format!("alpha is {:?}, not a scalar", t.dims())));
                }
                let v = t
                    .flatten_all()
                    .and_then(|t| t.to_dtype(DType::F64))
                    .and_then(|t| t.to_vec1::<f64>())
                    .map_err(|e| key_err(a, e.to_string()))?;
                v[0]
            }
        };
        let weight = format!("{module}.weight");
        let targets = self
            .targets(&weight)
            .ok_or_else(|| key_err(down, no_weight(&weight)))?;
        let mut out = Vec::new();
        for (name, index, parts) in targets {
            let base = self.shape(&name);
            let mut delta_shape = vec![us[0]];
            delta_shape.extend_from_slice(&ds[1..]);
            if base.len() < 2 || delta_shape != fused_shape(base, parts) {
                return Err(key_err(
                    down,
                    format!(
                        "shape mismatch: lora_up {us:?} @ lora_down {ds:?} gives {delta_shape:?}, \
                         `{name}` is {base:?}{}",
                        if parts > 1 {
                            format!(" (part {} of {parts})", index + 1)
                        } else {
                            String::new()
                        }
                    ),
                ));
            }
            let delta = Delta::LowRank {
                up: up.to_string(),
                down: down.to_string(),
                factor: scale * alpha / rank as f64,
            };
            let patch = Patch {
                file,
                delta,
                index,
                parts,
            };
            out.push((name, patch));
        }
        Ok(out)
    }

    /// One canonical tensor on the CPU: as stored when no LoRA touches it, else fused in f32.
    pub fn load(&self, name: &str) -> std::result::Result<Tensor, WeightsError> {
        let w = self.base.load(name)?;
        let Some(patches) = self.patches.get(name) else {
            return Ok(w);
        };
        let mut w = w.to_dtype(DType::F32)?;
        for p in patches {
            let d = self.delta(p, w.dims())?;
            w = (w + d)?;
        }
        Ok(w)
    }

    /// One patch's change to a tensor of shape `shape`, in f32.
    fn delta(&self, p: &Patch, shape: &[usize]) -> std::result::Result<Tensor, WeightsError> {
        let raw = &self.files[p.file];
        let part = |key: &str| -> std::result::Result<Tensor, WeightsError> {
            let t = raw.load(key)?.to_dtype(DType::F32)?;
            if p.parts == 1 {
                return Ok(t);
            }
            let n = t.dim(0)? / p.parts;
            Ok(t.narrow(0, p.index * n, n)?)
        };
        Ok(match &p.delta {
            Delta::LowRank { up, down, factor } => {
                let up = part(up)?;
                let down = raw.load(down)?.to_dtype(DType::F32)?;
                let rank = down.dim(0)?;
                let up = up.reshape((up.dim(0)?, rank))?;
                let down = down.reshape((rank, ()))?;
                (up.matmul(&down)? * *factor)?.reshape(shape)?
            }
            Delta::Full { diff, scale } => (part(diff)? * *scale)?.reshape(shape)?,
        })
    }

    /// [`LoraCheckpoint::load`]; a weight no LoRA touches may stay fp8 (a patched one is
    /// fused in f32, and its scale hidden so that nothing widens it twice).
    pub fn load_fp8(&self, name: &str) -> std::result::Result<Tensor, WeightsError> {
        if self.patches.contains_key(name) {
            return self.load(name);
        }
        self.base.load_fp8(name)
    }

    /// Present in the base, except the fp8 scale of a patched weight (it is fused in f32).
    fn contains(&self, name: &str) -> bool {
        if let Some(layer) = name.strip_suffix(".scale_weight") {
            if self.patches.contains_key(&format!("{layer}.weight")) {
                return false;
            }
        }
        self.base.contains(name)
    }

    /// A `VarBuilder` over the fused weights (converted to `dtype` after fusing).
    pub fn var_builder(self, dtype: DType, dev: &Device) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self), dtype, dev.clone())
    }
}

fn no_weight(name: &str) -> String {
    let canonical: Vec<String> = to_canonical(name).into_iter().map(|(n, _, _)| n).collect();
    format!(
        "patches no DiT weight (looked for `{}`)",
        canonical.join("`, `")
    )
}

/// The shape of a stored tensor holding `parts` tensors of shape `base` along dim 0.
fn fused_shape(base: &[usize], parts: usize) -> Vec<usize> {
    let mut s = base.to_vec();
    if let Some(d) = s.first_mut() {
        *d *= parts;
    }
    s
}

crate::checkpoint::reader::simple_backend!(LoraCheckpoint, |this, name| this.contains(name));
