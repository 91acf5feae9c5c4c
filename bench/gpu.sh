#!/usr/bin/env bash
# On a CUDA machine: check every model kind on the GPU against the CPU, then time lstm and gru at
# hidden 1024, batch 256, 35 steps in precision 32 and bf16-mixed beside the book's loop; one
# table, in well under 10 minutes. Needs torch, pytorch-lightning, numpy (no dvc, no mlflow: the
# check trains through the project's LightningModule without tracking).
#     bash bench/gpu.sh [--minibatches 60]
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python -c "import torch, pytorch_lightning, numpy" 2>/dev/null; then
  # A bare machine: the CUDA build of the pinned torch, then Lightning.
  python -m pip install --quiet "torch==2.13.0" "pytorch-lightning==$(
    sed -n 's/^pytorch-lightning==//p' constraints.txt)" numpy
fi
python -c "import torch; print('CUDA' if torch.cuda.is_available() else 'no CUDA: a dry run on the CPU')"
PYTHONPATH="src:${PYTHONPATH:-}" timeout 540 python bench/gpu_check.py "$@"
