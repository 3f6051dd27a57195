#!/usr/bin/env bash
# One-command accelerator benchmark at the paper's size (configs/default.py:
# ResNet-50 at 224 px, the 0.5x ShuffleNetV2 scan net at 64 px, M = 20,
# T = 8, 5-way 1-shot, Q = 5): eval ms per episode, train episodes per
# second, XLA's FLOPs per episode and achieved TFLOP/s, for ProtoNet and full
# VIM in float32 and bfloat16, on the first device JAX sees.
#
#   bash benchmarks/accelerator.sh                 # GPU or TPU build of JAX
#   PEAK_TFLOPS=989 bash benchmarks/accelerator.sh # adds MFU (H100 SXM bf16)
#
# The first run builds the procedural dataset of configs/default.py (no
# download). Extra arguments go to benchmarks/step_time.py (e.g. --steps=20).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import jax; print("devices:", jax.devices())'
args=(--rows=paper_protonet,paper_vim,paper_protonet_bf16,paper_vim_bf16
      --steps="${STEPS:-10}" --eval_batches="${EVAL_BATCHES:-10}")
if [[ -n "${PEAK_TFLOPS:-}" ]]; then
  args+=(--peak_tflops="${PEAK_TFLOPS}")
fi
exec python3 benchmarks/step_time.py "${args[@]}" "$@"
