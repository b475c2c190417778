//! The umT5 text encoder (Wan's `T5Encoder`): per-layer bidirectional relative position bias,
//! no attention scaling, gated tanh-GELU feed-forward, RMS layer norm (eps 1e-6).

use std::sync::Arc;

use candle_core::{DType, Device, Result, Tensor, D};
use candle_nn::VarBuilder;

use crate::offload::{BlockLoader, Layers, Offload};

/// Shape of the encoder. The published checkpoint is [`T5Config::umt5_xxl`].
#[derive(Debug, Clone, PartialEq)]
pub struct T5Config {
    pub vocab_size: usize,
    pub dim: usize,
    pub dim_attn: usize,
    pub dim_ffn: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub num_buckets: usize,
    /// Relative positions beyond this share the last (log-spaced) bucket.
    pub max_distance: usize,
    pub eps: f64,
}

impl T5Config {
    /// `models_t5_umt5-xxl-enc-bf16.pth`.
    pub fn umt5_xxl() -> Self {
        Self {
            vocab_size: 256_384,
            dim: 4096,
            dim_attn: 4096,
            dim_ffn: 10240,
            num_heads: 64,
            num_layers: 24,
            num_buckets: 32,
            max_distance: 128,
            eps: 1e-6,
        }
    }

    /// Every tensor of the official checkpoint with its shape.
    pub fn expected_keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = vec![(
            "token_embedding.weight".to_string(),
            vec![self.vocab_size, self.dim],
        )];
        for i in 0..self.num_layers {
            let p = format!("blocks.{i}");
            out.push((format!("{p}.norm1.weight"), vec![self.dim]));
            for n in ["q", "k", "v"] {
                out.push((
                    format!("{p}.attn.{n}.weight"),
                    vec![self.dim_attn, self.dim],
                ));
            }
            out.push((format!("{p}.attn.o.weight"), vec![self.dim, self.dim_attn]));
            out.push((format!("{p}.norm2.weight"), vec![self.dim]));
            out.push((
                format!("{p}.ffn.gate.0.weight"),
                vec![self.dim_ffn, self.dim],
            ));
            out.push((format!("{p}.ffn.fc1.weight"), vec![self.dim_ffn, self.dim]));
            out.push((format!("{p}.ffn.fc2.weight"), vec![self.dim, self.dim_ffn]));
            out.push((
                format!("{p}.pos_embedding.embedding.weight"),
                vec![self.num_buckets, self.num_heads],
            ));
        }
        out.push(("norm.weight".to_string(), vec![self.dim]));
        out
    }
}

/// The bidirectional bucket of a relative position `key - query`, computed in float32 exactly
/// like the reference (`log(r / max_exact) / log(max_dist / max_exact) * (nb - max_exact)`,
/// truncated), since a bucket boundary can fall on a rounding edge.
pub fn relative_position_bucket(rel: i64, num_buckets: usize, max_distance: usize) -> usize {
    let nb = num_buckets / 2;
    let mut bucket = if rel > 0 { nb } else { 0 };
    let r = rel.unsigned_abs() as usize;
    let max_exact = nb / 2;
    if r < max_exact {
        bucket += r;
    } else {
        // PyTorch divides a float32 tensor by a Python scalar as a multiplication by the
        // float32 reciprocal of the scalar.
        let inv_me = 1.0f32 / (max_exact as f32);
        let denom = ((max_distance as f64) / (max_exact as f64)).ln() as f32;
        let inv_denom = 1.0f32 / denom;
        let v = ((r as f32) * inv_me).ln() * inv_denom * ((nb - max_exact) as f32);
        let large = max_exact + v as usize;
        bucket += large.min(nb - 1);
    }
    bucket
}

#[derive(Clone)]
struct Block {
    norm1: Tensor,
    q: Tensor,
    k: Tensor,
    v: Tensor,
    o: Tensor,
    norm2: Tensor,
    gate: Tensor,
    fc1: Tensor,
    fc2: Tensor,
    pos: Tensor,
}

impl Block {
    fn load(b: &VarBuilder, cfg: &T5Config) -> Result<Self> {
        let (d, da, df) = (cfg.dim, cfg.dim_attn, cfg.dim_ffn);
        Ok(Block {
            norm1: b.get(d, "norm1.weight")?,
            q: b.get((da, d), "attn.q.weight")?,
            k: b.get((da, d), "attn.k.weight")?,
            v: b.get((da, d), "attn.v.weight")?,
            o: b.get((d, da), "attn.o.weight")?,
            norm2: b.get(d, "norm2.weight")?,
            gate: b.get((df, d), "ffn.gate.0.weight")?,
            fc1: b.get((df, d), "ffn.fc1.weight")?,
            fc2: b.get((d, df), "ffn.fc2.weight")?,
            pos: b.get(
                (cfg.num_buckets, cfg.num_heads),
                "pos_embedding.embedding.weight",
            )?,
        })
    }

