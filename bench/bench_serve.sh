#!/usr/bin/env bash
# `understudy serve` under load (issue 11), with wrk (scripts/deps.sh bench) on loopback:
#  1. student route: banking77 task requests (the workspace's own canonical requests, 200 of
#     them in turn), every one answered by the student (serve.threshold 0, no audit), keep-alive,
#     at 1..256 connections: requests/s and p50/p99 latency;
#  2. teacher route: a request the server does not answer itself (a unique prompt each time, so
#     never a cache hit), proxied to the mock teacher answering after MOCK_LATENCY_MS, against
#     the same load sent to the mock directly (the passthrough baseline): the overhead at p50/p99.
#     Beside it, when nginx is installed (scripts/deps.sh bench), nginx as a plain reverse proxy
#     to the same mock (keep-alive upstream, as many workers as the server has threads): what a
#     proxy that does nothing but forward adds on the same machine. The rows are taken ROUNDS
#     times in turn (direct, served, before, nginx) and each round's overhead is against that
#     round's direct row, so the host's drift over the run falls on every target alike; the
#     summary is the median over the rounds, with the range. The served rows also give the
#     server's own account, understudy_teacher_added_seconds from /metrics scraped around each
#     run: each answer's time in the server less the teacher's time on the wire (p50/p99
#     estimated within its buckets), free of the mock's and wrk's own variance;
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
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
BEFORE=${BEFORE:-}
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

