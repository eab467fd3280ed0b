#!/usr/bin/python3
"""Independent PyTorch reference for the language-model student (tests/unit/test_lm.c, golden test).

Builds the tiny model of the golden test (2 layers, dim 8, 2 heads, context 6, vocab 260,
SwiGLU width 16) with deterministic weights, runs the fixed packed batch, and writes
golden_tiny.bin: float32 logits (12, 260), float64 masked mean loss, float32 gradients of every
parameter in the C block order (wte, wqkv, wo, w13, w2, ln1, ln2, lnf). Computed in float64.
Run once with Debian's python3-torch:  /usr/bin/python3 tests/reference/reference.py
"""
import math
import os
import struct

import torch

L, C, NH, T, V, F = 2, 8, 2, 6, 260, 16
HD = C // NH
EPS = 1e-5
BOS, EOS, SEP = 256, 257, 258
B = 2

# the packed batch: row 0 holds two documents, row 1 one
tokens = [BOS, ord('a'), SEP, ord('b'), BOS, ord('c'), BOS, ord('x'), ord('y'), SEP, ord('z'), ord('w')]
targets = [ord('a'), SEP, ord('b'), EOS, ord('c'), SEP, ord('x'), ord('y'), SEP, ord('z'), ord('w'), EOS]
pos = [0, 1, 2, 3, 0, 1, 0, 1, 2, 3, 4, 5]
doc = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 2]
mask = [0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1]

shapes = [("wte", (V, C)), ("wqkv", (L, 3 * C, C)), ("wo", (L, C, C)), ("w13", (L, 2 * F, C)),
          ("w2", (L, C, F)), ("ln1", (L, C)), ("ln2", (L, C)), ("lnf", (C,))]


def f32(x):
    return struct.unpack("f", struct.pack("f", x))[0]


def make_params():
    params, index = {}, 0
    for name, shape in shapes:
        n = math.prod(shape)
        if name.startswith("ln"):
            vals = [f32(1.0 + 0.05 * math.cos(index + i)) for i in range(n)]
        else:
            vals = [f32(0.1 * math.sin(0.7 * (index + i) + 0.3)) for i in range(n)]
        params[name] = torch.tensor(vals, dtype=torch.float64).reshape(shape).requires_grad_(True)
        index += n
    return params


def rmsnorm(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def rope(x, p):
    # x (N, NH, HD); rotate pairs (2i, 2i+1) by p * 10000^(-2i/HD)
    freq = torch.tensor([10000.0 ** (-2.0 * k / HD) for k in range(HD // 2)], dtype=torch.float64)
    ang = p[:, None].double() * freq[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def forward(P):
    tok = torch.tensor(tokens)
    p = torch.tensor(pos)
    d = torch.tensor(doc).reshape(B, T)
    allowed = (d[:, :, None] == d[:, None, :]) & torch.tril(torch.ones(T, T, dtype=torch.bool))[None]
    x = P["wte"][tok]  # (N, C)
    for l in range(L):
        h = rmsnorm(x, P["ln1"][l])
        qkv = h @ P["wqkv"][l].T
        q, k, v = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        q = rope(q.reshape(-1, NH, HD), p).reshape(B, T, NH, HD).transpose(1, 2)
        k = rope(k.reshape(-1, NH, HD), p).reshape(B, T, NH, HD).transpose(1, 2)
        v = v.reshape(B, T, NH, HD).transpose(1, 2)
        s = (q @ k.transpose(-1, -2)) / math.sqrt(HD)
        s = s.masked_fill(~allowed[:, None], float("-inf"))
        y = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B * T, C)
        x = x + y @ P["wo"][l].T
        h = rmsnorm(x, P["ln2"][l])
        h13 = h @ P["w13"][l].T
        g, u = h13[:, :F], h13[:, F:]
        x = x + (torch.nn.functional.silu(g) * u) @ P["w2"][l].T
    x = rmsnorm(x, P["lnf"])
    return x @ P["wte"].T


def main():
    P = make_params()
    logits = forward(P)
    m = torch.tensor(mask, dtype=torch.float64)
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(targets), reduction="none")
    loss = (nll * m).sum() / m.sum()
    loss.backward()
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_tiny.bin")
    with open(out, "wb") as f:
        f.write(logits.detach().float().numpy().astype("<f4").tobytes())
        f.write(struct.pack("<d", loss.item()))
        for name, _ in shapes:
            f.write(P[name].grad.float().numpy().astype("<f4").tobytes())
    print(f"loss {loss.item():.9f}; wrote {out}")


if __name__ == "__main__":
    main()
