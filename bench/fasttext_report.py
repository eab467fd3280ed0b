#!/usr/bin/env python3
"""Collects one data set's bench_fasttext.sh measurements into JSON (medians over the repeats,
ratios understudy/fastText), or with --markdown renders every RESULTS_DIR/<dataset>.json as
tables under a header naming the machine, the command and the date, and writes all of them
with the machine into RESULTS_DIR/results.json.
usage: fasttext_report.py DATASET WORKDIR OUT.json
       fasttext_report.py --markdown RESULTS_DIR COMMAND"""
import ctypes, ctypes.util, datetime, glob, json, os, statistics, subprocess, sys

def p_at_1(path):
    for line in open(path):
        if line.startswith("P@1"):
            return float(line.split()[1])
    raise SystemExit(f"fasttext_report: no P@1 in {path}")

def collect(ds, w, out):
    us_runs = [json.loads(open(f).read()) for f in sorted(glob.glob(f"{w}/us_time_*.out"))]
    times = [list(map(float, l.split())) for l in open(f"{w}/times.txt") if l.strip()]
    med = statistics.median
    def speed(tool):  # medians over the alternating runs of fasttext_latency.py
        runs = [json.load(open(f)) for f in sorted(glob.glob(f"{w}/{tool}_speed_*.json"))]
        return {k: med(r.get(k, float("nan")) for r in runs)
                for k in ("per_sec", "p50_us", "p99_us", "cpu_us_per_line")}
    us_speed, ft_speed = speed("us"), speed("ft")
    us = {
        "test_acc": med(r["test_acc"] for r in us_runs),
        "test_acc_quantized": med(r["test_acc_quantized"] for r in us_runs),
        "train_wall_s": med(r["train_wall_s"] for r in us_runs),
        "train_cpu_s": med(r["train_cpu_s"] for r in us_runs),
        "peak_rss_mb": med(t[2] for t in times) / 1024,
        "model_bytes": us_runs[-1]["model_bytes"],
        "model_bytes_quantized": us_runs[-1]["model_bytes_quantized"],
        "predict_per_sec": us_speed["per_sec"], "predict_p50_us": us_speed["p50_us"],
        "predict_p99_us": us_speed["p99_us"],
        "predict_cpu_us_per_text": us_speed["cpu_us_per_line"],
        "params": us_runs[-1]["params"],
    }
    ft = {
        "test_acc": p_at_1(f"{w}/ft_test.txt"),
        "test_acc_quantized": p_at_1(f"{w}/ft_test_q.txt"),
        "train_wall_s": med(t[3] for t in times), "train_cpu_s": med(t[4] for t in times),
        "peak_rss_mb": med(t[5] for t in times) / 1024,
        "model_bytes": os.path.getsize(f"{w}/fasttext.bin"),
        "model_bytes_quantized": os.path.getsize(f"{w}/fasttext.ftz"),
        "predict_per_sec": ft_speed["per_sec"], "predict_p50_us": ft_speed["p50_us"],
        "predict_p99_us": ft_speed["p99_us"],
        "predict_cpu_us_per_text": ft_speed["cpu_us_per_line"],
        "args": open(f"{w}/fasttext_args.txt").read().strip(),
    }
    ratio = {k: us[k] / ft[k] for k in ft if isinstance(ft[k], (int, float)) and ft[k] and k in us}
    result = {"schema": 1, "dataset": ds, "repeats": len(times), "n_test": us_runs[-1]["n_test"],
              "note": "medians over the repeats; the machine was shared, timings are noisy",
              "understudy": us, "fasttext": ft, "ratio_understudy_over_fasttext": ratio}
    json.dump(result, open(out, "w"), indent=2)

ROWS = [("test accuracy", "test_acc", "{:.2%}"), ("test accuracy, quantised", "test_acc_quantized", "{:.2%}"),
        ("training wall s", "train_wall_s", "{:.2f}"), ("training CPU s", "train_cpu_s", "{:.2f}"),
        ("peak memory MB", "peak_rss_mb", "{:.0f}"), ("model bytes", "model_bytes", "{:,}"),
        ("model bytes, quantised", "model_bytes_quantized", "{:,}"),
        ("predictions/s (1 thread)", "predict_per_sec", "{:,.0f}"),
        ("p50 latency us (pipe round trip)", "predict_p50_us", "{:.1f}"),
        ("p99 latency us (pipe round trip)", "predict_p99_us", "{:.1f}"),
        ("CLI CPU us per text", "predict_cpu_us_per_text", "{:.1f}")]

def machine():
    cpu = "unknown"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    core = "unknown"
    # the kernels the understudy binary runs (it may replace OpenBLAS's own pick: README)
    us_bin = os.environ.get("US_BIN", "build/understudy")
    try:
        out = subprocess.run([us_bin, "--version"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("OpenBLAS: "):
                core = line.split()[1]
    except OSError:
        pass
    for name in () if core != "unknown" else (
            "openblas", "openblasp", ctypes.util.find_library("openblas")):
        try:
            lib = ctypes.CDLL(name if name and name.startswith("lib") else f"lib{name}.so.0")
            lib.openblas_get_corename.restype = ctypes.c_char_p
            core = lib.openblas_get_corename().decode()
            break
        except (OSError, AttributeError, TypeError):
            continue
    load = open("/proc/loadavg").read().split()[:3]
    ft = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "fasttext"], capture_output=True,
                        text=True).stdout or "unknown"
    return {"nproc": os.cpu_count(), "cpu": cpu, "openblas_core": core,
            "loadavg_at_end": " ".join(load), "fasttext_version": ft}


def markdown(d, command):
    results = [json.load(open(p)) for p in sorted(glob.glob(f"{d}/*.json"))
               if os.path.basename(p) != "results.json"]
    mach = machine()
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    json.dump({"schema": 1, "date": date, "command": command, "machine": mach,
               "datasets": results}, open(f"{d}/results.json", "w"), indent=2)
    print(f"Measured {date} with `{command}` on {mach['nproc']} cores, {mach['cpu']}, "
          f"OpenBLAS core {mach['openblas_core']}, fastText {mach['fasttext_version']} "
          f"(load average at the end: {mach['loadavg_at_end']}; the machine was shared, so "
          f"timings are medians and still noisy).\n")
    for r in results:
        print(f"### {r['dataset']} ({r['n_test']} test texts, median of {r['repeats']} runs)\n")
        print("| measure | understudy | fastText (autotuned) | understudy/fastText |")
        print("|---|---|---|---|")
        for name, k, fmt in ROWS:
            u, f = r["understudy"].get(k, float("nan")), r["fasttext"].get(k, float("nan"))
            ratio = r["ratio_understudy_over_fasttext"].get(k)
            print(f"| {name} | {fmt.format(u)} | {fmt.format(f)} | {ratio:.3f} |" if ratio else
                  f"| {name} | {fmt.format(u)} | {fmt.format(f)} | |")
        print(f"\nfastText settings: `{r['fasttext']['args']}`\n")

if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        markdown(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "bench/bench_fasttext.sh")
    else:
        collect(sys.argv[1], sys.argv[2], sys.argv[3])
