#!/usr/bin/env bash
# The GPU checks of issue 5, as one device call (BENCHMARKS.md, GPU): CUDA tests, the
# paper-scale training run (87,516 pairs, one pass, initial fusion, bf16, CUDA graphs) timed,
# `earlyfusion bench` on CUDA, a kernel profile of one step, and two comparison runs.
# Usage: scripts/gpu_check.sh DATA_ROOT OUT_DIR   (DATA_ROOT holds mnist/ and fsdd/recordings/)
# Writes OUT_DIR/summary.txt (everything printed), bench_b32.json, logs.txt (full logs).
set -u
DATA=${1:?data root}; OUT=${2:?output folder}
mkdir -p "$OUT"
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1 EARLYFUSION_DATA=$DATA
EF=(python3 -c 'import sys; from earlyfusion.cli import main; sys.exit(main())')
LOG=$OUT/logs.txt
exec > >(tee -a "$OUT/summary.txt") 2>&1
step() { echo; echo "=== $1 ($(date -u +%H:%M:%S))" | tee -a "$LOG"; }

train() {  # name, timeout, extra --set overrides...
  local name=$1 limit=$2; shift 2
  local t0 t1 rc
  t0=$(date +%s.%N)
  timeout "$limit" "${EF[@]}" train --run-dir "/tmp/runs/$name" --restart --set train.device=cuda "$@" >> "$LOG" 2>&1
  rc=$?; t1=$(date +%s.%N)
  python3 - "$name" "$rc" "$t0" "$t1" "/tmp/runs/$name/train.json" <<'PY'
import json, sys
name, rc, t0, t1, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
try:
    m = json.load(open(path))
except OSError:
    sys.exit(print(f"{name}: rc {rc}, no train.json (logs.txt)"))
print(f"{name}: rc {rc}, process wall {t1 - t0:.1f} s; training {m['train_seconds']:.1f} s for {m['examples']} "
      f"examples = {m['examples'] / m['train_seconds']:.0f} ex/s; val acc {m.get('val_accuracy')}, "
      f"train loss {m.get('train_loss'):.3f}")
PY
}

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'

step "CUDA tests"
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py tests/test_models_api.py -k cuda >> "$LOG" 2>&1
tail -3 "$LOG"

step "paper-scale training run: initial fusion, 87,516 pairs, batch 32, bf16, CUDA graphs"
train paper_b32_graphs 200 --set train.batch_size=32

step "bench, paper sizes, batch 32"
timeout 180 "${EF[@]}" bench --device cuda --batch-size 32 --json > "$OUT/bench_b32.json" 2>> "$LOG"
python3 -c 'import json,sys; from earlyfusion.bench_table import format_table; print(format_table(json.load(open(sys.argv[1]))))' \
  "$OUT/bench_b32.json" || tail -5 "$LOG"

step "profile of one eager step (B 32, T 92, bf16)"
timeout 45 python3 scripts/profile_step.py --batch-size 32 2>&1 | grep -v USDT

step "comparison runs"
train eager_b32_6400 90 --set train.batch_size=32 --set train.pairs=6400 --set train.cuda_graphs=false
train paper_b128_graphs 120 --set train.batch_size=128
step "done"
