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

    /// Every tensor of the official checkpoint (`Wan2.1_VAE.pth`) with its shape, in a stable
    /// order: the key contract checked by `weights verify`.
    pub fn expected_keys(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        let conv3 =
            |out: &mut Vec<(String, Vec<usize>)>, p: &str, o: usize, i: usize, k: [usize; 3]| {
                out.push((format!("{p}.weight"), vec![o, i, k[0], k[1], k[2]]));
                out.push((format!("{p}.bias"), vec![o]));
            };
        let res = |out: &mut Vec<(String, Vec<usize>)>, p: &str, i: usize, o: usize| {
            out.push((format!("{p}.residual.0.gamma"), vec![i, 1, 1, 1]));
            conv3(out, &format!("{p}.residual.2"), o, i, [3, 3, 3]);
            out.push((format!("{p}.residual.3.gamma"), vec![o, 1, 1, 1]));
            conv3(out, &format!("{p}.residual.6"), o, o, [3, 3, 3]);
            if i != o {
                conv3(out, &format!("{p}.shortcut"), o, i, [1, 1, 1]);
            }
        };
        let attn = |out: &mut Vec<(String, Vec<usize>)>, p: &str, c: usize| {
            out.push((format!("{p}.norm.gamma"), vec![c, 1, 1]));
            out.push((format!("{p}.to_qkv.weight"), vec![3 * c, c, 1, 1]));
            out.push((format!("{p}.to_qkv.bias"), vec![3 * c]));
            out.push((format!("{p}.proj.weight"), vec![c, c, 1, 1]));
            out.push((format!("{p}.proj.bias"), vec![c]));
        };
        let z2 = self.z_dim * 2;
        conv3(&mut out, "conv1", z2, z2, [1, 1, 1]);
        conv3(&mut out, "conv2", self.z_dim, self.z_dim, [1, 1, 1]);
        // Encoder.
        let dims = self.encoder_dims();
        conv3(&mut out, "encoder.conv1", dims[0], 3, [3, 3, 3]);
        let mut idx = 0;
        let n_stages = self.dim_mult.len();
        for i in 0..n_stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            for _ in 0..self.num_res_blocks {
                res(
                    &mut out,
                    &format!("encoder.downsamples.{idx}"),
                    in_dim,
                    out_dim,
                );
                in_dim = out_dim;
                idx += 1;
            }
            if i != n_stages - 1 {
                let p = format!("encoder.downsamples.{idx}");
                out.push((
                    format!("{p}.resample.1.weight"),
                    vec![out_dim, out_dim, 3, 3],
                ));
                out.push((format!("{p}.resample.1.bias"), vec![out_dim]));
                if self.temporal_downsample[i] {
                    conv3(
                        &mut out,
                        &format!("{p}.time_conv"),
                        out_dim,
                        out_dim,
                        [3, 1, 1],
                    );
                }
                idx += 1;
            }
        }
        let c = *dims.last().unwrap();
        res(&mut out, "encoder.middle.0", c, c);
        attn(&mut out, "encoder.middle.1", c);
        res(&mut out, "encoder.middle.2", c, c);
        out.push(("encoder.head.0.gamma".into(), vec![c, 1, 1, 1]));
        conv3(&mut out, "encoder.head.2", z2, c, [3, 3, 3]);
        // Decoder.
        let dims = self.decoder_dims();
        let c = dims[0];
        conv3(&mut out, "decoder.conv1", c, self.z_dim, [3, 3, 3]);
        res(&mut out, "decoder.middle.0", c, c);
        attn(&mut out, "decoder.middle.1", c);
        res(&mut out, "decoder.middle.2", c, c);
        let up = self.temporal_upsample();
        let mut idx = 0;
        for i in 0..n_stages {
            let (mut in_dim, out_dim) = (dims[i], dims[i + 1]);
            if i > 0 {
                in_dim /= 2;
            }
            for _ in 0..=self.num_res_blocks {
                res(
                    &mut out,
                    &format!("decoder.upsamples.{idx}"),
                    in_dim,
                    out_dim,
                );
                in_dim = out_dim;
                idx += 1;
            }
            if i != n_stages - 1 {
                let p = format!("decoder.upsamples.{idx}");
                out.push((
                    format!("{p}.resample.1.weight"),
                    vec![out_dim / 2, out_dim, 3, 3],
                ));
                out.push((format!("{p}.resample.1.bias"), vec![out_dim / 2]));
                if up[i] {
                    conv3(
                        &mut out,
                        &format!("{p}.time_conv"),
                        out_dim * 2,
                        out_dim,
                        [3, 1, 1],
                    );
                }
                idx += 1;
            }
        }
        let c = *dims.last().unwrap();
        out.push(("decoder.head.0.gamma".into(), vec![c, 1, 1, 1]));
        conv3(&mut out, "decoder.head.2", 3, c, [3, 3, 3]);
        out
    }

    pub(super) fn temporal_upsample(&self) -> Vec<bool> {
        self.temporal_downsample.iter().rev().copied().collect()
    }
}
