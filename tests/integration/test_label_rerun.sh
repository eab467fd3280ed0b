#!/usr/bin/env bash
# Issue 2, test 2: a rerun of `label` sends nothing and says everything is cached; --dry-run
# contacts nobody (not even a dead teacher) and prints the prompt count and a cost range.
. "$(dirname "$0")/lib.sh"

N=300
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/config.json" teacher.concurrency=16
expect_ok prompts prompts "$WORK/config.json"

note "dry run before anything is labelled"
expect_ok dry1 label "$WORK/config.json" --dry-run
assert_eq "$(mock_stats requests)" 0 "requests sent by --dry-run"
cat "$WORK/dry1.out" "$WORK/dry1.err" >"$WORK/dry1.all"
assert_grep "$WORK/dry1.all" "(^|[^0-9])$N([^0-9]|$)" "--dry-run names the prompt count"
assert_grep "$WORK/dry1.all" '\$[0-9]+\.[0-9]+.*\$[0-9]+\.[0-9]+' "--dry-run prints a cost range"
assert_eq "$(db 'SELECT COUNT(*) FROM calls;')" 0 "calls stored by --dry-run"

note "first run"
expect_ok label1 label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "prompts without a target after the first run"
sent=$(mock_stats requests)
assert_eq "$(mock_stats billed)" "$N" "answers billed by the first run"
spent=$(db_spend)

note "rerun"
expect_ok label2 label "$WORK/config.json"
assert_eq "$(mock_stats requests)" "$sent" "requests sent by the rerun"
cat "$WORK/label2.out" "$WORK/label2.err" >"$WORK/label2.all"
assert_grep "$WORK/label2.all" "(^|[^0-9])$N cached" "the rerun says all $N prompts are cached"
assert_eq "$(db_spend)" "$spent" "spend after the rerun"
db_text_labels >"$WORK/labels.got"
cmp -s "$WORK/labels.got" "$WORK/prompts.jsonl.expected" || fail "labels differ from the teacher's answers"

note "dry run after labelling, with the teacher gone"
stop_mock
expect_ok dry2 label "$WORK/config.json" --dry-run
cat "$WORK/dry2.out" "$WORK/dry2.err" >"$WORK/dry2.all"
assert_grep "$WORK/dry2.all" "(^|[^0-9])$N cached" "--dry-run counts the cached prompts"
assert_grep "$WORK/dry2.all" '\$0\.0+ to \$0\.0+|\$0(\.0+)?[^0-9.].*\$0(\.0+)?([^0-9.]|$)' \
  "--dry-run estimates nothing to pay when all is cached"

note "a new prompt: the dry run counts one to send"
echo '{"id":"new","text":"a brand new message about my invoice"}' >>"$WORK/prompts.jsonl"
expect_ok prompts2 prompts "$WORK/config.json"
expect_ok dry3 label "$WORK/config.json" --dry-run
cat "$WORK/dry3.out" "$WORK/dry3.err" >"$WORK/dry3.all"
assert_grep "$WORK/dry3.all" "$((N + 1))" "--dry-run names the new prompt count"
assert_grep "$WORK/dry3.all" "(^|[^0-9])$N cached" "--dry-run counts the cached prompts"
echo "PASS: $TEST_NAME"
