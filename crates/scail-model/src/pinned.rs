//! Page-locked host memory for `--offload blocks` on CUDA.
//!
//! A copy from pageable memory goes through the driver's staging buffer at about half the bus
//! speed. Under `blocks` the host copies of the blocks are read again on every forward, so each
//! large buffer is page-locked in place (`cuMemHostRegister`) the first time a block is moved,
//! and every copy after that is DMA straight from it. The buffers are unlocked when the network
//! is dropped. Locking is an optimisation only: where the driver refuses (a memlock limit, say)
//! the copies stay pageable. `SCAIL_PIN_HOST=0` turns it off.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::cuda_backend::cudarc::driver::{sys, CudaContext};
use candle_core::{CpuStorage, Device, Storage, Tensor};

/// Smaller buffers stay pageable: they may share a page with another allocation, which the
/// driver will not lock twice, and copying them is cheap anyway. Block matrices are far larger.
const MIN_BYTES: usize = 1 << 20;

/// The buffers one network has locked.
pub struct Pins {
    ctx: Arc<CudaContext>,
    /// Locked buffers by address, each with a tensor that keeps it alive until it is unlocked.
    locked: Mutex<HashMap<usize, Tensor>>,
    refused: AtomicBool,
}

impl Pins {
    /// For a network whose blocks live on the host and run on `device` (CUDA only).
    pub fn new(device: &Device) -> Option<Arc<Self>> {
        if std::env::var("SCAIL_PIN_HOST").is_ok_and(|v| v == "0") {
            return None;
        }
        let Device::Cuda(dev) = device else {
            return None;
        };
        Some(Arc::new(Self {
            ctx: dev.cuda_stream().context().clone(),
            locked: Mutex::default(),
            refused: AtomicBool::new(false),
        }))
    }

    fn lock(&self, t: &Tensor) {
        if self.refused.load(Ordering::Relaxed) {
            return;
        }
        let Some((ptr, bytes)) = host_buffer(t) else {
            return;
        };
        if bytes < MIN_BYTES {
            return;
        }
        let mut locked = self.locked.lock().unwrap_or_else(|e| e.into_inner());
        if locked.contains_key(&ptr) || self.ctx.bind_to_thread().is_err() {
            return;
        }
        // SAFETY: `ptr..ptr + bytes` is the live buffer of `t`'s CPU storage, kept alive by the
        // clone stored below until `Drop` unregisters it.
        let r = unsafe {
            sys::cuMemHostRegister_v2(ptr as *mut c_void, bytes, sys::CU_MEMHOSTREGISTER_PORTABLE)
        };
        match r {
            sys::CUresult::CUDA_SUCCESS => {
                locked.insert(ptr, t.clone());
            }
            sys::CUresult::CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED => {}
            e => {
                self.refused.store(true, Ordering::Relaxed);
                eprintln!(
                    "scail: page-locking the host copy of the blocks failed ({e:?}); \
                     copying them from pageable memory (slower)"
                );
            }
        }
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        let locked = self.locked.get_mut().unwrap_or_else(|e| e.into_inner());
        if locked.is_empty() || self.ctx.bind_to_thread().is_err() {
            return;
        }
        for &ptr in locked.keys() {
            // SAFETY: registered by `lock`, and its tensor is still held.
            unsafe { sys::cuMemHostUnregister(ptr as *mut c_void) };
        }
    }
}

/// Address and size of a CPU tensor's whole buffer.
fn host_buffer(t: &Tensor) -> Option<(usize, usize)> {
    fn span<T>(v: &[T]) -> Option<(usize, usize)> {
        Some((v.as_ptr() as usize, std::mem::size_of_val(v)))
    }
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        Storage::Cpu(CpuStorage::BF16(v)) => span(v),
        Storage::Cpu(CpuStorage::F16(v)) => span(v),
        Storage::Cpu(CpuStorage::F32(v)) => span(v),
        Storage::Cpu(CpuStorage::F8E4M3(v)) => span(v),
        _ => None,
    }
}

thread_local! {
    /// The network whose block the calling thread is moving, if it locks its buffers.
    static MOVING: RefCell<Option<Arc<Pins>>> = const { RefCell::new(None) };
}

/// Locks `t`'s host buffer when the calling thread is moving a block of a network with [`Pins`].
pub fn note(t: &Tensor) {
    MOVING.with(|m| {
        if let Some(p) = &*m.borrow() {
            p.lock(t)
        }
    });
}

/// While alive, [`note`] on this thread locks into `pins`.
pub struct Moving;

impl Moving {
    pub fn enter(pins: &Arc<Pins>) -> Self {
        MOVING.with(|m| *m.borrow_mut() = Some(pins.clone()));
        Self
    }
}

impl Drop for Moving {
    fn drop(&mut self) {
        MOVING.with(|m| *m.borrow_mut() = None);
    }
}
