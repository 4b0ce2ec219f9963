#!/usr/bin/env bash
# Everything to check on a GPU machine, in one run (aimed at under 8 minutes on
# one GPU): the GPU tests, then the throughput and memory table.
#
#   OUT=results bash benchmarks/gpu_session.sh
#
# Writes gpu_tests.log, gpu_check.log and gpu_check.json to $OUT (default:
# benchmarks/results). Uses the python3 on PATH, with this checkout on
# PYTHONPATH; the machine needs torch with CUDA, transformers, scikit-learn,
# pandas, pillow, safetensors, tqdm, matplotlib, psutil and pytest.
# SMOKE=1 rehearses it on a CPU in about a minute (tiny models, GPU tests skipped).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

nvidia-smi -L 2>&1 | tee "$OUT/gpu_tests.log"
python3 -c "import torch, transformers; print('torch', torch.__version__, \
'cuda', torch.version.cuda, 'transformers', transformers.__version__)" \
    2>&1 | tee -a "$OUT/gpu_tests.log"

# The tests first: they take a minute and say whether the numbers mean anything.
timeout 240 python3 -m pytest -m gpu -q -rs -p no:cacheprovider tests 2>&1 \
    | tee -a "$OUT/gpu_tests.log"
tests=$?

timeout 360 python3 benchmarks/gpu_check.py ${SMOKE:+--smoke} \
    --out "$OUT/gpu_check.json" 2>&1 \
    | tee "$OUT/gpu_check.log"
check=$?

echo "gpu tests exit $tests, gpu_check exit $check"
[ "$tests" -eq 0 ] && [ "$check" -eq 0 ]
