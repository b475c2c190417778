//! The Wan 2.1 video VAE (16 latent channels): causal 3D convolutions with a streaming frame
//! cache, encode in time chunks of 1, 4, 4, … and decode one latent frame at a time.
//!
//! Activations are kept as `[T, C, H, W]` (time folded into the conv2d batch). A causal 3x3x3
//! convolution is one conv2d over the three time taps stacked along channels, so a chunk costs a
//! single GEMM per layer; the cache holds the last two input frames of each convolution, which
//! is all the state a chunk needs: memory is bounded by the chunk, not by the clip.
//!
//! Layout: [`config`] holds the shapes and the checkpoint key contract, `conv` the causal
//! convolution with its frame cache and the RMS norm, `blocks` the residual, attention and
//! resampling blocks and the encoder/decoder towers, [`tiled`] the spatially tiled decode.

mod blocks;
pub mod config;
mod conv;
pub mod tiled;

use candle_core::{DType, Device, Result, Tensor};
use candle_nn::VarBuilder;

use blocks::Tower;
use conv::{CausalConv3d, FeatCache};

pub use config::VaeConfig;
pub use tiled::Tiling;

/// Latent normalisation constants of the published Wan 2.1 VAE (the `WanVAE` wrapper).
pub const LATENT_MEAN: [f32; 16] = [
    -0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
    -0.3632, -0.1922, -0.9497, 0.2503, -0.2921,
];
/// See [`LATENT_MEAN`].
pub const LATENT_STD: [f32; 16] = [
    2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
    1.6382, 1.1253, 2.8251, 1.9160,
];

/// The Wan 2.1 VAE with the published latent normalisation.
pub struct WanVae {
    cfg: VaeConfig,
    encoder: Tower,
    decoder: Tower,
    conv1: CausalConv3d,
    conv2: CausalConv3d,
    /// The dtype the convolutions run in (the weights'); the latent normalisation and what
    /// `encode`/`decode` return are in `mean`'s dtype: f32 for a half-precision VAE.
    dtype: DType,
    mean: Tensor,
    inv_std: Tensor,
}

impl WanVae {
    /// Builds the VAE from weights with the official key names (`Wan2.1_VAE.pth` layout).
    pub fn new(cfg: &VaeConfig, vb: VarBuilder) -> Result<Self> {
        let z = cfg.z_dim;
        if z != LATENT_MEAN.len() {
            candle_core::bail!("the Wan 2.1 normalisation has 16 channels, config has {z}");
        }
        let dev = vb.device().clone();
        let dtype = vb.dtype();
        let outer = match dtype {
            DType::BF16 | DType::F16 => DType::F32,
            d => d,
        };
        // The reference stores scale = [mean, 1/std] and multiplies/divides by 1/std: keep that
        // rounding.
        let inv: Vec<f32> = LATENT_STD.iter().map(|s| 1.0f32 / s).collect();
        Ok(Self {
            encoder: Tower::encoder(vb.pp("encoder"), cfg)?,
            decoder: Tower::decoder(vb.pp("decoder"), cfg)?,
            conv1: CausalConv3d::new(vb.pp("conv1"), 2 * z, 2 * z, [1, 1, 1])?,
            conv2: CausalConv3d::new(vb.pp("conv2"), z, z, [1, 1, 1])?,
            mean: Tensor::new(&LATENT_MEAN, &dev)?
                .to_dtype(outer)?
                .reshape((z, 1, 1, 1))?,
            inv_std: Tensor::new(inv.as_slice(), &dev)?
                .to_dtype(outer)?
                .reshape((z, 1, 1, 1))?,
            cfg: cfg.clone(),
            dtype,
        })
    }

    pub fn config(&self) -> &VaeConfig {
        &self.cfg
    }

