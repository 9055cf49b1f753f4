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


def main():
    out = sys.argv[1]
    text = open(os.path.join(out, "membw.txt")).read()
    m = re.search(r"threads 2: median ([\d.]+) GB/s.*plain loads ([\d.]+), with prefetch ([\d.]+)", text)
    m1 = re.search(r"threads 1: median ([\d.]+) GB/s", text)
    bw2 = float(m.group(1))
    print(f"membw: 2 threads {bw2:.2f} GB/s (plain loads {m.group(2)}, with prefetch {m.group(3)}); "
          f"1 thread {float(m1.group(1)):.2f} GB/s\n")

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

    print("| decoder steps/s (200 steps, 2 threads, median of 3 alternating rounds) | before | after | after / before |")
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

    print("| 1500 steps | steps/s | first 100 | last 100 | weights + mean KV bytes/step | floor fraction (bench probe) | vs membw |")
    print("|---|---|---|---|---|---|---|")
    for w in ["f32", "bf16", "q8", "q4", "q8-kv8", "q4-kv8"]:
        p = os.path.join(out, f"long-{w}.json")
        if not os.path.exists(p):
            continue
        j = load(p)
        wb = j["decoder_weight_bytes_per_step"]
        if j.get("decoder_exact_f16_matrices", 0) > 0:
            wb = j["floor_bandwidth_gb_s"] * 1e9 / j["decoder_steps_per_s"] - j["kv_bytes_per_step_avg"]
        floor_bytes = wb + j["kv_bytes_per_step_avg"]
        vs_membw = floor_bytes * j["decoder_steps_per_s"] / (bw2 * 1e9)
        print(f"| {w}{' (exact-f16)' if w == 'f32' else ''} | {j['decoder_steps_per_s']:.2f} | "
              f"{j['first_100_steps_per_s']:.1f} | {j['last_100_steps_per_s']:.1f} | "
              f"{wb / 1e6:.0f} + {j['kv_bytes_per_step_avg'] / 1e6:.0f} MB | "
              f"{j['floor_fraction']:.2f} ({j['machine_read_bandwidth_gb_s']:.1f} GB/s) | {vs_membw:.2f} |")
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
        p = os.path.join(out, f"batcher-{w}.json")
        if os.path.exists(p):
            b = load(p)
            print(f"batcher {w}: one at a time {b['one_at_a_time']['aggregate_steps_per_s']:.2f}, "
                  f"batched {b['batched']['aggregate_steps_per_s']:.2f} steps/s: {b['speedup']:.2f}x, "
                  f"identical {b['identical_codes_and_audio']}")


if __name__ == "__main__":
    main()
