#!/usr/bin/env bash
# The mock teacher itself, over real HTTP: deterministic answers read back through the template,
# realistic usage and logprobs, the billing ledger, each fault kind, auth and model checks, a
# clean exit on SIGTERM even with a request stalled, and the demo's mock_up.sh / mock_down.sh.
. "$(dirname "$0")/lib.sh"

# chat BODY [curl args...]: POSTs BODY to the chat route; the body goes to $WORK/r.json, the
# headers to $WORK/r.h; prints the HTTP status (000 on a transport error).
chat() {
  local body=$1
  shift
  curl -s -m 5 -o "$WORK/r.json" -D "$WORK/r.h" -w '%{http_code}' "$@" \
    -H 'Content-Type: application/json' -d "$body" "$MOCK_URL/chat/completions" || true
}
# body TEXT [extra JSON members]: a request whose user message is the task template around TEXT.
body() {
  local user=${US_TEMPLATE//\{labels\}/billing, tech, account, other}
  user=${user//\{text\}/$1}
  printf '{"model":"mock-teacher","messages":[{"role":"system","content":%s},{"role":"user","content":%s}]%s}' \
    "$(json_quote "$US_INSTRUCTIONS")" "$(json_quote "$user")" "${2:+,$2}"
}
field() { json_get "$1" <"$WORK/r.json"; }

printf '{"text":"my card was charged twice","answer":"billing"}\n{"text":"the app crashes","answer":" Tech."}\n' \
  >"$WORK/answers.jsonl"
start_teacher --answers "$WORK/answers.jsonl" --models mock-teacher

note "answers from the file, read back through the template"
assert_eq "$(chat "$(body 'my card was charged twice')")" 200 "status"
assert_eq "$(field 'choices[0].message.content')" billing "answer from the file"
assert_eq "$(field object)" chat.completion "object"
assert_eq "$(field 'choices[0].finish_reason')" stop "finish_reason"
pt=$(field usage.prompt_tokens)
ct=$(field usage.completion_tokens)
assert_eq "$(field usage.total_tokens)" "$((pt + ct))" "total_tokens"
assert_ge "$pt" 30 "prompt tokens of a ~150-byte request"
assert_le "$pt" 60 "prompt tokens of a ~150-byte request"
assert_eq "$ct" 2 "completion tokens of 'billing'"
assert_eq "$(chat "$(body 'the  APP crashes')")" 200 "status"
assert_eq "$(field 'choices[0].message.content')" " Tech." "answer found after normalising the text"

note "texts not in the file: labels[hash(text) % n], the same every time"
a1=$(chat "$(body 'something else entirely')" >/dev/null; field 'choices[0].message.content')
a2=$(chat "$(body 'something else entirely')" >/dev/null; field 'choices[0].message.content')
assert_eq "$a1" "$a2" "the same body gets the same answer"
case " ${US_LABELS[*]} " in *" $a1 "*) ;; *) fail "answer '$a1' is not a label" ;; esac

note "logprobs"
chat "$(body 'my card was charged twice' '"logprobs":true,"top_logprobs":3')" >/dev/null
assert_eq "$(field 'choices[0].logprobs.content[0].token')" billing "logprobs token"
assert_eq "$(field 'choices[0].logprobs.content[0].top_logprobs[0].token')" billing "most likely token"
n_top=$(sqlite3 :memory: "SELECT json_array_length(json_extract(readfile('$WORK/r.json'), '\$.choices[0].logprobs.content[0].top_logprobs'));")
assert_eq "$n_top" 3 "top_logprobs entries"
mass=$(sqlite3 :memory: "SELECT SUM(exp(json_extract(value, '\$.logprob'))) FROM json_each(readfile('$WORK/r.json'), '\$.choices[0].logprobs.content[0].top_logprobs');")
assert_le "$mass" 1.000001 "probability mass of the top alternatives"
assert_ge "$mass" 0.6 "probability mass of the top alternatives"
p0=$(field 'choices[0].logprobs.content[0].logprob')
assert_ge "$p0" -0.6 "log probability of the answer (most of the mass)"

note "max_tokens cuts the answer"
chat "$(body 'my card was charged twice' '"max_tokens":1')" >/dev/null
assert_eq "$(field 'choices[0].finish_reason')" length "finish_reason at max_tokens"
assert_eq "$(field usage.completion_tokens)" 1 "completion tokens at max_tokens"

note "errors"
assert_eq "$(chat '{"model":"other","messages":[{"role":"user","content":"x"}]}')" 404 "unknown model"
assert_eq "$(field error.code)" model_not_found "404 error code"
assert_eq "$(chat 'not json')" 400 "malformed request"
assert_eq "$(curl -s -o /dev/null -w '%{http_code}' "$MOCK_ROOT/v1/nothing")" 404 "unknown route"
assert_eq "$(curl -s "$MOCK_URL/models" | json_get 'data[0].id')" mock-teacher "GET /models"

