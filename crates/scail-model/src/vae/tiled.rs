//! Spatially tiled decode for small memory budgets: overlapping latent tiles decoded one by one
//! and blended with linear ramps.

use candle_core::{DType, Device, Result, Tensor};

use super::{pixel_frames, WanVae};

/// Spatial tiling of [`WanVae::decode_tiled`], in latent units (x8 for pixels).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tiling {
    pub tile: usize,
    pub overlap: usize,
}

impl Tiling {
    /// Tile starts along an axis of `n` latents: every `tile - overlap`, the last one flush
    /// with the end.
    fn starts(&self, n: usize) -> Vec<usize> {
        if n <= self.tile {
            return vec![0];
        }
        let step = self.tile - self.overlap;
        let mut v: Vec<usize> = (0..)
            .map(|i| i * step)
            .take_while(|s| s + self.tile < n)
            .collect();
        v.push(n - self.tile);
        v
    }

    /// Blend weights of the `n` pixels of a tile along one axis, ramping over the overlap on
    /// inner edges (`first` / `last`: the tile touches the start / end of the axis).
    fn ramp(&self, n: usize, first: bool, last: bool) -> Vec<f32> {
        let ov = 8 * self.overlap;
        (0..n)
            .map(|i| {
                let mut v = 1f32;
                if !first && i < ov {
                    v = v.min((i as f32 + 0.5) / ov as f32);
                }
                if !last && n - i <= ov {
                    v = v.min(((n - i) as f32 - 0.5) / ov as f32);
                }
                v
            })
            .collect()
    }
}

/// The weighted sum of the decoded tiles and of their weights, in pixels.
struct Canvas {
    /// `[3, frames, ph, pw]`.
    acc: Vec<f32>,
    /// `[ph, pw]`.
    wsum: Vec<f32>,
    frames: usize,
    ph: usize,
    pw: usize,
}

/// Where one tile sits in the canvas (pixels) and its blend weights per row and column.
struct Placement {
    py: usize,
    px: usize,
    wy: Vec<f32>,
    wx: Vec<f32>,
}

impl Canvas {
    fn add_weights(&mut self, p: &Placement) {
        for (i, a) in p.wy.iter().enumerate() {
            let row = (p.py + i) * self.pw + p.px;
            for (d, b) in self.wsum[row..row + p.wx.len()].iter_mut().zip(&p.wx) {
                *d += a * b;
            }
        }
    }

    /// Adds a decoded chunk `[3, n, pth, ptw]` of the tile, starting at output frame `f0`.
    fn add_chunk(&mut self, p: &Placement, chunk: &Tensor, f0: usize) -> Result<()> {
        let n = chunk.dim(1)?;
        let v = chunk
            .to_dtype(DType::F32)?
            .to_device(&Device::Cpu)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let (pth, ptw) = (p.wy.len(), p.wx.len());
        for c in 0..3 {
            for f in 0..n {
                for (i, a) in p.wy.iter().enumerate() {
                    let src = ((c * n + f) * pth + i) * ptw;
                    let dst = ((c * self.frames + f0 + f) * self.ph + p.py + i) * self.pw + p.px;
                    let row = &mut self.acc[dst..dst + ptw];
                    for ((d, s), b) in row.iter_mut().zip(&v[src..src + ptw]).zip(&p.wx) {
                        *d += s * a * b;
                    }
                }
            }
        }
        Ok(())
    }

    /// The blend normalised by the summed weights and clamped to [-1, 1].
    fn finish(mut self) -> Result<Tensor> {
        let plane = self.ph * self.pw;
        for (k, a) in self.acc.iter_mut().enumerate() {
            *a = (*a / self.wsum[k % plane]).clamp(-1.0, 1.0);
        }
        Tensor::from_vec(self.acc, (3, self.frames, self.ph, self.pw), &Device::Cpu)
    }
}

impl WanVae {
    /// Spatially tiled decode for small memory budgets (off unless called): the latent is cut
    /// into overlapping tiles, each decoded over the whole clip with its own frame cache, and
    /// the overlaps are blended with linear ramps. Working memory and the cache scale with the
    /// tile instead of the frame; the result differs slightly from [`WanVae::decode`] near
    /// tile seams (the decoder's receptive field is wider than the overlap). Clamped to
    /// [-1, 1]; returned on the CPU in f32.
    pub fn decode_tiled(&self, latent: &Tensor, tiling: Tiling) -> Result<Tensor> {
        let (_, t, h, w) = latent.dims4()?;
        if tiling.tile == 0 || tiling.overlap >= tiling.tile {
            candle_core::bail!("tiling: need 0 <= overlap < tile, got {tiling:?}");
        }
        let (hs, ws) = (tiling.starts(h), tiling.starts(w));
        let (frames, ph, pw) = (pixel_frames(t), 8 * h, 8 * w);
        let mut canvas = Canvas {
            acc: vec![0f32; 3 * frames * ph * pw],
            wsum: vec![0f32; ph * pw],
            frames,
            ph,
            pw,
        };
        let (th, tw) = (tiling.tile.min(h), tiling.tile.min(w));
        for (yi, &y0) in hs.iter().enumerate() {
            for (xi, &x0) in ws.iter().enumerate() {
                let z = latent.narrow(2, y0, th)?.narrow(3, x0, tw)?.contiguous()?;
                let place = Placement {
                    py: 8 * y0,
                    px: 8 * x0,
                    wy: tiling.ramp(8 * th, yi == 0, yi + 1 == hs.len()),
                    wx: tiling.ramp(8 * tw, xi == 0, xi + 1 == ws.len()),
                };
                canvas.add_weights(&place);
                let mut f0 = 0;
                self.decode_streaming(&z, |chunk| {
                    canvas.add_chunk(&place, &chunk, f0)?;
                    f0 += chunk.dim(1)?;
                    Ok(())
                })?;
            }
        }
        canvas.finish()
    }
}
