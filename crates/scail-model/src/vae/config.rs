//! The VAE's shape and the key contract of its official checkpoint.

/// Shape of a Wan 2.1 VAE. The published checkpoint is [`VaeConfig::wan21`]; tests use narrower
/// widths with the same structure.
#[derive(Debug, Clone, PartialEq)]
pub struct VaeConfig {
    /// Base channel width (96 in the published model).
    pub dim: usize,
    /// Latent channels (16).
    pub z_dim: usize,
    pub dim_mult: Vec<usize>,
    pub num_res_blocks: usize,
    /// Per encoder stage (all but the last): halve time as well as space.
    pub temporal_downsample: Vec<bool>,
}

impl VaeConfig {
    pub fn wan21() -> Self {
        Self::with_dim(96)
    }

    /// The Wan 2.1 structure at another base width (the fixtures use 8).
    pub fn with_dim(dim: usize) -> Self {
        Self {
            dim,
            z_dim: 16,
            dim_mult: vec![1, 2, 4, 4],
            num_res_blocks: 2,
            temporal_downsample: vec![false, true, true],
        }
    }

    pub(super) fn encoder_dims(&self) -> Vec<usize> {
        std::iter::once(1)
            .chain(self.dim_mult.iter().copied())
            .map(|u| u * self.dim)
            .collect()
    }

    pub(super) fn decoder_dims(&self) -> Vec<usize> {
        std::iter::once(*self.dim_mult.last().unwrap())
            .chain(self.dim_mult.iter().rev().copied())
            .map(|u| u * self.dim)
            .collect()
    }

    /// The encoder's `downsamples` list, in checkpoint index order: per stage
    /// `num_res_blocks` residual blocks, then (all but the last stage) a downsampling.
    pub(super) fn encoder_stages(&self) -> Vec<StageLayer> {
        self.stages(&self.encoder_dims(), &self.temporal_downsample, false)
    }

    /// The decoder's `upsamples` list: one more residual block per stage, and stages after the
    /// first start from half the channels (the upsampling before them halves them).
    pub(super) fn decoder_stages(&self) -> Vec<StageLayer> {
        let temporal: Vec<bool> = self.temporal_downsample.iter().rev().copied().collect();
        self.stages(&self.decoder_dims(), &temporal, true)
    }

    fn stages(&self, dims: &[usize], temporal: &[bool], up: bool) -> Vec<StageLayer> {
        let n = self.dim_mult.len();
        let blocks = self.num_res_blocks + usize::from(up);
        let mut v = Vec::new();
        for i in 0..n {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if up && i > 0 {
                in_dim /= 2;
            }
            for _ in 0..blocks {
                v.push(StageLayer::Res { in_dim, out_dim });
                in_dim = out_dim;
            }
            if i != n - 1 {
                v.push(StageLayer::Resample {
                    c: out_dim,
                    up,
                    temporal: temporal[i],
                });
            }
        }
        v
    }

    /// Every tensor of the official checkpoint (`Wan2.1_VAE.pth`) with its shape, in a stable
    /// order: the key contract checked by `weights verify`.
    pub fn expected_keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut k = Keys(Vec::new());
        let z2 = self.z_dim * 2;
        k.conv3("conv1", z2, z2, [1, 1, 1]);
        k.conv3("conv2", self.z_dim, self.z_dim, [1, 1, 1]);
        // Encoder.
        let c = *self.encoder_dims().last().unwrap();
        k.conv3("encoder.conv1", self.dim, 3, [3, 3, 3]);
        k.stages("encoder.downsamples", &self.encoder_stages());
        k.middle("encoder.middle", c);
        k.head("encoder.head", z2, c);
        // Decoder.
        let dims = self.decoder_dims();
        k.conv3("decoder.conv1", dims[0], self.z_dim, [3, 3, 3]);
        k.middle("decoder.middle", dims[0]);
        k.stages("decoder.upsamples", &self.decoder_stages());
        k.head("decoder.head", 3, *dims.last().unwrap());
        k.0
    }
}

/// One layer of an encoder's `downsamples` or a decoder's `upsamples` list.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum StageLayer {
    Res {
        in_dim: usize,
        out_dim: usize,
    },
    /// Halves (`up`: doubles) the spatial size of `c` channels, and with `temporal` the time
    /// axis too; upsampling also halves the channels.
    Resample {
        c: usize,
        up: bool,
        temporal: bool,
    },
}

/// The key contract under construction: (name, shape) in checkpoint order.
struct Keys(Vec<(String, Vec<usize>)>);

impl Keys {
    fn push(&mut self, name: String, shape: Vec<usize>) {
        self.0.push((name, shape));
    }

    fn conv3(&mut self, p: &str, o: usize, i: usize, k: [usize; 3]) {
        self.push(format!("{p}.weight"), vec![o, i, k[0], k[1], k[2]]);
        self.push(format!("{p}.bias"), vec![o]);
    }

    fn res(&mut self, p: &str, i: usize, o: usize) {
        self.push(format!("{p}.residual.0.gamma"), vec![i, 1, 1, 1]);
        self.conv3(&format!("{p}.residual.2"), o, i, [3, 3, 3]);
        self.push(format!("{p}.residual.3.gamma"), vec![o, 1, 1, 1]);
        self.conv3(&format!("{p}.residual.6"), o, o, [3, 3, 3]);
        if i != o {
            self.conv3(&format!("{p}.shortcut"), o, i, [1, 1, 1]);
        }
    }

    /// Residual block, attention block, residual block.
    fn middle(&mut self, p: &str, c: usize) {
        self.res(&format!("{p}.0"), c, c);
        self.push(format!("{p}.1.norm.gamma"), vec![c, 1, 1]);
        self.push(format!("{p}.1.to_qkv.weight"), vec![3 * c, c, 1, 1]);
        self.push(format!("{p}.1.to_qkv.bias"), vec![3 * c]);
        self.push(format!("{p}.1.proj.weight"), vec![c, c, 1, 1]);
        self.push(format!("{p}.1.proj.bias"), vec![c]);
        self.res(&format!("{p}.2"), c, c);
    }

    fn stages(&mut self, p: &str, layers: &[StageLayer]) {
        for (idx, layer) in layers.iter().enumerate() {
            let p = format!("{p}.{idx}");
            match *layer {
                StageLayer::Res { in_dim, out_dim } => self.res(&p, in_dim, out_dim),
                StageLayer::Resample { c, up, temporal } => {
                    let c_out = if up { c / 2 } else { c };
                    self.push(format!("{p}.resample.1.weight"), vec![c_out, c, 3, 3]);
                    self.push(format!("{p}.resample.1.bias"), vec![c_out]);
                    if temporal {
                        let t_out = if up { 2 * c } else { c };
                        self.conv3(&format!("{p}.time_conv"), t_out, c, [3, 1, 1]);
                    }
                }
            }
        }
    }

    /// RMS norm then the output convolution.
    fn head(&mut self, p: &str, o: usize, c: usize) {
        self.push(format!("{p}.0.gamma"), vec![c, 1, 1, 1]);
        self.conv3(&format!("{p}.2"), o, c, [3, 3, 3]);
    }
}
