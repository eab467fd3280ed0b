#!/usr/bin/env python3
"""Collects one data set's bench_fasttext.sh measurements into JSON (medians over the repeats,
ratios understudy/fastText), or with --markdown renders every results/*.json as a table.
usage: fasttext_report.py DATASET WORKDIR OUT.json | fasttext_report.py --markdown RESULTS_DIR"""
import glob, json, os, statistics, sys

def p_at_1(path):
    for line in open(path):
        if line.startswith("P@1"):
            return float(line.split()[1])
    raise SystemExit(f"fasttext_report: no P@1 in {path}")

def collect(ds, w, out):
    us_runs = [json.loads(open(f).read()) for f in sorted(glob.glob(f"{w}/us_time_*.out"))]
    times = [list(map(float, l.split())) for l in open(f"{w}/times.txt") if l.strip()]
    med = statistics.median
    us_speed = json.load(open(f"{w}/us_speed.json"))
    ft_speed = json.load(open(f"{w}/ft_speed.json"))
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
        "args": open(f"{w}/fasttext_args.txt").read().strip(),
    }
    ratio = {k: us[k] / ft[k] for k in ft if isinstance(ft[k], (int, float)) and ft[k]}
    result = {"schema": 1, "dataset": ds, "repeats": len(times), "n_test": us_runs[-1]["n_test"],
              "note": "medians over the repeats; the machine was shared, timings are noisy",
              "understudy": us, "fasttext": ft, "ratio_understudy_over_fasttext": ratio}
    json.dump(result, open(out, "w"), indent=2)

ROWS = [("test accuracy", "test_acc", "{:.2%}"), ("test accuracy, quantised", "test_acc_quantized", "{:.2%}"),
        ("training wall s", "train_wall_s", "{:.2f}"), ("training CPU s", "train_cpu_s", "{:.2f}"),
        ("peak memory MB", "peak_rss_mb", "{:.0f}"), ("model bytes", "model_bytes", "{:,}"),
        ("model bytes, quantised", "model_bytes_quantized", "{:,}"),
        ("predictions/s (1 thread)", "predict_per_sec", "{:,.0f}"),
        ("p50 latency us", "predict_p50_us", "{:.1f}"), ("p99 latency us", "predict_p99_us", "{:.1f}")]

def markdown(d):
    for path in sorted(glob.glob(f"{d}/*.json")):
        r = json.load(open(path))
        print(f"### {r['dataset']} ({r['n_test']} test texts, median of {r['repeats']} runs)\n")
        print("| measure | understudy | fastText (autotuned) | understudy/fastText |")
        print("|---|---|---|---|")
        for name, k, fmt in ROWS:
            u, f = r["understudy"][k], r["fasttext"][k]
            ratio = r["ratio_understudy_over_fasttext"].get(k)
            print(f"| {name} | {fmt.format(u)} | {fmt.format(f)} | {ratio:.3f} |" if ratio else
                  f"| {name} | {fmt.format(u)} | {fmt.format(f)} | |")
        print(f"\nfastText settings: `{r['fasttext']['args']}`\n")

if __name__ == "__main__":
    if sys.argv[1] == "--markdown":
        markdown(sys.argv[2])
    else:
        collect(sys.argv[1], sys.argv[2], sys.argv[3])