    /// Un-normalised posterior mean μ `[16, 1+(T-1)/4, H/8, W/8]` of a clip `[3, T, H, W]` in
    /// [-1, 1]; T must be 4k+1 (trailing frames beyond that are ignored, as in the reference).
    pub fn encode_raw(&self, video: &Tensor) -> Result<Tensor> {
        let (c, t, _, _) = video.dims4()?;
        if c != 3 || t == 0 {
            candle_core::bail!(
                "VAE encode expects [3, T, H, W] with T >= 1, got {:?}",
                video.dims()
            );
        }
        let frames = video.to_dtype(self.dtype)?.transpose(0, 1)?; // [T, 3, H, W]
        let mut cache = FeatCache::default();
        let n_chunks = 1 + (t - 1) / 4;
        let mut outs = Vec::with_capacity(n_chunks);
        for i in 0..n_chunks {
            let chunk = if i == 0 {
                frames.narrow(0, 0, 1)?
            } else {
                frames.narrow(0, 1 + 4 * (i - 1), 4)?
            }
            .contiguous()?;
            let out = self.encoder.forward(&chunk, &mut cache)?;
            outs.push(self.conv1.conv_frames(&out)?.narrow(1, 0, self.cfg.z_dim)?);
        }
        Tensor::cat(&outs, 0)?
            .transpose(0, 1)?
            .contiguous()?
            .to_dtype(self.mean.dtype())
    }

    /// The normalised latent the DiT consumes: (μ - mean) / std.
    pub fn encode(&self, video: &Tensor) -> Result<Tensor> {
        let mu = self.encode_raw(video)?;
        mu.broadcast_sub(&self.mean)?.broadcast_mul(&self.inv_std)
    }

    /// Decodes a normalised latent `[16, T, h, w]` to `[3, 1+4(T-1), 8h, 8w]`, clamped to [-1, 1].
    pub fn decode(&self, latent: &Tensor) -> Result<Tensor> {
        self.decode_unclamped(latent)?.clamp(-1f32, 1f32)
    }

    /// [`WanVae::decode`] without the final clamp.
    pub fn decode_unclamped(&self, latent: &Tensor) -> Result<Tensor> {
        let mut outs = Vec::new();
        self.decode_streaming(latent, |chunk| {
            outs.push(chunk);
            Ok(())
        })?;
        Tensor::cat(&outs, 1)
    }

    /// Decodes one latent frame at a time and hands every chunk of pixel frames
    /// (`[3, n, H, W]`, unclamped; n = 1 for the first latent frame, 4 after) to `sink`, so a
    /// caller can write frames out without holding the whole clip.
    pub fn decode_streaming(
        &self,
        latent: &Tensor,
        mut sink: impl FnMut(Tensor) -> Result<()>,
    ) -> Result<()> {
        let (c, t, _, _) = latent.dims4()?;
        if c != self.cfg.z_dim {
            candle_core::bail!(
                "VAE decode expects [{}, T, h, w], got {:?}",
                self.cfg.z_dim,
                latent.dims()
            );
        }
        let z = latent
            .to_dtype(self.mean.dtype())?
            .broadcast_div(&self.inv_std)?
            .broadcast_add(&self.mean)?
            .transpose(0, 1)?
            .contiguous()?
            .to_dtype(self.dtype)?; // [T, 16, h, w]
        let mut cache = FeatCache::default();
        for i in 0..t {
            let x = self.conv2.conv_frames(&z.narrow(0, i, 1)?)?;
            let out = self.decoder.forward(&x, &mut cache)?;
            sink(
                out.transpose(0, 1)?
                    .contiguous()?
                    .to_dtype(self.mean.dtype())?,
            )?;
        }
        Ok(())
    }

    pub fn device(&self) -> &Device {
        self.mean.device()
    }

    /// The dtype the convolutions run in.
    pub fn dtype(&self) -> DType {
        self.dtype
    }
}

/// Pixel frames ↔ latent frames: 4k+1 frames encode to k+1 latent frames.
pub fn latent_frames(pixel_frames: usize) -> usize {
    1 + pixel_frames.saturating_sub(1) / 4
}

/// Latent frames ↔ pixel frames: T latent frames decode to 1+4(T-1) frames.
pub fn pixel_frames(latent_frames: usize) -> usize {
    if latent_frames == 0 {
        0
    } else {
        1 + 4 * (latent_frames - 1)
    }
}

/// Random weights for `cfg` (std 1/√fan_in, norm gains 1) on `dev`, for benchmarks: feature
/// `testing`.
#[cfg(feature = "testing")]
pub fn random_weights(
    cfg: &VaeConfig,
    dev: &Device,
) -> Result<std::collections::HashMap<String, Tensor>> {
    let mut ws = std::collections::HashMap::new();
    for (name, shape) in cfg.expected_keys() {
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let x = if name.ends_with("gamma") {
            Tensor::ones(shape.as_slice(), DType::F32, dev)?
        } else {
            (Tensor::randn(0f32, 1.0, shape.as_slice(), dev)? / (fan_in as f64).sqrt())?
        };
        ws.insert(name, x);
    }
    Ok(ws)
}
