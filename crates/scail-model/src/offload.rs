//! Where a network's repeated blocks live between uses (`--offload none|blocks|stream`).
//!
//! - `none`: every block resident on the compute device, loaded once.
//! - `blocks`: blocks resident in host memory, copied to the compute device at use and dropped
//!   after (on the CPU there is nothing to copy, so it behaves as `none`).
//! - `stream`: blocks are read from the (memory-mapped or zipped) checkpoint at use and dropped
//!   after, so host memory holds about one block of each network at a time. This is what lets
//!   the 65 GB f32 DiT and the 11 GB umT5 run on a small host, at the cost of reading every
//!   block once per forward.
//!
//! [`Layers`] holds a network's blocks under one of these modes and hands them out in order.

use std::fmt;
use std::sync::Arc;

use candle_core::Device;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Offload {
    #[default]
    None,
    Blocks,
    Stream,
}

impl Offload {
    pub const ALL: [Offload; 3] = [Offload::None, Offload::Blocks, Offload::Stream];

    pub fn as_str(self) -> &'static str {
        match self {
            Offload::None => "none",
            Offload::Blocks => "blocks",
            Offload::Stream => "stream",
        }
    }
}

impl fmt::Display for Offload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Offload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Offload::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown offload mode `{s}` (none, blocks or stream)"))
    }
}

/// Reads block `i` from the checkpoint onto the compute device.
pub type BlockLoader<B, E> = Arc<dyn Fn(usize) -> Result<B, E> + Send + Sync>;
/// Copies a host-resident block to the compute device.
pub type BlockMover<B, E> = fn(&B, &Device) -> Result<B, E>;

/// A network's blocks under an [`Offload`] mode.
pub struct Layers<B, E> {
    mode: Offload,
    count: usize,
    /// `none` and `blocks`: every block (on the host for `blocks`).
    resident: Vec<B>,
    loader: Option<BlockLoader<B, E>>,
    mover: BlockMover<B, E>,
    device: Device,
}

impl<B, E> Layers<B, E> {
    /// Blocks already loaded: on the compute device (`none`), or on the host (`blocks`).
    pub fn resident(
        mode: Offload,
        blocks: Vec<B>,
        device: &Device,
        mover: BlockMover<B, E>,
    ) -> Self {
        Self {
            mode,
            count: blocks.len(),
            resident: blocks,
            loader: None,
            mover,
            device: device.clone(),
        }
    }

    /// `count` blocks read through `load` at each use (`stream`).
    pub fn streamed(
        count: usize,
        device: &Device,
        load: BlockLoader<B, E>,
        mover: BlockMover<B, E>,
    ) -> Self {
        Self {
            mode: Offload::Stream,
            count,
            resident: Vec::new(),
            loader: Some(load),
            mover,
            device: device.clone(),
        }
    }

    pub fn mode(&self) -> Offload {
        self.mode
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Runs `f` on every block in order, each on the compute device for the call only.
    pub fn each(&self, mut f: impl FnMut(usize, &B) -> Result<(), E>) -> Result<(), E> {
        for i in 0..self.count {
            match (&self.loader, self.mode) {
                (Some(load), _) => f(i, &load(i)?)?,
                (None, Offload::Blocks) if !self.device.is_cpu() => {
                    f(i, &(self.mover)(&self.resident[i], &self.device)?)?
                }
                _ => f(i, &self.resident[i])?,
            }
        }
        Ok(())
    }

    /// Runs `f` on block `i` alone (as [`Layers::each`] does).
    pub fn with<T>(&self, i: usize, f: impl FnOnce(&B) -> Result<T, E>) -> Result<T, E> {
        match (&self.loader, self.mode) {
            (Some(load), _) => f(&load(i)?),
            (None, Offload::Blocks) if !self.device.is_cpu() => {
                f(&(self.mover)(&self.resident[i], &self.device)?)
            }
            _ => f(&self.resident[i]),
        }
    }
}

impl<B: Clone, E> Clone for Layers<B, E> {
    fn clone(&self) -> Self {
        Self {
            mode: self.mode,
            count: self.count,
            resident: self.resident.clone(),
            loader: self.loader.clone(),
            mover: self.mover,
            device: self.device.clone(),
        }
    }
}

impl<B, E> fmt::Debug for Layers<B, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layers")
            .field("mode", &self.mode)
            .field("count", &self.count)
            .field("device", &self.device)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn layers(mode: Offload, loads: Arc<AtomicUsize>) -> Layers<usize, String> {
        let load: BlockLoader<usize, String> = Arc::new(move |i| {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(i * 10)
        });
        let mover: BlockMover<usize, String> = |b, _| Ok(*b);
        match mode {
            Offload::Stream => Layers::streamed(3, &Device::Cpu, load, mover),
            _ => {
                let blocks = (0..3).map(|i| load(i)).collect::<Result<_, _>>().unwrap();
                Layers::resident(mode, blocks, &Device::Cpu, mover)
            }
        }
    }

    #[test]
    fn resident_modes_load_once_and_stream_loads_at_every_use() {
        for mode in Offload::ALL {
            let loads = Arc::new(AtomicUsize::new(0));
            let l = layers(mode, loads.clone());
            let mut seen = Vec::new();
            for _ in 0..2 {
                l.each(|i, b| {
                    seen.push((i, *b));
                    Ok(())
                })
                .unwrap();
            }
            assert_eq!(seen, [(0, 0), (1, 10), (2, 20), (0, 0), (1, 10), (2, 20)]);
            let expected = if mode == Offload::Stream { 6 } else { 3 };
            assert_eq!(loads.load(Ordering::SeqCst), expected, "{mode}");
        }
    }

    #[test]
    fn modes_parse_by_name_and_unknown_names_are_refused() {
        for m in Offload::ALL {
            assert_eq!(m.as_str().parse::<Offload>(), Ok(m));
        }
        let e = "disk".parse::<Offload>().unwrap_err();
        assert!(e.contains("none, blocks or stream"), "{e}");
    }
}
