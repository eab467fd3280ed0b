#!/usr/bin/env python3
"""The broader benchmark of issue 13, driven by bench/bench_suite.sh (see bench/README.md).

For each data set and fold it writes one split (train, a validation slice carved from train,
test) once, in both tools' formats, then runs side by side:
  understudy defaults   build/bench/bench_suite (early stopping on the validation slice)
  understudy autotune   the same driver with --autotune BUDGET (skipped while the build has none)
  fastText fixed        epoch 50, lr 0.5, wordNgrams 2, minn 2, maxn 5, dim 100 (issue 13's setting)
  fastText autotune     -autotune-validation on the same slice, -autotune-duration BUDGET
All train with 2 threads on the train part only; the validation slice only selects (early
stopping, calibration, the search); the test part is scored once per model. Each run's wall
time and CPU time (user + system of the child, from getrusage) include the search.
Results merge into the JSON file by data set, so a run over some sets updates only those."""
import argparse, csv, json, os, re, resource, shutil, signal, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FT_FIXED = ["-epoch", "50", "-lr", "0.5", "-wordNgrams", "2", "-minn", "2", "-maxn", "5",
            "-dim", "100"]
KIM = {"subj": "subj.all", "cr": "custrev.all", "mpqa": "mpqa.all"}
# kim2014/README.md, 10-fold CV accuracy: SUBJ / CR / MPQA
PUBLISHED = {
    "subj": {"NBSVM-bigram": 93.2, "MNB-bigram": 93.6, "CNN-rand": 89.6, "CNN-static": 93.0},
    "cr": {"NBSVM-bigram": 81.8, "MNB-bigram": 80.0, "CNN-rand": 79.8, "CNN-static": 84.7},
    "mpqa": {"NBSVM-bigram": 86.3, "MNB-bigram": 86.3, "CNN-rand": 83.4, "CNN-static": 89.6},
}
ALL_SETS = ["banking77", "snips", "subj", "cr", "mpqa"]
TOOLS = ["us_default", "us_autotune", "ft_fixed", "ft_autotune"]
AUTOTUNE_SEED_KEYS = ("seed_acc_autotune", "seed_chosen_autotune")  # kept when not rerun
TOOL_NAMES = {"us_default": "understudy defaults", "us_autotune": "understudy autotune",
              "ft_fixed": "fastText fixed", "ft_autotune": "fastText autotune"}
MIN_TIMED_LINES = 20000  # prediction timing: the test texts repeated up to this many lines


def log(msg):
    print(f"bench_suite: {msg}", file=sys.stderr, flush=True)


def us_hash64(text, seed=0):
    """core/hash.c's us_hash64 (FNV-1a 64 over the seed's 8 bytes, then the text's bytes)."""
    h, prime, mask = 0xcbf29ce484222325, 0x100000001b3, (1 << 64) - 1
    for b in list(seed.to_bytes(8, "little")) + list(text.encode("utf-8")):
        h = ((h ^ b) * prime) & mask
    return h


def in_valid(text):
    """The validation slice rule of bench_classifier for banking77: us_hash64(text) % 10 == 0."""
    return us_hash64(text) % 10 == 0


# ---- data ----------------------------------------------------------------------------------

def clean(text):
    return " ".join(text.replace("\t", " ").replace("\r", " ").replace("\n", " ").split())


def load_set(data, name):
    """Returns (splits, n_folds): splits(fold) -> (train, valid, test) lists of (label, text)."""
    if name == "banking77":
        def rows(path):
            with open(path, newline="", encoding="utf-8") as f:
                return [(r["category"].strip(), clean(r["text"])) for r in csv.DictReader(f)]
        train = rows(f"{data}/banking77/train.csv")
        test = rows(f"{data}/banking77/test.csv")
        split = ([r for r in train if not in_valid(r[1])], [r for r in train if in_valid(r[1])],
                 test)
        return (lambda fold: split), 1
    if name == "snips":
        def part(p):
            with open(f"{data}/snips/{p}/seq.in", encoding="utf-8") as t, \
                 open(f"{data}/snips/{p}/label", encoding="utf-8") as lab:
                return [(l.strip(), clean(x)) for x, l in zip(t, lab)]
        split = (part("train"), part("valid"), part("test"))
        return (lambda fold: split), 1
    with open(f"{data}/kim2014/{KIM[name]}", encoding="utf-8", errors="replace") as f:
        lines = [l.rstrip("\n").split(" ", 1) for l in f if l.strip()]
    lines = [(l[0], clean(l[1]) if len(l) > 1 else "") for l in lines]

    def fold_split(fold):  # kim2014/README.md: fold = line_index % 10
        rest = [r for i, r in enumerate(lines) if i % 10 != fold]
        return ([r for r in rest if not in_valid(r[1])], [r for r in rest if in_valid(r[1])],
                [r for i, r in enumerate(lines) if i % 10 == fold])
    return fold_split, 10


