# Shared helpers for the integration tests: a scratch folder, the mock teacher on an ephemeral
# loopback port, configs, prompt files, database queries and assertions. Source it first:
#   . "$(dirname "$0")/lib.sh"
# Environment (set by ctest): US_BIN (the understudy binary), US_MOCK (us_mock_teacher).
# US_KEEP=1 keeps the scratch folder; it is also kept (and named) when a test fails.
set -euo pipefail

: "${US_BIN:?US_BIN must name the understudy binary}"
: "${US_MOCK:?US_MOCK must name the us_mock_teacher binary}"
[ -x "$US_BIN" ] || { echo "FAIL: US_BIN=$US_BIN is not an executable" >&2; exit 1; }
[ -x "$US_MOCK" ] || { echo "FAIL: US_MOCK=$US_MOCK is not an executable" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "SKIP: the sqlite3 command-line tool is missing"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl is missing"; exit 77; }

TEST_NAME=$(basename "$0" .sh)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/us-$TEST_NAME.XXXXXX")
MOCK_PIDS=()
BG_PIDS=()
MOCK_PID=
MOCK_PORT=
MOCK_ROOT=
MOCK_URL=
RC=0

# The task every test uses: four labels and a template the mock can read the text back out of.
US_LABELS=(billing tech account other)
US_LABELS_CSV=$(IFS=,; echo "${US_LABELS[*]}")
US_TEMPLATE=$'Classify this customer message into one of: {labels}.\nMessage: {text}\nLabel:'
US_INSTRUCTIONS="You sort customer messages. Answer with exactly one label."
OPENAI_API_KEY="sk-mock-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
export OPENAI_API_KEY

us_cleanup() {
  local rc=$?
  set +e
  local pid
  for pid in "${BG_PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null; done
  for pid in "${MOCK_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${BG_PIDS[@]}" "${MOCK_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ] || [ "${US_KEEP:-0}" = 1 ]; then
    echo "($TEST_NAME: scratch folder kept: $WORK)" >&2
  else
    rm -rf "$WORK"
  fi
  exit "$rc"
}
trap us_cleanup EXIT

note() { echo "-- $*"; }

fail() {
  echo "FAIL: $TEST_NAME: $*" >&2
  exit 1
}

# Prints the last lines of the named files (outputs of a failed command) to stderr.
show() {
  local f
  for f in "$@"; do
    [ -f "$f" ] || continue
    echo "---- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}

# ---- the mock teacher --------------------------------------------------------------------

# start_mock [mock flags...]: starts a mock on an ephemeral port and waits until it listens.
# Sets MOCK_PID, MOCK_PORT, MOCK_ROOT (http://127.0.0.1:PORT) and MOCK_URL (MOCK_ROOT/v1).
MOCK_SEQ=0
start_mock() {
  local n=$((MOCK_SEQ++))
  local port_file="$WORK/mock$n.port"
  rm -f "$port_file"
  "$US_MOCK" --port 0 --port-file "$port_file" --die-with-parent "$@" 2>"$WORK/mock$n.log" &
  MOCK_PID=$!
  MOCK_PIDS+=("$MOCK_PID")
  local _
  for _ in $(seq 1 200); do
    [ -s "$port_file" ] && break
    kill -0 "$MOCK_PID" 2>/dev/null || { show "$WORK/mock$n.log"; fail "the mock did not start"; }
    sleep 0.05
  done
  [ -s "$port_file" ] || fail "the mock wrote no port file in 10 s"
  MOCK_PORT=$(cat "$port_file")
  MOCK_ROOT="http://127.0.0.1:$MOCK_PORT"
  MOCK_URL="$MOCK_ROOT/v1"
}

# start_teacher [mock flags...]: a mock that knows the tests' task (template and labels).
start_teacher() {
  start_mock --template "$US_TEMPLATE" --labels "$US_LABELS_CSV" "$@"
}

# stop_mock [pid]: SIGTERM, and checks that the mock exits cleanly (status 0) within 10 s.
stop_mock() {
  local pid=${1:-$MOCK_PID} _
  kill -TERM "$pid"
  for _ in $(seq 1 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -0 "$pid" 2>/dev/null && fail "the mock (pid $pid) did not stop within 10 s of SIGTERM"
  local rc=0
  wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || fail "the mock (pid $pid) exited with status $rc on SIGTERM"
  local kept=() p
  for p in "${MOCK_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  MOCK_PIDS=("${kept[@]+"${kept[@]}"}")
}

# json_get FIELD < JSON: a field (a dotted path such as faults.reset) of a JSON document.
json_get() {
  local doc
  doc=$(cat)
  doc=${doc//\'/\'\'}
  sqlite3 :memory: "SELECT json_extract('$doc', '\$.$1');"
}

# mock_stats FIELD [ROOT]: one counter from the mock's /_stats.
mock_stats() {
  curl -sf "${2:-$MOCK_ROOT}/_stats" | json_get "$1"
}

mock_reset() {
  curl -sf -X POST "${1:-$MOCK_ROOT}/_reset" >/dev/null
}

# mock_spend IN_PER_MTOK OUT_PER_MTOK [ROOT]: dollars the mock billed at those prices.
mock_spend() {
  local pt ct
  pt=$(mock_stats prompt_tokens "${3:-$MOCK_ROOT}")
  ct=$(mock_stats completion_tokens "${3:-$MOCK_ROOT}")
  awk -v pt="$pt" -v ct="$ct" -v i="$1" -v o="$2" 'BEGIN { printf "%.10f\n", pt * i / 1e6 + ct * o / 1e6 }'
}

# ---- configs and prompts -----------------------------------------------------------------

# json_quote STRING: STRING as a JSON string literal.
json_quote() {
  local s=${1//\'/\'\'}
  sqlite3 :memory: "SELECT json_quote('$s');"
}

# write_config FILE [key.path=JSON ...]: a config for the tests' task against the current mock,
# with workspace $WORK/out and inputs $WORK/prompts.jsonl, then each key set to its JSON value
# (e.g. teacher.concurrency=32, teacher.price.input_per_mtok=1.5, name='"x"').
write_config() {
  local file=$1
  shift
  local labels=""
  local l
  for l in "${US_LABELS[@]}"; do labels+="${labels:+,}$(json_quote "$l")"; done
  local doc
  doc=$(cat <<EOF
{
  "name": "it",
  "output": $(json_quote "$WORK/out"),
  "task": {
    "type": "classify",
    "labels": [$labels],
    "instructions": $(json_quote "$US_INSTRUCTIONS"),
    "template": $(json_quote "$US_TEMPLATE")
  },
  "data": {"inputs": [$(json_quote "$WORK/prompts.jsonl")], "test_fraction": 0.2, "seed": 1},
  "teacher": {
    "base_url": $(json_quote "${MOCK_URL:-http://127.0.0.1:9/v1}"),
    "model": "mock-teacher",
    "concurrency": 8,
    "timeout_s": 10,
    "max_retries": 8,
    "budget_usd": 100,
    "price": {"input_per_mtok": 2.5, "output_per_mtok": 10}
  }
}
EOF
)
  local kv key value
  for kv in "$@"; do
    key=${kv%%=*}
    value=${kv#*=}
    doc=${doc//\'/\'\'}
    value=${value//\'/\'\'}
    doc=$(sqlite3 :memory: "SELECT json_set('$doc', '\$.$key', json('$value'));")
  done
  [ -n "$doc" ] || fail "write_config: could not build $file"
  printf '%s\n' "$doc" >"$file"
}

# gen_prompts N FILE [SEED]: N distinct customer-message prompts as JSONL {"id","text"} in FILE,
# the teacher's answer for each in FILE.answers.jsonl (for the mock's --answers; every tenth one
# phrased loosely, e.g. " Billing.", to go through label mapping) and the label each prompt must
# end up with in FILE.expected ("text<TAB>label" lines, sorted).
gen_prompts() {
  awk -v n="$1" -v seed="${3:-1}" -v out="$2" -v labels="$US_LABELS_CSV" 'BEGIN {
    srand(seed);
    nl = split(labels, l, ",");
    split("my card was charged twice|the app crashes on login|how do I change my email|" \
          "I want a refund for order|the invoice shows the wrong address|password reset link " \
          "is broken|can I add a second user|the export button does nothing|why was I billed " \
          "after cancelling|please close my account|two factor codes never arrive|the " \
          "dashboard is slow today", a, "|");
    split("please help|thanks|this is urgent|since yesterday|again|on my phone|on the web " \
          "app|for the third time|as soon as possible|kind regards", b, "|");
    for (i = 1; i <= n; i++) {
      x = a[int(rand() * 12) + 1]; y = b[int(rand() * 10) + 1];
      text = sprintf("%s, ticket %d, %s", x, i * 7 + seed, y);
      label = l[int(rand() * nl) + 1];
      answer = label;
      if (i % 10 == 0) answer = " " toupper(substr(label, 1, 1)) substr(label, 2) ".";
      printf "{\"id\":\"p%d\",\"text\":\"%s\"}\n", i, text > out;
      printf "{\"text\":\"%s\",\"answer\":\"%s\"}\n", text, answer > (out ".answers.jsonl");
      printf "%s\t%s\n", text, label | ("LC_ALL=C sort > \"" out ".expected\"");
    }
  }'
}

# db_text_labels [DB]: "text<TAB>label" for every labelled prompt, sorted like FILE.expected.
db_text_labels() {
  db "SELECT p.text || char(9) || COALESCE(t.label, '<unparsed>') FROM prompts p
        JOIN targets t ON t.prompt_id = p.id;" "$@" | LC_ALL=C sort
}

# ---- the binary --------------------------------------------------------------------------

# run_us NAME ARGS...: runs the understudy binary with ARGS, stdout to $WORK/NAME.out, stderr to
# $WORK/NAME.err; the exit status goes to RC (never aborts the test by itself).
run_us() {
  local name=$1
  shift
  RC=0
  "$US_BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || RC=$?
}

# expect_ok NAME ARGS...: run_us and fail unless it exits 0.
expect_ok() {
  run_us "$@"
  [ "$RC" -eq 0 ] || { show "$WORK/$1.out" "$WORK/$1.err"; fail "'understudy ${*:2}' exited $RC"; }
}

# start_us NAME ARGS...: the binary in the background (own process group, so SIGINT reaches it
# as it would from a terminal); sets US_PID.
start_us() {
  local name=$1
  shift
  set -m
  "$US_BIN" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
  US_PID=$!
  set +m
  BG_PIDS+=("$US_PID")
}

# wait_us [PID]: waits for a background binary; its exit status goes to RC.
wait_us() {
  local pid=${1:-$US_PID}
  RC=0
  wait "$pid" || RC=$?
  local kept=() p
  for p in "${BG_PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  BG_PIDS=("${kept[@]+"${kept[@]}"}")
}

# ---- the workspace -----------------------------------------------------------------------

# db SQL [DB]: runs SQL on the workspace database (default $WORK/out/understudy.db).
db() {
  sqlite3 -batch -noheader -cmd ".timeout 10000" "${2:-$WORK/out/understudy.db}" "$1"
}

db_prompts() { db "SELECT COUNT(*) FROM prompts;" "$@"; }
db_targets() { db "SELECT COUNT(DISTINCT prompt_id) FROM targets;" "$@"; }
db_unlabelled() {
  db "SELECT COUNT(*) FROM prompts p WHERE NOT EXISTS
        (SELECT 1 FROM targets t WHERE t.prompt_id = p.id);" "$@"
}
db_spend() { db "SELECT printf('%.10f', COALESCE(SUM(cost_usd), 0)) FROM calls WHERE imported = 0;" "$@"; }
db_sum() { db "SELECT COALESCE(SUM($1), 0) FROM calls WHERE imported = 0;" "${@:2}"; }
# Every prompt's label, by prompt hash: comparable between workspaces.
db_labels() {
  db "SELECT p.hash, COALESCE(t.label, '<unparsed>') FROM prompts p
        JOIN targets t ON t.prompt_id = p.id ORDER BY p.hash;" "$@"
}

# wait_until SECONDS COMMAND...: polls COMMAND every 0.1 s until it succeeds; fails on timeout.
wait_until() {
  local limit=$1
  shift
  local end=$((SECONDS + limit))
  until "$@"; do
    [ "$SECONDS" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# ---- assertions --------------------------------------------------------------------------

assert_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }
assert_le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }' || fail "$3: expected $1 <= $2"; }
assert_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }' || fail "$3: expected $1 >= $2"; }
# assert_close A B MSG: equal to within a millionth of a cent (float sums in different orders).
assert_close() {
  awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-8) }' ||
    fail "$3: expected $2, got $1"
}
# assert_grep FILE PATTERN MSG: FILE holds the extended regular expression PATTERN.
assert_grep() {
  grep -Eq -- "$2" "$1" || { show "$1"; fail "$3: no match for /$2/ in $(basename "$1")"; }
}
assert_no_grep() {
  ! grep -Eq -- "$2" "$1" || { show "$1"; fail "$3: unexpected match for /$2/ in $(basename "$1")"; }
}
