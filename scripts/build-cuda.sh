#!/usr/bin/env bash
# The `--features cuda` release binary, built on a machine without a GPU or a CUDA install:
# CUDA 13.0 comes from the Python package index into a private venv (about 1.2 GB, once), a stub
# libcuda.so.1 (the driver library a GPU host has) satisfies the linker, and the kernels are
# built for CUDA_COMPUTE_CAP (default 90: H100, H200). Prints the binary's path.
#
#   scripts/build-cuda.sh            # CARGO_TARGET_DIR defaults to $SCAIL_CACHE/target-cuda
#   scripts/build-cuda.sh clippy     # clippy -D warnings on every target with the cuda features
#                                    # (release profile: reuses the binary's build)
#
# On the GPU host the binary needs the NVIDIA driver and the CUDA 13 runtime libraries
# (cuBLAS, cuBLASLt, cuRAND, cudart, NVRTC): a PyTorch environment carries them as nvidia-*
# packages, so point LD_LIBRARY_PATH at their lib folders (`ldd scail` shows what is missing).
# It also links Debian's ffmpeg 5.1 and OpenBLAS libraries, as the CPU build does.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SCAIL_CACHE:-/var/cache/scail}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target-cuda}"
say() { printf '==> %s\n' "$*" >&2; }

venv="$CACHE/cuda-venv"
if ! [ -x "$venv/bin/nvcc" ] && ! ls "$venv"/lib/python3*/site-packages/nvidia/cu13/bin/nvcc >/dev/null 2>&1; then
  say "installing CUDA 13.0 (nvcc, runtime, cuBLAS, cuRAND, NVRTC) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "nvidia-cuda-nvcc==13.0.*" \
    "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-nvrtc==13.0.*" \
    "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" "nvidia-cublas==13.0.*" "nvidia-curand"
fi
CUDA_HOME=$(ls -d "$venv"/lib/python3*/site-packages/nvidia/cu13 | head -1)
export CUDA_HOME CUDA_PATH="$CUDA_HOME" CUDA_ROOT="$CUDA_HOME"
export PATH="$CUDA_HOME/bin:$PATH"
lib="$CUDA_HOME/lib"
# Unversioned names for the linker.
for so in "$lib"/lib*.so.*; do
  base="${so%%.so.*}.so"
  [ -e "$base" ] || ln -s "$(basename "$so")" "$base"
done
# nvcc looks for its tools beside it and for cccl/crt headers under include/.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"

# The driver library is the GPU host's: link against a stub that defines every symbol the
# binary takes from it (the real libcuda.so.1 is found at run time by its soname).
stub="$CACHE/cuda-stub"
mkdir -p "$stub"
export LIBRARY_PATH="$stub:$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L $stub -L $lib"
# The server binary, then the media-free benchmark binary (bench/gpu.sh) from the same build.
build() {
  cargo build --release -p scail --no-default-features --features "${SCAIL_CUDA_FEATURES:-cuda,openblas}" 2>&1 &&
    cargo build --release -p scail-model --bin scail-gpu-bench --features testing,cuda,openblas 2>&1
}
make_stub() {
  # $1: the symbols to define, one a line.
  { echo "/* stub of the CUDA driver API for linking only */"; sed 's/.*/int &(void) { return 999; }/' "$1"; } >"$stub/stub.c"
  cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stub/libcuda.so.1" "$stub/stub.c"
  ln -sf libcuda.so.1 "$stub/libcuda.so"
}
if ! [ -e "$stub/libcuda.so.1" ]; then
  # Every driver function cudarc declares (defining more than the binary uses is harmless);
  # the crate is in cargo's registry once it has been fetched.
  cargo fetch -q
  grep -hoE "^\s+fn cu[A-Za-z0-9_]+\(" "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/cudarc-*/src/driver/sys/mod.rs 2>/dev/null \
    | sed -E 's/^\s+fn ([A-Za-z0-9_]+)\(/\1/' | sort -u >"$stub/symbols" || true
  make_stub "$stub/symbols"
fi
if [ "${1:-}" = clippy ]; then
  say "clippy with --features cuda (release profile, every target)"
  exec cargo clippy --release --workspace --all-targets --no-default-features \
    --features scail/cuda,scail/openblas,scail-model/cuda,scail-model/openblas -- -D warnings
fi
say "building scail --features cuda (release; kernels for sm_$CUDA_COMPUTE_CAP)"
for attempt in 1 2 3 4 5 6; do
  if out=$(build); then
    echo "$CARGO_TARGET_DIR/release/scail"
    exit 0
  fi
  # GNU ld says "undefined reference to `cuX'", lld "undefined symbol: cuX".
  missing=$(printf '%s\n' "$out" | grep -oE "(undefined reference to .|undefined symbol: )cu[A-Za-z0-9_]+" \
    | grep -oE "cu[A-Za-z0-9_]+$" | sort -u || true)
  if [ -z "$missing" ]; then
    printf '%s\n' "$out" | tail -60 >&2
    exit 1
  fi
  say "stub libcuda: adding $(printf '%s\n' "$missing" | wc -l) driver symbols (attempt $attempt)"
  sort -u "$stub/symbols" <(printf '%s\n' "$missing") -o "$stub/symbols"
  make_stub "$stub/symbols"
done
printf '%s\n' "$out" | tail -60 >&2
exit 1
