#!/usr/bin/env python3
"""Prints the fastText command-line flags of the settings its autotune chose: everything but lr
from `fasttext dump MODEL args`, lr from the "Best selected args" block of the autotune log (-verbose 3).
usage: fasttext_args.py AUTOTUNE_MODEL.bin AUTOTUNE_LOG"""
import re, subprocess, sys

FLAGS = ["dim", "ws", "epoch", "minCount", "neg", "wordNgrams", "loss", "bucket", "minn", "maxn",
         "lrUpdateRate", "t"]

def main():
    model, log = sys.argv[1], sys.argv[2]
    dump = subprocess.run(["fasttext", "dump", model, "args"], capture_output=True, text=True,
                          check=True).stdout
    vals = dict(line.split()[:2] for line in dump.splitlines() if len(line.split()) >= 2)
    out = [f"-{k} {vals[k]}" for k in FLAGS if k in vals]
    text = open(log, errors="replace").read().replace("\r", "\n")
    best = text.split("Best selected args", 1)
    lr = re.search(r"\blr\s*=\s*([0-9.eE+-]+)", best[1]) if len(best) == 2 else None
    if lr:
        best_lr = lr.group(1)
    else:
        sys.stderr.write("fasttext_args: no best lr in the autotune log; using fastText's 0.1\n")
        best_lr = "0.1"
    out.append(f"-lr {best_lr}")
    print(" ".join(out))

if __name__ == "__main__":
    main()
