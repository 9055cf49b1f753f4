#!/usr/bin/env python3
"""Tables of docs/PERFORMANCE.md from a bench/cpu_speed.sh output folder (Markdown on stdout).

Usage: bench/cpu_speed_summary.py OUTDIR
"""
import glob
import json
import os
import re
import statistics
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def med(values):
    return statistics.median(values) if values else float("nan")


def parse_membw(path):
    if not os.path.exists(path):
        return None
    text = open(path).read()
    m = re.search(r"threads 2: median ([\d.]+) GB/s.*plain loads ([\d.]+), with prefetch ([\d.]+)", text)
    m1 = re.search(r"threads 1: median ([\d.]+) GB/s", text)
    if not m or not m1:
        return None
    return float(m.group(1)), float(m.group(2)), float(m.group(3)), float(m1.group(1))


def main():
    out = sys.argv[1]
    probes = []  # (name, 2-thread GB/s, plain, prefetch, 1-thread GB/s)
    files = sorted(glob.glob(os.path.join(out, "membw-[0-9]*.txt"))) or [os.path.join(out, "membw.txt")]
    for f in files:
        p = parse_membw(f)
        if p:
            probes.append((os.path.basename(f),) + p)
    bw2 = med([p[1] for p in probes])
    print(f"membw, 2 threads, {len(probes)} probes over the run: median {bw2:.2f} GB/s "
          f"(min {min(p[1] for p in probes):.2f}, max {max(p[1] for p in probes):.2f}; "
          f"plain loads median {med([p[2] for p in probes]):.2f}, with prefetch "
          f"{med([p[3] for p in probes]):.2f}); 1 thread median {med([p[4] for p in probes]):.2f} GB/s\n")

    isa = {}
    for which in ("before", "after"):
        f = os.path.join(out, f"isa-{which}.txt")
        if os.path.exists(f):
            for line in open(f):
                k = re.match(r"^(f16|q8|q4)\s+avx2\s+([\d.]+) us\s+avx512\s+([\d.]+) us", line)
                if k:
                    isa[(k.group(1), which)] = (float(k.group(2)), float(k.group(3)))
    if isa:
        print("| in cache, 256 x 1024, 2 rows, one thread (us) | AVX2 before | after | AVX-512 before | after |")
        print("|---|---|---|---|---|")
        for w in ["f16", "q8", "q4"]:
            b, a = isa.get((w, "before")), isa.get((w, "after"))
            if b and a:
                print(f"| {w} | {b[0]:.1f} | {a[0]:.1f} ({b[0] / a[0]:.2f}x) | {b[1]:.1f} | {a[1]:.1f} ({b[1] / a[1]:.2f}x) |")
        print()

    for prefix, title in [("attention", "768 heads x 1500 keys"),
                          ("attention_strided", "768 heads, 300 keys of 1500 rows each (the decoder's layout)")]:
        runs = {}
        for f in glob.glob(os.path.join(out, prefix + "-*-t*.txt")):
            which, t = re.search(prefix + r"-([a-z]+)-t(\d)", os.path.basename(f)).groups()
            for line in open(f):
                k = re.match(r"^(f32|f16|q8)\s+([\d.]+) ms per pass\s+([\d.]+) GB/s", line)
                if k:
                    runs.setdefault((k.group(1), which, t), []).append((float(k.group(2)), float(k.group(3))))
        # Median of the rounds (by time), with its bandwidth.
        att = {key: sorted(v)[len(v) // 2] for key, v in runs.items()}
        if att:
            print(f"| attention_bench, {title} (ms per pass, GB/s of KV; median of the rounds) | 1 thread before | after | 2 threads before | after |")
            print("|---|---|---|---|---|")
            for w in ["f32", "f16", "q8"]:
                cells = [att.get((w, which, t)) for t in "12" for which in ("before", "after")]
                print(f"| {w} | " + " | ".join(f"{c[0]:.2f} ({c[1]:.1f})" if c else "-" for c in cells) + " |")
            print()

    print("| kernel_bench (GB/s of weights) | 1 thread before | after | 2 threads before | after |")
    print("|---|---|---|---|---|")
    rates = {}
    for f in glob.glob(os.path.join(out, "kernels-*.txt")):
        which, t = re.search(r"kernels-(\w+)-t(\d)-r\d", f).groups()
        for line in open(f):
            k = re.match(r"^(f32|f16|bf16|q8|q4)\s+.*?([\d.]+) GB/s\s+cpu", line)
            if k:
                rates.setdefault((k.group(1), which, t), []).append(float(k.group(2)))
    for w in ["f32", "f16", "bf16", "q8", "q4"]:
        cells = [med(rates.get((w, which, t), [])) for t in "12" for which in ("before", "after")]
        print(f"| {w} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    print()

    rounds = len(glob.glob(os.path.join(out, "ab-q8-after-*.json")))
    print(f"| decoder steps/s (200 steps, 2 threads, median of {rounds} alternating rounds) | before | after | after / before |")
    print("|---|---|---|---|")
    ab = {}
    for w in ["f32", "f32-plain", "bf16", "q8", "q4"]:
        b = med([load(f)["decoder_steps_per_s"] for f in glob.glob(os.path.join(out, f"ab-{w}-before-*.json"))])
        a = med([load(f)["decoder_steps_per_s"] for f in glob.glob(os.path.join(out, f"ab-{w}-after-*.json"))])
        ab[w] = (b, a)
        name = {"f32": "f32 (exact-f16 storage, the default)", "f32-plain": "f32 plain (`--no-exact-f16`)"}.get(w, w)
        print(f"| {name} | {b:.2f} | {a:.2f} | {a / b:.2f}x |")
    print(f"\nexact-f16 / plain f32: before {ab['f32'][0] / ab['f32-plain'][0]:.2f}x, "
          f"after {ab['f32'][1] / ab['f32-plain'][1]:.2f}x\n")
    pool = {w: med([load(f).get("pool_wait_fraction", float("nan"))
                    for f in glob.glob(os.path.join(out, f"ab-{w}-after-*.json"))]) for w in ab}
    region = {w: med([load(f).get("pool_region_fraction", float("nan"))
                      for f in glob.glob(os.path.join(out, f"ab-{w}-after-*.json"))]) for w in ab}
    regions = med([load(f).get("pool_regions_per_step", float("nan"))
                   for f in glob.glob(os.path.join(out, "ab-q8-after-*.json"))])
    print("thread pool (after, 200 steps): regions per step %.0f; " % regions +
          "; ".join(f"{w}: wait {pool[w]:.3f}, in regions {region[w]:.3f}" for w in ab) + "\n")

    print("| 1500 steps | steps/s | first 100 | last 100 | weights + mean KV bytes/step | "
          "floor fraction (bench probe) | vs membw just before | vs the run's median membw |")
    print("|---|---|---|---|---|---|---|---|")
    for w in ["f32", "bf16", "q8", "q4", "q8-kv8", "q4-kv8", "before-q8", "before-q8-kv8"]:
        p = os.path.join(out, f"long-{w}.json")
        if not os.path.exists(p):
            continue
        j = load(p)
        wb = j["decoder_weight_bytes_per_step"]
        if j.get("decoder_exact_f16_matrices", 0) > 0:
            wb = j["floor_bandwidth_gb_s"] * 1e9 / j["decoder_steps_per_s"] - j["kv_bytes_per_step_avg"]
        floor_bytes = wb + j["kv_bytes_per_step_avg"]
        achieved = floor_bytes * j["decoder_steps_per_s"]
        before = parse_membw(os.path.join(out, f"membw-for-{w}.txt"))
        just = f"{achieved / (before[0] * 1e9):.2f} ({before[0]:.1f} GB/s)" if before else "-"
        print(f"| {w}{' (exact-f16)' if w == 'f32' else ''} | {j['decoder_steps_per_s']:.2f} | "
              f"{j['first_100_steps_per_s']:.1f} | {j['last_100_steps_per_s']:.1f} | "
              f"{wb / 1e6:.0f} + {j['kv_bytes_per_step_avg'] / 1e6:.0f} MB | "
              f"{j['floor_fraction']:.2f} ({j['machine_read_bandwidth_gb_s']:.1f} GB/s) | {just} | "
              f"{achieved / (bw2 * 1e9):.2f} |")
    print()

    t1 = med([load(f)["decoder_steps_per_s"] for f in glob.glob(os.path.join(out, "threads1-q8-*.json"))])
    t2 = med([load(f)["decoder_steps_per_s"] for f in glob.glob(os.path.join(out, "threads2-q8-*.json"))])
    print(f"threads (q8, 200 steps, median of 3): 1 thread {t1:.2f}, 2 threads {t2:.2f}: {t2 / t1:.2f}x\n")

    p = os.path.join(out, "reference.json")
    if os.path.exists(p):
        r = load(p)
        ref = r["reference"]["decoder_steps_per_s"]
        print(f"transformers ({r['reference']['implementation']}): {ref:.2f} decoder steps/s")
        for o in r["ours"]:
            print(f"  ours {o['weights']}: {o['decoder_steps_per_s']:.2f} ({o['decoder_steps_per_s'] / ref:.1f}x), "
                  f"end-to-end RTF {o['end_to_end_rtf']:.2f} vs {r['reference']['end_to_end_rtf']:.2f}")
        print()
    for w in ["f32", "q8"]:
        for which in ("before-", ""):
            p = os.path.join(out, f"batcher-{which}{w}.json")
            if not os.path.exists(p):
                continue
            b = load(p)
            print(f"batcher {which}{w}: one at a time {b['one_at_a_time']['aggregate_steps_per_s']:.2f}, "
                  f"batched {b['batched']['aggregate_steps_per_s']:.2f} steps/s: {b['speedup']:.2f}x, "
                  f"identical {b['identical_codes_and_audio']}")


if __name__ == "__main__":
    main()
