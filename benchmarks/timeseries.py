"""DFT-LRP's cost: the frequency / time-frequency step against the time-domain LRP pass, in one run.

    python -m benchmarks.timeseries [--length 5000] [--batch 32] [--threads 2] [--repeats 9] [--device cpu]
                                    [--quick] [--json benchmarks/results_timeseries.json]

The model is the ECG-style 1-D CNN of ``benchmarks/models.py`` on ``(batch, 1, length)`` signals.
Each figure is the median of ``--repeats`` runs after a warm-up, the runs of all steps interleaved
(the machine's other load falls on all of them alike), and is reported as a ratio to the median of
``explain(model, x, "lrp_epsilon_0_1")`` (the time-domain pass the step follows). Peak memory is
measured in a fresh process per step (peak resident set growth, as ``benchmarks/memory.py``), next to
the size of what the step returns (signal and relevance in the domain).
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.models import conv1d_net

#: the domain steps measured: name -> domain for a signal length (windows of length / 20: 250 samples at 5,000)
STEPS = {
    "frequency": lambda n: {"kind": "frequency"},
    "frequency (all N bins)": lambda n: {"kind": "frequency", "symmetric": False},
    "time_frequency rectangle, 20 windows": lambda n: {"kind": "time_frequency", "window_width": n // 20},
    "time_frequency halfsine, 39 windows": lambda n: {"kind": "time_frequency", "window": "halfsine",
                                                      "window_width": n // 20, "window_shift": n // 40},
}
METHOD = "lrp_epsilon_0_1"


def _setup(length: int, batch: int, device: str):
    torch.manual_seed(0)
    model = conv1d_net(length).eval().to(device)
    x = torch.randn(batch, 1, length, device=device)
    return model, x


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _domain_for(name: str, length: int) -> dict:
    if length % 40:
        raise SystemExit(f"--length must be a multiple of 40 (windows of length / 20, shift length / 40), got {length}")
    return STEPS[name](length)


def measure_times(length: int, batch: int, repeats: int, device: str) -> dict:
    import composer

    model, x = _setup(length, batch, device)
    relevance = composer.explain(model, x, METHOD)
    calls = {METHOD: lambda: composer.explain(model, x, METHOD)}
    for name in STEPS:
        spec = _domain_for(name, length)
        calls[name] = lambda spec=spec: composer.to_domain(x, relevance, spec)
    times = {name: [] for name in calls}
    for fn in calls.values():
        fn()   # warm-up
    for _ in range(repeats):
        for name, fn in calls.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def measure_memory(step: str, length: int, batch: int, device: str) -> dict:
    """Peak memory growth of one call (fresh process), and the bytes of what it returns."""
    import composer

    model, x = _setup(length, batch, device)
    relevance = composer.explain(model, x, METHOD)
    fn = (lambda: composer.explain(model, x, METHOD)) if step == METHOD else (
        lambda: composer.to_domain(x, relevance, _domain_for(step, length)))
    out = fn()   # warm-up
    returned = (out.numel() * out.element_size() if isinstance(out, torch.Tensor) else
                out.signal.numel() * out.signal.element_size() + out.relevance.numel() * out.relevance.element_size())
    del out
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn()
        torch.cuda.synchronize()
        return {"peak_bytes": torch.cuda.max_memory_allocated() - base, "returned_bytes": returned}
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    before = _status_bytes("VmRSS")
    out = fn()
    return {"peak_bytes": max(_status_bytes("VmHWM") - before, 0), "returned_bytes": returned}


def _memory_in_fresh_process(step: str, args) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.timeseries", "--memory-of", step, "--length", str(args.length),
           "--batch", str(args.batch), "--device", args.device, "--threads", str(args.threads)]
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    times = measure_times(args.length, args.batch, args.repeats, args.device)
    base = times[METHOD]
    rows = []
    for name in [METHOD, *STEPS]:
        memory = _memory_in_fresh_process(name, args) if args.memory else {"peak_bytes": None, "returned_bytes": None}
        rows.append({"step": name, "seconds": times[name], "ratio": times[name] / base, **memory})
        print(f"  {name:34s} {1000 * times[name]:9.1f} ms  x{times[name] / base:.3f}", file=sys.stderr, flush=True)
    return {"device": args.device, "threads": args.threads, "length": args.length, "batch": args.batch,
            "repeats": args.repeats, "torch": torch.__version__, "method": METHOD, "rows": rows}


def table(result: dict) -> str:
    lines = [f"{result['device']}, {result['threads']} threads, torch {result['torch']}: batch {result['batch']}, "
             f"length {result['length']}, ECG-style 1-D CNN, medians of {result['repeats']} interleaved runs", "",
             "| step | time (ms) | x time-domain LRP pass | peak MB | returned MB |", "|---|---|---|---|---|"]
    for r in result["rows"]:
        mb = lambda v: "-" if v is None else f"{v / 2**20:.1f}"  # noqa: E731
        label = f"time-domain `explain(..., \"{r['step']}\")`" if r["step"] == result["method"] else r["step"]
        lines.append(f"| {label} | {1000 * r['seconds']:.1f} | {r['ratio']:.3f} | {mb(r['peak_bytes'])} | "
                     f"{mb(r['returned_bytes'])} |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--length", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="length 400, batch 2, one repeat, no memory (CI)")
    ap.add_argument("--no-memory", dest="memory", action="store_false")
    ap.add_argument("--memory-of", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--json", default="benchmarks/results_timeseries.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.length, args.batch, args.repeats, args.memory = 400, 2, 1, False
    if args.memory_of:
        torch.set_num_threads(args.threads)
        print(json.dumps(measure_memory(args.memory_of, args.length, args.batch, args.device)))
        return 0
    result = run(args)
    if not args.quick:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
