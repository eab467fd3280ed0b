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
llama_tokenize_check
python3 -c '
import json, sys
ids = [json.load(open(sys.argv[1]))["input"]]
sys.exit(0 if any(3 <= t < 259 for t in ids[0]) else 1)' "$WORK/trace-chatml-4.json" ||
  fail "the CJK prompt should fall back to byte tokens (<0xXX>)"

note "fine-tuning 0 steps: understudy's import against llama.cpp on the ChatML file"
gguf=$WORK/spm-chatml.gguf
llama_compare "$gguf" "$WORK/input.json" "the café on 東京 😀" "<s>"
assert_eq "$(json_get tokenize_same <"$WORK/input.json")" 1 "the same prompt ids"
assert_le "$(json_get logits_max_abs_diff <"$WORK/input.json")" 1e-4 "llama.cpp's logits are understudy's"
assert_eq "$(json_get same_greedy <"$WORK/input.json")" 1 "the same greedy tokens"

note "LoRA fine-tuning through the pipeline (student.init on a SentencePiece model)"
llama_lora_round_trip "$gguf" " café" "<s>"
note "ok"
