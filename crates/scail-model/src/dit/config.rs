//! The DiT hyper-parameters and the key contract of its Wan-layout checkpoint.

use super::{DitError, Result};

/// Width of the CLIP features `img_emb` projects: hard-coded 1280 in the reference.
pub const CLIP_DIM: usize = 1280;
/// Channels appended to every latent stream (history mask for the video, ones elsewhere).
pub const EXTRA_CHANNELS: usize = 4;

/// The DiT hyper-parameters (`SCAIL2Model.__init__`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DitConfig {
    pub patch_size: [usize; 3],
    pub text_len: usize,
    pub in_dim: usize,
    pub mask_dim: usize,
    pub dim: usize,
    pub ffn_dim: usize,
    pub freq_dim: usize,
    pub text_dim: usize,
    pub out_dim: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub qk_norm: bool,
    pub cross_attn_norm: bool,
    pub eps: f64,
}

impl DitConfig {
    /// The released SCAIL-2 14B DiT (`model.md` §2).
    pub fn fourteen_b() -> Self {
        Self {
            patch_size: [1, 2, 2],
            text_len: 512,
            in_dim: 20,
            mask_dim: 28,
            dim: 5120,
            ffn_dim: 13824,
            freq_dim: 256,
            text_dim: 4096,
            out_dim: 16,
            num_heads: 40,
            num_layers: 40,
            qk_norm: true,
            cross_attn_norm: true,
            eps: 1e-6,
        }
    }

    /// From a fixture manifest: either the `config.dit` object itself or the whole manifest.
    pub fn from_manifest(v: &serde_json::Value) -> Result<Self> {
        let v = if v.get("config").is_some() {
            &v["config"]["dit"]
        } else {
            v
        };
        if let Some(mt) = v.get("model_type").and_then(|m| m.as_str()) {
            if mt != "i2v" {
                return Err(DitError::Config(format!(
                    "model_type {mt}: only i2v (image cross-attention) is supported"
                )));
            }
        }
        if let Some(ws) = v.get("window_size").and_then(|w| w.as_array()) {
            if ws.iter().any(|x| x.as_i64() != Some(-1)) {
                return Err(DitError::Config(format!(
                    "window_size {ws:?}: only global attention (-1, -1) is supported"
                )));
            }
        }
        let cfg: Self =
            serde_json::from_value(v.clone()).map_err(|e| DitError::Config(e.to_string()))?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.num_heads
    }

