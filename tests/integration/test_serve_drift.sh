#!/usr/bin/env bash
# Issue 11: the shadow audit and drift. Every student answer is audited (serve.audit_rate 1);
# the mock agrees for a while, then starts naming another label: the live lower bound in
# /metrics falls under quality.target_agreement, the server warns once and, with
# serve.on_drift "teacher", sends every request to the teacher. A reload starts over.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/serve_lib.sh"

serve_setup 400
# The server's mock answers with the student's own predictions, so that while it "agrees" the
# audits agree exactly (a student that agrees only ~65% with the real labels let the lower bound
# reach the target and dip back under it by chance: a flaky drift). After 40 answers it names
# another label every time.
expect_ok predict predict "$WORK/out/student.bin" --input "$WORK/prompts.jsonl"
[ "$(wc -l <"$WORK/predict.out")" -eq 400 ] || fail "predict gave $(wc -l <"$WORK/predict.out") lines for 400 prompts"
paste -d '\t' "$WORK/prompts.jsonl" "$WORK/predict.out" |
  sed 's/"label":"[^"]*"\(.*\)\t{"label":"\([^"]*\)".*$/"answer":"\2"\1/' >"$WORK/student_answers.jsonl"
[ "$(grep -c '"answer":' "$WORK/student_answers.jsonl")" -eq 400 ] || fail "student answers not built"
stop_mock
start_mock --answers "$WORK/student_answers.jsonl" --template "$US_TEMPLATE" \
  --labels "$SERVE_LABELS_CSV" --disagree-after 40
serve_start d1 --set serve.threshold=0 --set serve.audit_rate=1 --set quality.target_agreement=0.6 \
  --set teacher.base_url="\"$MOCK_URL\"" --set serve.drift_min_audits=1000

note "the teacher agrees: no drift"
i=0
send() {
  i=$((i + 1))
  local line
  line=$(sed -n "$(( (i % 400) + 1 ))p" "$WORK/prompts.jsonl")
  local text
  text=$(printf '%s' "$line" | json_get text)
  CODE=$(chat q$i "$(task_body "$text")")
}
# audits run in the background: the deadlines below are for a loaded CI machine (ASan, -j2);
# alone the 30 audits finish in about a second
for _ in $(seq 1 30); do
  send
  assert_eq "$CODE" 200 "request $i"
done
wait_until 60 sh -c "[ \"\$(curl -sf '$SERVE_URL/metrics' | awk '\$1 == \"understudy_audits_total\" {print \$2}')\" = 30 ]" ||
  fail "30 audits did not finish"
low=$(metric understudy_live_agreement_lower_bound)
agreement=$(metric understudy_live_agreement)
note "  agreement $agreement, lower bound $low"
assert_eq "$(metric understudy_live_agreement)" 1 "every audit agrees while the teacher names the student's labels"
assert_eq "$(metric understudy_drift)" 0 "no drift while the teacher agrees"
assert_eq "$(route q$i)" student "the student answers"

note "the teacher starts disagreeing"
for _ in $(seq 1 120); do
  send
  [ "$(metric understudy_drift)" = 1 ] && break
  sleep 0.05
done
assert_eq "$(metric understudy_drift)" 1 "drift switches the student off"
low2=$(metric understudy_live_agreement_lower_bound)
assert_le "$low2" 0.6 "the live lower bound fell under the target"
send
assert_eq "$CODE" 200 "a request after drift"
case $(route q$i) in teacher | cache) ;; *) fail "after drift the request went to '$(route q$i)', not the teacher (or its cache)" ;; esac
assert_grep "$WORK/d1.err" 'drift' "the drift warning is logged"
[ "$(grep -c 'drift:' "$WORK/d1.err")" -eq 1 ] || fail "the drift warning is logged once"

note "SIGHUP reloads the student and starts over"
kill -HUP "$SERVE_PID"
wait_until 30 sh -c "[ \"\$(curl -sf '$SERVE_URL/metrics' | awk '\$1 == \"understudy_drift\" {print \$2}')\" = 0 ]" ||
  fail "the reload did not clear the drift"
assert_eq "$(metric understudy_student_reloads)" 1 "one reload"
serve_stop TERM
audits=$(db "SELECT COUNT(*) FROM served WHERE route = 'audit';")
[ "$audits" -ge 40 ] || fail "audit rows: $audits"
assert_eq "$(db "SELECT COUNT(*) FROM served WHERE route = 'audit' AND agree IS NULL;")" 0 "every audit row says whether the teacher agreed"
note "the report draws the live agreement over time"
expect_ok report report "$WORK/config.json"
assert_grep "$WORK/out/report.html" 'Live agreement with the teacher' "report.html has the agreement line"
n_points=$(sqlite3 :memory: "SELECT json_array_length(json_extract(readfile('$WORK/out/report.json'), '\$.production.agreement'));")
[ "$n_points" -ge 2 ] || fail "report.json has $n_points agreement points"
echo "PASS: $TEST_NAME"
