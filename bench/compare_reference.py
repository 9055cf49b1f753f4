#!/usr/bin/env python3
"""Side-by-side speed of musicgen.cpp and the PyTorch reference (HF transformers) on one checkpoint.

Runs, in one process and one after the other (never concurrently):
  1. `musicgen bench --json` on the checkpoint, once per --weights type;
  2. HF `MusicgenForConditionalGeneration` (fp32, torch.set_num_threads(--threads)) generating the same
     number of decoder steps with the same guidance scale and sampling, --repeats times;
then prints our numbers, the reference's, and the speed ratios (ours / reference: above 1 means
musicgen.cpp is faster). Medians of the repeats throughout.

How the reference is timed: one `model.generate()` call per repeat, with the text encoder's forward and
the EnCodec decode wrapped by timers; decoder time = generate time - text encoding - audio decoding.
The reference therefore decodes exactly the same number of frames as we do.

Real-time factor (RTF) = compute time / duration of the audio produced; lower is better.

Usage (from the repository root, after building build-bench):
  .venv-ref/bin/python bench/compare_reference.py --model /work/models-random/small --threads 2 \
      --steps 500 --guidance 3 --repeats 3 --weights f32 bf16 q8 q4
  .venv-ref/bin/python bench/compare_reference.py --shape small --threads 2   # random checkpoint, cached

Needs .venv-ref (tools/reference/setup_venv.sh: Debian python3-torch 1.13 + transformers 4.40.2).
"""

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_PROMPT = "80s pop track with bassy drums and synth"


def default_cli():
    for build in ("build-bench", "build"):
        path = os.path.join(REPO, build, "cli", "musicgen")
        if os.access(path, os.X_OK):
            return path
    return "musicgen"


def default_cache_dir():
    if os.environ.get("MUSICGEN_CACHE_DIR"):
        return os.environ["MUSICGEN_CACHE_DIR"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "musicgen")
    return os.path.join(os.path.expanduser("~"), ".cache", "musicgen")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------
# musicgen.cpp
# ----------------------------------------------------------------------------------------------------------


def run_ours(args, weights):
    cmd = [args.musicgen, "bench", "--model", args.model, "--weights", weights, "--steps", str(args.steps),
           "--guidance", str(args.guidance), "--threads", str(args.threads), "--repeats", str(args.repeats),
           "--prompt", args.prompt, "--json"]
    if args.greedy:
        cmd.append("--greedy")
    log("$ " + " ".join(cmd))
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    return json.loads(out)


# ----------------------------------------------------------------------------------------------------------
# Reference
# ----------------------------------------------------------------------------------------------------------


def load_reference(model_dir):
    """Musicgen(Melody)ForConditionalGeneration in fp32, loading tensors one at a time (musicgen-large in
    fp32 is 13.7 GB: from_pretrained would hold the file's tensors and the model's at once)."""
    import torch
    from safetensors import safe_open
    import transformers
    from transformers import GenerationConfig
    from transformers.modeling_utils import no_init_weights

    with open(os.path.join(model_dir, "config.json")) as f:
        melody = json.load(f).get("model_type") == "musicgen_melody"
    prefix = "MusicgenMelody" if melody else "Musicgen"
    config = getattr(transformers, prefix + "Config").from_pretrained(model_dir)
    with no_init_weights(_enable=True):
        model = getattr(transformers, prefix + "ForConditionalGeneration")(config)
    model.eval()
    state = model.state_dict()
    files = []
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    loaded = set()
    with torch.no_grad():
        for name in files:
            with safe_open(os.path.join(model_dir, name), framework="pt") as f:
                for key in f.keys():
                    if key not in state:
                        raise SystemExit(f"reference: unexpected tensor {key} in {name}")
                    state[key].copy_(f.get_tensor(key).to(torch.float32))
                    loaded.add(key)
    # The tied T5 embedding is stored once, as text_encoder.shared.weight.
    missing = [k for k in state if k not in loaded and k != "text_encoder.encoder.embed_tokens.weight"]
    if missing:
        raise SystemExit(f"reference: {len(missing)} tensors missing from the checkpoint, e.g. {missing[:3]}")
    model.tie_weights()
    model.generation_config = GenerationConfig.from_pretrained(model_dir)
    return model


@contextlib.contextmanager
def timed(obj, attr, sink):
    """Wraps obj.attr (a bound method) so every call adds its wall time to sink[0]."""
    original = getattr(obj, attr)

    def wrapper(*a, **kw):
        t0 = time.perf_counter()
        try:
            return original(*a, **kw)
        finally:
            sink[0] += time.perf_counter() - t0

    setattr(obj, attr, wrapper)
    try:
        yield
    finally:
        delattr(obj, attr)  # back to the class's method


