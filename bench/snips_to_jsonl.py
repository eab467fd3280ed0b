#!/usr/bin/env python3
"""Converts a SNIPS split (seq.in, seq.out with BIO slot tags) into JSONL for the language-model
student: {"prompt": utterance, "answer": compact JSON of its slots built from the gold tags}.

usage: bench/snips_to_jsonl.py DATA_DIR/SPLIT OUT.jsonl
A slot that occurs twice keeps both occurrences as repeated keys, in order (the slot-level F1 in
bench_lm counts (key, value) pairs as a multiset).
"""
import json
import sys


def slots(words, tags):
    out, key, value = [], None, []
    for w, t in zip(words, tags):
        if t.startswith("B-") or (t.startswith("I-") and key != t[2:]):
            if key:
                out.append((key, " ".join(value)))
            key, value = t[2:], [w]
        elif t.startswith("I-"):
            value.append(w)
        else:
            if key:
                out.append((key, " ".join(value)))
            key, value = None, []
    if key:
        out.append((key, " ".join(value)))
    return out


def answer(pairs):
    return "{" + ",".join(json.dumps(k, ensure_ascii=False) + ":" + json.dumps(v, ensure_ascii=False)
                          for k, v in pairs) + "}"


def main():
    split, out = sys.argv[1], sys.argv[2]
    with open(f"{split}/seq.in", encoding="utf-8") as fi, open(f"{split}/seq.out", encoding="utf-8") as fo, \
            open(out, "w", encoding="utf-8") as w:
        for line_in, line_out in zip(fi, fo):
            words, tags = line_in.split(), line_out.split()
            if len(words) != len(tags):
                raise SystemExit(f"{split}: {len(words)} words but {len(tags)} tags: {line_in!r}")
            w.write(json.dumps({"prompt": " ".join(words), "answer": answer(slots(words, tags))},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
