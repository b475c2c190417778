#!/usr/bin/env bash
# The `--features cuda` release binary, built on a machine without a GPU or a CUDA install:
# CUDA 13.0 comes from the Python package index into a private venv (about 1.2 GB, once), a stub
# libcuda.so.1 (the driver library a GPU host has) satisfies the linker, and the kernels are
# built for sm_80, sm_89 and sm_90 (A100, L40/RTX 4090, H100/H200; see scripts/nvcc-select.sh).
# Prints the binary's path.
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
# candle's build scripts compile through scripts/nvcc-select.sh: only the kernels scail uses are
# built for real (see there). candle's PTX modules target compute_80, which the driver
# JIT-compiles on sm_86/89/90; FlashAttention gets SASS for each arch in SCAIL_CUDA_ARCHS.
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
export SCAIL_CUDA_ARCHS="${SCAIL_CUDA_ARCHS:-80 89 90}"
export SCAIL_REAL_NVCC="$CUDA_HOME/bin/nvcc" NVCC="$PWD/scripts/nvcc-select.sh"

# candle-flash-attn's build clones CUTLASS at a pinned commit with git, which fails offline:
# stage the headers of the release of that commit (3.5.0) from the nvidia-cutlass wheel where
# its build looks first (a checkout whose HEAD names the commit).
export CUDAFORGE_HOME="$CACHE/cudaforge"
stage_cutlass() {
  local commit dir tmp
  cargo fetch -q
  commit=$(grep -hoE 'CUTLASS_COMMIT: &str = "[0-9a-f]{40}"' \
    "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/candle-flash-attn-*/build.rs | grep -oE '[0-9a-f]{40}' | head -1)
  dir="$CUDAFORGE_HOME/git/checkouts/cutlass-${commit:0:16}"
  [ -e "$dir/include/cute/tensor.hpp" ] && return
  say "staging CUTLASS 3.5.0 headers (nvidia-cutlass wheel) for commit $commit"
  tmp=$(mktemp -d)
  "$venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$tmp" "nvidia-cutlass==3.5.0.0"
  rm -rf "$dir" && mkdir -p "$dir"
  "$venv/bin/python" - "$tmp"/nvidia_cutlass-*.whl "$dir" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
pre = "cutlass_library/source/"
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        rel = n[len(pre):]
        if n.startswith(pre) and not n.endswith("/") and rel.startswith(("include/", "tools/util/include/")):
            out = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(n) as f, open(out, "wb") as g:
                g.write(f.read())
PY
  git -C "$dir" init -q
  echo "$commit" >"$dir/.git/HEAD"
  rm -rf "$tmp"
}

# The driver library is the GPU host's: link against a stub that defines every symbol the
# binary takes from it (the real libcuda.so.1 is found at run time by its soname).
stub="$CACHE/cuda-stub"
mkdir -p "$stub"
export LIBRARY_PATH="$stub:$lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export RUSTFLAGS="${RUSTFLAGS:-} -L $stub -L $lib"
# The server binary, then the media-free benchmark binary (bench/gpu.sh) from the same build.
build() {
  cargo build --release -p scail --no-default-features --features "${SCAIL_CUDA_FEATURES:-cuda,flash-attn,openblas}" 2>&1 &&
    cargo build --release -p scail-model --bin scail-gpu-bench --features testing,cuda,flash-attn,openblas 2>&1
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
stage_cutlass
if [ "${1:-}" = clippy ]; then
  say "clippy with --features cuda (release profile, every target)"
  exec cargo clippy --release --workspace --all-targets --no-default-features \
    --features scail/cuda,scail/flash-attn,scail/openblas,scail-model/cuda,scail-model/flash-attn,scail-model/openblas -- -D warnings
fi
say "building scail --features cuda (release; PTX for compute_$CUDA_COMPUTE_CAP, FlashAttention for sm_${SCAIL_CUDA_ARCHS// /,sm_})"
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