# cpu_ticks PID: user + system clock ticks the process has used, with its children's (nginx's
# workers) while they run
cpu_ticks() {
  local p t=0
  for p in "$1" $(pgrep -P "$1" || true); do
    t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

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

echo "bench_serve: teacher route (mock latency ${MOCK_LATENCY_MS} ms, $ROUNDS rounds)" >&2
start_mock slow --latency-ms "$MOCK_LATENCY_MS"
mport=$PORT
mpid=${pids[-1]}
teacher_sets=(--set serve.threshold=1 --set "teacher.base_url=\"http://127.0.0.1:$mport/v1\""
  --set teacher.concurrency=256 --set teacher.budget_usd=1000)
targets=("direct http://127.0.0.1:$mport $mpid")
serve teacher "${teacher_sets[@]}"
targets+=("served http://127.0.0.1:$PORT ${pids[-1]}")
if [ -n "$BEFORE" ]; then
  SERVE_BIN=$BEFORE/understudy serve teacher_before "${teacher_sets[@]}"
  targets+=("before http://127.0.0.1:$PORT ${pids[-1]}")
fi
if command -v nginx >/dev/null; then
  # nginx as a plain reverse proxy: keep-alive to the mock, no buffering of small bodies to disk
  nport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off; worker_processes $THREADS; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;
  upstream mock { server 127.0.0.1:$mport; keepalive 256; }
  server {
    listen 127.0.0.1:$nport;
    location / { proxy_pass http://mock; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$work/nginx/nginx.conf" -p "$work/nginx" 2>"$work/nginx/stderr" &
  pids+=($!)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$nport/" && break; sleep 0.05; done
  targets+=("nginx http://127.0.0.1:$nport ${pids[-1]}")
else
  echo "bench_serve: nginx is not installed (scripts/deps.sh bench): no reference proxy row" >&2
fi
# added_quantiles BEFORE AFTER: p50 and p99 in ms of understudy_teacher_added_seconds over the
# requests between two scrapes of /metrics (linear within a bucket, as Prometheus estimates them)
added_quantiles() {
  python3 - "$1" "$2" <<'PY'
import math, sys
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith("understudy_teacher_added_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[math.inf if le == "+Inf" else float(le)] = float(line.split()[-1])
    return out
a, b = buckets(sys.argv[1]), buckets(sys.argv[2])
les = sorted(b)
cum = [b[le] - a.get(le, 0) for le in les]
def q(p):
    n = cum[-1] if cum else 0  # a build without the histogram: no figure
    if n <= 0:
        return "-"
    want, lo, prev = p * n, 0.0, 0.0
    for le, c in zip(les, cum):
        if c >= want:
            if math.isinf(le):
                return "%.3f" % (lo * 1000)
            return "%.3f" % ((lo + (le - lo) * (want - prev) / max(c - prev, 1e-9)) * 1000)
        lo, prev = le, c
print(q(0.5), q(0.99))
PY
}

teacher_rows=() # "round target rps p50 p99 non2xx n cpu_us wrk_us load added_p50 added_p99"
for r in $(seq "$ROUNDS"); do
  for t in "${targets[@]}"; do
    read -r name url pid <<<"$t"
    scrape=0
    [ "$name" = served ] || [ "$name" = before ] && scrape=1
    [ "$scrape" = 1 ] && curl -s "$url/metrics" >"$work/metrics0"
    row=$(run_wrk "$url" "$TEACHER_CONNECTIONS" "$work/teacher.lua" "$pid")
    added="- -"
    if [ "$scrape" = 1 ]; then
      curl -s "$url/metrics" >"$work/metrics1"
      added=$(added_quantiles "$work/metrics0" "$work/metrics1")
    fi
    teacher_rows+=("$r $name $row $added")
  done
done
# each target's overhead over that round's direct row, per round and as the median (for the table
# and the JSON alike)
added_json=$(printf '%s\n' "${teacher_rows[@]}" | python3 -c '
import json, statistics, sys
rows = [l.split() for l in sys.stdin if l.strip()]
direct = {r[0]: r for r in rows if r[1] == "direct"}
out = {}
for n in dict.fromkeys(r[1] for r in rows):
    if n == "direct":
        continue
    d50 = [float(r[3]) - float(direct[r[0]][3]) for r in rows if r[1] == n]
    d99 = [float(r[4]) - float(direct[r[0]][4]) for r in rows if r[1] == n]
    out[n] = {"p50_ms_median": statistics.median(d50), "p99_ms_median": statistics.median(d99),
              "p50_ms": d50, "p99_ms": d99}
print(json.dumps(out))')

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
  echo "Teacher route ($TEACHER_CONNECTIONS connections, mock answering after ${MOCK_LATENCY_MS} ms, unique prompts, $ROUNDS rounds of ${DURATION} s per target):"
  echo
  echo "| round | target | requests/s | p50 ms | p99 ms | non-2xx | CPU us/request (mock, server or nginx) | load (1 min) | server's own added time p50 / p99 ms (/metrics) |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for row in "${teacher_rows[@]}"; do
    read -r r name rps p50 p99 bad _ cpu_us _ load a50 a99 <<<"$row"
    echo "| $r | $name | $rps | $p50 | $p99 | $bad | $cpu_us | $load | $a50 / $a99 |"
  done
  echo
  echo "Added over the mock directly, each round against its own direct row (median over the rounds, [lowest, highest]):"
  echo
  echo "| target | p50 ms | p99 ms |"
  echo "|---|---|---|"
  printf '%s' "$added_json" | python3 -c '
import json, sys
label = {"served": "understudy serve", "before": "understudy serve (before)", "nginx": "nginx (reference proxy)"}
for n, a in json.load(sys.stdin).items():
    print("| %s | %.3f [%.3f, %.3f] | %.3f [%.3f, %.3f] |" % (label.get(n, n), a["p50_ms_median"],
          min(a["p50_ms"]), max(a["p50_ms"]), a["p99_ms_median"], min(a["p99_ms"]), max(a["p99_ms"])))'
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
def teacher():
    rows = [l.split() for l in """$(printf '%s\n' "${teacher_rows[@]}")""".strip().splitlines()]
    keys = ("rps", "p50_ms", "p99_ms", "non_2xx", "requests", "cpu_us_per_request", "wrk_cpu_us_per_request",
            "load1", "server_added_p50_ms", "server_added_p99_ms")
    rounds = [dict(round=int(r[0]), target=r[1], **{k: (None if v == "-" else float(v)) for k, v in zip(keys, r[2:])})
              for r in rows]
    return {"connections": $TEACHER_CONNECTIONS, "mock_latency_ms": $MOCK_LATENCY_MS, "rounds": rounds,
            "added": json.loads("""$added_json""")}
out = {"schema": 3, "date": "$(date -u '+%Y-%m-%dT%H:%MZ')", "cores": $(nproc), "cpu": "$cpu",
       "load": "$load", "duration_s": $DURATION, "threads": $THREADS,
       "student": rows_of("""$(printf '%s\n' "${student_rows[@]}")"""),
       "student_before": rows_of("""$(printf '%s\n' "${before_rows[@]}")""") if "$BEFORE" else None,
       "teacher": teacher(),
       "classifier_bench_banking77": json.loads('''$ft''' or "{}")}
json.dump(out, open("bench/results_serve.json", "w"), indent=1)
PY
echo "bench_serve: wrote bench/results_serve.json" >&2
