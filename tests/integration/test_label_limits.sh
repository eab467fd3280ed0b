#!/usr/bin/env bash
# Issue 2: the client keeps to teacher.concurrency (never more requests in flight at the server)
# and to teacher.requests_per_minute (a lower bound on the run's duration, which a slow machine
# cannot break), and still labels everything.
. "$(dirname "$0")/lib.sh"

N=50
gen_prompts "$N" "$WORK/prompts.jsonl"

note "concurrency 4 against a server that takes 100 ms per answer"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl" --latency-ms 100
write_config "$WORK/config.json" teacher.concurrency=4
expect_ok prompts prompts "$WORK/config.json"
expect_ok label1 label "$WORK/config.json"
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts"
assert_le "$(mock_stats max_in_flight)" 4 "requests in flight at once with concurrency 4"
assert_ge "$(mock_stats max_in_flight)" 2 "requests in flight at once (the client does overlap them)"
stop_mock

note "600 requests per minute: 50 prompts take at least 4 s (one second's burst, then 10/s)"
rm -rf "$WORK/out"
start_teacher --answers "$WORK/prompts.jsonl.answers.jsonl"
write_config "$WORK/config.json" teacher.concurrency=16 teacher.requests_per_minute=600
expect_ok prompts2 prompts "$WORK/config.json"
t0=$(date +%s.%N)
expect_ok label2 label "$WORK/config.json"
t1=$(date +%s.%N)
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts under a rate limit"
assert_eq "$(mock_stats requests)" "$N" "requests sent under a rate limit"
assert_ge "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" 3.9 \
  "seconds taken for $N requests at 10 a second after a burst of 10"
echo "PASS: $TEST_NAME"
