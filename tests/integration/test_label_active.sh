#!/usr/bin/env bash
# Issue 12, active labelling: with label.strategy "active" the real binary labels the test split
# in full and the train prompts in rounds (a coverage seed set, then picks by the student); the
# mock bills exactly the test split plus the picked prompts; a rerun pays nothing; the report has
# the learning curve. Then kill -9 in the middle of round 2: the rerun labels the same picks,
# pays for no prompt twice beyond those in flight at the kill, and continues the round.
. "$(dirname "$0")/lib.sh"

N=400
gen_prompts "$N" "$WORK/prompts.jsonl"
ACTIVE=(label.strategy='"active"' label.seed_prompts=40 label.round_prompts=40
  label.max_prompts=160 label.min_gain=0 student.epochs=5 student.threads=1
  student.autotune=false) # the rounds train without the search; the final train need not search

note "active labelling: seed 40, rounds of 40, at most 160 train prompts"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/config.json" "${ACTIVE[@]}"
expect_ok prompts prompts "$WORK/config.json"
expect_ok label label "$WORK/config.json"
n_test=$(db "SELECT COUNT(*) FROM prompts WHERE split = 1;")
n_train=$(db "SELECT COUNT(*) FROM prompts WHERE split = 0;")
note "$n_train train, $n_test test prompts"
assert_eq "$(db 'SELECT COUNT(*) FROM active_rounds;')" 4 "rounds measured"
assert_eq "$(db 'SELECT group_concat(n_labelled) FROM (SELECT n_labelled FROM active_rounds ORDER BY round);')" \
  "40,80,120,160" "train prompts labelled after each round"
assert_eq "$(db "SELECT stop FROM active_rounds WHERE round = 4;")" max_prompts "why it stopped"
assert_eq "$(db "SELECT COUNT(*) FROM active_rounds WHERE stop <> '';")" 1 "rounds that stopped"
assert_eq "$(db 'SELECT COUNT(*) FROM active_picks;')" 160 "picks"
assert_eq "$(db 'SELECT group_concat(c) FROM (SELECT COUNT(*) AS c FROM active_picks GROUP BY round ORDER BY round);')" \
  "40,40,40,40" "picks per round"
assert_eq "$(db 'SELECT COUNT(*) FROM prompts p WHERE split = 1 AND NOT EXISTS
  (SELECT 1 FROM targets t WHERE t.prompt_id = p.id);')" 0 "unlabelled test prompts"
assert_eq "$(db 'SELECT COUNT(*) FROM prompts p JOIN active_picks a ON a.prompt_id = p.id
  WHERE NOT EXISTS (SELECT 1 FROM targets t WHERE t.prompt_id = p.id);')" 0 "unlabelled picks"
assert_eq "$(db 'SELECT COUNT(*) FROM targets t JOIN prompts p ON p.id = t.prompt_id
  WHERE p.split = 0 AND p.id NOT IN (SELECT prompt_id FROM active_picks);')" 0 \
  "train prompts labelled without being picked"
assert_eq "$(mock_stats billed_keys)" "$((n_test + 160))" "keys the mock billed (test split + picks)"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$((n_test + 160))" "calls stored"
assert_grep "$WORK/label.err" "round 1: 40 train prompts labelled" "round progress line"
assert_grep "$WORK/label.err" "round 4: 160 train prompts labelled.*stopped: max_prompts" \
  "last round's line"
agree=$(db "SELECT test_agreement FROM active_rounds WHERE round = 4;")
# the generated prompts' labels are random, so only the range is certain
assert_ge "$agree" 0 "test agreement after round 4"
assert_le "$agree" 1 "test agreement after round 4"
assert_eq "$(db 'SELECT COUNT(*) FROM active_rounds WHERE round > 2 AND valid_back < 0;')" 0 \
  "rounds 3 and 4 measured the validation slice of two rounds back"

note "rerun: nothing paid, nothing picked"
billed=$(mock_stats billed_keys)
expect_ok rerun label "$WORK/config.json"
assert_eq "$(mock_stats billed_keys)" "$billed" "keys billed after the rerun"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice after the rerun"
assert_eq "$(db 'SELECT COUNT(*) FROM active_picks;')" 160 "picks after the rerun"
assert_eq "$(db 'SELECT COUNT(*) FROM active_rounds;')" 4 "rounds after the rerun"

