#!/usr/bin/env bash
# Language-model benchmark, side by side in one run: understudy's training step against PyTorch's
# (Debian's python3-torch) on the same architecture, batches and steps, 2 threads each, at dim 256
# and 512, with OpenBLAS's own sgemm throughput measured inside bench_lm; then generation with and
# without the KV cache. Both sides use the same OpenBLAS kernels: the ones the understudy binary
# runs (see `understudy --version`). Writes bench/results/lm.jsonl and prints a table.
#
# Environment: BUILD (default build), ROUNDS (alternating rounds, default 3), STEPS (timed steps
# per round, default 5), DIMS (default "256 512").
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-5}
DIMS=${DIMS:-"256 512"}
if [[ ! -x $BUILD/bench/bench_lm || ! -x $BUILD/understudy ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD" -j2 --target bench_lm understudy >/dev/null
fi
if ! /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "bench_lm: skipped PyTorch: Debian's python3-torch is not installed (apt-get install python3-torch)" >&2
  TORCH=0
else
  TORCH=1
fi
core=$(env -u OPENBLAS_CORETYPE "$BUILD/understudy" --version | sed -n 's/^OpenBLAS: \([A-Za-z0-9]*\) kernels.*/\1/p')
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core}
echo "bench_lm: OpenBLAS kernels $OPENBLAS_CORETYPE for both sides; $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
mkdir -p bench/results
out=bench/results/lm.jsonl
: >"$out"
for r in $(seq "$ROUNDS"); do
  for dim in $DIMS; do
    args=(--layers 4 --dim "$dim" --heads 4 --context 128 --batch 8 --vocab 1024 --steps "$STEPS" --threads 2)
    "$BUILD/bench/bench_lm" train "${args[@]}" | tee -a "$out"
    if [[ $TORCH == 1 ]]; then /usr/bin/python3 bench/bench_lm_torch.py "${args[@]}" | tee -a "$out"; fi
  done
done
"$BUILD/bench/bench_lm" gen --layers 4 --dim 256 --heads 4 --context 256 --tokens 128 --threads 1 | tee -a "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("\n| dim | kernels | understudy tokens/s | PyTorch tokens/s | ratio | MFU vs sgemm |")
print("|---|---|---|---|---|---|")
for dim in sorted({r["dim"] for r in rows if r["bench"] == "lm_train"}):
    c = [r for r in rows if r["bench"] == "lm_train" and r["dim"] == dim]
    t = [r for r in rows if r["bench"] == "lm_train_torch" and r["dim"] == dim]
    ct = statistics.median(r["tokens_per_sec"] for r in c)
    tt = statistics.median(r["tokens_per_sec"] for r in t) if t else float("nan")
    mfu = statistics.median(r["mfu_vs_sgemm"] for r in c)
    print(f"| {dim} | {c[0]['blas_core']} | {ct:.0f} | {tt:.0f} | {ct / tt:.2f}x | {mfu:.2f} |")
for r in rows:
    if r["bench"] == "lm_generate":
        print(f"\ngeneration (dim {r['dim']}, {r['layers']} layers, 1 thread): "
              f"{r['tokens_per_sec_cached']:.0f} tokens/s with the KV cache, "
              f"{r['tokens_per_sec_uncached']:.0f} without ({r['speedup']:.1f}x)")
PY
