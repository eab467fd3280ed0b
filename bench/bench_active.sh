#!/usr/bin/env bash
# Active labelling against random order (issue 12): on banking77 and SNIPS intents
# (../shared/data), with the mock teacher on loopback replaying the gold labels, runs
# label.strategy "active" twice per data set over the same pool, the same coverage seed set and
# the same student: once picking later rounds by uncertainty and diversity, once in a fixed
# pseudo-random order (label.random_rounds). Both run to the whole pool (label.min_gain 0), so
# the last round is the full-pool agreement. Prints, per data set and order, the test agreement
# after each round and the labels needed to come within 1 point of the full pool; writes
# bench/results_active.json. Skips a data set whose folder is absent.
#   BUILD=build DATASETS="banking77 snips" ROUND=0.05 SEED=0.1 bench/bench_active.sh
# Variants: ORDERS="active random" (an order whose name starts with "random" is the baseline),
# MAX=1.0 (label.max_prompts; below the whole pool give FULL=<full-pool agreement, 0..1>),
# EXTRA="--set label.diversity=0", OUT=bench/results_active.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${DATA:-../shared/data}
DATASETS=${DATASETS:-"banking77 snips"}
ROUND=${ROUND:-0.05}
SEED=${SEED:-0.1}
EXTRA=${EXTRA:-}
ORDERS=${ORDERS:-"active random"}
MAX=${MAX:-1.0}
OUT=${OUT:-bench/results_active.json}
[ -x "$BUILD/understudy" ] && [ -x "$BUILD/tests/us_mock_teacher" ] ||
  { echo "bench_active: build first ($BUILD/understudy, $BUILD/tests/us_mock_teacher)" >&2; exit 1; }
work=$(mktemp -d)
mock_pid=
trap '[ -n "$mock_pid" ] && kill "$mock_pid" 2>/dev/null; rm -rf "$work"' EXIT
TEMPLATE=$'Classify this message into one of: {labels}.\nAnswer with the label only.\n\nMessage:\n{text}'

# prepare DS: writes $work/DS/{train,test,answers}.jsonl and labels.json; false when absent.
prepare() {
  local ds=$1 out=$work/$1
  mkdir -p "$out"
  case $ds in
    banking77) [ -f "$DATA/banking77/train.csv" ] && [ -f "$DATA/banking77/test.csv" ] || return 1 ;;
    snips) [ -f "$DATA/snips/train/label" ] && [ -f "$DATA/snips/test/label" ] || return 1 ;;
  esac
  python3 - "$ds" "$DATA" "$out" <<'PY'
import csv, json, sys
ds, data, out = sys.argv[1:]
rows = {}
if ds == "banking77":
    for split in ("train", "test"):
        with open(f"{data}/banking77/{split}.csv", newline="") as f:
            rows[split] = [(r["text"], r["category"]) for r in csv.DictReader(f)]
else:
    for split in ("train", "test"):
        with open(f"{data}/snips/{split}/seq.in") as fi, open(f"{data}/snips/{split}/label") as fl:
            rows[split] = [(t.strip(), l.strip()) for t, l in zip(fi, fl)]
labels = sorted({l for split in rows.values() for _, l in split})
with open(f"{out}/answers.jsonl", "w") as a:
    for split, items in rows.items():
        with open(f"{out}/{split}.jsonl", "w") as f:
            for t, l in items:
                f.write(json.dumps({"text": t, "label": l}) + "\n")
                a.write(json.dumps({"text": t, "answer": l}) + "\n")
json.dump(labels, open(f"{out}/labels.json", "w"))
PY
}

# config DS NAME: a classify config over the prepared files.
config() {
  local ds=$1 name=$2
  python3 - "$work/$ds" "$name" "$MOCK_URL" <<'PY'
import json, sys
d, name, url = sys.argv[1:]
labels = json.load(open(f"{d}/labels.json"))
json.dump({"name": name, "output": f"{d}/{name}",
           "task": {"type": "classify", "labels": labels},
           "data": {"inputs": [{"path": f"{d}/train.jsonl", "split": "train"},
                               {"path": f"{d}/test.jsonl", "split": "test"}]},
           "teacher": {"base_url": url, "model": "mock-teacher", "concurrency": 16,
                       "budget_usd": 100, "price": {"input_per_mtok": 2.5, "output_per_mtok": 10}},
           "student": {"threads": 1}},
          open(f"{d}/{name}.json", "w"), indent=1)
PY
}

