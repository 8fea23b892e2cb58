#!/usr/bin/env bash
# The GPU check, for a session lent a device machine (one NVIDIA H100/H200 with Python 3.12 and
# torch, no internet). Prepare here with `make gpu-wheels` (bench/gpu-requirements.txt: what the
# device's image lacks, as cp312 wheels in .whl/), then run there, carrying .whl:
#   bash bench/gpu.sh
# It prints bench.ingest on CUDA: Chroma's reference pipeline on the same GPU against the worker
# path (bf16 weights, forward batches of 256, tasks of EMBED_BATCH_SIZE=256, reading on every
# core) twice: from the originals (each JPEG decoded by the worker) and from the derivatives the
# upload stored (decode once: COUNT photos uploaded through assets_upload, each derivative embedded
# DERIVATIVE_COPIES times, as that many images, so the card has seconds of work), each with its
# end-to-end images/s and the share of its time the card spent in forward passes (CUDA events) and
# waited for the host; then the image tower alone at several batch sizes and precisions with the
# share of the card's measured matmul peak for that precision. Logs go to $OUT when set.
# SKIP_BASELINE=1, REPEATS=N, COUNT=N, DERIVATIVE_COPIES=N and PRECISIONS=bf16,fp32 shorten a
# second run; the summary lines are repeated at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp}"
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site
fi
export CLIP_DEVICE=cuda EMBED_BATCH_SIZE=256 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import django, rest_framework, celery, chromadb, open_clip, torch, PIL, skimage, httpx, redis; print('python', __import__('sys').version.split()[0], 'torch', torch.__version__, 'chromadb', chromadb.__version__, 'open_clip', open_clip.__version__, 'pillow', PIL.__version__)" | tee -a "$out/gpu.txt"
python3 -m bench.ingest --count "${COUNT:-256}" --repeats "${REPEATS:-2}" ${SKIP_BASELINE:+--skip-baseline} \
  --derivative-copies "${DERIVATIVE_COPIES:-16}" \
  --model-batches 64,256,1024 --model-precisions "${PRECISIONS:-bf16,fp16,fp32}" 2>&1 | tee "$out/ingest-gpu.log"
echo "--- summary"
grep -E '^(machine|baseline|ours |ratio|agreement|forward|end to end)' "$out/ingest-gpu.log"
