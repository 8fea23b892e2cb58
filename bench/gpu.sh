#!/usr/bin/env bash
# The GPU check, for a session lent a device machine (one NVIDIA H100/H200, Python 3.12 with torch,
# no internet). Prepare here with `make gpu-wheels` (the project's pure-Python and manylinux wheels
# for Python 3.12 into .whl/), then run on the device, carrying .whl:
#   bash bench/gpu.sh
# It prints bench.ingest on CUDA (Chroma's reference pipeline on the same GPU vs the worker path,
# bf16 autocast, batches of CLIP_BATCH_SIZE) and the model-only rate at several batch sizes, with
# the share of the card's measured bf16 matmul peak. Results go to $OUT when set.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export CLIP_DEVICE=cuda PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv | tee "$out/gpu.txt"
python3 -m bench.ingest --count 400 --repeats 3 2>&1 | tee "$out/ingest-gpu.log"
for batch in 64 256 512; do
  CLIP_BATCH_SIZE=$batch python3 -m bench.ingest --count 400 --repeats 1 --skip-baseline 2>&1 | grep -E "^(ours|model)" | sed "s/^/batch $batch: /" | tee -a "$out/batches-gpu.log"
done
