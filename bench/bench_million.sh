#!/usr/bin/env bash
# A million prompts (issue 14): labelling must not grow in memory with the number of prompts.
#  1. the mock teacher alone under wrk at CONNECTIONS connections (its bound in requests/s);
#  2. `understudy prompts` on N short prompts (JSONL): peak RSS, wall and CPU time, rows/s;
#  3. `understudy label` against the mock at concurrency C, killed with SIGKILL once KILL_AT of
#     the answers are committed; then the resume to the end. For each: peak RSS (GNU time -v),
#     wall and CPU time, answers committed per second (SQLite write throughput: each answer is a
#     calls row and a targets row, committed in batches), teacher requests per second;
#  4. checks: answers = prompts, distinct keys billed = prompts, requests sent in all, keys billed
#     twice (only the requests in flight at the kill can be), integrity_check.
#  5. BATCH=1 (default): `understudy label` with teacher.mode "batch" against the mock's Batch API
#     on a copy of the workspace the prompts stage wrote, batches of at most BATCH_MAX requests:
#     peak RSS, wall and CPU time, batches created, rows billed once, answers committed
#     (bench/results_million_batch.json). LIVE=0 skips 1 and 3 (the live runs).
# Prints a summary and writes bench/results_million.json. Run it nice'd on a shared machine:
#   N=1000000 C=256 WINDOW=4096 nice -n 5 bench/bench_million.sh
#   N=200000 LIVE=0 nice -n 5 bench/bench_million.sh     # batch mode only
#   (REUSE=1 WORK=DIR: with LIVE=0, the prompts stage a previous run left in DIR is kept)
# Needs wrk, GNU time and sqlite3 (scripts/deps.sh bench).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${N:-1000000}
C=${C:-256}
WINDOW=${WINDOW:-4096}
KILL_AT=${KILL_AT:-0.6}
WRK_SECONDS=${WRK_SECONDS:-10}
CONNECTIONS=${CONNECTIONS:-$C}
OUT_JSON=${OUT_JSON:-bench/results_million.json}
LIVE=${LIVE:-1}
BATCH=${BATCH:-1}
BATCH_MAX=${BATCH_MAX:-50000}
BATCH_JSON=${BATCH_JSON:-bench/results_million_batch.json}
for tool in wrk sqlite3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench_million: $tool is missing: scripts/deps.sh bench" >&2; exit 1; }
done
bin=$BUILD/understudy
mock=$BUILD/tests/us_mock_teacher
[ -x "$bin" ] && [ -x "$mock" ] || { echo "bench_million: build first (missing $bin or $mock)" >&2; exit 1; }
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/us-million.XXXXXX")}
mkdir -p "$work"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
log() { echo "bench_million: $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

LABELS=billing,tech,account,other
TEMPLATE=$'Classify this customer message into one of: {labels}.\nMessage: {text}\nLabel:'

# ---- the prompts: short customer messages, every one distinct -------------------------------
if [ ! -s "$work/prompts.jsonl" ] || [ "$(wc -l <"$work/prompts.jsonl")" -ne "$N" ]; then
  log "writing $N prompts to $work/prompts.jsonl"
  awk -v n="$N" 'BEGIN {
    split("my card was charged twice|the app crashes on login|how do I change my email|" \
          "I want a refund|the invoice is wrong|the reset link is broken|can I add a user|" \
          "export does nothing|billed after cancelling|close my account", a, "|");
    split("please help|thanks|urgent|since yesterday|again|on my phone|on the web", b, "|");
    for (i = 1; i <= n; i++)
      printf "{\"text\":\"%s, ticket %d, %s\"}\n", a[(i * 7) % 10 + 1], i, b[(i * 13) % 7 + 1];
  }' >"$work/prompts.jsonl"
fi

# ---- the mock teacher -------------------------------------------------------------------------
rm -f "$work/mock.port"
"$mock" --port 0 --port-file "$work/mock.port" --quiet --die-with-parent \
  --template "$TEMPLATE" --labels "$LABELS" &
pids+=($!)
for _ in $(seq 200); do [ -s "$work/mock.port" ] && break; sleep 0.05; done
root="http://127.0.0.1:$(cat "$work/mock.port")"
jq1() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(d[sys.argv[1]])' "$1"; }
quote() { python3 -c 'import json, sys; print(json.dumps(sys.stdin.read()))'; }
stats() { curl -sf "$root/_stats" | jq1 "$1"; }