note "run: the report has the learning curve"
expect_ok run run "$WORK/config.json"
assert_eq "$(mock_stats billed_keys)" "$billed" "keys billed after run"
rj=$(cat "$WORK/out/report.json")
assert_eq "$(printf '%s' "$rj" | json_get active_labelling.labelled)" 160 "report: labelled"
assert_eq "$(printf '%s' "$rj" | json_get active_labelling.pool)" "$n_train" "report: pool"
assert_eq "$(printf '%s' "$rj" | json_get active_labelling.labels_saved)" "$((n_train - 160))" \
  "report: labels saved"
assert_eq "$(printf '%s' "$rj" | json_get 'active_labelling.rounds[3].labels')" 160 \
  "report: last point of the curve"
assert_eq "$(printf '%s' "$rj" | json_get active_labelling.stop)" max_prompts "report: stop"
assert_grep "$WORK/out/report.md" "^## Active labelling" "report.md section"
assert_eq "$(printf '%s' "$rj" | json_get data.cache_hits)" "$((2 * (n_test + 160)))" \
  "report: cache hits (the rerun's and run's passes; never the answers bought in the same call)"
assert_grep "$WORK/out/report.md" "Labelled 160 of $n_train train prompts" "report.md summary"
assert_grep "$WORK/out/report.html" "Test agreement against labels bought" "report.html chart"

note "raising label.max_prompts continues from the stopped round"
expect_ok more label "$WORK/config.json" --set label.max_prompts=200
assert_eq "$(db 'SELECT group_concat(n_labelled) FROM (SELECT n_labelled FROM active_rounds ORDER BY round);')" \
  "40,80,120,160,200" "train prompts labelled after each round"
assert_eq "$(db "SELECT group_concat(stop, '/') FROM (SELECT stop FROM active_rounds ORDER BY round);")" \
  "////max_prompts" "only the last round stopped"
assert_eq "$(mock_stats billed_keys)" "$((n_test + 200))" "keys billed (test split + 200 picks)"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice"
stop_mock

note "the budget stops a round; a rerun with a larger budget continues it"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/budget.json" "${ACTIVE[@]}" output="\"$WORK/budget\"" \
  teacher.budget_usd=0.025
BDB="$WORK/budget/understudy.db"
expect_ok b_prompts prompts "$WORK/budget.json"
run_us b_label label "$WORK/budget.json"
assert_eq "$RC" 3 "exit status when the budget stops active labelling"
assert_grep "$WORK/b_label.err" "budget reached" "budget message"
spent=$(db_spend "$BDB")
assert_le "$spent" 0.025 "spend under the cap"
assert_eq "$(mock_stats billed_keys)" "$(db 'SELECT COUNT(*) FROM calls;' "$BDB")" \
  "keys billed = calls stored"
rounds_at_stop=$(db 'SELECT COUNT(*) FROM active_rounds;' "$BDB")
[ "$rounds_at_stop" -lt 4 ] || fail "the budget did not stop the rounds"
expect_ok b_rerun label "$WORK/budget.json" --set teacher.budget_usd=100
assert_eq "$(db 'SELECT group_concat(n_labelled) FROM (SELECT n_labelled FROM active_rounds ORDER BY round);' "$BDB")" \
  "40,80,120,160" "rounds after raising the budget"
assert_eq "$(mock_stats keys_billed_more_than_once)" 0 "keys billed twice across the budget stop"
assert_eq "$(mock_stats billed_keys)" "$((n_test + 160))" "keys billed (test split + picks)"
stop_mock

note "the strategy all is unchanged: every prompt billed"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/all.json" output="\"$WORK/all\""
expect_ok all_prompts prompts "$WORK/all.json"
expect_ok all_label label "$WORK/all.json"
assert_eq "$(mock_stats billed_keys)" "$N" "keys billed with label.strategy all"
assert_eq "$(db 'SELECT COUNT(*) FROM active_picks;' "$WORK/all/understudy.db")" 0 "picks (all)"
stop_mock

note "kill -9 in the middle of round 2, then a rerun"
rm -rf "$WORK/out"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --latency-ms 100
write_config "$WORK/kill.json" "${ACTIVE[@]}" label.round_prompts=100 label.max_prompts=240 \
  teacher.concurrency=2
