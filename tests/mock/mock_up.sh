#!/usr/bin/env bash
# Starts the mock teacher (us_mock_teacher) in the background on loopback for the demo or for a
# manual try, waits until it listens, and prints its base URL (http://127.0.0.1:PORT/v1).
# With --config, the stand-in answers like a good teacher for that config: it reads the task's
# labels and template, and answers each prompt with the gold label of data.inputs (JSONL or CSV,
# data.text_field / data.label_field), a fixed fraction of them wrong (--noise).
# Stop it with tests/mock/mock_down.sh (same --state).
set -euo pipefail

usage() {
  cat <<'EOF'
usage: tests/mock/mock_up.sh [--config FILE] [--state DIR] [--port N] [--noise P] [--mock BIN]
                             [-- extra us_mock_teacher flags]
  --config FILE  labels, template and gold answers from an understudy config
  --state DIR    where mock.pid, mock.port, mock.url, mock.log, answers.jsonl go
                 (default ${TMPDIR:-/tmp}/understudy-mock)
  --port N       port to listen on (default 0: a free one)
  --noise P      fraction of gold answers the stand-in gets wrong (default 0.06)
  --mock BIN     the mock binary (default $US_MOCK, else build/tests/us_mock_teacher)
Prints the base URL on stdout; exits non-zero if the mock does not start within 10 s.
EOF
}

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
config=
state=${TMPDIR:-/tmp}/understudy-mock
port=0
noise=0.06
mock=${US_MOCK:-$root/build/tests/us_mock_teacher}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --state) state=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --noise) noise=$2; shift 2 ;;
    --mock) mock=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    --) shift; extra=("$@"); break ;;
    *) echo "mock_up: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
done
[ -x "$mock" ] || { echo "mock_up: no mock binary at $mock (build first, or pass --mock)" >&2; exit 1; }
mkdir -p "$state"
if [ -s "$state/mock.pid" ] && kill -0 "$(cat "$state/mock.pid")" 2>/dev/null; then
  echo "mock_up: a mock is already running (pid $(cat "$state/mock.pid")); run mock_down.sh" >&2
  exit 1
fi

# sql QUERY: runs QUERY with $CONFIG standing for the config's text (sqlite3's JSON functions).
sql() {
  local source="readfile('$config_sql')"
  local q=${1//\$CONFIG/$source}
  sqlite3 -batch -noheader :memory: "$q"
}

flags=()
if [ -n "$config" ]; then
  command -v sqlite3 >/dev/null || { echo "mock_up: --config needs the sqlite3 tool" >&2; exit 1; }
  config_dir=$(cd "$(dirname "$config")" && pwd)
  config_sql=${config//\'/\'\'}
  labels=$(sql "SELECT group_concat(value, ',') FROM json_each(\$CONFIG, '\$.task.labels');")
  template=$(sql "SELECT json_extract(\$CONFIG, '\$.task.template');")
  text_field=$(sql "SELECT COALESCE(json_extract(\$CONFIG, '\$.data.text_field'), 'text');")
  label_field=$(sql "SELECT COALESCE(json_extract(\$CONFIG, '\$.data.label_field'), 'label');")
  [ -n "$labels" ] && flags+=(--labels "$labels")
  [ -n "$template" ] && flags+=(--template "$template")
  # Gold answers: every input file with a label column becomes {"text","answer"} lines.
  : >"$state/answers.jsonl"
  while IFS= read -r input; do
    [ -n "$input" ] || continue
    case "$input" in /*) path=$input ;; *) path=$config_dir/$input ;; esac
    [ -f "$path" ] || continue
    case "$path" in
      *.jsonl|*.json)
        sqlite3 -batch :memory: \
          ".mode ascii" ".separator "$'\x1f'" \\n" \
          "CREATE TABLE l(line TEXT);" ".import '$path' l" \
          ".mode list" \
          "SELECT json_object('text', json_extract(line, '\$.\"$text_field\"'),
                              'answer', json_extract(line, '\$.\"$label_field\"'))
             FROM l WHERE json_valid(line)
              AND json_type(line, '\$.\"$text_field\"') = 'text'
              AND json_type(line, '\$.\"$label_field\"') = 'text';" >>"$state/answers.jsonl" ;;
      *.csv|*.tsv)
        mode=csv
        case "$path" in *.tsv) mode="tabs" ;; esac
        sqlite3 -batch :memory: ".import --$mode '$path' t" ".mode list" \
          "SELECT json_object('text', \"$text_field\", 'answer', \"$label_field\") FROM t;" \
          >>"$state/answers.jsonl" 2>/dev/null || true ;;
    esac
  done < <(sql "SELECT value FROM json_each(\$CONFIG, '\$.data.inputs') WHERE type = 'text'
               UNION ALL
               SELECT json_extract(value, '\$.path') FROM json_each(\$CONFIG, '\$.data.inputs')
                WHERE type = 'object';")
  if [ -s "$state/answers.jsonl" ]; then
    flags+=(--answers "$state/answers.jsonl" --answer-noise "$noise")
  fi
fi

rm -f "$state/mock.port" "$state/mock.url"
# Detached from this script's terminal and pipes, so `url=$(mock_up.sh)` returns at once and the
# mock outlives the script; mock_down.sh stops it.
nohup "$mock" --port "$port" --port-file "$state/mock.port" "${flags[@]+"${flags[@]}"}" \
  "${extra[@]+"${extra[@]}"}" </dev/null >"$state/mock.log" 2>&1 &
pid=$!
echo "$pid" >"$state/mock.pid"
for _ in $(seq 1 200); do
  [ -s "$state/mock.port" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "mock_up: the mock exited at start:" >&2
    cat "$state/mock.log" >&2
    rm -f "$state/mock.pid"
    exit 1
  fi
  sleep 0.05
done
[ -s "$state/mock.port" ] || { echo "mock_up: the mock did not listen within 10 s" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$state/mock.port")/v1"
echo "$url" >"$state/mock.url"
echo "$url"
