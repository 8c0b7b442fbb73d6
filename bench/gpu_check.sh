#!/usr/bin/env bash
# GPU check (issue 7, item 5): on a machine with a CUDA GPU, runs the CUDA tests of the ring
# buffer, preprocessing, the recognizer and training, then bench/gpu_check.py (model on cuda vs
# CPU, per-clip PR-GCN vs ST-GCN and streaming timings, the live pipeline's host<->device
# copies counted with torch.profiler) and, where onnxruntime-gpu is installed, the recognizer's
# onnxruntime backend on the CUDA provider (checked against torch, timed; skipped with a line
# otherwise). Under 5 minutes (40 s on an H200); exits 0 with a message where no GPU is present.
#   bench/gpu_check.sh            (from the repository root or anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${GPU_CHECK_OUT:-/tmp/prgcn_gpu_check.json}

if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    echo "gpu_check: no CUDA device here (torch.cuda.is_available() is false): skipped"
    exit 0
fi
"$PY" -c 'import torch; print("gpu_check:", torch.cuda.get_device_name(0), "torch", torch.__version__)'

status=0
# The tests that run only where CUDA exists (each is skipped without it).
timeout 150 "$PY" -m pytest -q -rs -k cuda \
    test/test_skeleton_ring_buffer.py test/test_skeleton_preprocess.py \
    test/test_recognition.py test/test_training.py || status=1
if "$PY" -c 'import sys, onnxruntime as o; sys.exit(0 if "CUDAExecutionProvider" in o.get_available_providers() else 1)' 2>/dev/null; then
    echo "gpu_check: onnxruntime has the CUDA provider: the onnxruntime backend runs on the GPU too"
else
    echo "gpu_check: onnxruntime has no CUDA provider (onnxruntime-gpu not installed): its CUDA run is skipped"
fi
timeout 150 "$PY" bench/gpu_check.py --device cuda --json "$OUT" || status=1
echo "gpu_check: figures in $OUT; $([ $status = 0 ] && echo passed || echo FAILED)"
exit $status