note "the ledger"
s_json=$(curl -sf "$MOCK_ROOT/_stats")
# 6 answers (one body twice), a 404, a 400, an unknown route and /models; no 200 for errors.
assert_eq "$(echo "$s_json" | json_get billed)" 6 "billed answers"
assert_eq "$(echo "$s_json" | json_get billed_keys)" 5 "billed keys"
assert_eq "$(echo "$s_json" | json_get keys_billed_more_than_once)" 1 "keys billed twice"
assert_eq "$(echo "$s_json" | json_get max_bills_per_key)" 2 "most bills for one key"
assert_eq "$(echo "$s_json" | json_get requests)" 10 "requests (control routes not counted)"
mock_reset
assert_eq "$(mock_stats requests)" 0 "requests after /_reset"
assert_eq "$(mock_stats prompt_tokens)" 0 "prompt tokens after /_reset"
stop_mock

note "faults: each kind, and every key succeeds within its first three attempts"
start_teacher --fault-rate 1 --faults all --timeout-delay-ms 400 --fault-max-per-key 2
declare -A seen=()
for i in $(seq 1 40); do
  b=$(body "fault probe $i")
  for attempt in 1 2 3; do
    code=$(chat "$b" -m 1)
    valid=$(sqlite3 :memory: "SELECT json_valid(readfile('$WORK/r.json'));" 2>/dev/null || echo 0)
    good=0
    [ "$code" = 200 ] && [ "$valid" = 1 ] && [ "$(field object)" = chat.completion ] && good=1
    if [ "$attempt" -lt 3 ]; then
      assert_eq "$good" 0 "attempt $attempt of probe $i faulted (HTTP $code)"
      if [ "$code" = 429 ]; then
        grep -qi '^retry-after: [01]' "$WORK/r.h" || fail "429 without Retry-After: 0 or 1"
      fi
    else
      assert_eq "$good" 1 "attempt 3 of probe $i answered (HTTP $code)"
    fi
    seen[$code]=1
  done
done
for f in 429 500 503 timeout malformed truncated partial reset; do
  assert_ge "$(mock_stats "faults.\"$f\"")" 1 "faults of kind $f"
done
assert_eq "$(mock_stats billed)" 40 "billed: only the good answers"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
[ -n "${seen[000]:-}" ] || fail "no transport error seen (reset, partial, timeout)"
stop_mock

note "auth"
start_teacher --require-key sk-right
assert_eq "$(chat "$(body x)" -H 'Authorization: Bearer sk-wrong')" 401 "wrong key"
assert_eq "$(chat "$(body x)" -H 'Authorization: Bearer sk-right')" 200 "right key"
stop_mock
start_teacher --fail-status 503
assert_eq "$(chat "$(body x)")" 503 "--fail-status"
stop_mock

note "only loopback"
rc=0
"$US_MOCK" --host 0.0.0.0 --port 0 2>"$WORK/host.err" || rc=$?
assert_eq "$rc" 2 "exit status for --host 0.0.0.0"
assert_grep "$WORK/host.err" "127\.0\.0\.1 only" "the refusal says why"

note "SIGTERM with a request stalled in a timeout fault"
start_teacher --fault-rate 1 --faults timeout --timeout-delay-ms 30000
chat "$(body stall)" -m 20 >/dev/null &
curl_pid=$!
sleep 0.3
t0=$(date +%s%N)
stop_mock
elapsed_ms=$((($(date +%s%N) - t0) / 1000000))
wait "$curl_pid" || true
assert_le "$elapsed_ms" 3000 "milliseconds to stop with a stalled request"

note "the demo's mock_up.sh / mock_down.sh"
SOURCE_DIR=${US_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
MOCK_UP="$SOURCE_DIR/tests/mock/mock_up.sh"
MOCK_DOWN="$SOURCE_DIR/tests/mock/mock_down.sh"
printf '{"text":"hello there","label":"account"}\n{"text":"refund me","label":"billing"}\n' >"$WORK/gold.jsonl"
write_config "$WORK/config.json" "data.inputs=[$(json_quote "$WORK/gold.jsonl")]" data.label_field='"label"'
url=$(timeout 20 "$MOCK_UP" --config "$WORK/config.json" --state "$WORK/st" --noise 0 --mock "$US_MOCK")
pid=$(cat "$WORK/st/mock.pid")
MOCK_URL=$url
assert_eq "$(chat "$(body 'refund me')")" 200 "mock_up's mock answers"
assert_eq "$(field 'choices[0].message.content')" billing "gold answer from the config's inputs"
"$MOCK_DOWN" --state "$WORK/st"
! kill -0 "$pid" 2>/dev/null || fail "mock_down.sh left the mock running"
"$MOCK_DOWN" --state "$WORK/st" # a second stop is a no-op
echo "PASS: $TEST_NAME"
