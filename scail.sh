#!/usr/bin/env bash
# One command from a fresh clone to a running scail: installs the system packages the build and
# Stage A need (Debian/Ubuntu: ffmpeg libraries, clang, pkg-config, OpenBLAS; ONNX Runtime from
# the Python package index into a private venv), builds the release binary with the fastest
# backend this machine has (CUDA when nvcc and a GPU are present, else OpenBLAS), then runs it:
#   ./scail.sh serve --demo          # the whole flow offline on tiny random weights (noise)
#   ./scail.sh serve --weights DIR   # the real model (get it with ./scail.sh weights fetch --dest DIR)
#   ./scail.sh generate ...          # any scail command
# Safe to rerun: only what is missing is installed, and the build is incremental.
set -euo pipefail
cd "$(dirname "$0")"
CACHE="${SCAIL_CACHE:-$HOME/.cache/scail}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE/target}"
mkdir -p "$CACHE"
say() { printf '==> %s\n' "$*" >&2; }

pkgs=(ffmpeg libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
  libavfilter-dev libavdevice-dev pkg-config clang libclang-dev libopenblas-dev python3-venv)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing system packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# ONNX Runtime for Stage A (segmentation and pose), loaded at run time from the wheel's library.
venv="$CACHE/venv"
if ! [ -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import onnxruntime' 2>/dev/null; then
  say "installing ONNX Runtime into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check onnxruntime==1.32.0
fi
ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$(ls "$venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.1* | head -1)}"
export ORT_DYLIB_PATH

features="openblas"
if command -v nvcc >/dev/null 2>&1 && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  features="cuda"
fi
say "building scail (release, --features $features; the first build takes a while)"
cargo build --release -q -p scail --features "$features"
exec "$CARGO_TARGET_DIR/release/scail" "$@"