def set_folder(name):
    return {"banking77": "banking77", "snips": "snips"}.get(name, "kim2014")


FT_PUNCT = set(".!?,'/()\"")


def ft_text(text):
    """bench_classifier's fastText export: punctuation split off, ASCII lower case."""
    return "".join(f" {c} " if c in FT_PUNCT else c.lower() if "A" <= c <= "Z" else c
                   for c in text)


def write_split(work, split):
    os.makedirs(work, exist_ok=True)
    for part, rows in zip(("train", "valid", "test"), split):
        with open(f"{work}/us_{part}.tsv", "w", encoding="utf-8") as f:
            f.writelines(f"{lab}\t{text}\n" for lab, text in rows)
        with open(f"{work}/ft_{part}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"__label__{lab.replace(' ', '_')} {ft_text(text)}\n"
                         for lab, text in rows)
    test = split[2]
    with open(f"{work}/ft_test_text.txt", "w", encoding="utf-8") as f:
        f.writelines(ft_text(t) + "\n" for _, t in test)
    reps = max(1, -(-MIN_TIMED_LINES // max(1, len(test))))
    with open(f"{work}/us_timed.txt", "w", encoding="utf-8") as f:
        f.writelines(t + "\n" for _ in range(reps) for _, t in test)
    with open(f"{work}/ft_timed.txt", "w", encoding="utf-8") as f:
        f.writelines(ft_text(t) + "\n" for _ in range(reps) for _, t in test)
    return len(test) * reps


# ---- running -------------------------------------------------------------------------------

def run(cmd, stdin=None, stdout=subprocess.PIPE, log_path=None, log_stdout=False, watch=None):
    """Runs cmd to completion; returns (returncode, stdout, wall s, CPU s of the child).
    stderr (and stdout too with log_stdout) goes to log_path. watch(proc, seconds since the
    start) is called every second while it runs."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    err = open(log_path, "w") if log_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdin=stdin, stdout=err if log_stdout else stdout, stderr=err,
                             text=True)
        out = None
        while True:
            try:
                out, _ = p.communicate(timeout=1)
                break
            except subprocess.TimeoutExpired:
                if watch:
                    watch(p, time.monotonic() - t0)
    finally:
        if log_path:
            err.close()
    wall = time.monotonic() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return p.returncode, out, wall, cpu


class AutotuneTimerWatch:
    """fastText 0.9.2's autotune starts its timer thread before it sets continueTraining_, so
    when the thread runs first it ends at once and the search never stops (no "Progress:" line
    in the log: seen here under load, 1 run in 3 on a toy file). When the budget has passed
    (+2 s) and the log shows no progress line, this sends SIGINT, which fastText's own handler
    turns into the end of the search (then it trains the final model, as after a timeout)."""

    def __init__(self, log_path, budget):
        self.log_path, self.budget, self.fired = log_path, budget, False

    def __call__(self, proc, elapsed):
        if self.fired or elapsed < self.budget + 2:
            return
        with open(self.log_path, errors="replace") as f:
            if "Progress:" in f.read():
                self.fired = None  # the timer works; nothing to do
                return
        proc.send_signal(signal.SIGINT)
        self.fired = True


def cli_cpu_us(cmd, timed_file, n_lines):
    """CPU µs per text of a streaming CLI: (run on the file - run on empty input) / lines."""
    with open(timed_file) as f:
        _, _, _, full = run(cmd, stdin=f, stdout=subprocess.DEVNULL)
    with open(os.devnull) as f:
        _, _, _, empty = run(cmd, stdin=f, stdout=subprocess.DEVNULL)
    return max(0.0, full - empty) * 1e6 / n_lines


def fasttext_accuracy(model, work, test):
    with open(f"{work}/ft_test_text.txt") as f:
        rc, out, _, _ = run(["fasttext", "predict", model, "-"], stdin=f)
    pred = out.splitlines() if rc == 0 else []
    if len(pred) != len(test):
        raise RuntimeError(f"fasttext predict {model}: {len(pred)} answers for {len(test)} texts")
    gold = [f"__label__{lab.replace(' ', '_')}" for lab, _ in test]
    return sum(p.split(" ")[0] == g for p, g in zip(pred, gold)) / len(test)


def fasttext_chosen(model, log_path):
    out = subprocess.run([sys.executable, f"{ROOT}/bench/fasttext_args.py", model, log_path],
                         capture_output=True, text=True)
    return out.stdout.strip() if out.returncode == 0 else "?"


def run_understudy(a, work, extra, model=None):
    cmd = [a.driver, "--train", f"{work}/us_train.tsv", "--valid", f"{work}/us_valid.tsv",
           "--test", f"{work}/us_test.tsv"] + extra + (["--model", model] if model else [])
    rc, out, wall, cpu = run(["nice", "-n", "5"] + cmd, log_path=f"{work}/us.log")
    try:
        res = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"{a.driver} failed (exit {rc}); log: {work}/us.log")
    # the training call's own wall and CPU time (inside the driver: tokenising, search and
    # training; not loading the files, scoring or saving), the whole process's beside it
    res.update(process_wall_s=round(wall, 3), process_cpu_s=round(cpu, 3),
               load=os.getloadavg()[0])
    return res


def run_fasttext(work, args, name, autotune_log=None, watch=None):
    model = f"{work}/{name}"
    cmd = ["nice", "-n", "5", "fasttext", "supervised", "-input", f"{work}/ft_train.txt",
           "-output", model, "-thread", "2"] + args
    # fastText prints its autotune trials on stdout
    rc, _, wall, cpu = run(cmd, log_path=autotune_log or f"{work}/{name}.log", log_stdout=True,
                           watch=watch)
    if rc != 0:
        raise RuntimeError(f"fasttext supervised failed (exit {rc}); log: {work}/{name}.log")
    return model + ".bin", wall, cpu


def ft_autotune_record(res, m, lp, wall, cpu, work, test, timing, n_timed):
    with open(lp, errors="replace") as f:
        trials = len(re.findall(r"^Trial = \d+", f.read().replace("\r", "\n"), re.M))
    res["ft_autotune"] = {"acc": fasttext_accuracy(m, work, test), "wall_s": round(wall, 3),
                          "cpu_s": round(cpu, 3), "chosen": fasttext_chosen(m, lp),
                          "trials": trials}
    if timing:
        res["ft_autotune"]["predict_cli_us"] = cli_cpu_us(
            ["fasttext", "predict-prob", m, "-"], f"{work}/ft_timed.txt", n_timed)


def bench_fold(a, name, fold, split, timing, us_autotune_ok):
    work = f"{a.work}/{name}/fold{fold}"
    n_timed = write_split(work, split)
    test = split[2]
    res = {"fold": fold, "n_train": len(split[0]), "n_valid": len(split[1]), "n_test": len(test),
           "load_start": os.getloadavg()[0]}

    if "us_default" in a.tools:
        bench_us_default(a, name, fold, work, timing, n_timed, res)
    if "ft_fixed" in a.tools and not a.no_fasttext:
        bench_ft_fixed(a, name, fold, work, timing, n_timed, test, res)
    if "us_autotune" in a.tools and us_autotune_ok[0]:
        bench_us_autotune(a, name, fold, work, timing, n_timed, res, us_autotune_ok)
    if "ft_autotune" in a.tools and not a.no_fasttext and a.budget > 0:
        bench_ft_autotune(a, name, fold, work, timing, n_timed, test, res)
    for t in TOOLS:  # when and under what load each ran, for figures merged from pieces
        if t in res:
            res[t].update(budget_s=a.budget if "autotune" in t else None,
                          load_1min=os.getloadavg()[0],
                          utc=time.strftime("%Y-%m-%d %H:%M", time.gmtime()))
    if name in a.seed_sets and a.seeds > 1 and "us_default" in res:  # seed 1: the run above
        res["seed_acc"] = [res["us_default"]["acc"]]
        for seed in range(2, a.seeds + 1):
            res["seed_acc"].append(run_understudy(a, work, ["--seed", str(seed)])["test_acc"])
        log(f"{name} fold {fold}: seeds 1..{a.seeds}: "
            + " ".join(f"{x:.4f}" for x in res["seed_acc"]))
    # the delivered model over seeds: on the first fold only (each seed is a whole search)
    if name in a.seed_sets and a.seeds > 1 and "us_autotune" in res and fold == 0:
        res["seed_acc_autotune"] = [res["us_autotune"]["acc"]]
        res["seed_chosen_autotune"] = [res["us_autotune"]["chosen"]]
        for seed in range(2, a.seeds + 1):
            r = run_understudy(a, work, ["--autotune", str(a.budget), "--seed", str(seed)])
            res["seed_acc_autotune"].append(r["test_acc"])
            res["seed_chosen_autotune"].append(r.get("chosen", ""))
        log(f"{name} fold {fold}: autotune, seeds 1..{a.seeds}: "
            + " ".join(f"{x:.4f}" for x in res["seed_acc_autotune"]))
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return res


def bench_us_default(a, name, fold, work, timing, n_timed, res):
    r = run_understudy(a, work, [], f"{work}/us_default.bin" if timing else None)
    res["us_default"] = {"acc": r["test_acc"], "valid_acc": r["valid_acc"],
                         "wall_s": r["train_wall_s"], "cpu_s": r["train_cpu_s"],
                         "process_wall_s": r["process_wall_s"],
                         "process_cpu_s": r["process_cpu_s"],
                         "predict_inproc_us": r["predict_cpu_us"]}
    if timing and a.us_bin:
        res["us_default"]["predict_cli_us"] = cli_cpu_us(
            [a.us_bin, "predict", f"{work}/us_default.bin"], f"{work}/us_timed.txt", n_timed)
    log(f"{name} fold {fold}: understudy defaults {r['test_acc']:.4f} "
        f"({r['train_wall_s']:.1f} s)")


def bench_ft_fixed(a, name, fold, work, timing, n_timed, test, res):
    m, wall, cpu = run_fasttext(work, FT_FIXED + ["-verbose", "0"], "ft_fixed")
    res["ft_fixed"] = {"acc": fasttext_accuracy(m, work, test), "wall_s": round(wall, 3),
                       "cpu_s": round(cpu, 3)}
    if timing:
        res["ft_fixed"]["predict_cli_us"] = cli_cpu_us(
            ["fasttext", "predict-prob", m, "-"], f"{work}/ft_timed.txt", n_timed)
    log(f"{name} fold {fold}: fastText fixed {res['ft_fixed']['acc']:.4f} ({wall:.1f} s)")
    os.remove(m)  # 800 MB with 2M buckets x dim 100


def bench_us_autotune(a, name, fold, work, timing, n_timed, res, us_autotune_ok):
    r = run_understudy(a, work, ["--autotune", str(a.budget)],
                       f"{work}/us_autotune.bin" if timing else None)
    if "error" in r:
        log(f"understudy autotune skipped: {r['error']}")
        us_autotune_ok[0] = False
        res["us_autotune_skipped"] = r["error"]
    else:
        res["us_autotune"] = {"acc": r["test_acc"], "valid_acc": r["valid_acc"],
                              "wall_s": r["train_wall_s"], "cpu_s": r["train_cpu_s"],
                              "process_wall_s": r["process_wall_s"],
                              "process_cpu_s": r["process_cpu_s"],
                              "predict_inproc_us": r["predict_cpu_us"],
                              "chosen": r.get("chosen", "")}
        if timing and a.us_bin:
            res["us_autotune"]["predict_cli_us"] = cli_cpu_us(
                [a.us_bin, "predict", f"{work}/us_autotune.bin"], f"{work}/us_timed.txt",
                n_timed)
        log(f"{name} fold {fold}: understudy autotune {r['test_acc']:.4f} "
            f"({r['train_wall_s']:.1f} s)")


def bench_ft_autotune(a, name, fold, work, timing, n_timed, test, res):
    lp = f"{work}/ft_autotune.log"
    watch = AutotuneTimerWatch(lp, int(a.budget))
    try:
        m, wall, cpu = run_fasttext(work, ["-autotune-validation", f"{work}/ft_valid.txt",
                                           "-autotune-duration", str(int(a.budget)),
                                           "-verbose", "3"], "ft_autotune", autotune_log=lp,
                                    watch=watch)
    except RuntimeError as e:  # e.g. "Didn't have enough time to train once"
        with open(lp, errors="replace") as f:
            tail = f.read().strip().splitlines()[-1:] or [""]
        res["ft_autotune_failed"] = f"{e}: {tail[0]}"
        log(f"{name} fold {fold}: fastText autotune failed: {res['ft_autotune_failed']}")
        m = None
    if m:
        ft_autotune_record(res, m, lp, wall, cpu, work, test, timing, n_timed)
        res["ft_autotune"]["timer_race_sigint"] = bool(watch.fired)
        log(f"{name} fold {fold}: fastText autotune {res['ft_autotune']['acc']:.4f} "
            f"({wall:.1f} s, {res['ft_autotune']['trials']} trials)")
        os.remove(m)


# ---- summary -------------------------------------------------------------------------------

def spread(xs):
    return {"mean": statistics.fmean(xs), "min": min(xs), "max": max(xs),
            "sd": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs)}


def summarise(folds):
    s = {}
    for t in TOOLS:
        got = [f[t] for f in folds if t in f]
        if not got:
            continue
        s[t] = {"acc": spread([g["acc"] for g in got]),
                "wall_s_per_fold": statistics.fmean(g["wall_s"] for g in got),
                "cpu_s_per_fold": statistics.fmean(g["cpu_s"] for g in got),
                "wall_s_total": sum(g["wall_s"] for g in got),
                "cpu_s_total": sum(g["cpu_s"] for g in got)}
        for k in ("predict_cli_us", "predict_inproc_us", "chosen", "trials"):
            vals = [g[k] for g in got if k in g]
            if vals:
                s[t][k] = vals[0] if k in ("predict_cli_us", "chosen") else \
                    statistics.fmean(vals)
    for key, out in (("seed_acc", "us_default_seeds"), ("seed_acc_autotune", "us_autotune_seeds")):
        seeds = [f[key] for f in folds if key in f]
        if seeds:  # accuracy of each seed (mean over the folds), then the spread of those
            per_seed = [statistics.fmean(fs[i] for fs in seeds) for i in range(len(seeds[0]))]
            s[out] = {"per_seed": per_seed, **spread(per_seed), "folds": len(seeds),
                      "max_fold_range": max(max(x) - min(x) for x in seeds)}
    return s


def pct(x):
    return f"{100 * x:.2f}"


def markdown(results):
    sets = [s for s in ALL_SETS if s in results["sets"]]
    out = []
    meta = results.get("machine", {})
    out.append(f"Machine: {meta.get('cpus', '?')} cores, {meta.get('cpu', '?')}, "
               f"fastText {meta.get('fasttext', '?')}. Per set: the command, UTC time and the "
               "load average (1 min) at its start and end are in `bench/results_suite.json`.\n")
    out.append("Test accuracy, %. kim2014 sets: mean over the folds run, [lowest - highest "
               "fold]; banking77 and SNIPS: their test split.\n")
    out.append("| set | folds | understudy defaults | understudy autotune | fastText fixed | "
               "fastText autotune | published (NBSVM-bi / MNB-bi / CNN-rand / CNN-static) |")
    out.append("|---|---|---|---|---|---|---|")
    for name in sets:
        r = results["sets"][name]
        cells = []
        for t in TOOLS:
            acc = r["summary"].get(t, {}).get("acc")
            if not acc:
                cells.append("skipped" if t != "us_autotune" else "not in this build")
            elif acc["n"] > 1:
                cells.append(f"{pct(acc['mean'])} [{pct(acc['min'])} - {pct(acc['max'])}]")
            else:
                cells.append(pct(acc["mean"]))
            if acc and acc["n"] != r["folds_run"]:
                cells[-1] += f" ({acc['n']} folds)"
        pub = PUBLISHED.get(name)
        pub_s = " / ".join(f"{v}" for v in pub.values()) if pub else "-"
        out.append(f"| {name} | {r['folds_run']} | " + " | ".join(cells) + f" | {pub_s} |")
    out.append("\nTime per training, search included (wall s / CPU s, mean per fold; 2 threads):\n")
    out.append("| set | understudy defaults | understudy autotune | fastText fixed | "
               "fastText autotune | autotune budget s | load average (start - end) |")
    out.append("|---|---|---|---|---|---|---|")
    for name in sets:
        r = results["sets"][name]
        cells = []
        for t in TOOLS:
            s = r["summary"].get(t)
            cells.append(f"{s['wall_s_per_fold']:.1f} / {s['cpu_s_per_fold']:.1f}" if s else "-")
        out.append(f"| {name} | " + " | ".join(cells) + f" | {r['budget_s']:g} | "
                   f"{r['load_start']:.1f} - {r['load_end']:.1f} |")
    out.append("\nPrediction, CPU µs per text through each tool's streaming CLI on one thread "
               "(`understudy predict`, `fasttext predict-prob`; (run on the test texts repeated "
               f"to {MIN_TIMED_LINES:,}+ lines - run on empty input) / lines; first fold only):\n")
    out.append("| set | understudy defaults | understudy autotune | fastText fixed | "
               "fastText autotune |")
    out.append("|---|---|---|---|---|")
    for name in sets:
        r = results["sets"][name]
        cells = []
        for t in TOOLS:
            v = r["summary"].get(t, {}).get("predict_cli_us")
            cells.append(f"{v:.1f}" if v is not None else "-")
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    for key, what in (("us_default_seeds", "understudy defaults"),
                      ("us_autotune_seeds", "understudy autotune (the search and the final "
                       "model, as delivered)")):
        seeded = [n for n in sets if key in results["sets"][n]["summary"]]
        if not seeded:
            continue
        out.append(f"\n{what} over seeds (2 Hogwild threads; each seed's accuracy is "
                   "its mean over the folds run):\n")
        out.append("| set | seeds | folds | mean | lowest | highest | sd | "
                   "widest range on one fold |")
        out.append("|---|---|---|---|---|---|---|---|")
        for n in seeded:
            s = results["sets"][n]["summary"][key]
            out.append(f"| {n} | {s['n']} | {s.get('folds', '?')} | {pct(s['mean'])} | "
                       f"{pct(s['min'])} | {pct(s['max'])} | {pct(s['sd'])} | "
                       f"{pct(s['max_fold_range'])} |")
    out.append("\nSettings the searches chose (first fold):\n")
    for name in sets:
        sm = results["sets"][name]["summary"]
        ft = sm.get("ft_autotune")
        if ft:
            out.append(f"- {name}, fastText ({ft.get('trials', 0):.0f} trials on average): "
                       f"`{ft.get('chosen', '?')}`")
        us = sm.get("us_autotune")
        if us:
            out.append(f"- {name}, understudy: `{us.get('chosen', '?')}`")
    return "\n".join(out) + "\n"


def merge_results(results, path):
    """Copies every tool's per-fold figures of the results file at path into results (same
    set, same fold), then summarises again."""
    with open(path) as f:
        other = json.load(f)
    for name, entry in other["sets"].items():
        mine = results["sets"].get(name)
        if not mine:
            results["sets"][name] = entry
            continue
        for fold in entry["folds"]:
            target = next((f for f in mine["folds"] if f["fold"] == fold["fold"]), None)
            if target is None:
                mine["folds"].append(fold)
                continue
            for t in TOOLS:
                if t in fold:
                    target[t] = fold[t]
        mine["folds_run"] = len(mine["folds"])
        mine["runs"] = mine.get("runs", []) + entry.get("runs", [])
        mine["summary"] = summarise(mine["folds"])


def machine():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "fasttext"], capture_output=True,
                         text=True).stdout or "?"
    return {"cpus": os.cpu_count(), "cpu": cpu, "fasttext": ver}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default=",".join(ALL_SETS))
    p.add_argument("--folds", type=int, default=10)
    p.add_argument("--budget", type=float, default=30)
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--seed-sets", default="cr,snips")
    p.add_argument("--tools", default=",".join(TOOLS))
    p.add_argument("--no-understudy-autotune", action="store_true")
    p.add_argument("--no-fasttext", action="store_true")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    p.add_argument("--driver", required=True)
    p.add_argument("--us-bin", default="")
    p.add_argument("--work", default=os.path.join(ROOT, "bench", "results", "suite"))
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results_suite.json"))
    p.add_argument("--markdown-only", action="store_true")
    p.add_argument("--merge", default="")
    p.add_argument("--fresh", action="store_true")
    p.add_argument("--keep", action="store_true")
    p.add_argument("--command", default="bench/bench_suite.sh")
    a = p.parse_args()
    a.seed_sets = set(a.seed_sets.split(",")) if a.seed_sets else set()
    a.tools = a.tools.split(",")
    if any(t not in TOOLS for t in a.tools):
        log(f"--tools {','.join(a.tools)}: the tools are {','.join(TOOLS)}")
        return 2
    results = {"sets": {}}
    if os.path.exists(a.out) and not a.fresh:
        with open(a.out) as f:
            results = json.load(f)
    if a.merge:  # another run's figures (e.g. one tool run in parallel into its own file)
        merge_results(results, a.merge)
        save(results, a.out)
    if a.markdown_only or a.merge:
        print(markdown(results), end="")
        return 0
    results["machine"] = machine()
    us_autotune_ok = [not a.no_understudy_autotune]
    for name in a.sets.split(","):
        if name not in ALL_SETS:
            log(f"unknown set {name!r}; the sets are {','.join(ALL_SETS)}")
            return 2
        folder = f"{a.data}/{set_folder(name)}"
        if not os.path.isdir(folder):
            log(f"skipped {name}: {folder} is absent (the suite needs ../shared/data)")
            continue
        splits, n_folds = load_set(a.data, name)
        folds_run = min(n_folds, max(1, a.folds))
        entry = {"name": name, "command": a.command,
                 "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
                 "load_start": os.getloadavg()[0], "budget_s": a.budget,
                 "folds_run": folds_run, "folds_total": n_folds, "folds": []}
        old = results["sets"].get(name, {})
        done = []
        for fold in range(folds_run):
            res = bench_fold(a, name, fold, splits(fold), fold == 0, us_autotune_ok)
            # a tool not run now keeps its figures of an earlier run on the same fold
            prev = next((f for f in old.get("folds", []) if f["fold"] == fold), {})
            ran_default = "us_default" in res
            for k, v in prev.items():
                if (k in TOOLS and k not in res) or (k == "seed_acc" and not ran_default) or \
                        (k in AUTOTUNE_SEED_KEYS and "us_autotune" not in res):
                    res[k] = v
            done.append(res)
            # saved after every fold, so an interrupted run keeps what it measured
            results["sets"][name] = finish_entry(entry, old, done, fold + 1)
            save(results, a.out)
    print(markdown(results), end="")
    return 0


def finish_entry(entry, old, done, folds_done):
    e = dict(entry)
    e["folds"] = done + [f for f in old.get("folds", []) if f["fold"] >= folds_done]
    e["folds_run"] = len(e["folds"])
    e["runs"] = old.get("runs", []) + [{k: entry[k] for k in (
        "command", "started_utc", "load_start", "budget_s")} | {"folds_run": folds_done}]
    e["load_end"] = os.getloadavg()[0]
    e["loadavg_end"] = list(os.getloadavg())
    e["summary"] = summarise(e["folds"])
    if e["name"] in PUBLISHED:
        e["published"] = PUBLISHED[e["name"]]
    return e


def save(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    sys.exit(main())
