#!/usr/bin/env bash
# Data-parallel training benchmark: 2 MPI ranks x 1 OpenBLAS thread against 1 process x 2
# threads, same model, same global batch (8 rows of 128 tokens, 4 layers, vocabulary 1024), at
# dim 128 and 256, alternating in ROUNDS rounds; each line also carries the allreduce time per
# step. Writes bench/results_lm_mpi.jsonl (one JSON line per run, with the load average before
# it) and prints a table of medians. Runs nice'd: the machine may be shared, so the figures are
# pessimistic; compare rounds taken under the same load.
#
# Environment: BUILD (default build), ROUNDS (default 3), STEPS (default 12), DIMS
# (default "128 256"), NICE (default 5).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-12}
DIMS=${DIMS:-"128 256"}
NICE=${NICE:-5}
command -v mpirun >/dev/null || { echo "bench_lm_mpi: mpirun is missing (scripts/deps.sh test)" >&2; exit 1; }
[[ -x $BUILD/bench/bench_lm_mpi ]] || cmake --build "$BUILD" -j2 --target bench_lm_mpi >/dev/null
MPIRUN=(mpirun --oversubscribe --bind-to none -np 2)
[[ $(id -u) -ne 0 ]] || MPIRUN+=(--allow-run-as-root)
export OMPI_MCA_btl_vader_single_copy_mechanism=none
out=bench/results_lm_mpi.jsonl
: >"$out"
echo "bench_lm_mpi: $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
run() { # label command...
  local load line
  load=$(cut -d' ' -f1 /proc/loadavg)
  line=$(nice -n "$NICE" "${@:2}")
  echo "${line%\}},\"setup\":\"$1\",\"load\":$load}" | tee -a "$out"
}
for r in $(seq "$ROUNDS"); do
  for dim in $DIMS; do
    args=(--layers 4 --dim "$dim" --heads 4 --context 128 --batch 8 --vocab 1024 --steps "$STEPS")
    run "2 ranks x 1 thread" "${MPIRUN[@]}" "$BUILD/bench/bench_lm_mpi" "${args[@]}" --threads 1
    run "1 process x 2 threads" "$BUILD/bench/bench_lm_mpi" "${args[@]}" --threads 2
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print(f"{'setup':24} {'dim':>4} {'tok/s':>7} {'step ms':>8} {'cpu ms':>7} {'compute cpu ms':>14} "
      f"{'allreduce ms (min)':>18} {'wait ms':>8} {'MB':>5} {'load':>10}")
for dim in sorted({r["dim"] for r in rows}):
    for setup in ("2 ranks x 1 thread", "1 process x 2 threads"):
        rs = [r for r in rows if r["dim"] == dim and r["setup"] == setup]
        if not rs: continue
        med = lambda k: statistics.median(r[k] for r in rs)
        loads = [r["load"] for r in rs]
        print(f"{setup:24} {dim:>4} {med('tokens_per_s'):>7.0f} {1e3*med('step_s'):>8.1f} "
              f"{1e3*med('cpu_s_per_step'):>7.1f} {1e3*med('compute_cpu_s'):>14.1f} "
              f"{1e3*med('allreduce_s'):>10.2f} ({1e3*min(r['allreduce_min_s'] for r in rs):.2f}) "
              f"{1e3*med('allreduce_wait_s'):>8.1f} {rs[0]['allreduce_mb']:>5.2f} "
              f"{min(loads):>4.1f}-{max(loads):<4.1f}")
PY
