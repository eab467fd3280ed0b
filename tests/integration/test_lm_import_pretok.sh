#!/usr/bin/env bash
# Issue 14, byte-level BPE pre-tokenisers on any UTF-8 text: for each pre-tokeniser understudy
# reads (gpt-2, smollm, llama-bpe, qwen2), a tiny llama GGUF (make_tiny_llama.py --bpe) whose
# merges were learned across character classes and spaces on the test's own prompts, so that
# only the right split keeps them apart; understudy's ids for each prompt in the file's ChatML
# template must equal llama.cpp's (node-llama-cpp, pinned, as test_lm_import_llama.sh) on Latin
# with accents, Greek, Cyrillic, CJK, Arabic, Devanagari, Hangul, Thai, emoji, digits of other
# scripts, fractions, combining marks, mathematical letters and mixed whitespace.
# Skips (77) where python3, node or npm is missing or node-llama-cpp cannot be installed.
. "$(dirname "$0")/lib.sh"

. "$(dirname "$0")/llama_lib.sh"

command -v python3 >/dev/null || { echo "SKIP: python3 writes the test's GGUF"; exit 77; }
llama_cpp_setup

prompts=(
  "the cat's hat on the mat!"
  "café naïve über résumé Ñandú"
  "Ελληνικά: καλημέρα κόσμε"
  "Привет, мир! Москва 2024"
  "東京は日本の首都です。中文字符"
  "مرحبا بالعالم ١٢٣٤٥"
  "emoji 😀🎉 🦙 ok"
  "digits ٣٤٥ ०१२ 一二三 ⅻ ½ 12345"
  $'mixed\u00a0nbsp\u3000ideo\u2003em  x'
  $'  lead\ttab\n\nnl \r\n crlf   end'
  $'combining é vs e\u0301 and ñ'
  "I'M DON'T we'll they've"
  "Zürich–Genève — «quotes» ¿qué? ¡sí!"
  "한국어 텍스트 ภาษาไทย हिन्दी"
  "xxx ½³ⅷ 𝟘𝟙𝟚 𝐀𝐁"
)
for p in "${prompts[@]}"; do
  P=$p python3 -c 'import json, os; print(json.dumps(os.environ["P"], ensure_ascii=False))'
done >"$WORK/corpus.jsonl"
for pre in gpt-2 smollm llama-bpe qwen2; do
  gguf=$WORK/bpe-$pre.gguf
  python3 "$(dirname "$0")/make_tiny_llama.py" "$gguf" --bpe "$pre" "$WORK/corpus.jsonl" ||
    fail "make_tiny_llama.py --bpe $pre failed"
  for i in "${!prompts[@]}"; do
    expect_ok "tok-$pre-$i" generate "$gguf" --prompt "${prompts[$i]}" --max-tokens 1 \
      --trace "$WORK/trace-$pre-$i.json"
  done
done
W=$WORK python3 -c '
import json, os
w = os.environ["W"]
prompts = [json.loads(l) for l in open(w + "/corpus.jsonl", encoding="utf-8")]
for pre in ["gpt-2", "smollm", "llama-bpe", "qwen2"]:
    for i, p in enumerate(prompts):
        print(json.dumps({"model": "%s/bpe-%s.gguf" % (w, pre), "template": "chatml-nobos",
                          "prompt": p, "trace": "%s/trace-%s-%d.json" % (w, pre, i)}))' \
  >"$WORK/cases.jsonl"
note "$(wc -l <"$WORK/cases.jsonl") cases: understudy's ids against llama.cpp's"
llama_tokenize_check
note "ok"
