#!/usr/bin/env python3
"""Single-thread prediction speed of a streaming command-line classifier, measured the same way
for fastText and understudy: the command reads one text per line on stdin and answers one line
per text. The model is loaded and WARMUP texts are answered untimed; then, per text, one line is
written and its answer read (a round trip through a pipe, so both tools pay the same pipe
overhead). Throughput is timed texts divided by the summed round trips. cpu_us_per_line is the
command's own CPU time (user + system, from /proc/PID/schedstat, in ns) over the timed texts
divided by their number: what each answer costs the tool itself, pipe syscalls included, and
far less sensitive than the round trips to other load on the machine.

The harness reads with os.read on the pipe's descriptor into its own buffer, so reading an
answer costs one system call whatever its length. (An unbuffered Python readline reads one byte
per system call: it charged each tool about 1 µs per byte it printed, and understudy's JSON
answer is about four times as long as fastText's "__label__x 0.93".)

usage: fasttext_latency.py [--warmup N] TEXTS_FILE REPEAT -- COMMAND...
prints JSON: {"per_sec": median, "p50_us": median, "p99_us": median, "cpu_us_per_line": median,
              "warmup": N, "timed": texts per run,
              "runs": [[per_sec, p50_us, p99_us, cpu_us_per_line], ...]}"""
import json, os, statistics, subprocess, sys, time


def round_trips(cmd, lines, warmup):
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    wfd, rfd = p.stdin.fileno(), p.stdout.fileno()
    pending = b""

    def ask(line):
        nonlocal pending
        os.write(wfd, line)
        while b"\n" not in pending:
            chunk = os.read(rfd, 65536)
            if not chunk:
                raise SystemExit(f"fasttext_latency: {cmd[0]} closed its output early")
            pending += chunk
        pending = pending.split(b"\n", 1)[1]

    def cpu_ns():  # the first field of schedstat: time spent on the CPU, all threads
        return int(open(f"/proc/{p.pid}/schedstat").read().split()[0])

    for i in range(warmup):  # loads the model, faults its pages in, warms the caches
        ask(lines[i % len(lines)])
    cpu0 = cpu_ns()
    times = []
    clock = time.perf_counter
    for line in lines:
        t0 = clock()
        ask(line)
        times.append(clock() - t0)
    cpu = (cpu_ns() - cpu0) / 1e3 / len(lines)
    p.stdin.close()
    p.wait()
    total = sum(times)
    times.sort()
    return (len(times) / total, times[len(times) // 2] * 1e6,
            times[int((len(times) - 1) * 0.99)] * 1e6, cpu)


def main():
    args = sys.argv[1:]
    warmup = 200
    if args[0] == "--warmup":
        warmup = int(args[1])
        args = args[2:]
    texts, repeat = args[0], int(args[1])
    cmd = args[args.index("--") + 1:]
    with open(texts, "rb") as f:
        data = f.read()
    lines = [l + b"\n" for l in data.splitlines() if l.strip()]
    runs = [round_trips(cmd, lines, warmup) for _ in range(repeat)]
    print(json.dumps({"per_sec": statistics.median(r[0] for r in runs),
                      "p50_us": statistics.median(r[1] for r in runs),
                      "p99_us": statistics.median(r[2] for r in runs),
                      "cpu_us_per_line": statistics.median(r[3] for r in runs),
                      "warmup": warmup, "timed": len(lines),
                      "runs": [[round(x, 2) for x in r] for r in runs]}))


if __name__ == "__main__":
    main()
