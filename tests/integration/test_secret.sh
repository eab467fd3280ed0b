#!/usr/bin/env bash
# Issue 2, test 6: the API key's value goes in the Authorization header and nowhere else. After
# prompts, dry and real labelling (one of them killed so the SQLite WAL is left behind), cache
# stats and export, and failing runs (401, 404, a dead server), the value is in no file under
# the output folder and in no output of the binary; the mock's request log shows it did reach
# the server, so the search could have found it.
. "$(dirname "$0")/lib.sh"

KEY="sk-test-$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')"
export OPENAI_API_KEY="$KEY"
N=400
gen_prompts "$N" "$WORK/prompts.jsonl"
start_teacher --require-key "$KEY" --log-requests "$WORK/requests.log" --latency-ms 30
write_config "$WORK/config.json" teacher.concurrency=8
OUTDIR="$WORK/out"

expect_ok prompts prompts "$WORK/config.json" --verbose
expect_ok dry label "$WORK/config.json" --dry-run --verbose

note "label, killed mid-run so the WAL stays"
start_us killed label "$WORK/config.json" --verbose
labelled_at_least() { [ "$(db_targets)" -ge "$1" ]; }
wait_until 60 labelled_at_least 40 || fail "fewer than 40 prompts labelled after 60 s"
kill -KILL "$US_PID"
wait_us
[ -s "$OUTDIR/understudy.db-wal" ] || note "(no WAL file left after kill -9)"
if grep -rlaF -- "$KEY" "$OUTDIR" >"$WORK/found.txt"; then
  fail "the key's value is in $(tr '\n' ' ' <"$WORK/found.txt")(after kill -9)"
fi

expect_ok label label "$WORK/config.json" --verbose
assert_eq "$(db_unlabelled)" 0 "unlabelled prompts"
expect_ok stats cache stats "$WORK/config.json" --verbose
expect_ok export cache export "$WORK/config.json" "$OUTDIR/export.jsonl" --verbose
[ -s "$OUTDIR/export.jsonl" ] || fail "cache export wrote nothing"

note "failing runs: 401, a wrong key, 404, a dead server"
for i in 1 2 3 4; do
  echo "{\"id\":\"n$i\",\"text\":\"a new message number $i about the invoice\"}" >>"$WORK/prompts.jsonl"
done
expect_ok prompts2 prompts "$WORK/config.json"
start_teacher --fail-status 401 --log-requests "$WORK/requests401.log"
run_us fail401 label "$WORK/config.json" --verbose --set "teacher.base_url=$MOCK_URL"
[ "$RC" -ne 0 ] || fail "label against a 401 server exited 0"
start_teacher --require-key "sk-some-other-key-0000" --log-requests "$WORK/requests_wrong.log"
run_us wrongkey label "$WORK/config.json" --verbose --set "teacher.base_url=$MOCK_URL"
[ "$RC" -ne 0 ] || fail "label against a server expecting another key exited 0"
start_teacher --models other-model
run_us fail404 label "$WORK/config.json" --verbose --set "teacher.base_url=$MOCK_URL"
[ "$RC" -ne 0 ] || fail "label against a 404 server exited 0"
dead_url=$MOCK_URL
stop_mock
run_us dead label "$WORK/config.json" --verbose --set "teacher.base_url=$dead_url" \
  --set teacher.max_retries=0
[ "$RC" -ne 0 ] || [ "$(db 'SELECT COUNT(*) FROM failures;')" -gt 0 ] ||
  fail "label against a dead server neither failed nor recorded failures"

note "search"
files=$(find "$OUTDIR" -type f | sed "s|$OUTDIR/||" | sort | tr '\n' ' ')
note "files under the output folder: $files"
if grep -rlaF -- "$KEY" "$OUTDIR" >"$WORK/found.txt"; then
  fail "the key's value is in $(tr '\n' ' ' <"$WORK/found.txt")"
fi
for f in "$WORK"/*.out "$WORK"/*.err; do
  if grep -qaF -- "$KEY" "$f"; then
    show "$f"
    fail "the key's value is in the binary's output ($(basename "$f"))"
  fi
done
# The search could have failed: the key did travel, in the Authorization header only.
grep -qF "Authorization: Bearer $KEY" "$WORK/requests.log" ||
  fail "the mock never saw the key in an Authorization header: the search proves nothing"
grep -qF "Authorization: Bearer $KEY" "$WORK/requests401.log" ||
  fail "the 401 mock never saw the key: the failing run proves nothing"
grep -vF "Authorization: Bearer $KEY" "$WORK/requests.log" | grep -qF -- "$KEY" &&
  fail "the key was sent outside the Authorization header"
assert_grep "$WORK/fail401.err" 'OPENAI_API_KEY' "the 401 message names the variable"
echo "PASS: $TEST_NAME"
