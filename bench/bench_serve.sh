#!/usr/bin/env bash
# `understudy serve` under load (issue 11), with wrk (scripts/deps.sh bench) on loopback:
#  1. student route: banking77 task requests (the workspace's own canonical requests, 200 of
#     them in turn), every one answered by the student (serve.threshold 0, no audit), keep-alive,
#     at 1..256 connections: requests/s and p50/p99 latency;
#  2. teacher route: a request the server does not answer itself (a unique prompt each time, so
#     never a cache hit), proxied to the mock teacher answering after MOCK_LATENCY_MS, against
#     the same load sent to the mock directly (the passthrough baseline): the overhead at p50/p99;
#  3. the floor: fastText's and understudy's own prediction cost per text from the classifier
#     bench (bench/results.json), printed beside the figures.
# Every row also gives the server's CPU per request (utime + stime of the server process from
# /proc/PID/stat over the run, divided by the requests wrk completed): on a shared machine it is
# the figure that survives contention, where requests/s and latency do not. wrk runs on the same
# cores and its own CPU per request is printed beside it (it counts against the same cores), with
# the load average when each row was taken.
# BEFORE=DIR (a build folder of another version) runs the same rows against DIR/understudy too,
# alternating with BUILD's, row by row, for a before/after under the same load.
# Prints a Markdown table and writes bench/results_serve.json. Usage:
#   BUILD=build DURATION=5 CONNECTIONS="1 8 16 64 256" [BEFORE=../old/build] bench/bench_serve.sh
# (CONNECTIONS="" skips the student rows and measures the teacher route only)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS-1 8 16 64 256} # set but empty: the teacher rows only
TEACHER_CONNECTIONS=${TEACHER_CONNECTIONS:-16}
MOCK_LATENCY_MS=${MOCK_LATENCY_MS:-20}
THREADS=${THREADS:-2}
BEFORE=${BEFORE:-}
b_rps= b_p50= b_p99= b_bad= b_cpu= b_load=
data=../shared/data/banking77
command -v wrk >/dev/null || { echo "bench_serve: wrk is missing: scripts/deps.sh bench" >&2; exit 1; }
[ -f "$data/train.csv" ] || { echo "bench_serve: $data is absent" >&2; exit 1; }
bin=$BUILD/understudy
mock=$BUILD/tests/us_mock_teacher
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"' EXIT

start_mock() { # start_mock NAME [flags]: a mock on an ephemeral port; sets PORT
  local name=$1
  shift
  "$mock" --port 0 --port-file "$work/$name.port" --quiet --die-with-parent "$@" &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$work/$name.port" ] && break; sleep 0.05; done
  PORT=$(cat "$work/$name.port")
}

echo "bench_serve: labelling and training banking77 in $work" >&2
python3 - "$data" "$work/answers.jsonl" <<'PY'
import csv, json, sys
with open(sys.argv[2], "w") as out:
    for name in ("train.csv", "test.csv"):
        with open(f"{sys.argv[1]}/{name}", newline="") as f:
            for row in csv.DictReader(f):
                out.write(json.dumps({"text": row["text"], "answer": row["category"]}) + "\n")
PY
tpl=$'Classify this message into one of: {labels}.\nAnswer with the label only.\n\nMessage:\n{text}'
start_mock label --answers "$work/answers.jsonl" --template "$tpl"
port=$PORT
sets=(--set "output=\"$work/out\"" --set "teacher.base_url=\"http://127.0.0.1:$port/v1\"")
"$bin" run configs/banking77.json "${sets[@]}" --quiet >"$work/run.log" 2>&1 ||
  { tail "$work/run.log" >&2; exit 1; }