cat >"$work/config.json" <<EOF
{
  "name": "million",
  "output": "$work/out",
  "task": {"type": "classify", "labels": ["billing", "tech", "account", "other"],
           "instructions": "You sort customer messages. Answer with exactly one label.",
           "template": $(printf '%s' "$TEMPLATE" | quote)},
  "data": {"inputs": ["$work/prompts.jsonl"], "test_fraction": 0.2, "seed": 1},
  "teacher": {"base_url": "$root/v1", "model": "mock-teacher", "concurrency": $C,
              "window": $WINDOW, "timeout_s": 60, "max_retries": 8, "budget_usd": 1000000,
              "price": {"input_per_mtok": 0.15, "output_per_mtok": 0.6}}
}
EOF

# ---- 1. the mock alone ------------------------------------------------------------------------
if [ "$LIVE" = 1 ]; then
body='{"messages":[{"content":"You sort customer messages. Answer with exactly one label.","role":"system"},{"content":"Classify this customer message into one of: billing, tech, account, other.\nMessage: wrk probe, ticket 0, thanks\nLabel:","role":"user"}],"model":"mock-teacher","max_tokens":16,"temperature":0}'
printf 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = %s\n' \
  "$(printf '%s' "$body" | quote)" >"$work/post.lua"
log "the mock alone: wrk, $CONNECTIONS connections, 2 threads, ${WRK_SECONDS}s (load $(load))"
mock_load=$(load)
wrk -t2 -c"$CONNECTIONS" -d"${WRK_SECONDS}s" -s "$work/post.lua" "$root/v1/chat/completions" \
  >"$work/wrk.txt" 2>&1 || { cat "$work/wrk.txt" >&2; exit 1; }
mock_rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
mock_errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.txt" | tr '\n' ' ')
log "mock bound: $mock_rps requests/s ${mock_errors:+($mock_errors)}"
curl -sf -X POST "$root/_reset" >/dev/null
fi

# rusage FILE FIELD: one figure of GNU time -v's report.
rusage() { awk -F': ' -v f="$2" 'index($1, f) { v = $2 } END { print v }' "$1"; }
seconds() { # "h:mm:ss" or "m:ss.cc" -> seconds
  awk -F: '{ s = 0; for (i = 1; i <= NF; i++) s = s * 60 + $i; print s }' <<<"$1"
}
cpu() { awk -v u="$(rusage "$1" 'User time')" -v s="$(rusage "$1" 'System time')" 'BEGIN { print u + s }'; }
db() { sqlite3 "$work/out/understudy.db" "$1"; }

# ---- 2. the prompts stage ---------------------------------------------------------------------
# REUSE=1 with LIVE=0: the workspace a previous run of the prompts stage left in WORK, unlabelled
prompts_load=$(load)
if [ "${REUSE:-0}" = 1 ] && [ "$LIVE" = 0 ] && [ -s "$work/prompts.time" ] &&
  [ "$(db 'SELECT COUNT(*) FROM prompts;' 2>/dev/null)" = "$N" ] &&
  [ "$(db 'SELECT COUNT(*) FROM calls;' 2>/dev/null)" = 0 ]; then
  log "prompts: reusing the $N prompts of $work/out"
else
  rm -rf "$work/out"
  log "prompts: $N (load $prompts_load)"
  /usr/bin/time -v -o "$work/prompts.time" "$bin" prompts "$work/config.json" >"$work/prompts.out" 2>&1 ||
    { cat "$work/prompts.out" >&2; exit 1; }
fi
prompts_rss=$(rusage "$work/prompts.time" 'Maximum resident')
prompts_wall=$(seconds "$(rusage "$work/prompts.time" 'Elapsed (wall clock)')")
prompts_cpu=$(cpu "$work/prompts.time")
stored=$(db 'SELECT COUNT(*) FROM prompts;')
log "prompts: $stored stored, peak RSS ${prompts_rss} KB, ${prompts_wall}s wall, ${prompts_cpu}s CPU"
if [ "$BATCH" = 1 ]; then # the batch run labels a copy of the workspace as it is now
  rm -rf "$work/outb" && mkdir -p "$work/outb"
  sqlite3 "$work/out/understudy.db" "VACUUM INTO '$work/outb/understudy.db';"