def run_reference(args):
    import torch
    from transformers import T5Tokenizer

    torch.set_num_threads(args.threads)
    log(f"reference: torch {torch.__version__}, {torch.get_num_threads()} threads, loading {args.model}")
    t0 = time.perf_counter()
    model = load_reference(args.model)
    load_s = time.perf_counter() - t0
    tok = T5Tokenizer(os.path.join(args.model, "spiece.model"), extra_ids=0, legacy=True)
    inputs = tok([args.prompt], return_tensors="pt", padding=True)
    sr = model.config.audio_encoder.sampling_rate

    def generate(steps, seed):
        torch.manual_seed(seed)
        text_s, audio_s = [0.0], [0.0]
        with timed(model.text_encoder, "forward", text_s), timed(model.audio_encoder, "decode", audio_s):
            t = time.perf_counter()
            with torch.no_grad():
                audio = model.generate(**inputs, max_new_tokens=steps, guidance_scale=args.guidance,
                                       do_sample=not args.greedy)
            total = time.perf_counter() - t
        return {"generate_s": total, "text_encode_s": text_s[0], "audio_decode_s": audio_s[0],
                "decode_s": total - text_s[0] - audio_s[0], "steps": steps,
                "audio_seconds": audio.shape[-1] / sr}

    if args.warmup_steps > 0:
        generate(args.warmup_steps, 1234)
    runs = []
    for r in range(args.repeats):
        run = generate(args.steps, r)
        run["decoder_steps_per_s"] = run["steps"] / run["decode_s"]
        log(f"reference repeat {r + 1}/{args.repeats}: {run['decoder_steps_per_s']:.2f} decoder steps/s, "
            f"audio decoding {run['audio_decode_s']:.2f} s, generate {run['generate_s']:.1f} s")
        runs.append(run)
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    audio_seconds = runs[0]["audio_seconds"]
    return {
        "implementation": f"transformers {__import__('transformers').__version__}, torch {torch.__version__}, fp32, BLAS " + (os.environ.get("LD_LIBRARY_PATH", "").split(":")[0] or "system default"),
        "threads": torch.get_num_threads(),
        "load_s": load_s,
        "text_encode_s": med("text_encode_s"),
        "decode_s": med("decode_s"),
        "decoder_steps_per_s": med("decoder_steps_per_s"),
        "audio_decode_s": med("audio_decode_s"),
        "audio_seconds": audio_seconds,
        "audio_decode_rtf": statistics.median(r["audio_decode_s"] / r["audio_seconds"] for r in runs),
        "end_to_end_rtf": statistics.median(r["generate_s"] / r["audio_seconds"] for r in runs),
        "generate_s": med("generate_s"),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "runs": runs,
    }


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------


def ratio(a, b):
    return a / b if b else math.nan


def print_report(args, ours, ref):
    print(f"\nmusicgen.cpp vs PyTorch reference: {args.model}")
    print(f"  {args.steps} steps, guidance {args.guidance}, {'greedy' if args.greedy else 'top-k sampling'}, "
          f"{args.threads} threads, median of {args.repeats}")
    if ref:
        print(f"  reference: {ref['implementation']}")
    print("  speed ratio = ours / reference for rates, reference / ours for times: above 1 = musicgen.cpp faster")
    print("  RTF = compute time / audio duration (lower is better)\n")
    header = f"  {'metric':<28}"
    for o in ours:
        header += f" {'ours ' + o['weights']:>12}"
    if ref:
        header += f" {'reference':>12}"
        for o in ours:
            header += f" {'ratio ' + o['weights']:>11}"
    print(header)

    def row(label, key, fmt, higher_is_better):
        line = f"  {label:<28}"
        for o in ours:
            line += f" {format(o[key], fmt):>12}"
        if ref:
            line += f" {format(ref[key], fmt):>12}"
            for o in ours:
                r = ratio(o[key], ref[key]) if higher_is_better else ratio(ref[key], o[key])
                line += f" {r:>10.1f}x"
        print(line)

    row("decoder steps/s", "decoder_steps_per_s", ".2f", True)
    row("text encoding (s)", "text_encode_s", ".3f", False)
    row("audio decoding (s)", "audio_decode_s", ".3f", False)
    row("audio decoding RTF", "audio_decode_rtf", ".4f", False)
    row("end-to-end RTF", "end_to_end_rtf", ".3f", False)
    row("load (s)", "load_s", ".2f", False)
    line = f"  {'peak RSS (MiB)':<28}"
    for o in ours:
        line += f" {o['peak_rss_bytes'] / 2**20:>12.0f}"
    if ref:
        line += f" {ref['peak_rss_bytes'] / 2**20:>12.0f}"
    print(line)
    for o in ours:
        line = (f"  ours {o['weights']}: {o['achieved_weight_bandwidth_gb_s']:.1f} GB/s of decoder weights, machine "
                f"{o['machine_read_bandwidth_gb_s']:.1f} GB/s ({100 * o['bandwidth_fraction']:.0f}%)")
        if "floor_fraction" in o:  # weights + KV cache against the bandwidth; kernels' instruction set
            line += f", {100 * o['floor_fraction']:.0f}% of the memory floor, kernels {o.get('isa', '?')}"
        print(line)


