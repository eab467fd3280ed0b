#!/usr/bin/env python3
"""Writes a tiny random llama GGUF in llama.cpp's conventions, independently of understudy's own
GGUF writer (standard library only): grouped-query attention (4 query heads over 2 key/value
heads), an untied output, a byte-level BPE vocabulary whose ids are not the bytes, SmolLM's
pre-tokeniser and a ChatML chat template. Usage: make_tiny_llama.py OUT.gguf [--spm TEMPLATE]

--bpe PRE CORPUS: the byte-level BPE vocabulary learns ~300 merges from CORPUS (one JSON string a
line) across character classes and spaces, so that only the pre-tokeniser PRE (gpt-2, smollm,
llama-bpe, qwen2) keeps them inside pieces, as llama.cpp's must.

--spm: a SentencePiece vocabulary instead (tokenizer.ggml.model "llama"): <unk>, <s>, </s>, the
256 byte-fallback tokens <0x00>..<0xFF>, a few hundred scored pieces cut from words in several
scripts (so that merges chain and some characters fall back to bytes), and TEMPLATE: chatml
(with <|im_start|> / <|im_end|> control tokens), llama2 ([INST]) or zephyr (TinyLlama's)."""
import random
import struct
import sys

L, C, NH, NKV, F, CTX = 2, 64, 4, 2, 128, 128
HD = C // NH
CKV = NKV * HD


def gpt2_char(b):
    printable = lambda k: 33 <= k <= 126 or 161 <= k <= 172 or 174 <= k <= 255
    if printable(b):
        return chr(b)
    return chr(256 + sum(1 for k in range(b) if not printable(k)))


SPM = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--spm" else None
tokens = [None] * 256
for b in range(256):
    tokens[255 - b] = gpt2_char(b)
merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("a", "t"), ("\u0120", "c"),
          ("\u0120c", "at"), ("\u0120", "a"), ("o", "n")]
for a, b in merges:
    tokens.append(a + b)
BPE = sys.argv[3] if len(sys.argv) > 4 and sys.argv[2] == "--bpe" else None
if BPE:
    import json
    with open(sys.argv[4], encoding="utf-8") as f:
        seqs = [[gpt2_char(b) for b in json.loads(line).encode("utf-8")] for line in f if line.strip()]
    merges, known = [], set(tokens[:256])
    while len(merges) < 300:
        counts = {}
        for q in seqs:
            for a, b in zip(q, q[1:]):
                if a + b not in known:
                    counts[(a, b)] = counts.get((a, b), 0) + 1
        if not counts:
            break
        a, b = max(sorted(counts), key=lambda k: counts[k])
        merges.append((a, b))
        known.add(a + b)
        for i, q in enumerate(seqs):
            out, k = [], 0
            while k < len(q):
                if k + 1 < len(q) and q[k] == a and q[k + 1] == b:
                    out.append(a + b)
                    k += 2
                else:
                    out.append(q[k])
                    k += 1
            seqs[i] = out
    tokens = tokens[:256] + [a + b for a, b in merges]
types = [1] * len(tokens)
specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
for s in specials:
    tokens.append(s)
    types.append(3)
V = len(tokens)
EOT, START, END = V - 3, V - 2, V - 1
TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
            "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
            "{{ '<|im_start|>assistant\\n' }}{% endif %}")


scores = None
if SPM:
    rng0 = random.Random(11)
    tokens = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    words = ("the cat cats hat hats mat on dog the end hello world café naïve über résumé "
             "Ελλάδα καλη Москва привет 東京 日本語 中文 مرحبا 😀 🎉 ١٢٣ 12 2024 1234 it's don't "
             "tab line new a an and ing tion").split()
    pieces = set()
    for w in words:
        for text in ("\u2581" + w, w):
            for i in range(len(text)):
                for j in range(i + 1, min(len(text), i + 6) + 1):
                    pieces.add(text[i:j])
    pieces |= {"\u2581\u2581", "\u2581\u2581\u2581", "\u2581\u2581\u2581\u2581", "!", "?", ".", ",", "'"}
    pieces.discard("\u00e9")  # é falls back to its two bytes outside café
    for p in sorted(pieces):
        tokens.append(p)
        types.append(1)
    scores = [0.0] * 3 + [0.0] * 256 + [rng0.uniform(-12.0, -1.0) for _ in pieces]
    specials = ["<|im_start|>", "<|im_end|>"] if SPM == "chatml" else []
    for sp in specials:
        tokens.append(sp)
        types.append(3)
        scores.append(0.0)
    V = len(tokens)
    TEMPLATE = {
        "chatml": TEMPLATE,
        "llama2": ("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
                   "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% else %}"
                   "{{ message['content'] + eos_token }}{% endif %}{% endfor %}"),
        "zephyr": ("{% for message in messages %}{% if message['role'] == 'user' %}"
                   "{{ '<|user|>\\n' + message['content'] + eos_token + '\\n' }}{% else %}"
                   "{{ '<|assistant|>\\n' + message['content'] + eos_token + '\\n' }}{% endif %}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"),
    }[SPM]
    EOT, START, END = 0, 1, 2


