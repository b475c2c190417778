#!/usr/bin/env bash
# The nvcc that scripts/build-cuda.sh hands to candle's build scripts (they honour $NVCC).
#
# candle-kernels and candle-flash-attn compile every kernel they ship: GGUF-quantized and MoE
# matmuls, and FlashAttention for 9 head sizes x 2 dtypes x causal/not. scail calls a few of
# them, and compiling the rest takes most of a cold build on 2 cores. This wrapper compiles what
# scail uses for real and replaces the rest with stubs that abort with a message if ever called:
#   - candle-kernels, PTX: every module but quantized.cu, for compute_$CUDA_COMPUTE_CAP (PTX of
#     compute_80 is JIT-compiled by the driver on sm_86/89/90 too); quantized.cu becomes an
#     empty module (candle loads modules lazily, so only a quantized op would notice).
#   - candle-kernels, static library (quantized/MoE launchers): weak stub functions.
#   - candle-flash-attn: flash_api.cu and the kernels in $SCAIL_FLASH_KERNELS (bf16, head dim
#     128: the DiT's attention) are built with SASS for each arch in $SCAIL_CUDA_ARCHS, without
#     the variants for features scail never uses; every other kernel file becomes its
#     specialization with a body that aborts.
# Anything else passes through unchanged.
set -euo pipefail
real="${SCAIL_REAL_NVCC:?SCAIL_REAL_NVCC must name the real nvcc}"
archs="${SCAIL_CUDA_ARCHS:-80 89 90}"
keep="${SCAIL_FLASH_KERNELS:-flash_fwd_hdim128_bf16_sm80.cu}"

src=""
out=""
outdir=""
ptx=0
prev=""
for a in "$@"; do
  case "$a" in
  *.cu) src="$a" ;;
  --ptx) ptx=1 ;;
  esac
  case "$prev" in
  -o) out="$a" ;;
  --output-directory) outdir="$a" ;;
  esac
  prev="$a"
done
[ -n "$src" ] || exec "$real" "$@"
base=$(basename "$src")
pkg="${CARGO_PKG_NAME:-}"

# The same arguments with the one -gencode replaced by one per arch in $archs (SASS each), and
# any extra arguments in $extra.
extra=()
every_arch() {
  local args=("${extra[@]}") a g
  for a in "$@"; do
    case "$a" in
    -gencode=*)
      for g in $archs; do args+=("-gencode=arch=compute_$g,code=sm_$g"); done
      ;;
    *) args+=("$a") ;;
    esac
  done
  exec "$real" "${args[@]}"
}

case "$pkg:$ptx:$base" in
candle-kernels:1:quantized.cu)
  # An empty module: loading it works, asking it for a kernel is an error candle reports.
  printf '.version 7.0\n.target sm_80\n.address_size 64\n' >"${outdir:-.}/quantized.ptx"
  ;;
candle-kernels:0:*)
  # Every launcher the crate declares, weak (each stubbed object defines them all).
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  {
    echo '#include <stdio.h>'
    echo '#include <stdlib.h>'
    echo 'static void not_built(const char *f) {'
    echo '  fprintf(stderr, "scail: the CUDA kernel launcher %s is not in this build (scripts/build-cuda.sh builds only the kernels scail uses)\n", f);'
    echo '  abort();'
    echo '}'
    grep -oE 'pub fn [A-Za-z0-9_]+\(' "${CARGO_MANIFEST_DIR:?}/src/ffi.rs" | sed -E 's/pub fn ([A-Za-z0-9_]+)\(/\1/' |
      sort -u | sed 's/.*/__attribute__((weak)) void &(void) { not_built("&"); }/'
  } >"$tmp/stub.c"
  cc -c -fPIC -O1 -o "${out:?}" "$tmp/stub.c"
  ;;
candle-flash-attn:0:flash_api.cu) every_arch "$@" ;;
candle-flash-attn:0:flash_fwd_*.cu)
  if [[ " $keep " == *" $base "* ]]; then
    # FlashAttention's own switches for features scail never asks for (dropout, ALiBi, sliding
    # windows, soft-capping, head dims below the kernel's): about 4 kernel variants per arch
    # instead of over 60, which is most of the compile time.
    extra=(-DFLASHATTENTION_DISABLE_DROPOUT -DFLASHATTENTION_DISABLE_ALIBI -DFLASHATTENTION_DISABLE_LOCAL
      -DFLASHATTENTION_DISABLE_SOFTCAP -DFLASHATTENTION_DISABLE_UNEVEN_K)
    every_arch "$@"
  fi
  # The file's one explicit specialization, declared by flash.h, with a body that aborts.
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  {
    printf '#include "flash.h"\n#include <cutlass/numeric_types.h>\n#include <cstdio>\n#include <cstdlib>\n'
    grep -vE '^#include|^ *run_mha' "$src"
  } | sed -E "s|^(void run_mha[^{]*\{)|\1 fprintf(stderr, \"scail: FlashAttention kernel $base is not in this build\\\\n\"); abort();|" >"$tmp/$base"
  args=()
  for a in "$@"; do
    if [ "$a" = "$src" ]; then args+=("$tmp/$base" "-I$(dirname "$src")"); else args+=("$a"); fi
  done
  "$real" "${args[@]}"
  ;;
*) exec "$real" "$@" ;;
esac
