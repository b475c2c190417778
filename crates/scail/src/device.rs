//! `--device` and `--dtype` flags shared by the model commands.

use candle_core::{DType, Device};

/// `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        s if s == "cuda" || s.starts_with("cuda:") => {
            let ordinal: usize = s
                .strip_prefix("cuda:")
                .map(str::parse)
                .transpose()?
                .unwrap_or(0);
            Device::new_cuda(ordinal).map_err(|e| {
                let hint = if cfg!(feature = "cuda") {
                    "no usable GPU: check `nvidia-smi` and that the NVIDIA driver (580 or newer) and \
                     the CUDA 13 libraries are found"
                } else {
                    "this build has no CUDA: make one with scripts/build-cuda.sh"
                };
                anyhow::anyhow!("--device {s}: {e} ({hint})")
            })
        }
        o => anyhow::bail!("--device {o}: expected cpu, cuda or cuda:N"),
    }
}

/// `f32`, `bf16` or `f16`.
pub fn parse_dtype(s: &str) -> anyhow::Result<DType> {
    match s {
        "f32" | "fp32" => Ok(DType::F32),
        "bf16" => Ok(DType::BF16),
        "f16" => Ok(DType::F16),
        o => anyhow::bail!("--dtype {o}: expected f32, bf16 or f16"),
    }
}

/// `--precision`: `f32`, `bf16`, `f16`, or `auto`: the precision the folder's DiT is stored in
/// (bf16 compute for an fp8_scaled one), so weights are never widened unasked.
pub fn precision(s: &str, weights: &std::path::Path) -> anyhow::Result<DType> {
    if s != "auto" {
        return parse_dtype(s).map_err(|e| anyhow::anyhow!("--precision: {e} (or auto)"));
    }
    Ok(scail_model::weights::stored_precision(weights).unwrap_or(DType::F32))
}