expect_ok kprompts prompts "$WORK/kill.json"
start_us kill1 label "$WORK/kill.json"
round2_labelled() {
  db "SELECT COUNT(*) FROM targets t JOIN active_picks a ON a.prompt_id = t.prompt_id
        WHERE a.round = 2;"
}
in_round2() { [ "$(round2_labelled)" -ge 20 ]; }
wait_until 120 in_round2 || { show "$WORK/kill1.err"; fail "round 2 did not start labelling in 120 s"; }
kill -KILL "$US_PID"
wait_us
assert_eq "$RC" 137 "exit status after kill -9"
at_kill=$(round2_labelled)
note "killed with $at_kill of 100 round-2 picks labelled"
[ "$at_kill" -lt 100 ] || fail "round 2 had finished before the kill; the test proves nothing"
assert_eq "$(db 'PRAGMA integrity_check;')" ok "workspace integrity after kill -9"
db "SELECT prompt_id FROM active_picks WHERE round <= 2 ORDER BY prompt_id;" >"$WORK/picks.before"
assert_eq "$(wc -l <"$WORK/picks.before")" 140 "picks of rounds 1 and 2 at the kill"
sleep 0.3 # let the requests in flight reach the mock's books

expect_ok rerun2 label "$WORK/kill.json"
db "SELECT prompt_id FROM active_picks WHERE round <= 2 ORDER BY prompt_id;" >"$WORK/picks.after"
cmp -s "$WORK/picks.before" "$WORK/picks.after" || fail "the rerun changed the picks of round 2"
assert_eq "$(db 'SELECT group_concat(n_labelled) FROM (SELECT n_labelled FROM active_rounds ORDER BY round);')" \
  "40,140,240" "train prompts labelled after each round"
assert_eq "$(db 'SELECT COUNT(*) FROM active_picks;')" 240 "picks after the rerun"
twice=$(mock_stats keys_billed_more_than_once)
note "keys billed twice: $twice (concurrency 2)"
assert_le "$twice" 2 "keys billed twice (at most those in flight at the kill)"
assert_eq "$(mock_stats billed_keys)" "$((n_test + 240))" "keys billed (test split + picks)"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" "$((n_test + 240))" "calls stored"
stop_mock

note "with the Batch API, each round is one batch"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/batch.json" "${ACTIVE[@]}" output="\"$WORK/batch\"" teacher.mode='"batch"' \
  teacher.batch_poll_s=0.05
expect_ok batch_prompts prompts "$WORK/batch.json"
expect_ok batch_label label "$WORK/batch.json"
BDB="$WORK/batch/understudy.db"
b_test=$(db "SELECT COUNT(*) FROM prompts WHERE split = 1;" "$BDB")
assert_eq "$(db 'SELECT COUNT(*) FROM active_rounds;' "$BDB")" 4 "batch: rounds measured"
assert_eq "$(mock_stats batches_created)" 4 "batch: one batch a round"
assert_eq "$(mock_stats chat_requests)" 0 "batch: nothing sent live"
assert_eq "$(mock_stats billed_keys)" "$((b_test + 160))" "batch: keys billed (test split + picks)"
stop_mock

note "task generate: rounds picked by the student's mean token log-prob"
awk 'BEGIN {
  split("apples pears plums figs limes", item, " ");
  for (i = 1; i <= 120; i++) {
    t = sprintf("order %d: %d %s", i, (i * 7) % 13 + 1, item[i % 5 + 1]);
    printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/gen.jsonl";
    printf "{\"text\":\"%s\",\"answer\":\"%s\"}\n", t, item[i % 5 + 1] > "'"$WORK"'/gen.answers.jsonl";
  }
}'
start_mock --answers "$WORK/gen.answers.jsonl"
write_config "$WORK/gen.json" 'task={"type":"generate","template":"{text}"}' \
  output="\"$WORK/gen\"" data.inputs="[\"$WORK/gen.jsonl\"]" label.strategy='"active"' \
  label.seed_prompts=10 label.round_prompts=10 label.max_prompts=30 student.preset='"nano"' \
  student.steps=4 student.batch_size=4 student.warmup_steps=1 student.vocab_size=300 \
  student.threads=1 teacher.max_tokens=64
expect_ok gen_run run "$WORK/gen.json"
GDB="$WORK/gen/understudy.db"
g_test=$(db "SELECT COUNT(*) FROM prompts WHERE split = 1;" "$GDB")
assert_eq "$(db 'SELECT group_concat(n_labelled) FROM (SELECT n_labelled FROM active_rounds ORDER BY round);' "$GDB")" \
  "10,20,30" "generate: train prompts labelled after each round"
assert_eq "$(mock_stats billed_keys)" "$((g_test + 30))" "generate: keys billed (test split + picks)"
echo "ok: $TEST_NAME"