OPENMP_BLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def use_openmp_blas():
    """Debian's torch 1.13 calls BLAS through libblas.so.3. When libopenblas0-pthread is installed too,
    the alternatives system usually picks the pthread build, whose own threads fight torch's OpenMP
    threads: measured here, the reference then runs 3x slower (1.2 vs 3.6 steps/s incl. EnCodec, 40
    steps of musicgen-small, 2 threads). The OpenMP build is the one torch is meant to run with
    (libopenblas0-openmp): re-run this script with it first on the library path."""
    if not os.path.isdir(OPENMP_BLAS) or os.environ.get("MUSICGEN_BENCH_BLAS_SET"):
        return
    env = dict(os.environ, MUSICGEN_BENCH_BLAS_SET="1")
    env["LD_LIBRARY_PATH"] = OPENMP_BLAS + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="checkpoint directory (HF layout)")
    src.add_argument("--shape", help="random checkpoint of this shape, created once in the cache like `musicgen bench`")
    p.add_argument("--cache-dir", default=default_cache_dir())
    p.add_argument("--weights", nargs="+", default=["f32"], help="our weight types to run (default f32)")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--guidance", type=float, default=3.0)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ref-repeats", type=int, help="repeats of the reference (default: --repeats)")
    p.add_argument("--warmup-steps", type=int, default=16, help="untimed reference generation first")
    p.add_argument("--prompt", default=DEFAULT_PROMPT)
    p.add_argument("--greedy", action="store_true", help="argmax instead of top-k 50 sampling")
    p.add_argument("--musicgen", default=default_cli(), help="the musicgen binary")
    p.add_argument("--skip-reference", action="store_true", help="only run musicgen.cpp")
    p.add_argument("--json-out", help="also write everything as JSON to this file")
    p.add_argument("--reuse-ours", help="take our results from this earlier --json-out file instead of "
                   "running musicgen.cpp again (the reference still runs)")
    args = p.parse_args()
    if not args.skip_reference:
        use_openmp_blas()

    if args.shape:
        args.model = os.path.join(args.cache_dir, f"random-{args.shape}-seed0-f32")
        if not os.path.exists(os.path.join(args.model, "model.safetensors")):
            os.makedirs(args.cache_dir, exist_ok=True)
            subprocess.run([args.musicgen, "make-random-model", "--shape", args.shape, "--out", args.model,
                            "--force"], check=True)

    load = os.getloadavg()
    log(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")

    def save(ours, ref):
        if not args.json_out:
            return
        with open(args.json_out, "w") as f:
            json.dump({"model": args.model, "steps": args.steps, "guidance": args.guidance,
                       "threads": args.threads, "greedy": args.greedy, "prompt": args.prompt,
                       "load_average_at_start": load, "load_average_now": os.getloadavg(),
                       "machine": platform.processor() or platform.machine(),
                       "ours": ours, "reference": ref,
                       "ratios": {o["weights"]: {
                           "decoder_steps_per_s": ratio(o["decoder_steps_per_s"], ref["decoder_steps_per_s"]),
                           "audio_decode_speed": ratio(ref["audio_decode_s"], o["audio_decode_s"]),
                           "end_to_end_speed": ratio(ref["end_to_end_rtf"], o["end_to_end_rtf"]),
                       } for o in ours} if ref else None}, f, indent=2)

    ours = []
    if args.reuse_ours:
        with open(args.reuse_ours) as f:
            ours = json.load(f)["ours"]
        args.weights = []
    for w in args.weights:
        ours.append(run_ours(args, w))
        o = ours[-1]
        log(f"ours {w}: {o['decoder_steps_per_s']:.2f} decoder steps/s, audio decoding RTF "
            f"{o['audio_decode_rtf']:.4f}, end-to-end RTF {o['end_to_end_rtf']:.3f}")
        save(ours, None)  # a long reference run can be interrupted without losing these
    ref = None
    if not args.skip_reference:
        repeats = args.repeats
        if args.ref_repeats:
            args.repeats = args.ref_repeats
        ref = run_reference(args)
        args.repeats = repeats
    print_report(args, ours, ref)
    save(ours, ref)


if __name__ == "__main__":
    main()
