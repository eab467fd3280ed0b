#!/usr/bin/env bash
# Issue 12, near-duplicates: a train file holding ten near-copies (one word changed) of prompts
# in a pinned test file. The prompts stage counts them (both sides) and says so; with
# data.dedupe_near off the split stays as the inputs made it; on (the default) the ten train
# copies move to the test split, the test file loses nothing, a rerun moves nothing more, and
# the report's data section carries the counts.
. "$(dirname "$0")/lib.sh"

awk 'BEGIN {
  srand(3);
  for (i = 1; i <= 120; i++) {
    s = "";
    for (w = 0; w < 12; w++) s = s (w ? " " : "") "w" int(rand() * 5000);
    text[i] = s;
  }
  for (i = 1; i <= 20; i++) printf "{\"text\":\"%s\"}\n", text[i] > "'"$WORK"'/test.jsonl";
  for (i = 21; i <= 110; i++) printf "{\"text\":\"%s\"}\n", text[i] > "'"$WORK"'/train.jsonl";
  for (i = 1; i <= 10; i++) {  # near-copies of the first ten test prompts: last word changed
    t = text[i]; sub(/ [^ ]+$/, " changed", t);
    printf "{\"text\":\"%s\"}\n", t > "'"$WORK"'/train.jsonl";
  }
}'
INPUTS='[{"path":"'"$WORK"'/train.jsonl","split":"train"},{"path":"'"$WORK"'/test.jsonl","split":"test"}]'
write_config "$WORK/config.json" "data.inputs=$INPUTS"

note "dedupe_near off: counted, not moved"
expect_ok p1 prompts "$WORK/config.json" --set data.dedupe_near=false
assert_grep "$WORK/p1.out" "near-duplicates: 20 prompts have a near-duplicate in the other split" "the count"
assert_eq "$(db 'SELECT COUNT(*) FROM prompts WHERE split = 1;')" 20 "test prompts"
assert_eq "$(db 'SELECT COUNT(*) FROM prompts WHERE split = 0;')" 100 "train prompts"
assert_eq "$(db "SELECT json_extract(json, '\$.near_duplicates') FROM results WHERE name = 'near_duplicates';")" 20 "recorded count"

note "dedupe_near on (the default): the train copies move to test"
expect_ok p2 prompts "$WORK/config.json"
assert_grep "$WORK/p2.out" "near-duplicates: 20 prompts had a near-duplicate in the other split .*; 10 train prompts moved to test" "the move"
assert_eq "$(db 'SELECT COUNT(*) FROM prompts WHERE split = 1;')" 30 "test prompts"
assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE split = 1 AND text LIKE '% changed';")" 10 "near-copies in test"
assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE split = 0 AND text LIKE '% changed';")" 0 "near-copies left in train"

note "a rerun finds no leak left"
expect_ok p3 prompts "$WORK/config.json"
assert_grep "$WORK/p3.out" "near-duplicates: none across train and test" "nothing left to move"
assert_eq "$(db "SELECT json_extract(json, '\$.moved') FROM results WHERE name = 'near_duplicates';")" 10 "moved in all runs"
echo "PASS: $TEST_NAME"
