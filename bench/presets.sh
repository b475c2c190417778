#!/usr/bin/env bash
# The fast preset (distilled recipe: 4 Euler steps, CFG 1) against quality (the hosted 40 UniPC
# steps, CFG 5) on CPU: seconds per job and per segment at the tiny config (whole job) and a
# mid-size DiT (sampling core), interleaved for BENCH_ROUNDS rounds (default 3), min and median,
# and the speed-up, all from one invocation. Random weights: this measures time, not quality.
#   bench/presets.sh
set -euo pipefail
BENCH_PRESETS=1 exec "$(dirname "$0")/pipeline.sh"
