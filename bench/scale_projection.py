#!/usr/bin/env python3
"""Paper projection of data-parallel training to 8 and 64 nodes (docs/scale.md), from what
bench/bench_lm_mpi.sh measured on one 2-core machine (bench/results_lm_mpi.jsonl):

  compute  per step of one node = the median CPU seconds of one rank's forward, backward and
           AdamW (compute_cpu_s, 2 ranks x 1 thread, 4 of the 8 rows each): the wall time of a
           step on 2 dedicated cores, without the allreduce
  local    the allreduce of the gradient block between the 2 ranks of a node (shared memory) at
           the best bandwidth any run achieved (allreduce_mb / allreduce_min_s): on a loaded
           machine a large block's allreduce mostly waits for the other rank to be scheduled
  network  a ring allreduce of the same block between p nodes, not measured: the standard cost
           2 (p - 1) / p * M / bandwidth + 2 (p - 1) * latency, for the networks below

Nothing overlaps: the trainer sums the gradients after the whole backward pass, so a step is
compute + local + network. Weak scaling keeps 8 rows per node (the global batch grows with p);
strong scaling keeps a global batch of 64 rows (8 per node at p = 8, 1 per node at p = 64, with
compute assumed linear in rows: optimistic, small products run below peak).
Usage: bench/scale_projection.py [bench/results_lm_mpi.jsonl]"""
import json
import statistics
import sys

NETWORKS = [  # name, bandwidth bytes/s (achieved by a large allreduce), latency s per message
    ("10 GbE (TCP)", 1.0e9, 50e-6),
    ("100 Gb/s InfiniBand", 10e9, 2e-6),
]


def ring(p, size, bandwidth, latency):
    return 0.0 if p == 1 else 2 * (p - 1) / p * size / bandwidth + 2 * (p - 1) * latency


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results_lm_mpi.jsonl"
    rows = [json.loads(line) for line in open(path) if line.strip()]
    dp_all = [r for r in rows if r["ranks"] == 2 and r["allreduce_min_s"] > 0]
    local_bw = max(r["allreduce_mb"] * 1e6 / r["allreduce_min_s"] for r in dp_all)
    print(f"local allreduce: {local_bw / 1e9:.2f} GB/s at best (shared memory, 2 ranks)")
    for dim in sorted({r["dim"] for r in rows}):
        dp = [r for r in rows if r["dim"] == dim and r["ranks"] == 2]
        if not dp:
            continue
        compute = statistics.median(r["compute_cpu_s"] for r in dp)
        size = dp[0]["allreduce_mb"] * 1e6
        local = size / local_bw
        tokens = dp[0]["batch"] * dp[0]["context"]
        one = compute + local
        print(f"dim {dim}: {dp[0]['params']} parameters, gradient block {size / 1e6:.1f} MB; "
              f"one node (2 cores): compute {1e3 * compute:.0f} ms + local allreduce "
              f"{1e3 * local:.1f} ms a step of {tokens} tokens = {tokens / one:.0f} tokens/s")
        print(f"  {'network':22} {'nodes':>5} {'allreduce ms':>12} {'weak: tok/s':>12} "
              f"{'efficiency':>10} {'strong (64 rows): tok/s':>24} {'efficiency':>10}")
        for name, bandwidth, latency in NETWORKS:
            for p in (8, 64):
                net = ring(p, size, bandwidth, latency)
                weak_step = compute + local + net
                weak = p * tokens / weak_step
                strong_compute = compute * (64 / p) / 8
                strong_step = strong_compute + local + net
                strong = 64 * dp[0]["context"] / strong_step
                print(f"  {name:22} {p:>5} {1e3 * net:>12.1f} {weak:>12.0f} "
                      f"{compute / weak_step:>10.0%} {strong:>24.0f} "
                      f"{strong_compute / strong_step:>10.0%}")


if __name__ == "__main__":
    main()