    fn to_device(&self, dev: &Device) -> Result<Self> {
        let m = |t: &Tensor| crate::offload::to_device(t, dev);
        Ok(Block {
            norm1: m(&self.norm1)?,
            q: m(&self.q)?,
            k: m(&self.k)?,
            v: m(&self.v)?,
            o: m(&self.o)?,
            norm2: m(&self.norm2)?,
            gate: m(&self.gate)?,
            fc1: m(&self.fc1)?,
            fc2: m(&self.fc2)?,
            pos: m(&self.pos)?,
        })
    }
}

/// The token embedding (256k x 4096: 2 GB in bf16): resident, or read at each encode under
/// `stream`, in its stored dtype, keeping only the rows of the prompt.
enum Embedding {
    Resident(Tensor),
    Streamed {
        vb: VarBuilder<'static>,
        stored: DType,
    },
}

/// umT5 encoder. Weights in the official key layout.
pub struct T5Encoder {
    cfg: T5Config,
    embedding: Embedding,
    blocks: Layers<Block, candle_core::Error>,
    norm: Tensor,
    /// The matmul dtype.
    dtype: DType,
}

fn rms(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    let dt = x.dtype();
    let xf = x.to_dtype(DType::F32)?;
    let ms = xf.sqr()?.mean_keepdim(D::Minus1)?;
    let y = xf.broadcast_mul(&(ms + eps)?.sqrt()?.recip()?)?;
    y.to_dtype(dt)?.broadcast_mul(w)
}

fn gelu_tanh(x: &Tensor) -> Result<Tensor> {
    // 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as the reference writes it.
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let inner = ((x + (x.powf(3.0)? * 0.044715)?)? * c)?;
    (x * 0.5)?.mul(&(inner.tanh()? + 1.0)?)
}