# wrk scripts: the task requests in turn (student route), and unique other requests (teacher)
sqlite3 "$work/out/understudy.db" "SELECT request FROM calls LIMIT 200;" >"$work/bodies.txt"
cat >"$work/student.lua" <<LUA
local bodies = {}
for line in io.lines("$work/bodies.txt") do bodies[#bodies + 1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json"},
                    bodies[(i % #bodies) + 1])
end
LUA
cat >"$work/teacher.lua" <<'LUA'
local i, id = 0, 0
setup = function(thread) id = id + 1; thread:set("id", id) end
request = function()
  i = i + 1
  local body = string.format(
    '{"model":"mock-teacher","messages":[{"role":"user","content":"bench prompt %d-%d-%f"}]}',
    id or 0, i, os.clock())
  return wrk.format("POST", "/v1/chat/completions", {["Content-Type"] = "application/json"}, body)
end
LUA

# cpu_ticks PID: user + system clock ticks the process has used
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# run_wrk URL CONNS SCRIPT [PID]: "rps p50_ms p99_ms non2xx total server_cpu_us wrk_cpu_us load1"
# from wrk --latency; the CPU figures are per request, of PID (the server; 0 without one) and of
# wrk itself
run_wrk() {
  local threads=$THREADS pid=${4:-}
  [ "$2" -lt "$threads" ] && threads=$2
  local t0=0 t1=0
  [ -n "$pid" ] && t0=$(cpu_ticks "$pid")
  /usr/bin/time -f '%U %S' -o "$work/wrk.time" \
    wrk -t"$threads" -c"$2" -d"${DURATION}s" --latency -s "$3" "$1" >"$work/wrk.out" 2>&1 || true
  [ -n "$pid" ] && t1=$(cpu_ticks "$pid")
  local load
  load=$(cut -d' ' -f1 /proc/loadavg)
  awk -v ticks="$((t1 - t0))" -v hz="$hz" -v load="$load" -v wrk_time="$(tail -n1 "$work/wrk.time")" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec/ { rps = $2 }
    / requests in / { total = $1 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { bad = $NF }
    END {
      split(wrk_time, w, " ")
      n = total + 0
      printf "%s %s %s %s %s %.1f %.1f %s\n", rps, p50, p99, bad + 0, n,
        n ? ticks / hz * 1e6 / n : 0, n ? (w[1] + w[2]) * 1e6 / n : 0, load
    }' "$work/wrk.out"
}

serve() { # serve NAME [--set ...]: starts the server ($SERVE_BIN, else BUILD's); sets PORT
  local name=$1
  shift
  "${SERVE_BIN:-$bin}" serve configs/banking77.json "${sets[@]}" --port 0 --port-file "$work/$name.port" \
    --set serve.threads="$THREADS" --set serve.audit_rate=0 --set serve.log_prompts=false "$@" \
    --quiet 2>"$work/$name.err" &
  pids+=($!)
  for _ in $(seq 300); do [ -s "$work/$name.port" ] && break; sleep 0.05; done
  PORT=$(cat "$work/$name.port")
}

hz=$(getconf CLK_TCK)
echo "bench_serve: student route" >&2
serve student --set serve.threshold=0
sport=$PORT
spid=${pids[-1]}
curl -sf -D - -o /dev/null -H 'Content-Type: application/json' --data-binary "$(head -n1 "$work/bodies.txt")" \
  "http://127.0.0.1:$sport/v1/chat/completions" | grep -qi 'x-understudy-route: student' ||
  { echo "bench_serve: the student did not answer" >&2; exit 1; }
if [ -n "$BEFORE" ]; then
  SERVE_BIN=$BEFORE/understudy serve before --set serve.threshold=0
  bport=$PORT
  bpid=${pids[-1]}
fi
student_rows=() before_rows=()
for c in $CONNECTIONS; do
  if [ -n "$BEFORE" ]; then
    before_rows+=("$c $(run_wrk "http://127.0.0.1:$bport" "$c" "$work/student.lua" "$bpid")")
  fi
  student_rows+=("$c $(run_wrk "http://127.0.0.1:$sport" "$c" "$work/student.lua" "$spid")")
done
kill "$spid" ${bpid:+"$bpid"} 2>/dev/null || true

echo "bench_serve: teacher route (mock latency ${MOCK_LATENCY_MS} ms)" >&2
start_mock slow --latency-ms "$MOCK_LATENCY_MS"
mport=$PORT
mpid=${pids[-1]}
teacher_sets=(--set serve.threshold=1 --set "teacher.base_url=\"http://127.0.0.1:$mport/v1\""
  --set teacher.concurrency=256 --set teacher.budget_usd=1000)
serve teacher "${teacher_sets[@]}"
tport=$PORT
tpid=${pids[-1]}
read -r d_rps d_p50 d_p99 d_bad d_n d_cpu d_wrk d_load < <(run_wrk "http://127.0.0.1:$mport" "$TEACHER_CONNECTIONS" "$work/teacher.lua" "$mpid")
if [ -n "$BEFORE" ]; then
  SERVE_BIN=$BEFORE/understudy serve teacher_before "${teacher_sets[@]}"
  read -r b_rps b_p50 b_p99 b_bad b_n b_cpu b_wrk b_load < <(run_wrk "http://127.0.0.1:$PORT" "$TEACHER_CONNECTIONS" "$work/teacher.lua" "${pids[-1]}")
  kill "${pids[-1]}" 2>/dev/null || true
fi
read -r t_rps t_p50 t_p99 t_bad t_n t_cpu t_wrk t_load < <(run_wrk "http://127.0.0.1:$tport" "$TEACHER_CONNECTIONS" "$work/teacher.lua" "$tpid")

ft=$(python3 -c 'import json
ds = json.load(open("bench/results.json"))["datasets"]
b = [x for x in ds if x.get("dataset") == "banking77"][0]
keep = ("predict_per_sec", "predict_p50_us", "predict_p99_us", "predict_cpu_us_per_text")
print(json.dumps({w: {k: b[w][k] for k in keep} for w in ("understudy", "fasttext")}))' 2>/dev/null || echo '{}')
cat >"$work/floor.py" <<'PY'
import json, sys
d = json.load(sys.stdin)
print("| | predictions/s (1 thread) | p50 us | p99 us | CPU us per text |")
print("|---|---|---|---|---|")
for w in ("understudy", "fasttext"):
    if w in d:
        x = d[w]
        print("| %s predict | %.0f | %.1f | %.1f | %.1f |" % (w, x["predict_per_sec"], x["predict_p50_us"],
              x["predict_p99_us"], x["predict_cpu_us_per_text"]))
PY
student_table() { # student_table ROW...: the Markdown table of student-route rows
  echo "| connections | requests/s | p50 ms | p99 ms | non-2xx | server CPU us/request | wrk CPU us/request | load (1 min) |"
  echo "|---|---|---|---|---|---|---|---|"
  local row c rps p50 p99 bad cpu_us wrk_us load
  for row in "$@"; do
    read -r c rps p50 p99 bad _ cpu_us wrk_us load <<<"$row"
    echo "| $c | $rps | $p50 | $p99 | $bad | $cpu_us | $wrk_us | $load |"
  done
}
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')
load=$(cut -d' ' -f1-3 /proc/loadavg)
{
  echo "### understudy serve, banking77 ($(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) cores, $cpu; load $load)"
  echo
  if [ -n "$CONNECTIONS" ]; then
    echo "Student route (serve.threshold 0, serve.threads $THREADS, wrk -t$THREADS keep-alive, ${DURATION} s each):"
    echo
    student_table "${student_rows[@]}"
  fi
  if [ -n "$BEFORE" ] && [ -n "$CONNECTIONS" ]; then
    echo
    echo "The same rows against $BEFORE/understudy (before), each taken just before the row above:"
    echo
    student_table "${before_rows[@]}"
  fi
  echo
  echo "Teacher route ($TEACHER_CONNECTIONS connections, mock answering after ${MOCK_LATENCY_MS} ms, unique prompts):"
  echo
  echo "| | requests/s | p50 ms | p99 ms | non-2xx | CPU us/request (mock / server) | load (1 min) |"
  echo "|---|---|---|---|---|---|---|"
  echo "| the mock directly (passthrough baseline) | $d_rps | $d_p50 | $d_p99 | $d_bad | $d_cpu | $d_load |"
  echo "| through understudy serve | $t_rps | $t_p50 | $t_p99 | $t_bad | $t_cpu | $t_load |"
  awk -v a="$t_p50" -v b="$d_p50" -v c="$t_p99" -v d="$d_p99" \
    'BEGIN { printf "| overhead | | %.3f | %.3f | | |\n", a - b, c - d }'
  if [ -n "$BEFORE" ]; then
    echo "| through $BEFORE/understudy (before) | $b_rps | $b_p50 | $b_p99 | $b_bad | $b_cpu | $b_load |"
    awk -v a="$b_p50" -v b="$d_p50" -v c="$b_p99" -v d="$d_p99" \
      'BEGIN { printf "| overhead (before) | | %.3f | %.3f | | |\n", a - b, c - d }'
  fi
  echo
  echo "The floor, from the classifier bench (bench/results.json, one process, one text at a time):"
  echo
  printf '%s' "$ft" | python3 "$work/floor.py"
} | tee "$work/table.md"
python3 - "$work/table.md" <<PY
import json, sys
def rows_of(text):
    return [{"connections": int(c), "rps": float(r), "p50_ms": float(a), "p99_ms": float(b),
             "non_2xx": int(n), "server_cpu_us_per_request": float(u),
             "wrk_cpu_us_per_request": float(w), "load1": float(l)}
            for c, r, a, b, n, _, u, w, l in (x.split() for x in text.strip().splitlines())]
out = {"schema": 2, "date": "$(date -u '+%Y-%m-%dT%H:%MZ')", "cores": $(nproc), "cpu": "$cpu",
       "load": "$load", "duration_s": $DURATION, "threads": $THREADS,
       "student": rows_of("""$(printf '%s\n' "${student_rows[@]}")"""),
       "student_before": rows_of("""$(printf '%s\n' "${before_rows[@]}")""") if "$BEFORE" else None,
       "teacher": {"connections": $TEACHER_CONNECTIONS, "mock_latency_ms": $MOCK_LATENCY_MS,
                   "direct": {"rps": float("$d_rps" or 0), "p50_ms": float("$d_p50" or 0), "p99_ms": float("$d_p99" or 0),
                              "mock_cpu_us_per_request": float("$d_cpu" or 0), "load1": float("$d_load" or 0)},
                   "served": {"rps": float("$t_rps" or 0), "p50_ms": float("$t_p50" or 0), "p99_ms": float("$t_p99" or 0),
                              "server_cpu_us_per_request": float("$t_cpu" or 0), "load1": float("$t_load" or 0)},
                   "served_before": {"rps": float("$b_rps" or 0), "p50_ms": float("$b_p50" or 0), "p99_ms": float("$b_p99" or 0),
                              "server_cpu_us_per_request": float("$b_cpu" or 0), "load1": float("$b_load" or 0)} if "$BEFORE" else None},
       "classifier_bench_banking77": json.loads('''$ft''' or "{}")}
json.dump(out, open("bench/results_serve.json", "w"), indent=1)
PY
echo "bench_serve: wrote bench/results_serve.json" >&2
