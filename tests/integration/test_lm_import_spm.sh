#!/usr/bin/env bash
# Issue 14, SentencePiece vocabularies (tokenizer.ggml.model "llama": TinyLlama, llama 2 and
# Mistral-style models): tiny random llama GGUFs with a scored SentencePiece vocabulary,
# byte-fallback tokens and a chat template (ChatML with control tokens, llama 2's [INST], zephyr),
# written by make_tiny_llama.py --spm, are
#  1. tokenised as llama.cpp does (node-llama-cpp, pinned, as test_lm_import_llama.sh): ASCII,
#     accents, Greek, Cyrillic, CJK, Arabic, emoji, characters outside the vocabulary (byte
#     fallback) and whitespace runs, each prompt in each chat template;
#  2. "fine-tune 0 steps = llama.cpp": the same logits at every step on the ChatML file;
#  3. fine-tuned with LoRA through the pipeline (student.init), generated, exported as GGUF
#     (a "llama" tokeniser again) and loaded by llama.cpp with the same tokens and logits.
# Skips (77) where python3, node or npm is missing or node-llama-cpp cannot be installed.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/llama_lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 writes the test's GGUF"; exit 77; }
llama_cpp_setup

prompts=(
  "the cat's hat on the mat!"
  "hello world, it's 2024 and 1234 cats"
  "café naïve über résumé é"
  "Ελλάδα καλη Москва привет"
  "東京 日本語 中文 漢字"
  "😀 🎉 🦙 emoji"
  "مرحبا ١٢٣ ٤٥٦"
  $'  leading   spaces\tand\ttabs \n\n new  lines\n'
  " x"
  "Straße ÀÉÎ õ €5"
  "trailing spaces   "
)
note "tokenisation: ${#prompts[@]} prompts in 3 chat templates, understudy against llama.cpp"
: >"$WORK/cases.raw"
for t in chatml llama2 zephyr; do
  python3 "$(dirname "$0")/make_tiny_llama.py" "$WORK/spm-$t.gguf" --spm "$t" ||
    fail "make_tiny_llama.py --spm $t failed"
  for i in "${!prompts[@]}"; do
    # llama 2's " [/INST]" follows the prompt: trailing spaces would merge across the boundary
    # in llama.cpp's split of the whole rendered text (docs/lm.md)
    [ "$t" = llama2 ] && [ "${prompts[$i]% }" != "${prompts[$i]}" ] && continue
    expect_ok "tok-$t-$i" generate "$WORK/spm-$t.gguf" --prompt "${prompts[$i]}" --max-tokens 1 \
      --trace "$WORK/trace-$t-$i.json"
    printf '%s\t%s\t%s\0' "$t" "$i" "${prompts[$i]}" >>"$WORK/cases.raw"
  done
done
W=$WORK python3 -c '
import json, os
w = os.environ["W"]
for case in open(w + "/cases.raw", encoding="utf-8", newline="").read().split("\0")[:-1]:
    t, i, p = case.split("\t", 2)
    print(json.dumps({"model": "%s/spm-%s.gguf" % (w, t), "template": t, "prompt": p,
                      "trace": "%s/trace-%s-%s.json" % (w, t, i)}))' >"$WORK/cases.jsonl"
NLC_DIR=$npm_dir CASES=$WORK/cases.jsonl timeout 300 node "$(dirname "$0")/tokenize_llama.mjs" \
  >"$WORK/tokens.jsonl" 2>"$WORK/tokens.err" ||
  { show "$WORK/tokens.err"; fail "the node-llama-cpp tokenisation script failed"; }
assert_eq "$(wc -l <"$WORK/tokens.jsonl")" "$(wc -l <"$WORK/cases.jsonl")" "one answer per case"
if grep -v '"same":true' "$WORK/tokens.jsonl"; then
  fail "llama.cpp splits the cases above differently from understudy"
fi
python3 -c '
import json, sys
ids = [json.load(open(sys.argv[1]))["input"]]
sys.exit(0 if any(3 <= t < 259 for t in ids[0]) else 1)' "$WORK/trace-chatml-4.json" ||
  fail "the CJK prompt should fall back to byte tokens (<0xXX>)"

note "fine-tuning 0 steps: understudy's import against llama.cpp on the ChatML file"
gguf=$WORK/spm-chatml.gguf
compare() {
  local model=$1 out=$2 prompt=$3
  expect_ok "trace-$(basename "$out")" generate "$model" --prompt "$prompt" --max-tokens 8 \
    --trace "$WORK/trace.json"
  NLC_DIR=$npm_dir TRACE=$WORK/trace.json MODEL=$model PROMPT=$prompt BOS_TEXT="<s>" \
    timeout 300 node "$(dirname "$0")/import_llama.mjs" >"$out" 2>"$WORK/llama.err" ||
    { show "$WORK/llama.err"; fail "the node-llama-cpp script failed on $(basename "$model")"; }
  cat "$out"
  [ -z "$(json_get error <"$out")" ] || fail "llama.cpp refused $(basename "$model"): $(json_get error <"$out")"
}
compare "$gguf" "$WORK/input.json" "the café on 東京 😀"
assert_eq "$(json_get tokenize_same <"$WORK/input.json")" 1 "the same prompt ids"
assert_le "$(json_get logits_max_abs_diff <"$WORK/input.json")" 1e-4 "llama.cpp's logits are understudy's"
assert_eq "$(json_get same_greedy <"$WORK/input.json")" 1 "the same greedy tokens"

note "LoRA fine-tuning through the pipeline (student.init on a SentencePiece model)"
awk 'BEGIN {
  split("cat dog hat mat", w, " ");
  for (i = 1; i <= 40; i++) {
    t = sprintf("the %s %d", w[i % 4 + 1], i);
    printf "{\"id\":\"%d\",\"text\":\"%s\"}\n", i, t > "'"$WORK"'/prompts.jsonl";
    printf "{\"text\":\"%s\",\"answer\":\"a %s café\"}\n", t, w[i % 4 + 1] > "'"$WORK"'/answers.jsonl";
  }
}'
start_mock --answers "$WORK/answers.jsonl"
write_config "$WORK/config.json" 'task={"type":"generate","template":"{text}"}' \
  "student.init=\"$gguf\"" student.lora_rank=4 student.steps=30 student.batch_size=4 \
  student.warmup_steps=3 student.lm_lr=0.01 student.context=64 student.threads=1 \
  teacher.max_tokens=16
expect_ok train run "$WORK/config.json"
model=$WORK/out/student.bin
[ -s "$model" ] || fail "the run wrote no student.bin"
expect_ok gen generate "$model" --prompt "the cat 3" --max-tokens 8
expect_ok export export "$model" --format gguf -o "$WORK/tuned.gguf"
note "the fine-tuned model, exported, in llama.cpp"
compare "$WORK/tuned.gguf" "$WORK/tuned.json" "the cat 3"
assert_eq "$(json_get tokenize_same <"$WORK/tuned.json")" 1 "the export keeps the SentencePiece tokeniser"
assert_le "$(json_get logits_max_abs_diff <"$WORK/tuned.json")" 1e-4 "the export's logits in llama.cpp"
note "ok"