def s(x):
    b = x.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


kv = []
def add(key, typ, payload):
    kv.append(s(key) + struct.pack("<I", typ) + payload)

add("general.architecture", 8, s("llama"))
for key, val in [("llama.block_count", L), ("llama.context_length", CTX),
                 ("llama.embedding_length", C), ("llama.feed_forward_length", F),
                 ("llama.attention.head_count", NH), ("llama.attention.head_count_kv", NKV),
                 ("tokenizer.ggml.bos_token_id", START), ("tokenizer.ggml.eos_token_id", END),
                 ("tokenizer.ggml.padding_token_id", EOT)]:
    add(key, 4, struct.pack("<I", val))
add("llama.rope.freq_base", 6, struct.pack("<f", 10000.0))
add("llama.attention.layer_norm_rms_epsilon", 6, struct.pack("<f", 1e-5))
add("tokenizer.ggml.model", 8, s("llama" if SPM else "gpt2"))
if not SPM:
    add("tokenizer.ggml.pre", 8, s(BPE or "smollm"))
add("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, V) + b"".join(s(t) for t in tokens))
add("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, V) + struct.pack("<%di" % V, *types))
if SPM:
    add("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, V) + struct.pack("<%df" % V, *scores))
    add("tokenizer.ggml.unknown_token_id", 4, struct.pack("<I", 0))
    add("tokenizer.ggml.add_space_prefix", 7, b"\x01")
else:
    add("tokenizer.ggml.merges", 9,
        struct.pack("<IQ", 8, len(merges)) + b"".join(s(a + " " + b) for a, b in merges))
add("tokenizer.ggml.add_bos_token", 7, b"\x01" if SPM else b"\x00")
add("tokenizer.chat_template", 8, s(TEMPLATE))

rng = random.Random(7)
tensors = []  # (name, ne, floats)
def t(name, ne, scale, offset=0.0):
    n = 1
    for d in ne:
        n *= d
    tensors.append((name, ne, [offset + scale * rng.gauss(0, 1) for _ in range(n)]))

t("token_embd.weight", [C, V], 0.5)
t("output_norm.weight", [C], 0.1, 1.0)
t("output.weight", [C, V], 0.2)
for l in range(L):
    t("blk.%d.attn_norm.weight" % l, [C], 0.1, 1.0)
    t("blk.%d.attn_q.weight" % l, [C, C], 0.2)
    t("blk.%d.attn_k.weight" % l, [C, CKV], 0.2)
    t("blk.%d.attn_v.weight" % l, [C, CKV], 0.2)
    t("blk.%d.attn_output.weight" % l, [C, C], 0.2)
    t("blk.%d.ffn_norm.weight" % l, [C], 0.1, 1.0)
    t("blk.%d.ffn_gate.weight" % l, [C, F], 0.2)
    t("blk.%d.ffn_up.weight" % l, [C, F], 0.2)
    t("blk.%d.ffn_down.weight" % l, [F, C], 0.2)

pad = lambda n: (32 - n % 32) % 32
infos, data = b"", b""
for name, ne, vals in tensors:
    data += b"\x00" * pad(len(data))
    infos += s(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne)
    infos += struct.pack("<IQ", 0, len(data))
    data += struct.pack("<%df" % len(vals), *vals)
head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + infos
with open(sys.argv[1], "wb") as f:
    f.write(head + b"\x00" * pad(len(head)) + data)
