#!/usr/bin/env python3
"""Load test for `musicgen serve` (stdlib only; loopback only; bounded in clients and time).

Mode 1 (default): N clients send POST /v1/audio/music in a loop for T seconds; every answer is
checked (200: a complete WAV of the requested length; 429: has Retry-After and a JSON error;
anything else: an error). Reports the counts, p50/p99 latency of the 200s, and the server's RSS
before and after (from /proc/PID/status, with --pid).

  musicgen serve --model tests/fixtures/tiny-a --port 8080 --max-batch 2 --max-queue 16 &
  python3 bench/server_load.py --port 8080 --pid $! --clients 100 --seconds 60

Mode 2 (--compare-sequential): the same --concurrent requests sent all at once, then one at a
time; prints the aggregate decoder steps/s of each (from /metrics) and the ratio.

  musicgen serve --model /path/to/musicgen-small-random --port 8080 --max-batch 8 &
  python3 bench/server_load.py --port 8080 --concurrent 8 --compare-sequential --duration 5
"""
import argparse
import http.client
import json
import struct
import sys
import threading
import time


def rss_kib(pid):
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def request(host, port, body, timeout, key=None):
    """One POST; returns (status, headers dict, body bytes, seconds)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    t0 = time.monotonic()
    try:
        conn.request("POST", "/v1/audio/music", body=json.dumps(body), headers=headers)
        r = conn.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data, time.monotonic() - t0
    finally:
        conn.close()


def wav_seconds(data):
    if len(data) < 44 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    channels, rate = struct.unpack("<HI", data[22:28])
    bits = struct.unpack("<H", data[34:36])[0]
    at = data.find(b"data", 12)
    if at < 0 or channels == 0 or bits == 0:
        return None
    size = struct.unpack("<I", data[at + 4:at + 8])[0]
    if at + 8 + size != len(data):
        return None  # truncated or padded
    return size / (channels * bits // 8) / rate


def metric(host, port, name, key=None):
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", "/metrics", headers={"Authorization": "Bearer " + key} if key else {})
    text = conn.getresponse().read().decode()
    conn.close()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def load(args):
    body = {"prompt": args.prompt, "duration": args.duration}
    stats = {"ok": 0, "429": 0, "errors": 0, "malformed": 0}
    kinds = {}
    latencies = []
    lock = threading.Lock()
    # Warm-up at full load first (first-use allocations: sessions, connection threads), so that
    # "RSS before" is the steady state and growth during the run means a leak.
    if args.warmup > 0:
        warm_stop = time.monotonic() + args.warmup

        def warm():
            while time.monotonic() < warm_stop:
                try:
                    status = request(args.host, args.port, body, args.timeout, args.api_key)[0]
                except Exception:
                    status = 0
                if status == 429:
                    time.sleep(args.backoff)

        ws = [threading.Thread(target=warm, daemon=True) for _ in range(args.clients)]
        for t in ws:
            t.start()
        for t in ws:
            t.join(args.warmup + args.timeout + 10)
    stop_at = time.monotonic() + args.seconds
    rss_before = rss_kib(args.pid)

    def client():
        while time.monotonic() < stop_at:
            try:
                status, headers, data, dt = request(args.host, args.port, body, args.timeout, args.api_key)
            except Exception as e:
                with lock:
                    stats["errors"] += 1
                    kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
                continue
            with lock:
                if status == 200:
                    secs = wav_seconds(data)
                    if secs is None or abs(secs - args.duration) > 0.021:
                        stats["malformed"] += 1
                    else:
                        stats["ok"] += 1
                        latencies.append(dt)
                elif status == 429:
                    try:
                        ok = "retry-after" in headers and "error" in json.loads(data)
                    except ValueError:
                        ok = False
                    stats["429" if ok else "malformed"] += 1
                else:
                    stats["errors"] += 1
                    kinds[f"HTTP {status}"] = kinds.get(f"HTTP {status}", 0) + 1
            if status == 429:
                time.sleep(args.backoff)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(args.seconds + args.timeout + 10)
    rss_after = rss_kib(args.pid)
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] if latencies else float("nan")

    print(f"clients {args.clients}, {args.seconds} s after {args.warmup} s of warm-up, "
          f"{args.duration} s of audio per request")
    print(f"ok {stats['ok']}  429 {stats['429']}  errors {stats['errors']}  malformed {stats['malformed']}")
    if kinds:
        print("errors by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    print(f"latency of ok: p50 {pct(0.50) * 1000:.0f} ms  p99 {pct(0.99) * 1000:.0f} ms")
    if rss_before is not None:
        print(f"server RSS before {rss_before / 1024:.1f} MiB, after {rss_after / 1024:.1f} MiB")
    return 0 if stats["errors"] == 0 and stats["malformed"] == 0 else 1


def compare(args):
    body = {"prompt": args.prompt, "duration": args.duration, "seed": 1}

    def run(concurrent):
        s0 = metric(args.host, args.port, "musicgen_decoder_steps_total", args.api_key)
        t0 = time.monotonic()
        results = []
        if concurrent:
            ts = [threading.Thread(target=lambda: results.append(
                request(args.host, args.port, body, args.timeout, args.api_key)[0]))
                for _ in range(args.concurrent)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(args.timeout + 10)
        else:
            for _ in range(args.concurrent):
                results.append(request(args.host, args.port, body, args.timeout, args.api_key)[0])
        dt = time.monotonic() - t0
        steps = metric(args.host, args.port, "musicgen_decoder_steps_total", args.api_key) - s0
        bad = [s for s in results if s != 200]
        return steps / dt, dt, bad

    conc, conc_t, bad1 = run(True)
    seq, seq_t, bad2 = run(False)
    print(f"{args.concurrent} requests of {args.duration} s")
    print(f"concurrent: {conc:.1f} decoder steps/s aggregate ({conc_t:.1f} s wall)")
    print(f"sequential: {seq:.1f} decoder steps/s aggregate ({seq_t:.1f} s wall)")
    print(f"speed-up: {conc / seq:.2f}x" if seq > 0 else "speed-up: n/a")
    if bad1 or bad2:
        print(f"non-200 answers: {bad1 + bad2}")
        return 1
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--pid", type=int, help="the server's process id (RSS from /proc)")
    p.add_argument("--api-key")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--seconds", type=float, default=60)
    p.add_argument("--duration", type=float, default=1.0, help="seconds of audio per request")
    p.add_argument("--warmup", type=float, default=5, help="seconds of load before RSS-before")
    p.add_argument("--prompt", default="lo-fi hip hop beat")
    p.add_argument("--timeout", type=float, default=120, help="per request")
    p.add_argument("--backoff", type=float, default=0.05, help="pause after a 429")
    p.add_argument("--concurrent", type=int, default=8)
    p.add_argument("--compare-sequential", action="store_true")
    args = p.parse_args()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        sys.exit("server_load.py runs against a loopback address only")
    if not (1 <= args.clients <= 1000 and 0 < args.seconds <= 3600):
        sys.exit("--clients must be in [1, 1000] and --seconds in (0, 3600]")
    sys.exit(compare(args) if args.compare_sequential else load(args))


if __name__ == "__main__":
    main()
