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
//!
//! On CUDA the next block is copied on a second host thread. candle issues CUDA work on the
//! calling thread's per-thread default stream, so those copies run on a stream of their own and
//! overlap the compute thread's kernels; under `blocks` they are DMA from page-locked host
//! memory (`crate::pinned`). Nothing orders another thread's stream before the compute stream,
//! so the copying thread waits for its own stream before it hands the block over.

use std::fmt;
use std::sync::Arc;

use candle_core::{Device, Tensor};

/// `t` on `dev`: what the block movers (`to_device` of a block's layers) call for their large
/// tensors, so that under `blocks` on CUDA their host buffers get page-locked.
pub fn to_device(t: &Tensor, dev: &Device) -> candle_core::Result<Tensor> {
    #[cfg(feature = "cuda")]
    crate::pinned::note(t);
    t.to_device(dev)
}

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
    /// `blocks` on CUDA: the host buffers locked so far, unlocked with the last clone.
    #[cfg(feature = "cuda")]
    pins: Option<Arc<crate::pinned::Pins>>,
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
            #[cfg(feature = "cuda")]
            pins: match mode {
                Offload::Blocks => crate::pinned::Pins::new(device),
                _ => None,
            },
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
            #[cfg(feature = "cuda")]
            pins: None,
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

    /// Runs `f` on every block in order, each on the compute device for the call only. Under
    /// `stream` (and `blocks` on a GPU) the next block is read (copied) on a second thread
    /// while `f` runs on the current one, so reading overlaps compute; memory then holds two
    /// blocks.
    pub fn each(&self, mut f: impl FnMut(usize, &B) -> Result<(), E>) -> Result<(), E>
    where
        B: Send + Sync,
        E: Send + From<candle_core::Error>,
    {
        let copying = matches!(self.mode, Offload::Blocks) && !self.device.is_cpu();
        if self.loader.is_none() && !copying {
            return self
                .resident
                .iter()
                .enumerate()
                .try_for_each(|(i, b)| f(i, b));
        }
        let fetch = |i: usize| -> Result<B, E> {
            let block = match &self.loader {
                Some(load) => load(i)?,
                None => {
                    #[cfg(feature = "cuda")]
                    let _pin = self.pins.as_ref().map(crate::pinned::Moving::enter);
                    (self.mover)(&self.resident[i], &self.device)?
                }
            };
            // This thread's copies are on its own stream: done before the block is handed over.
            if self.device.is_cuda() {
                self.device.synchronize()?;
            }
            Ok(block)
        };
        std::thread::scope(|s| {
            let fetch = &fetch;
            let mut next = (self.count > 0).then(|| s.spawn(move || fetch(0)));
            for i in 0..self.count {
                let handle = next.take().expect("spawned for every block");
                let cur = handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
                if i + 1 < self.count {
                    next = Some(s.spawn(move || fetch(i + 1)));
                }
                f(i, &cur)?;
            }
            Ok(())
        })
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
            #[cfg(feature = "cuda")]
            pins: self.pins.clone(),
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

    /// A block error that, like the networks' errors, takes candle's.
    #[derive(Debug, PartialEq)]
    struct Stop(String);

    impl From<candle_core::Error> for Stop {
        fn from(e: candle_core::Error) -> Self {
            Self(e.to_string())
        }
    }

    fn layers(mode: Offload, loads: Arc<AtomicUsize>) -> Layers<usize, Stop> {
        let load: BlockLoader<usize, Stop> = Arc::new(move |i| {
            loads.fetch_add(1, Ordering::SeqCst);
            Ok(i * 10)
        });
        let mover: BlockMover<usize, Stop> = |b, _| Ok(*b);
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
    fn a_streamed_block_is_read_while_the_one_before_it_runs() {
        let log = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let l2 = log.clone();
        let load: BlockLoader<usize, Stop> = Arc::new(move |i| {
            l2.lock().unwrap().push(format!("load {i}"));
            Ok(i)
        });
        let layers = Layers::streamed(3, &Device::Cpu, load, |b, _| Ok(*b));
        layers
            .each(|i, _| {
                std::thread::sleep(std::time::Duration::from_millis(50));
                log.lock().unwrap().push(format!("done {i}"));
                Ok(())
            })
            .unwrap();
        let log = log.lock().unwrap().clone();
        let at = |e: &str| log.iter().position(|x| x == e).unwrap();
        assert!(at("load 1") < at("done 0"), "{log:?}");
        assert!(at("load 2") < at("done 1"), "{log:?}");
        assert_eq!(log.iter().filter(|e| e.starts_with("load")).count(), 3);
        // An error from a block stops the pass.
        let e = layers.each(|i, _| {
            if i == 1 {
                Err(Stop("stop".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(e, Err(Stop("stop".into())));
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
