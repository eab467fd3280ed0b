#!/usr/bin/env python3
"""Single-thread prediction speed of a streaming command-line classifier, measured the same way
for fastText and understudy: the command reads one text per line on stdin and answers one line
per text. The model is loaded once; then, per text, one line is written and its answer read
(a round trip through a pipe, so it includes the pipe's overhead for both tools). Throughput is
texts divided by the summed round trips. (Subtracting an empty run's time from a whole-file run
does not work: loading fastText's 1.5 GB model varies by more than all its predictions take.)

usage: fasttext_latency.py TEXTS_FILE REPEAT -- COMMAND...
prints JSON: {"per_sec": median, "p50_us": median, "p99_us": median}"""
import json, statistics, subprocess, sys, time

def round_trips(cmd, lines):
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    out = p.stdout
    times = []
    for line in lines:
        t0 = time.perf_counter()
        p.stdin.write(line)
        out.readline()
        times.append(time.perf_counter() - t0)
    p.stdin.close()
    p.wait()
    total = sum(times)
    times.sort()
    return len(times) / total, times[len(times) // 2] * 1e6, times[int((len(times) - 1) * 0.99)] * 1e6

def main():
    texts, repeat = sys.argv[1], int(sys.argv[2])
    cmd = sys.argv[sys.argv.index("--") + 1:]
    with open(texts, "rb") as f:
        data = f.read()
    lines = [l + b"\n" for l in data.splitlines() if l.strip()]
    rates, p50s, p99s = [], [], []
    for _ in range(repeat):
        rate, p50, p99 = round_trips(cmd, lines)
        rates.append(rate)
        p50s.append(p50)
        p99s.append(p99)
    print(json.dumps({"per_sec": statistics.median(rates), "p50_us": statistics.median(p50s),
                      "p99_us": statistics.median(p99s)}))

if __name__ == "__main__":
    main()
