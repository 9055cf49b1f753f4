#!/usr/bin/env python3
"""transformers' MusicGen on a CUDA GPU, for the side-by-side figures of bench/gpu_check.sh.

For one checkpoint directory: load MusicgenForConditionalGeneration in each --dtype (fp32, fp16),
move it to the GPU, and time `generate(max_new_tokens=STEPS, guidance_scale=G, do_sample=True,
top_k=50)` at each batch size (the same prompt repeated), after one short warm-up. The decoder
time is the generate time minus the text encoder's and EnCodec's (timed with CUDA events through
forward hooks), as bench/compare_reference.py counts on the CPU. Prints one JSON object.

Usage: python3 bench/gpu_reference.py --model DIR --steps 500 --batch 1 8 --dtype fp32 fp16
"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--batch", type=int, nargs="+", default=[1])
    ap.add_argument("--dtype", nargs="+", default=["fp32", "fp16"])
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args()
    out = {"model": a.model, "steps": a.steps, "guidance": a.guidance, "runs": []}
    try:
        import torch
        import transformers
        from transformers import MusicgenForConditionalGeneration
    except Exception as e:  # noqa: BLE001
        out["error"] = f"import failed: {e}"
        print(json.dumps(out))
        return
    out["torch"] = torch.__version__
    out["transformers"] = transformers.__version__
    out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    for dt in a.dtype:
        dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dt]
        try:
            t0 = time.time()
            model = MusicgenForConditionalGeneration.from_pretrained(a.model, torch_dtype=dtype)
            model = model.to("cuda").eval()
            load_s = time.time() - t0
        except Exception as e:  # noqa: BLE001
            out["runs"].append({"dtype": dt, "error": f"load failed: {e}"[:500]})
            continue
        timers = {}

        def hook_pair(module, name):
            def pre(*_):
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                timers.setdefault(name, []).append([ev, None])

            def post(*_):
                ev = torch.cuda.Event(enable_timing=True)
                ev.record()
                timers[name][-1][1] = ev

            module.register_forward_pre_hook(pre)
            module.register_forward_hook(post)

        hook_pair(model.text_encoder, "text")
        hook_pair(model.audio_encoder.decoder, "codec")
        for b in a.batch:
            ids = torch.tensor([[94, 2913, 1462, 3, 9, 1]] * b, device="cuda")
            mask = torch.ones_like(ids)
            try:
                with torch.inference_mode():
                    model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=16,
                                   guidance_scale=a.guidance, do_sample=True, top_k=50)
                    torch.cuda.synchronize()
                    rates = []
                    for _ in range(a.repeats):
                        timers.clear()
                        torch.cuda.reset_peak_memory_stats()
                        t0 = time.time()
                        model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=a.steps,
                                       guidance_scale=a.guidance, do_sample=True, top_k=50)
                        torch.cuda.synchronize()
                        total = time.time() - t0
                        other = sum(s.elapsed_time(e) for v in timers.values() for s, e in v if e) / 1e3
                        rates.append({"generate_s": total, "decode_s": total - other,
                                      "decoder_steps_per_s": a.steps / max(1e-9, total - other)})
                best = sorted(rates, key=lambda r: r["decoder_steps_per_s"])[len(rates) // 2]
                out["runs"].append({"dtype": dt, "batch": b, "load_s": load_s,
                                    "peak_gpu_bytes": torch.cuda.max_memory_allocated(), **best})
            except Exception as e:  # noqa: BLE001
                out["runs"].append({"dtype": dt, "batch": b, "error": f"{type(e).__name__}: {e}"[:500]})
            print(json.dumps(out["runs"][-1]), file=sys.stderr, flush=True)
        del model
        torch.cuda.empty_cache()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