    /// Values per output token: `out_dim × prod(patch)`.
    pub fn head_out(&self) -> usize {
        self.out_dim * self.patch_size.iter().product::<usize>()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(DitError::Config(m));
        if self.num_heads == 0 || !self.dim.is_multiple_of(self.num_heads) {
            return bad(format!(
                "dim {} not divisible by {} heads",
                self.dim, self.num_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) || self.head_dim() < 6 {
            return bad(format!(
                "head_dim {} must be even and >= 6",
                self.head_dim()
            ));
        }
        if !self.freq_dim.is_multiple_of(2) {
            return bad(format!("freq_dim {} must be even", self.freq_dim));
        }
        if self.in_dim <= EXTRA_CHANNELS {
            return bad(format!(
                "in_dim {} must exceed the {EXTRA_CHANNELS} mask channels",
                self.in_dim
            ));
        }
        if !(self.qk_norm && self.cross_attn_norm) {
            return bad(
                "only qk_norm = cross_attn_norm = true (the SCAIL-2 layout) is supported".into(),
            );
        }
        Ok(())
    }

    /// Latent channels: `in_dim` minus the 4 appended mask channels.
    /// Tokens of one branch for a latent grid `(t, h, w)` with `n_add` additional reference
    /// latent frames: additional refs, reference and video streams at full size, pose at half.
    pub fn seq_len(&self, (t, h, w): (usize, usize, usize), n_add: usize) -> usize {
        let [pt, ph, pw] = self.patch_size;
        let per = (h / ph) * (w / pw);
        (1 + n_add / pt + t / pt) * per + (t / pt) * (h / 2 / ph) * (w / 2 / pw)
    }

    /// Estimated peak activation memory in bytes of a forward of `batch` branches of `tokens`
    /// tokens each (f32 block intermediates: residual, norms, q/k/v and their head copies,
    /// attention output; the FFN hidden layer and its activation for one token chunk),
    /// excluding weights.
    pub fn activation_bytes(&self, tokens: usize, batch: usize) -> u64 {
        let l = tokens as u64;
        let chunk = tokens.min(super::blocks::FFN_CHUNK) as u64;
        let (d, f) = (self.dim as u64, self.ffn_dim as u64);
        let ctx = (self.text_len as u64) * (self.text_dim as u64 + 4 * d);
        batch as u64 * 4 * (l * 10 * d + chunk * 2 * f + ctx)
    }

    pub fn latent_channels(&self) -> usize {
        self.in_dim - EXTRA_CHANNELS
    }

    /// Every weight of the Wan-layout checkpoint with its shape, in a stable order; the key
    /// contract of the model, computed without allocating anything.
    pub fn weight_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, f) = (self.dim, self.ffn_dim);
        let [pt, ph, pw] = self.patch_size;
        let mut v: Vec<(String, Vec<usize>)> = Vec::new();
        let mut push = |n: String, s: Vec<usize>| v.push((n, s));
        for (name, cin) in [
            ("patch_embedding", self.in_dim),
            ("patch_embedding_pose", self.in_dim),
            ("patch_embedding_mask", self.mask_dim),
        ] {
            push(format!("{name}.weight"), vec![d, cin, pt, ph, pw]);
            push(format!("{name}.bias"), vec![d]);
        }
        let lin = |p: &mut dyn FnMut(String, Vec<usize>), n: &str, o: usize, i: usize| {
            p(format!("{n}.weight"), vec![o, i]);
            p(format!("{n}.bias"), vec![o]);
        };
        lin(&mut push, "text_embedding.0", d, self.text_dim);
        lin(&mut push, "text_embedding.2", d, d);
        lin(&mut push, "time_embedding.0", d, self.freq_dim);
        lin(&mut push, "time_embedding.2", d, d);
        lin(&mut push, "time_projection.1", 6 * d, d);
        for i in 0..self.num_layers {
            let b = format!("blocks.{i}");
            push(format!("{b}.modulation"), vec![1, 6, d]);
            for a in ["self_attn", "cross_attn"] {
                for p in ["q", "k", "v", "o"] {
                    lin(&mut push, &format!("{b}.{a}.{p}"), d, d);
                }
                push(format!("{b}.{a}.norm_q.weight"), vec![d]);
                push(format!("{b}.{a}.norm_k.weight"), vec![d]);
            }
            lin(&mut push, &format!("{b}.cross_attn.k_img"), d, d);
            lin(&mut push, &format!("{b}.cross_attn.v_img"), d, d);
            push(format!("{b}.cross_attn.norm_k_img.weight"), vec![d]);
            push(format!("{b}.norm3.weight"), vec![d]);
            push(format!("{b}.norm3.bias"), vec![d]);
            lin(&mut push, &format!("{b}.ffn.0"), f, d);
            lin(&mut push, &format!("{b}.ffn.2"), d, f);
        }
        lin(&mut push, "head.head", self.head_out(), d);
        push("head.modulation".into(), vec![1, 2, d]);
        push("img_emb.proj.0.weight".into(), vec![CLIP_DIM]);
        push("img_emb.proj.0.bias".into(), vec![CLIP_DIM]);
        lin(&mut push, "img_emb.proj.1", CLIP_DIM, CLIP_DIM);
        lin(&mut push, "img_emb.proj.3", d, CLIP_DIM);
        push("img_emb.proj.4.weight".into(), vec![d]);
        push("img_emb.proj.4.bias".into(), vec![d]);
        v
    }
}
