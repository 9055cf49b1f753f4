#!/usr/bin/env python3
"""Collects the files of one bench/gpu_check.sh run (OUTDIR) into OUTDIR/results.json and prints a
markdown summary: ours (musicgen bench --device vulkan) beside transformers on the same GPU."""
import glob
import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def main():
    d = sys.argv[1]
    gpu = open(os.path.join(d, "gpu.txt")).read().strip() if os.path.exists(os.path.join(d, "gpu.txt")) else ""
    ours, refs = [], {}
    for p in sorted(glob.glob(os.path.join(d, "ours-*.json"))):
        j = load(p)
        if j:
            j["shape"] = os.path.basename(p).split("-")[1]
            ours.append(j)
    for p in sorted(glob.glob(os.path.join(d, "ref-*.json"))):
        j = load(p)
        if not j:  # cut by the time budget: the runs it finished are on stderr, one JSON a line
            j = {"runs": [], "note": "partial: the reference run hit the time budget"}
            err = p[:-5] + ".err"
            if os.path.exists(err):
                for line in open(err):
                    line = line.strip()
                    if line.startswith("{"):
                        try:
                            j["runs"].append(json.loads(line))
                        except ValueError:
                            pass
        refs[os.path.basename(p)[4:-5]] = j
    results = {"gpu": gpu, "ours": ours, "transformers": refs}
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    print(f"# GPU check\n\nGPU: {gpu}\n")
    print("| model | weights | batch | steps | decoder steps/s | audio s per s | generate s | EnCodec s | weight GB/s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for j in ours:
        bw = j.get("decoder_weight_bytes_per_step", 0) * j.get("decoder_steps_per_s", 0) / 1e9
        print(f"| {j['shape']} | {j.get('weights')} | {j.get('batch')} | {j.get('steps')} | "
              f"{j.get('decoder_steps_per_s', 0):.1f} | {j.get('audio_seconds_per_s', 0):.2f} | "
              f"{j.get('generate_s', 0):.2f} | {j.get('audio_decode_s', 0):.3f} | {bw:.0f} |")
    print("\n| model | transformers dtype | batch | decoder steps/s | peak GPU GB | error |")
    print("|---|---|---|---|---|---|")
    for shape, r in refs.items():
        for run in r.get("runs", []):
            print(f"| {shape} | {run.get('dtype')} | {run.get('batch', '')} | "
                  f"{run.get('decoder_steps_per_s', 0):.1f} | {run.get('peak_gpu_bytes', 0) / 1e9:.2f} | "
                  f"{run.get('error', '')[:80]} |")
        if "error" in r:
            print(f"| {shape} | - | - | - | - | {r['error'][:80]} |")


if __name__ == "__main__":
    main()
