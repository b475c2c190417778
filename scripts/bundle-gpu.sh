#!/usr/bin/env bash
# Packs what bench/gpu.sh needs on a GPU host that has PyTorch and the CUDA 13 libraries but no
# Rust, no network and maybe none of Debian's ffmpeg/OpenBLAS libraries, from
# scripts/build-cuda.sh's build, into bench/gpu-bundle/ (git-ignored):
#   scail-gpu.tar.xz   scail-gpu-bench (DiT and VAE benchmarks, no media libraries) and the
#                      few libraries it links (OpenBLAS, gfortran): a few MB, carried to the
#                      device by the device tool;
#   scail-full.tar.xz  with FULL=1: the `scail` binary and every library it links (ffmpeg's
#                      pull in some 200, about 90 MB) for the end-to-end job, where the host
#                      lacks Debian's ffmpeg 5.1 and the archive can be copied there.
# The system's C runtime and CUDA's libraries are left out (the host has those).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SCAIL_CACHE:-/var/cache/scail}"
bin=$(SCAIL_CACHE="$CACHE" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target-cuda}" bash scripts/build-cuda.sh)
cuda_lib=$(ls -d "$CACHE"/cuda-venv/lib/python3*/site-packages/nvidia/cu13/lib | head -1)
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lib"
mkdir -p bench/gpu-bundle
# $1: binary, $2: archive. Libraries from ldd, minus glibc's, the compiler runtime's and CUDA's.
pack() {
  rm -rf "$stage"/*
  mkdir -p "$stage/lib"
  strip -o "$stage/$(basename "$1")" "$1"
  LD_LIBRARY_PATH="$CACHE/cuda-stub:$cuda_lib" ldd "$1" | awk '/=> \//{print $1, $3}' | while read -r name path; do
    case "$name" in
      libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*|ld-linux*|libgcc_s.so*|libstdc++.so*) continue ;;
      libcuda.so*|libcudart.so*|libcublas*|libcurand*|libnvrtc*|libcudnn*|libnvJitLink*) continue ;;
    esac
    cp -L "$path" "$stage/lib/$name"
  done
  tar -C "$stage" -cJf "$2" "$(basename "$1")" lib
  echo "$2 ($(du -h "$2" | cut -f1), $(ls "$stage/lib" | wc -l) libraries)"
}
pack "$(dirname "$bin")/scail-gpu-bench" bench/gpu-bundle/scail-gpu.tar.xz
if [ "${FULL:-0}" = 1 ]; then pack "$bin" bench/gpu-bundle/scail-full.tar.xz; fi
