#!/usr/bin/env bash
# Issue 14: the language-model student exported as GGUF and run by llama.cpp itself (the npm
# package node-llama-cpp, pinned, with its prebuilt linux-x64 binaries): a student trained
# through the real pipeline against the mock teacher is exported as f32, f16, bf16 and q8_0;
# llama.cpp loads each, and on the student's own token ids gives the same greedy continuation as
# `understudy generate` (f32: logits within float tolerance at every step; the decoded text
# equal to the answer); its tokeniser splits the prompt into the same ids, and the GGUF's chat
# template, rendered by Jinja and tokenised with special tokens, gives exactly the sequence the
# student was trained on. Skips (77) where node or npm is missing or older than Node.js 20, the
# machine is not linux x64, or the packages cannot be installed (offline).
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/llama_lib.sh"

llama_cpp_setup

note "a student trained through the pipeline (300 orders, JSON answers)"
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
write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}"}' \
  student.layers=2 student.lm_dim=64 student.heads=4 student.context=96 student.steps=300 \
  student.batch_size=8 student.warmup_steps=10 student.lr=0.003 student.vocab_size=320 \
  student.threads=1 teacher.max_tokens=64
expect_ok train run "$WORK/config.json"
model=$WORK/out/student.bin
[ -s "$model" ] || fail "the run wrote no student.bin"

note "export as f32, f16, bf16 and q8_0"
for t in f32 f16 bf16 q8_0; do
  expect_ok "export-$t" export "$model" --format gguf --type "$t" -o "$WORK/student-$t.gguf"
done
f32_size=$(stat -c %s "$WORK/student-f32.gguf")
q8_size=$(stat -c %s "$WORK/student-q8_0.gguf")
assert_le "$((q8_size * 2))" "$f32_size" "q8_0 is well under half of f32"
run_us bad-type export "$model" --format gguf --type q4_0 -o "$WORK/x.gguf"
assert_eq "$RC" 2 "--type q4_0 is a usage error"
assert_grep "$WORK/bad-type.err" "expects f32, f16, bf16 or q8_0" "a bad --type is named"

note "the student's own greedy decode on token ids"
prompt="order 17: 2 ripe plums"
expect_ok gen generate "$model" --prompt "$prompt" --max-tokens 40 --trace "$WORK/trace.json"
answer=$(cat "$WORK/gen.out")
[ -n "$answer" ] || fail "the student generated nothing"

note "llama.cpp (node-llama-cpp $NLC_VERSION) on the exports"
NLC_DIR=$npm_dir TRACE=$WORK/trace.json PROMPT=$prompt ANSWER=$answer \
  FILES="$WORK/student-f32.gguf,$WORK/student-f16.gguf,$WORK/student-bf16.gguf,$WORK/student-q8_0.gguf" \
  timeout 300 node "$(dirname "$0")/gguf_llama.mjs" >"$WORK/llama.jsonl" 2>"$WORK/llama.err" ||
  { show "$WORK/llama.err"; fail "the node-llama-cpp script failed"; }
cat "$WORK/llama.jsonl"
field() { sed -n "$1p" "$WORK/llama.jsonl" | json_get "$2"; }
for i in 1 2 3 4; do
  [ -z "$(field $i error)" ] || fail "llama.cpp refused file $i: $(field $i error)"
  assert_eq "$(field $i architecture)" llama "file $i: architecture"
done
assert_eq "$(field 1 same_tokens)" 1 "f32: llama.cpp's greedy continuation is the student's"
assert_eq "$(field 1 same_text)" 1 "f32: llama.cpp's decoded answer is the student's"
assert_le "$(field 1 logits_max_abs_diff)" 1e-4 "f32: llama.cpp's logits match the student's"
assert_eq "$(field 1 tokenize_same)" 1 "llama.cpp's tokeniser splits the prompt into the student's ids"
assert_eq "$(field 1 template_tokens_same)" 1 "the chat template renders exactly the training sequence"
assert_eq "$(field 2 same_tokens)" 1 "f16: the same greedy continuation"
assert_le "$(field 2 logits_max_abs_diff)" 0.05 "f16: logits close to the student's"
assert_le "$(field 3 logits_max_abs_diff)" 0.25 "bf16: logits near the student's"
assert_le "$(field 4 logits_max_abs_diff)" 0.5 "q8_0: logits near the student's"
for i in 3 4; do
  [ -n "$(field $i text)" ] || fail "file $i: llama.cpp generated nothing"
done