fi
if [ "$LIVE" = 1 ]; then

# ---- 3. label, kill -9 at KILL_AT, resume -----------------------------------------------------
kill_at=$(awk -v n="$N" -v f="$KILL_AT" 'BEGIN { printf "%d", n * f }')
label_load=$(load)
log "label: concurrency $C, window $WINDOW, kill -9 at $kill_at answers (load $label_load)"
t0=$(date +%s.%N)
/usr/bin/time -v -o "$work/label1.time" "$bin" label "$work/config.json" --quiet \
  >"$work/label1.out" 2>"$work/label1.err" &
time_pid=$!
sleep 0.5
us_pid=$(pgrep -P "$time_pid" -x understudy || true)
[ -n "$us_pid" ] || { cat "$work/label1.err" >&2; echo "bench_million: label did not start" >&2; exit 1; }
while :; do
  got=$(db 'SELECT COALESCE(MAX(rowid), 0) FROM calls;' 2>/dev/null || echo 0)
  [ "$got" -ge "$kill_at" ] && break
  kill -0 "$us_pid" 2>/dev/null || { cat "$work/label1.err" >&2; echo "bench_million: label ended before the kill" >&2; exit 1; }
  sleep 0.2
done
kill -KILL "$us_pid"
wait "$time_pid" || true
t1=$(date +%s.%N)
at_kill=$(db 'SELECT COUNT(*) FROM calls;')
requests_at_kill=$(stats chat_requests)
label1_rss=$(rusage "$work/label1.time" 'Maximum resident')
label1_cpu=$(cpu "$work/label1.time")
label1_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
integrity=$(db 'PRAGMA integrity_check;')
log "killed: $at_kill answers committed, $requests_at_kill requests, peak RSS $label1_rss KB, ${label1_wall}s, integrity $integrity"
sleep 1 # the requests in flight at the kill reach the mock's books

resume_load=$(load)
log "resume (load $resume_load)"
/usr/bin/time -v -o "$work/label2.time" "$bin" label "$work/config.json" --quiet \
  >"$work/label2.out" 2>"$work/label2.err" || { cat "$work/label2.err" >&2; exit 1; }
label2_rss=$(rusage "$work/label2.time" 'Maximum resident')
label2_wall=$(seconds "$(rusage "$work/label2.time" 'Elapsed (wall clock)')")
label2_cpu=$(cpu "$work/label2.time")
answers=$(db 'SELECT COUNT(*) FROM calls;')
targets=$(db 'SELECT COUNT(DISTINCT prompt_id) FROM targets;')
requests=$(stats chat_requests)
billed_keys=$(stats billed_keys)
twice=$(stats keys_billed_more_than_once)
max_bills=$(stats max_bills_per_key)
resumed=$((answers - at_kill))
rate1=$(awk -v a="$at_kill" -v t="$label1_wall" 'BEGIN { printf "%.0f", a / t }')
rate2=$(awk -v a="$resumed" -v t="$label2_wall" 'BEGIN { printf "%.0f", a / t }')
req2=$(awk -v a="$((requests - requests_at_kill))" -v t="$label2_wall" 'BEGIN { printf "%.0f", a / t }')
cpu_per=$(awk -v c="$label2_cpu" -v a="$resumed" 'BEGIN { printf "%.1f", c / a * 1e6 }')
log "resume: $resumed answers, peak RSS $label2_rss KB, ${label2_wall}s wall, ${label2_cpu}s CPU"
grep -h "prompts:" "$work/label2.out" >&2 || true

fi # LIVE

