#!/usr/bin/env bash
# Issue 12's "a budget that really is a cap", for `understudy serve`'s teacher route: a teacher
# slower than teacher.timeout_s answers, and bills, every request the server has already given up
# on (the mock's "slow" fault), and the retries pay again. As in labelling, every request in
# flight is reserved at its worst case and every attempt that may have been billed without an
# answer counts at its worst case, so a burst of 64 concurrent teacher-routed requests against a
# small budget never makes the teacher's bill pass the cap: the requests it would pass get 429.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

N_REQ=64
IN=1
OUT=10000   # a worst case (prompt bound and max_tokens of output) costs ~$0.16-0.2
EXTRA=1.5   # what the serve traffic may spend on top of what the workspace already spent
SLOW_MS=1200

serve_setup 200
spent_before=$(db_spend)
budget=$(awk -v a="$spent_before" -v b="$EXTRA" 'BEGIN { printf "%.10f", a + b }')

note "a second mock, slower than the timeout on every attempt, pricier"
start_mock --answers "$WORK/answers.jsonl" --template "$US_TEMPLATE" --labels "$SERVE_LABELS_CSV" \
  --faults slow --fault-rate 1 --fault-max-per-key 100 --slow-ms $SLOW_MS \
  --price-input $IN --price-output $OUT
labels_json=$(printf '%s\n' "$SERVE_LABELS" | while read -r l; do json_quote "$l"; done | paste -sd, -)
write_config "$WORK/config.json" "task.labels=[$labels_json]" data.label_field='"label"' \
  teacher.concurrency=32 teacher.timeout_s=0.3 teacher.max_retries=2 teacher.budget_usd="$budget" \
  teacher.price.input_per_mtok=$IN teacher.price.output_per_mtok=$OUT

note "a request without max_tokens is reserved at serve.max_tokens, the bound the server adds"
serve_start s0 --set serve.threshold=1 --set serve.audit_rate=0 --set serve.max_tokens=100000
uncapped='{"model":"mock-teacher","messages":[{"role":"user","content":"write a long saga"}]}'
assert_eq "$(chat uncapped "$uncapped")" 429 "an uncapped request that may cost \$1000"
assert_grep "$WORK/uncapped.json" 'may cost up to' "the 429 gives the request's worst case"
assert_eq "$(mock_stats requests)" 0 "requests the mock received"
serve_stop

# the bound added to the burst's uncapped requests is teacher.max_tokens's, so a worst case stays
# about $0.16-0.2 as above
serve_start s1 --set serve.threshold=1 --set serve.audit_rate=0 --set serve.max_tokens=16

note "a request whose own max_tokens could cost more than is left is refused before it is sent"
big='{"model":"mock-teacher","max_tokens":100000,"messages":[{"role":"user","content":"write a long saga"}]}'
assert_eq "$(chat big "$big")" 429 "a request that may cost \$1000"
assert_grep "$WORK/big.json" 'may cost up to' "the 429 gives the request's worst case"
assert_eq "$(mock_stats requests)" 0 "requests the mock received"

note "$N_REQ concurrent teacher-routed requests against \$$EXTRA of budget left"
seq 1 $N_REQ | xargs -P $N_REQ -I{} sh -c \
  'curl -s -o "$1/burst{}.json" -w "%{http_code}\n" --max-time 120 -H "Content-Type: application/json" \
     --data-binary "{\"model\":\"mock-teacher\",\"messages\":[{\"role\":\"user\",\"content\":\"write a haiku about tea number {}\"}]}" \
     "$2/v1/chat/completions" >"$1/burst{}.code"' _ "$WORK" "$SERVE_URL"
n429=0 n502=0
for i in $(seq 1 $N_REQ); do
  c=$(cat "$WORK/burst$i.code")
  case $c in
    429) n429=$((n429 + 1)) ;;
    502) n502=$((n502 + 1)) ;;
    *) show "$WORK/burst$i.json"; fail "request $i: expected 429 or 502 (every attempt times out), got $c" ;;
  esac
done
note "  429: $n429, 502 (every retry timed out): $n502"
assert_ge "$n429" 1 "requests refused by the budget"
refused=$(grep -l '"code":"budget_reached"' "$WORK"/burst*.json | head -n 1)
[ -n "$refused" ] || fail "no 429 body has code budget_reached"
assert_grep "$refused" 'budget' "the 429 says the teacher budget is reached"
assert_grep "$refused" 'teacher.budget_usd' "the 429 says what to raise"

sleep $((SLOW_MS / 1000 + 2)) # the slow answers still in the teacher's hands are billed too
billed=$(mock_stats billed_usd)
worst=$(metric understudy_teacher_unanswered_usd_total)
n_unanswered=$(metric understudy_teacher_unanswered_total)
note "billed \$$billed; up to \$$worst for $n_unanswered attempts in /metrics; cap \$$EXTRA"
assert_ge "$(mock_stats 'faults.slow')" 1 "slow answers served"
assert_ge "$n_unanswered" 1 "attempts recorded as maybe billed"
assert_le "$billed" "$EXTRA" "the teacher's bill against the cap"
assert_le "$worst" "$EXTRA" "the worst cases counted against the cap"
assert_ge "$worst" "$billed" "the worst cases cover the bill"
assert_le "$(metric understudy_teacher_in_flight_worst_usd)" 1e-9 "nothing reserved once every request is answered"
serve_stop

note "the workspace keeps them, so the next run counts them against the budget"
n_rows=$(db "SELECT COUNT(*) FROM unanswered;")
assert_eq "$n_rows" "$n_unanswered" "unanswered rows in the workspace"
assert_close "$(db "SELECT printf('%.10f', SUM(worst_usd)) FROM unanswered;")" "$worst" \
  "their worst cases in the workspace"
echo "PASS: $TEST_NAME"
