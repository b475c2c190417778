//! The SCAIL-2 networks on candle: the DiT, RoPE, the Wan 2.1 VAE, umT5 and the CLIP visual tower,
//! plus checkpoint loading. Numerics are pinned by the fixtures in `testdata/fixtures`.
//!
//! Feature `testing` adds what tests, benches and the CLI's `bench` / `weights init-random`
//! need and inference does not: random weights, the `.pth` writer, fixture access.

pub mod attention;
pub mod blas;
pub mod checkpoint;
pub mod clip;
pub mod dit;
#[cfg(feature = "testing")]
pub mod fixtures;
pub mod lora;
pub mod memory;
pub mod offload;
#[cfg(feature = "cuda")]
pub mod pinned;
#[cfg(feature = "testing")]
pub mod pth;
pub mod rope;
pub mod t5;
pub mod tokenizer;
pub mod vae;
pub(crate) mod vae_cpu;

/// The checkpoint module under its earlier name, which the other crates use.
pub use checkpoint as weights;

/// A sampler of [`device_memory_used`] that works from any thread (it makes `dev`'s context
/// current first), for peak tracking; `None` off CUDA.
pub fn device_memory_sampler(dev: &candle_core::Device) -> Option<MemorySampler> {
    #[cfg(feature = "cuda")]
    if let candle_core::Device::Cuda(d) = dev {
        use candle_core::cuda_backend::cudarc::driver::result::mem_get_info;
        let ctx = d.cuda_stream().context().clone();
        return Some(Box::new(move || {
            ctx.bind_to_thread().ok()?;
            mem_get_info()
                .ok()
                .map(|(free, total)| (total - free) as u64)
        }));
    }
    let _ = dev;
    None
}

/// See [`device_memory_sampler`].
pub type MemorySampler = Box<dyn Fn() -> Option<u64> + Send + 'static>;

/// Bytes in use on `dev`'s GPU (total minus free, from the driver), for benchmarks; `None` on
/// the CPU or where the driver does not say.
pub fn device_memory_used(dev: &candle_core::Device) -> Option<u64> {
    #[cfg(feature = "cuda")]
    if dev.is_cuda() {
        use candle_core::cuda_backend::cudarc::driver::result::mem_get_info;
        return mem_get_info()
            .ok()
            .map(|(free, total)| (total - free) as u64);
    }
    let _ = dev;
    None
}
