"""composer's speed and memory as ratios to a plain input gradient, measured in one run.

    python -m benchmarks.run [--quick] [--device cuda] [--models vgg16,resnet18,resnet50,conv1d]
                             [--batches 1,8,32] [--repeats 5] [--memory target|all|none] [--json FILE]
                             [--methods gradient,lrp_epsilon_0_1]

Every time is the median of ``--repeats`` runs after a warm-up, divided by the plain gradient's
median for the same model and batch in the same run. Peak memory is measured in a fresh process
per method (CPU: growth of the peak resident set; CUDA: the allocator's peak), also as a ratio.
``--quick`` (CI) uses small inputs and few repeats so the script cannot rot; it checks no target.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.methods import COMPOSER_METHODS, EPSILON_FAMILY, SLOWER_FAMILY, ZENNIT, composer_method, plain_gradient
from benchmarks.models import build

#: the configurations whose targets are checked (model, batch): vgg16 for the rules' speed, resnet50 for
#: graph canonization (BN merging, residual sums, the twin's copy) on top of them
TARGETS = (("vgg16", 8), ("resnet50", 8))
#: quick mode measures memory for these only (one process each)
QUICK_MEMORY = ("gradient", "lrp_epsilon_0_1", "lrp_alpha_2_beta_1")


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(fn, repeats: int, device: str) -> float:
    fn()  # warm-up
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_memory(model: str, batch: int, method: str, quick: bool, device: str) -> int:
    cmd = [sys.executable, "-m", "benchmarks.memory", model, str(batch), method, "--device", device]
    # large blocks via mmap and no trimming threshold: freed tensors leave the resident set at once,
    # so the peak resident set follows the live tensors instead of glibc's cache
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run(cmd + (["--quick"] if quick else []), capture_output=True, text=True, env=env,
                         cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return int(out.stdout.strip().splitlines()[-1])


def compose_times() -> dict:
    """compose() cold (caches cleared) and cached, in milliseconds."""
    import composer
    from composer import compiler, resolve

    names = ["lrpz_sequential_composite_a", "lrpsign_epsilon_0_25_std_x_mu_0_5", "lrp_gamma"]
    cold = []
    for name in names:
        compiler._plan_cache.clear(), resolve._load_cache.clear()
        start = time.perf_counter()
        composer.compose(name)
        cold.append(time.perf_counter() - start)
    composer.compose(names[0])
    n = 2000
    start = time.perf_counter()
    for _ in range(n):
        composer.compose(names[0])
    cached = (time.perf_counter() - start) / n
    return {"cold_ms": 1000 * statistics.median(cold), "cached_ms": 1000 * cached}


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    quick = args.quick
    device = args.device
    rows = []
    for model_name in args.models:
        model, shape, canonizers = build(model_name, quick)
        model = model.to(device)
        for p in model.parameters():
            p.requires_grad_(False)  # attribution computes no weight gradients; neither does the baseline
        methods = {"gradient": plain_gradient, **ZENNIT, **{m: composer_method(m, canonizers) for m in COMPOSER_METHODS}}
        if args.methods:
            methods = {k: v for k, v in methods.items() if k == "gradient" or k in args.methods}
        for batch in args.batches:
            torch.manual_seed(0)
            x = torch.randn(batch, *shape, device=device)
            target = torch.zeros(batch, dtype=torch.long, device=device)
            base = None
            for name, fn in methods.items():
                seconds = time_call(lambda: fn(model, x, target), args.repeats, device)
                base = seconds if name == "gradient" else base
                row = {"model": model_name, "batch": batch, "method": name, "seconds": seconds,
                       "ratio": seconds / base, "samples_per_s": batch / seconds, "peak_bytes": None,
                       "memory_ratio": None}
                want_memory = args.memory == "all" or (args.memory == "target" and (
                    (model_name, batch) in TARGETS
                    or (quick and (model_name, batch) == (TARGETS[0][0], args.batches[-1])
                        and name in QUICK_MEMORY)))
                if want_memory:
                    row["peak_bytes"] = peak_memory(model_name, batch, name, quick, device)
                rows.append(row)
                print(f"  {model_name:9s} b={batch:<3d} {name:36s} {seconds * 1000:10.1f} ms  x{row['ratio']:.2f}",
                      file=sys.stderr, flush=True)
            grad_peak = next((r["peak_bytes"] for r in rows if r["model"] == model_name and r["batch"] == batch
                              and r["method"] == "gradient"), None)
            for r in rows:
                if r["model"] == model_name and r["batch"] == batch and r["peak_bytes"] is not None and grad_peak:
                    r["memory_ratio"] = r["peak_bytes"] / grad_peak
    result = {"device": device, "threads": args.threads, "quick": quick, "torch": torch.__version__,
              "machine": platform.machine(), "processor": platform.processor(), "rows": rows,
              "compose": compose_times()}
    result["targets"] = targets(result)
    return result


def targets(result: dict) -> list:
    """The targets of the speed issue, read from the measured rows (reported, never enforced)."""
    checks = []
    rows = [r for r in result["rows"] if (r["model"], r["batch"]) in TARGETS]
    for r in rows:
        where = f"{r['model']} b={r['batch']}: "
        if r["method"] in EPSILON_FAMILY:
            checks.append((f"{where}{r['method']} time <= 1.3x gradient", r["ratio"], r["ratio"] <= 1.3))
        if r["method"] in SLOWER_FAMILY:
            checks.append((f"{where}{r['method']} time <= 3x gradient", r["ratio"], r["ratio"] <= 3.0))
        if r["method"].startswith("lrp") and r["memory_ratio"] is not None:
            checks.append((f"{where}{r['method']} peak memory <= 1.3x gradient", r["memory_ratio"],
                           r["memory_ratio"] <= 1.3))
    cached = result["compose"]["cached_ms"]
    checks.append(("cached compose() < 1 ms", cached, cached < 1.0))
    return [{"check": c, "value": v, "met": ok} for c, v, ok in checks]


def table(result: dict) -> str:
    lines = [f"device {result['device']}, {result['threads']} threads, torch {result['torch']}"
             + (" (quick mode)" if result["quick"] else ""), "",
             "| model | batch | method | time (ms) | x gradient | samples/s | peak MB | x gradient memory |",
             "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        mb = "-" if r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.0f}"
        mr = "-" if r["memory_ratio"] is None else f"{r['memory_ratio']:.2f}"
        lines.append(f"| {r['model']} | {r['batch']} | {r['method']} | {1000 * r['seconds']:.1f} | "
                     f"{r['ratio']:.2f} | {r['samples_per_s']:.2f} | {mb} | {mr} |")
    c = result["compose"]
    lines += ["", f"compose(): cold {c['cold_ms']:.1f} ms, cached {1000 * c['cached_ms']:.1f} µs", ""]
    if not result["quick"]:
        lines += [f"- {'met' if t['met'] else 'MISSED'}: {t['check']} (measured {t['value']:.3g})"
                  for t in result["targets"]]
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small inputs, few repeats (CI)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", default="vgg16,resnet18,conv1d")
    ap.add_argument("--batches", default=None, help="comma separated (default 1,8,32; quick: 1,2)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs per figure (default 5; quick: 1)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", default="target", choices=["target", "all", "none"],
                    help="peak memory for the target configuration (vgg16, batch 8), every figure, or none")
    ap.add_argument("--json", default="benchmarks/results.json")
    ap.add_argument("--methods", default=None, help="comma separated subset (the gradient baseline always runs)")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA device")
    args.models = args.models.split(",")
    args.methods = args.methods.split(",") if args.methods else None
    args.batches = [int(b) for b in (args.batches or ("1,2" if args.quick else "1,8,32")).split(",")]
    args.repeats = args.repeats or (1 if args.quick else 5)
    result = run(args)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