impl T5Encoder {
    pub fn new(cfg: &T5Config, vb: VarBuilder) -> Result<Self> {
        let blocks = (0..cfg.num_layers)
            .map(|i| Block::load(&vb.pp("blocks").pp(i), cfg))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            embedding: Embedding::Resident(
                vb.get((cfg.vocab_size, cfg.dim), "token_embedding.weight")?,
            ),
            norm: vb.get(cfg.dim, "norm.weight")?,
            blocks: Layers::resident(Offload::None, blocks, vb.device(), Block::to_device),
            dtype: vb.dtype(),
            cfg: cfg.clone(),
        })
    }

    /// [`T5Encoder::new`] with the blocks placed by `offload`; under `stream` the token
    /// embedding is read at use too, in `stored_embedding` (its dtype in the checkpoint), so
    /// no widened copy of it is ever made.
    pub fn new_offloaded(
        cfg: &T5Config,
        vb: VarBuilder<'static>,
        offload: Offload,
        stored_embedding: DType,
    ) -> Result<Self> {
        let device = vb.device().clone();
        let blocks = match offload {
            Offload::None => return Self::new(cfg, vb),
            Offload::Blocks => {
                let host = vb.clone().set_device(Device::Cpu);
                let blocks = (0..cfg.num_layers)
                    .map(|i| Block::load(&host.pp("blocks").pp(i), cfg))
                    .collect::<Result<Vec<_>>>()?;
                Layers::resident(Offload::Blocks, blocks, &device, Block::to_device)
            }
            Offload::Stream => {
                let (bvb, bcfg) = (vb.clone(), cfg.clone());
                let load: BlockLoader<Block, candle_core::Error> =
                    Arc::new(move |i| Block::load(&bvb.pp("blocks").pp(i), &bcfg));
                Layers::streamed(cfg.num_layers, &device, load, Block::to_device)
            }
        };
        let embedding = match offload {
            Offload::Stream => Embedding::Streamed {
                vb: vb.clone(),
                stored: stored_embedding,
            },
            _ => Embedding::Resident(vb.get((cfg.vocab_size, cfg.dim), "token_embedding.weight")?),
        };
        Ok(Self {
            embedding,
            norm: vb.get(cfg.dim, "norm.weight")?,
            blocks,
            dtype: vb.dtype(),
            cfg: cfg.clone(),
        })
    }

    /// Rows `ids` of the token embedding, in the matmul dtype.
    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        match &self.embedding {
            Embedding::Resident(t) => t.index_select(ids, 0),
            Embedding::Streamed { vb, stored } => {
                let all = vb
                    .clone()
                    .set_device(Device::Cpu)
                    .get_unchecked_dtype("token_embedding.weight", *stored)?;
                let (n, d) = all.dims2()?;
                if (n, d) != (self.cfg.vocab_size, self.cfg.dim) {
                    candle_core::bail!(
                        "token_embedding.weight: stored {:?}, expected {:?}",
                        [n, d],
                        [self.cfg.vocab_size, self.cfg.dim]
                    );
                }
                all.index_select(&ids.to_device(&Device::Cpu)?, 0)?
                    .to_dtype(self.dtype)?
                    .to_device(self.device())
            }
        }
    }

    pub fn config(&self) -> &T5Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        self.norm.device()
    }

    /// `[num_buckets index]` table for an `l x l` self-attention, as u32 `[l*l]`.
    fn bucket_ids(&self, l: usize) -> Result<Tensor> {
        let ids: Vec<u32> = (0..l)
            .flat_map(|q| {
                (0..l).map(move |k| {
                    relative_position_bucket(
                        k as i64 - q as i64,
                        self.cfg.num_buckets,
                        self.cfg.max_distance,
                    ) as u32
                })
            })
            .collect();
        Tensor::from_vec(ids, l * l, self.device())
    }

    /// Full encoder output `[B, L, dim]` for token ids `[B, L]` and an optional 0/1 mask
    /// `[B, L]` over keys (padding positions still get deterministic outputs, as in the
    /// reference).
    pub fn forward(&self, ids: &Tensor, mask: Option<&Tensor>) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        let (h, da) = (self.cfg.num_heads, self.cfg.dim_attn);
        let hd = da / h;
        let dt = self.dtype;
        let ids = ids.to_dtype(DType::U32)?;
        let mut x = self
            .embed(&ids.flatten_all()?)?
            .reshape((b, l, self.cfg.dim))?;
        // Key mask as an additive bias [B, 1, 1, L]: the reference fills masked logits with
        // the dtype's lowest value.
        let mask_bias = match mask {
            Some(m) => {
                let keep = m.to_dtype(DType::F32)?.ne(0f32)?;
                let zeros = Tensor::zeros((b, l), DType::F32, ids.device())?;
                let low = Tensor::full(f32::MIN, (b, l), ids.device())?;
                Some(keep.where_cond(&zeros, &low)?.reshape((b, 1, 1, l))?)
            }
            None => None,
        };
        let buckets = self.bucket_ids(l)?;
        self.blocks.each(|_, blk| {
            let bias = blk
                .pos
                .to_dtype(DType::F32)?
                .index_select(&buckets, 0)?
                .reshape((l, l, h))?
                .permute((2, 0, 1))?
                .unsqueeze(0)?; // [1, H, L, L]
            let bias = match &mask_bias {
                Some(m) => bias.broadcast_add(m)?,
                None => bias,
            };
            let y = rms(&x, &blk.norm1, self.cfg.eps)?;
            let split = |w: &Tensor| -> Result<Tensor> {
                y.broadcast_matmul(&w.t()?)?
                    .reshape((b, l, h, hd))?
                    .transpose(1, 2)?
                    .contiguous()
            };
            let (q, k, v) = (split(&blk.q)?, split(&blk.k)?, split(&blk.v)?);
            // No 1/sqrt(d) scaling in T5.
            let logits = q
                .matmul(&k.t()?)?
                .to_dtype(DType::F32)?
                .broadcast_add(&bias)?;
            let p = candle_nn::ops::softmax_last_dim(&logits)?.to_dtype(dt)?;
            let a = p
                .matmul(&v)?
                .transpose(1, 2)?
                .reshape((b, l, da))?
                .broadcast_matmul(&blk.o.t()?)?;
            x = (&x + a)?;
            let y = rms(&x, &blk.norm2, self.cfg.eps)?;
            let g = gelu_tanh(&y.broadcast_matmul(&blk.gate.t()?)?)?;
            let f = (y.broadcast_matmul(&blk.fc1.t()?)? * g)?.broadcast_matmul(&blk.fc2.t()?)?;
            x = (&x + f)?;
            Ok(())
        })?;
        rms(&x, &self.norm, self.cfg.eps)
    }

    /// What the pipeline uses: one prompt's token ids (EOS included, no padding) to its
    /// context `[n, dim]`, trimmed to the real length.
    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        let n = ids.len();
        let t = Tensor::from_slice(ids, (1, n), self.device())?;
        self.forward(&t, None)?.squeeze(0)
    }
}
