#!/usr/bin/env bash
# bench/bench_gpu.py on a lent GPU machine (docs/gpu.md), within about 8 minutes. That machine
# has Python 3.12 with JAX and PyTorch but no TensorFlow, Keras or network: the call carries
# .whl/ and official-nvae/, made here first by bench/prepare_gpu_run.sh. Writes to $OUT the
# output (bench_gpu.log), the result line for bench/results.jsonl (results.jsonl) and every
# side's log (side_logs.tgz).
#   bash bench/gpu_run.sh [bench_gpu.py arguments]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:?OUT: the folder whose files come back}
if [ ! -d .whl ] || [ ! -f official-nvae/train.py ]; then
  echo "gpu_run: carry .whl and official-nvae (made by bash bench/prepare_gpu_run.sh)" >&2
  exit 2
fi
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/nvae-gpu-site .whl/*.whl || exit 2
export PYTHONPATH=/tmp/nvae-gpu-site PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
before=$(wc -l < bench/results.jsonl)
python3 -m bench.bench_gpu --official-dir official-nvae --log-dir "$out/logs" "$@" \
  2>&1 | tee "$out/bench_gpu.log"
status=${PIPESTATUS[0]}
tail -n +"$((before + 1))" bench/results.jsonl > "$out/results.jsonl"
tar -czf "$out/side_logs.tgz" -C "$out" logs && rm -rf "$out/logs"
exit "$status"