# ---- 5. batch mode ----------------------------------------------------------------------------
batch_run() {
  python3 - "$work/config.json" "$work/configb.json" "$work/outb" "$BATCH_MAX" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["output"] = sys.argv[3]
c["teacher"].update({"mode": "batch", "batch_max_requests": int(sys.argv[4]), "batch_poll_s": 1})
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
  curl -sf -X POST "$root/_reset" >/dev/null
  batch_load=$(load)
  log "batch: $N prompts, batches of at most $BATCH_MAX (load $batch_load)"
  /usr/bin/time -v -o "$work/batch.time" "$bin" label "$work/configb.json" --quiet \
    >"$work/batch.out" 2>"$work/batch.err" || { cat "$work/batch.err" >&2; exit 1; }
  batch_end_load=$(load)
  local rss wall cpu_s answers created rows billed twice live
  rss=$(rusage "$work/batch.time" 'Maximum resident')
  wall=$(seconds "$(rusage "$work/batch.time" 'Elapsed (wall clock)')")
  cpu_s=$(cpu "$work/batch.time")
  answers=$(sqlite3 "$work/outb/understudy.db" 'SELECT COUNT(*) FROM calls;')
  created=$(stats batches_created)
  rows=$(stats batch_rows)
  billed=$(stats batch_billed)
  twice=$(stats keys_billed_more_than_once)
  live=$(stats chat_requests)
  log "batch: $answers answers, $created batches, peak RSS $rss KB, ${wall}s wall, ${cpu_s}s CPU (load $batch_load -> $batch_end_load)"
  cat >"$BATCH_JSON" <<JSON
{
  "bench": "million_batch", "prompts": $N, "batch_max_requests": $BATCH_MAX, "window": $WINDOW,
  "rss_kb": $rss, "wall_s": $wall, "cpu_s": $cpu_s, "batches_created": $created,
  "batch_rows": $rows, "batch_billed": $billed, "keys_billed_twice": $twice,
  "live_requests": $live, "answers": $answers,
  "cpu_us_per_answer": $(awk -v c="$cpu_s" -v a="$answers" 'BEGIN { printf "%.1f", a ? c / a * 1e6 : 0 }'),
  "load_start": "$batch_load", "load_end": "$batch_end_load"
}
JSON
  cat "$BATCH_JSON"
  [ "$answers" -eq "$N" ] || { log "FAIL: batch: $answers answers for $N prompts"; batch_status=1; }
  [ "$billed" -eq "$N" ] || { log "FAIL: batch: $billed rows billed for $N prompts"; batch_status=1; }
  [ "$twice" -eq 0 ] || { log "FAIL: batch: $twice keys billed twice"; batch_status=1; }
  [ "$live" -eq 0 ] || { log "FAIL: batch: $live live requests"; batch_status=1; }
}
batch_status=0
if [ "$BATCH" = 1 ]; then batch_run; fi
[ "$LIVE" = 1 ] || exit $batch_status

cat >"$OUT_JSON" <<EOF
{
  "bench": "million", "prompts": $N, "concurrency": $C, "window": $WINDOW,
  "mock_alone": {"connections": $CONNECTIONS, "requests_per_s": ${mock_rps:-0}, "load": "$mock_load"},
  "prompts_stage": {"rss_kb": $prompts_rss, "wall_s": $prompts_wall, "cpu_s": $prompts_cpu,
                    "stored": $stored, "load": "$prompts_load"},
  "label_until_kill": {"rss_kb": $label1_rss, "wall_s": $label1_wall, "cpu_s": $label1_cpu,
                       "answers": $at_kill, "answers_per_s": $rate1, "requests": $requests_at_kill,
                       "integrity": "$integrity", "load": "$label_load"},
  "resume": {"rss_kb": $label2_rss, "wall_s": $label2_wall, "cpu_s": $label2_cpu,
             "answers": $resumed, "answers_per_s": $rate2, "requests_per_s": $req2,
             "cpu_us_per_answer": $cpu_per, "load": "$resume_load"},
  "totals": {"answers": $answers, "labelled_prompts": $targets, "requests": $requests,
             "billed_keys": $billed_keys, "keys_billed_twice": $twice,
             "max_bills_per_key": $max_bills}
}
EOF
cat "$OUT_JSON"
status=0
[ "$answers" -eq "$N" ] || { log "FAIL: $answers answers for $N prompts"; status=1; }
[ "$targets" -eq "$N" ] || { log "FAIL: $targets labelled prompts for $N"; status=1; }
[ "$billed_keys" -eq "$N" ] || { log "FAIL: $billed_keys distinct keys billed for $N prompts"; status=1; }
[ "$twice" -le "$C" ] || { log "FAIL: $twice keys billed twice (more than the $C in flight)"; status=1; }
[ "$integrity" = ok ] || { log "FAIL: integrity_check after the kill: $integrity"; status=1; }
[ "$batch_status" -eq 0 ] || status=1
exit $status
