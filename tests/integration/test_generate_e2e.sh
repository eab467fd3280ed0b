#!/usr/bin/env bash
# Issue 5: a generate task end to end through the real binary and the mock teacher over loopback:
# prompt files (JSON answers, so the JSON metrics are exercised) and self-instruct from a folder
# of documents (questions written once per chunk, answered with the chunk as context). Both runs
# complete with a student and generation metrics, and a rerun sends no request.
. "$(dirname "$0")/lib.sh"

# The tiny language model: enough to run the whole pipeline in seconds, not to learn much.
LM=(student.preset='"nano"' student.steps=4 student.batch_size=4 student.warmup_steps=1
  student.vocab_size=300 student.threads=1 teacher.max_tokens=64)

note "prompt file: 300 orders, the teacher answers with their fields as JSON"
awk 'BEGIN {
  split("apples pears plums figs limes", item, " ");
  split("red green ripe small large", adj, " ");
  for (i = 1; i <= 300; i++) {
    q = (i * 7) % 13 + 1; it = item[i % 5 + 1]; a = adj[int(i / 5) % 5 + 1];
    t = sprintf("order %d: %d %s %s", i, q, a, it);
    printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/prompts.jsonl";
    ans = sprintf("{\\\"order\\\":\\\"%d\\\",\\\"qty\\\":\\\"%d\\\",\\\"item\\\":\\\"%s %s\\\"}", i, q, a, it);
    printf "{\"text\":\"%s\",\"answer\":\"%s\"}\n", t, ans > "'"$WORK"'/answers.jsonl";
  }
}'
start_mock --answers "$WORK/answers.jsonl"
write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}"}' "${LM[@]}"
expect_ok run1 run "$WORK/config.json"
[ -s "$WORK/out/student.bin" ] || fail "run wrote no student.bin"
assert_eq "$(mock_stats chat_requests)" 300 "one request per prompt"
rj=$(cat "$WORK/out/report.json")
n_test=$(db "SELECT COUNT(*) FROM prompts WHERE split = 1;")
[ "$n_test" -gt 0 ] || fail "no test prompts"
assert_eq "$(printf '%s' "$rj" | json_get generation.n)" "$n_test" "generation metrics cover the test split"
assert_eq "$(printf '%s' "$rj" | json_get generation.json_objects)" "$n_test" "every reference is a JSON object"
f1=$(printf '%s' "$rj" | json_get generation.json_field_f1)
[ -n "$f1" ] || fail "report.json has no generation.json_field_f1"
assert_ge "$f1" 0 "json_field_f1 is a share"
assert_le "$f1" 1 "json_field_f1 is a share"
ppl=$(printf '%s' "$rj" | json_get generation.perplexity)
[ -n "$ppl" ] || fail "report.json has no generation.perplexity"
assert_ge "$ppl" 1 "perplexity of the student on the teacher's answers"
ls "$WORK/out"/student-*.ckpt >/dev/null 2>&1 && fail "a checkpoint was left after the model was saved"
em=$(printf '%s' "$rj" | json_get generation.exact_match)
assert_ge "$em" 0 "exact match is a share"
assert_grep "$WORK/out/report.md" 'JSON field F1' "report.md shows the JSON field F1"
assert_grep "$WORK/out/report.html" 'JSON field F1' "report.html shows the JSON field F1"

note "rerun pays nothing"
expect_ok run2 run "$WORK/config.json"
assert_eq "$(mock_stats chat_requests)" 300 "a rerun sends no request"

note "self-instruct from a folder of documents"
mkdir -p "$WORK/docs/sub"
for d in 1 2 3 4 5 6; do
  {
    echo "# Harbour guide $d"
    echo
    echo "The ferry number $d leaves the north quay every $((d * 5)) minutes. Tickets for ferry $d cost $d euros at the kiosk. The kiosk of pier $d closes at $((d + 16)) hours."
    echo
    echo "## Museum $d"
    echo
    echo "Museum $d keeps a steam tug called Tern $d. Guided tours of museum $d start at $((d + 8)) hours. Children under $((d + 5)) enter museum $d for free."
  } >"$WORK/docs/$([ "$d" -gt 3 ] && echo sub/)guide$d.md"
done
mock_reset
write_config "$WORK/docs.json" 'task={"type":"generate"}' output="$(json_quote "$WORK/docs-out")" \
  "data.inputs=[{\"path\":$(json_quote "$WORK/docs"),\"format\":\"docs\"}]" \
  data.questions_per_chunk=2 data.test_fraction=0.3 "${LM[@]}"
ddb="$WORK/docs-out/understudy.db"
expect_ok docs1 run "$WORK/docs.json"
[ -s "$WORK/docs-out/student.bin" ] || fail "the docs run wrote no student.bin"
chunks=$(db "SELECT COUNT(*) FROM prompts WHERE kind = 1;" "$ddb")
questions=$(db "SELECT COUNT(*) FROM prompts WHERE kind = 0 AND context IS NOT NULL;" "$ddb")
assert_eq "$chunks" 12 "two chunks (one per section) from each of six documents"
assert_eq "$questions" $((chunks * 2)) "questions_per_chunk questions from every chunk"
assert_eq "$(mock_stats chat_requests)" $((chunks + questions)) "one call per chunk, one per question"
assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE context IS NOT NULL AND source NOT LIKE '%#chunk_/q_';" "$ddb")" 0 \
  "question sources are file#chunkN/qK"
assert_eq "$(db "SELECT COUNT(*) FROM prompts q JOIN prompts c ON c.kind = 1
  AND q.source LIKE c.source || '/q%' WHERE q.split != c.split OR q.context != c.text;" "$ddb")" 0 \
  "questions inherit their chunk's split and carry it as context"
assert_eq "$(db "SELECT COUNT(*) FROM prompts q JOIN targets t ON t.prompt_id = q.id
  WHERE q.kind = 0 AND instr(q.context, t.text) > 0;" "$ddb")" "$questions" \
  "every question answered from its own chunk"
n_test=$(db "SELECT COUNT(*) FROM prompts WHERE kind = 0 AND split = 1;" "$ddb")
[ "$n_test" -gt 0 ] || fail "no test questions"
assert_eq "$(json_get generation.n <"$WORK/docs-out/report.json")" "$n_test" \
  "generation metrics cover the test questions (chunks are not prompts)"
sent=$(mock_stats chat_requests)
expect_ok docs2 run "$WORK/docs.json"
assert_eq "$(mock_stats chat_requests)" "$sent" "a rerun asks for no question and no answer again"
assert_eq "$(db "SELECT COUNT(*) FROM prompts WHERE kind = 0;" "$ddb")" "$questions" "a rerun adds no question"
