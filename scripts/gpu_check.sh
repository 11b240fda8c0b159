#!/usr/bin/env bash
# The GPU checks of issue 5, as one device call (BENCHMARKS.md, GPU).
# Usage: scripts/gpu_check.sh DATA_ROOT OUT_DIR [PART ...]   (parts run in the order given;
#   DATA_ROOT holds mnist/ and fsdd/recordings/; no part named: tests steps paper bench)
#   tests    the CUDA-only tests (graph step + compiled cell vs eager, CUDA vs CPU model)
#   steps    scripts/gpu_steps.py: step times eager / CUDA graph, each with and without the
#            compiled cell, at batch $STEP_BATCHES (default 256 512), the conv ceiling, a profile
#   paper    the paper-scale training run: initial fusion, 87,516 pairs, one pass, bf16, CUDA
#            graphs and the compiled cell (train's CUDA defaults), once per batch in
#            $PAPER_BATCHES (default 256)
#   bench    `earlyfusion bench --device cuda --batch-size 32`
#   compare  a short eager run (6,400 pairs, batch 32) for the graphs' gain in real training
#   ab       steps (this code, batch 256, profiled) and base, then the paper run at batch 256
#            with whichever of the two stepped faster
#   base     the step times of another copy of the code in .base/ (e.g. `git archive` of an
#            older commit), graph + compiled cell at batch 256: an A/B on the same machine
# Writes OUT_DIR/summary.txt (everything printed), bench_b32.json, logs.txt (full logs).
set -u
DATA=$(realpath "${1:?data root}"); OUT=${2:?output folder}; shift 2
CODE=$PWD  # the code a training run imports (part ab may switch it to .base/)
PARTS=${*:-tests steps paper bench}
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
  (cd "$CODE" && PYTHONPATH=$CODE timeout "$limit" "${EF[@]}" train --run-dir "/tmp/runs/$name" --restart --set train.device=cuda "$@") >> "$LOG" 2>&1
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

part_tests() {
  step "CUDA tests"
  timeout 150 python3 -m pytest -q -p no:cacheprovider tests/test_graphs.py tests/test_models_api.py -k cuda >> "$LOG" 2>&1
  tail -3 "$LOG"
}
part_steps() {
  step "step times: initial fusion, T 92, bf16, channels-last, batch ${STEP_BATCHES:-256 512}"
  # shellcheck disable=SC2086
  timeout 170 python3 scripts/gpu_steps.py --batch-sizes ${STEP_BATCHES:-256 512} 2>&1 | grep -v "USDT\|_warn_once\|UserWarning"
}
part_paper() {
  local b
  for b in ${PAPER_BATCHES:-256}; do
    step "paper-scale training run: initial fusion, 87,516 pairs, batch $b, bf16, CUDA graphs, compiled cell"
    train "paper_b${b}" "${PAPER_LIMIT:-115}" --set train.batch_size="$b"
  done
}
part_bench() {
  step "bench, paper sizes, batch 32"
  timeout 150 "${EF[@]}" bench --device cuda --batch-size 32 --json > "$OUT/bench_b32.json" 2>> "$LOG"
  python3 -c 'import json,sys; from earlyfusion.bench_table import format_table; print(format_table(json.load(open(sys.argv[1]))))' \
    "$OUT/bench_b32.json" || tail -5 "$LOG"
}
part_compare() {
  step "comparison run: eager, batch 32"
  train eager_b32_6400 90 --set train.batch_size=32 --set train.pairs=6400 --set train.cuda_graphs=false
}
part_base() {
  step "A/B: the code in .base/, graph + compiled cell, batch 256"
  [ -d .base ] || { echo "no .base/"; return; }
  PYTHONPATH=$PWD/.base timeout 60 python3 .base/scripts/gpu_steps.py --batch-sizes 256 --variants graph+fused \
    --profile-top 0 2>&1 | grep -v "USDT\|_warn_once\|UserWarning"
}

part_ab() {  # steps (this code) and base at batch 256, then the paper run with the faster one
  local mine theirs
  step "A/B at batch 256: this code (profiled) vs .base/"
  timeout 100 python3 scripts/gpu_steps.py --batch-sizes 256 --variants eager+fused graph+fused \
    2>&1 | grep -v "USDT\|_warn_once\|UserWarning\|pow_by_natural" | tee "$OUT/steps_new.txt"
  part_base | tee "$OUT/steps_base.txt"
  mine=$(awk '$3 == "graph+fused" {print $4}' "$OUT/steps_new.txt")
  theirs=$(awk '$3 == "graph+fused" {print $4}' "$OUT/steps_base.txt")
  echo "graph+fused ms/step: this code ${mine:-none}, .base ${theirs:-none}"
  if [ -n "$theirs" ] && { [ -z "$mine" ] || awk "BEGIN {exit !($theirs < $mine)}"; }; then
    echo "the paper run uses .base/"; CODE=$PWD/.base
  fi
  PAPER_BATCHES=256 part_paper
  CODE=$PWD
}

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit --format=csv
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())'
for p in $PARTS; do "part_$p"; done
step "done"
