#!/usr/bin/python3
"""PyTorch CPU baseline for bench_lm train: the same architecture (tied embeddings, RMSNorm,
rotary, causal multi-head attention, SwiGLU of width 8/3 dim rounded up to 32), the same batch
(token i = (i * 7919 + 13) mod V, one document per row, loss on every position), the same number
of steps, 2 threads. Prints one JSON line with the median step time and tokens/s.

usage: /usr/bin/python3 bench/bench_lm_torch.py [--dim 256] [--layers 4] [--heads 4]
       [--context 128] [--batch 8] [--vocab 1024] [--steps 10] [--threads 2]
(Debian's python3-torch; the pyenv python3 first on PATH has no torch.)
Debian's torch does its matrix products in the same OpenBLAS as understudy: run both with the
same OPENBLAS_CORETYPE (bench/bench_lm.sh does), since OpenBLAS 0.3.21 alone may pick SSE3
kernels on a CPU it does not know. The kernels used are printed as "blas_core".
"""
import ctypes
import argparse
import json
import math
import statistics
import time

import torch


class Block(torch.nn.Module):
    def __init__(self, C, NH, F):
        super().__init__()
        self.NH, self.F = NH, F
        self.ln1 = torch.nn.Parameter(torch.ones(C))
        self.ln2 = torch.nn.Parameter(torch.ones(C))
        self.wqkv = torch.nn.Linear(C, 3 * C, bias=False)
        self.wo = torch.nn.Linear(C, C, bias=False)
        self.w13 = torch.nn.Linear(C, 2 * F, bias=False)
        self.w2 = torch.nn.Linear(F, C, bias=False)


def rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w


def rope(x, cos, sin):
    x0, x1 = x[..., 0::2], x[..., 1::2]
    return torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), -1).flatten(-2)


class LM(torch.nn.Module):
    def __init__(self, L, C, NH, T, V):
        super().__init__()
        F = ((8 * C // 3) + 31) // 32 * 32
        self.C, self.NH = C, NH
        self.wte = torch.nn.Parameter(torch.randn(V, C) * 0.02)
        self.blocks = torch.nn.ModuleList(Block(C, NH, F) for _ in range(L))
        self.lnf = torch.nn.Parameter(torch.ones(C))
        hd = C // NH
        freq = torch.tensor([10000.0 ** (-2.0 * i / hd) for i in range(hd // 2)])
        ang = torch.arange(T)[:, None] * freq[None]
        self.register_buffer("cos", torch.cos(ang))
        self.register_buffer("sin", torch.sin(ang))
        self.register_buffer("future", torch.triu(torch.ones(T, T, dtype=torch.bool), 1))

    def forward(self, tok):
        B, T = tok.shape
        C, NH = self.C, self.NH
        hd = C // NH
        x = self.wte[tok]
        cos, sin = self.cos[:T], self.sin[:T]
        for b in self.blocks:
            h = rmsnorm(x, b.ln1)
            q, k, v = b.wqkv(h).split(C, -1)
            q = rope(q.view(B, T, NH, hd).transpose(1, 2), cos, sin)
            k = rope(k.view(B, T, NH, hd).transpose(1, 2), cos, sin)
            v = v.view(B, T, NH, hd).transpose(1, 2)
            s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
            y = torch.softmax(s.masked_fill(self.future[:T, :T], float("-inf")), -1) @ v
            x = x + b.wo(y.transpose(1, 2).reshape(B, T, C))
            g, u = b.w13(rmsnorm(x, b.ln2)).split(b.F, -1)
            x = x + b.w2(torch.nn.functional.silu(g) * u)
        return rmsnorm(x, self.lnf) @ self.wte.T


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("dim", 256), ("layers", 4), ("heads", 4), ("context", 128), ("batch", 8),
                          ("vocab", 1024), ("steps", 10), ("threads", 2)]:
        ap.add_argument("--" + name, type=int, default=default)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    B, T, V = a.batch, a.context, a.vocab
    idx = torch.arange(B * T)
    tok = ((idx * 7919 + 13) % V).view(B, T)
    tgt = (((idx + 1) * 7919 + 13) % V).view(B, T)
    model = LM(a.layers, a.dim, a.heads, T, V)
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)  # bench_lm also applies plain SGD
    times = []
    for step in range(a.steps + 1):  # step 0 warms up
        t0 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(tok).view(-1, V), tgt.view(-1))
        opt.zero_grad(set_to_none=False)
        loss.backward()
        opt.step()
        if step > 0:
            times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        core = lib.openblas_get_corename().decode()
    except OSError:
        core = "unknown"
    n_params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"bench": "lm_train_torch", "torch": torch.__version__,
                      "blas_core": core, "layers": a.layers,
                      "dim": a.dim, "heads": a.heads, "context": T, "batch": B, "vocab": V,
                      "params": n_params, "threads": a.threads, "steps": a.steps,
                      "step_sec_median": round(t, 4), "tokens_per_sec": round(B * T / t),
                      "last_loss": round(loss.item(), 4)}))


if __name__ == "__main__":
    main()