for ds in $DATASETS; do
  if ! prepare "$ds"; then echo "bench_active: skipped $ds: $DATA/$ds is absent"; continue; fi
  "$BUILD/tests/us_mock_teacher" --port 0 --port-file "$work/port.$ds" \
    --answers "$work/$ds/answers.jsonl" --template "$TEMPLATE" --quiet --die-with-parent &
  mock_pid=$!
  for _ in $(seq 200); do [ -s "$work/port.$ds" ] && break; sleep 0.05; done
  MOCK_URL="http://127.0.0.1:$(cat "$work/port.$ds")/v1"
  for order in $ORDERS; do
    config "$ds" "$order"
    random=false
    [ "${order#random}" != "$order" ] && random=true
    start=$(date +%s)
    # shellcheck disable=SC2086
    "$BUILD/understudy" run "$work/$ds/$order.json" --quiet --set label.strategy=active \
      --set label.min_gain=0 --set "label.max_prompts=$MAX" --set "label.seed_prompts=$SEED" \
      --set "label.round_prompts=$ROUND" --set "label.random_rounds=$random" $EXTRA \
      >"$work/$ds/$order.out" 2>&1 || { cat "$work/$ds/$order.out" >&2; exit 1; }
    echo "bench_active: $ds $order: $(($(date +%s) - start)) s (load $(cut -d' ' -f1-3 /proc/loadavg))"
    sqlite3 "$work/$ds/$order/understudy.db" "SELECT COUNT(*) FROM prompts WHERE split = 0" \
      >"$work/$ds/$order.pool"
    sqlite3 -separator ' ' "$work/$ds/$order/understudy.db" \
      "SELECT round, n_labelled, spent_usd, test_agreement, valid_agreement, valid_back, stop
         FROM active_rounds ORDER BY round" \
      >"$work/$ds/$order.rounds"
  done
  kill "$mock_pid" 2>/dev/null || true
  wait "$mock_pid" 2>/dev/null || true
  mock_pid=
done

python3 - "$work" "$DATASETS" "$ORDERS" "$OUT" "${FULL:-}" <<'PY'
import json, os, sys
work, datasets, orders, out, full_given = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4], sys.argv[5]
results = {}
for ds in datasets:
    res = {}
    for order in orders:
        p = f"{work}/{ds}/{order}.rounds"
        if not os.path.exists(p):
            continue
        lines = [l.split() for l in open(p) if l.strip()]
        rounds = [list(map(float, l[:6])) for l in lines]
        stop = lines[-1][6] if len(lines[-1]) > 6 else None
        pool = float(open(f"{work}/{ds}/{order}.pool").read())
        # the full-pool agreement: the last round when it labelled the whole pool, else FULL
        full = rounds[-1][3] if not full_given else float(full_given)
        need = next((r for r in rounds if r[3] >= full - 0.01), rounds[-1])
        res[order] = {"pool": int(pool), "full_pool_agreement": full,
                      "labels_within_1_point": int(need[1]),
                      "fraction_within_1_point": need[1] / pool,
                      "dollars_within_1_point": need[2], "dollars_last_round": rounds[-1][2],
                      "stop": stop,
                      "curve": [{"labels": int(r[1]), "dollars": r[2], "test_agreement": r[3],
                                 "valid_agreement": r[4], "valid_back": r[5]} for r in rounds]}
        if stop:
            print(f"{ds} {order}: stopped ({stop}) after {int(rounds[-1][1])} labels at "
                  f"{100*rounds[-1][3]:.2f}% test agreement")
        print(f"{ds} {order}: pool {int(pool)}, full-pool test agreement {100*full:.2f}%; "
              f"within 1 point after {int(need[1])} labels ({100*need[1]/pool:.1f}% of the pool, "
              f"${need[2]:.4f} of ${rounds[-1][2]:.4f})")
        print("   labels  " + " ".join(f"{int(r[1]):>6}" for r in rounds))
        print("   test %  " + " ".join(f"{100*r[3]:6.2f}" for r in rounds))
    if res:
        results[ds] = res
json.dump(results, open(out, "w"), indent=1)
PY
