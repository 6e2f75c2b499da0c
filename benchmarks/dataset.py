"""``explain_dataset`` against a bare loop of ``explain()`` calls, its peak memory, and Ray's overhead.

    python -m benchmarks.dataset [--samples 10000] [--batch 64] [--repeats 7] [--threads 2]
                                 [--memory 2000,10000] [--ray] [--quick] [--json benchmarks/results_dataset.json]

* **throughput**: the digits CNN (1x8x8, the demo's), ``lrp_epsilon_0_1``, CPU. The bare loop explains
  in-memory batches with one ``explain()`` call each and keeps nothing; ``explain_dataset`` reads the
  samples from a ``.npy`` file on disk, explains them (one :class:`composer.Explainer` for the job: the
  set-up that each ``explain()`` call repeats is done once; the logits come from the same forward
  pass) and writes maps, logits, targets and predictions to a zarr store. A second baseline, the bare
  loop over one ``Explainer``, shows what the reading and writing cost. Whole passes over the samples
  alternate between the three (``--repeats`` each); the ratios of the medians and of the fastest
  passes are the figures.
* **peak memory**: a fresh process per dataset size writes a store from a ``.npy`` file; the figure
  is the largest resident set sampled during the run (every 5 ms) minus the resident set before it.
* **Ray** (``--ray``): the same store through a local Ray with 2 one-CPU actors; ``ray.init`` timed apart.

``--quick`` (a few hundred samples, one repeat) checks only that the script runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

METHOD = "lrp_epsilon_0_1"


def digits_data(samples: int, seed: int = 0) -> np.ndarray:
    """``samples`` digit-like images: scikit-learn's digits repeated, with a little noise (float32, 1x8x8)."""
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32)[:, None] / 16.0
    rng = np.random.default_rng(seed)
    x = images[np.arange(samples) % len(images)]
    return np.clip(x + rng.normal(0, 0.05, x.shape).astype(np.float32), 0, 1)


def model():
    from composer.demo import digits_cnn

    torch.manual_seed(0)
    return digits_cnn().eval()


def bare_loop(net, x: torch.Tensor, batch: int) -> float:
    import composer

    start = time.perf_counter()
    for b in x.split(batch):
        composer.explain(net, b, METHOD)
    return time.perf_counter() - start


def bare_session_loop(net, x: torch.Tensor, batch: int) -> float:
    import composer

    start = time.perf_counter()
    with composer.Explainer(net, METHOD) as explainer:
        for b in x.split(batch):
            explainer(b)
    return time.perf_counter() - start


def to_store(net, npy: Path, out: Path, batch: int, **kwargs) -> float:
    import composer

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    store = composer.explain_dataset(net, npy, METHOD, out, batch_size=batch, progress=False, **kwargs)
    seconds = time.perf_counter() - start
    assert store.complete
    return seconds


def per_batch_costs(net, folder: Path, xt: torch.Tensor, batch: int, calls: int) -> dict:
    """Each part of a batch's cost, the fastest of ``calls`` calls (robust to other load on the machine):
    ``explain()``, explain_dataset's ``compute_chunk`` (explain, logits, numpy copies), reading the
    batch from the ``.npy`` file and writing it to the store (maps at once, the rest per group)."""
    from composer.dataset.compute import ChunkJob, compute_chunk
    from composer.dataset.sources import NpySource
    from composer.dataset.store import StoreWriter, group_size, open_for_writing

    import composer

    def fastest(fn) -> float:
        best = float("inf")
        for i in range(calls):
            start = time.perf_counter()
            fn(i)
            best = min(best, time.perf_counter() - start)
        return 1000 * best

    x = xt[:batch]
    src = NpySource(folder / "x.npy")
    n = len(src) // batch
    rows, job = slice(0, batch), ChunkJob(METHOD)
    with job.explainer(net) as explainer:   # as explain_dataset does: one set-up for every batch
        arrays = compute_chunk(explainer, job, 0, rows, x, None, list(range(batch)))
        parts = {"explain": lambda i: composer.explain(net, x, METHOD),
                 "compute_chunk": lambda i: compute_chunk(explainer, job, 0, rows, x, None, list(range(batch))),
                 "read": lambda i: src.read(range((i % n) * batch, (i % n + 1) * batch))}
        best = {name: float("inf") for name in parts}
        for i in range(calls):   # interleaved, so that every part sees the same moments of the machine's load
            for name, fn in parts.items():
                start = time.perf_counter()
                fn(i)
                best[name] = min(best[name], time.perf_counter() - start)
    out = {name: 1000 * value for name, value in best.items()}
    k = group_size(arrays["maps"].nbytes)    # batches per store chunk
    writer = StoreWriter(open_for_writing(folder / "costs.zarr", {"samples": 6 * k * batch, "batch_size": batch,
                                                                  "format": 1}, overwrite=True))

    def write_group(i):   # the k batches of one store chunk, and the write of the chunk
        for c in range(i * k, (i + 1) * k):
            writer.write(c, arrays)

    calls, out["calls"], out["batches_per_store_chunk"] = 5, calls, k
    out["write"] = fastest(write_group) / k
    writer.close()
    return out


def rss_mb() -> float:
    """The process's resident set now (Linux), MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class RssSampler:
    """The largest resident set seen while the ``with`` block runs (sampled every 5 ms in a thread)."""

    def __enter__(self):
        import threading

        self.peak, self.stop = rss_mb(), threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss_mb())


def memory_child(samples: int, batch: int, threads: int) -> None:
    """Run in a fresh process: print the resident set before and its peak while writing a store (MB)."""
    torch.set_num_threads(threads)
    import composer

    folder = Path(tempfile.mkdtemp())
    np.save(folder / "x.npy", digits_data(samples))
    net = model()
    composer.explain_dataset(net, folder / "x.npy", METHOD, folder / "warm.zarr", batch_size=batch,
                             indices=range(batch), progress=False)   # imports, caches, zarr: before the baseline
    before = rss_mb()
    with RssSampler() as sampler:
        composer.explain_dataset(net, folder / "x.npy", METHOD, folder / "s.zarr", batch_size=batch, progress=False)
    print(json.dumps({"samples": samples, "before_mb": before, "peak_mb": sampler.peak,
                      "growth_mb": sampler.peak - before}))
    shutil.rmtree(folder, ignore_errors=True)


def peak_memory(samples: int, batch: int, threads: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    out = subprocess.run([sys.executable, "-m", "benchmarks.dataset", "--memory-child", str(samples),
                          "--batch", str(batch), "--threads", str(threads)], capture_output=True, text=True,
                         env=env, cwd=Path(__file__).resolve().parents[1])
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def ray_overhead(net, npy: Path, folder: Path, batch: int) -> dict:
    """A local Ray with 2 one-CPU actors against the local backend, timed back to back (local, Ray, Ray,
    local); ``ray.init`` apart. The first Ray run starts the actors' worker processes."""
    import ray

    before = to_store(net, npy, folder / "local.zarr", batch)
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    init = time.perf_counter() - start
    try:
        first = to_store(net, npy, folder / "ray.zarr", batch, backend="ray", workers=2)
        second = to_store(net, npy, folder / "ray.zarr", batch, backend="ray", workers=2)
    finally:
        ray.shutdown()
    after = to_store(net, npy, folder / "local.zarr", batch)
    local = (before + after) / 2
    return {"init_s": init, "first_run_s": first, "second_run_s": second, "local_s": [before, after],
            "ratio_to_local": second / local}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7, help="passes over the samples, each way")
    ap.add_argument("--batch-repeats", type=int, default=300, help="calls per figure of the per-batch costs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory", default="2000,10000", help="dataset sizes for peak memory ('' for none)")
    ap.add_argument("--ray", action="store_true", help="also time the Ray backend (needs ray[data])")
    ap.add_argument("--quick", action="store_true", help="a few hundred samples, one repeat (CI)")
    ap.add_argument("--json", default="benchmarks/results_dataset.json")
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.memory_child is not None:
        return memory_child(args.memory_child, args.batch, args.threads)
    if args.quick:
        args.samples, args.repeats, args.memory = 256, 1, "256"
    torch.set_num_threads(args.threads)
    folder = Path(tempfile.mkdtemp())
    x = digits_data(args.samples)
    np.save(folder / "x.npy", x)
    net = model()
    xt = torch.from_numpy(x)
    bare_loop(net, xt[:args.batch * 2], args.batch)          # warm-up: twin, plan, zarr import
    to_store(net, folder / "x.npy", folder / "warm.zarr", args.batch)
    loops, sessions, stores = [], [], []
    for _ in range(args.repeats):   # whole passes, alternating
        loops.append(bare_loop(net, xt, args.batch))
        stores.append(to_store(net, folder / "x.npy", folder / "s.zarr", args.batch))
        sessions.append(bare_session_loop(net, xt, args.batch))
    result = {"samples": args.samples, "batch": args.batch, "threads": args.threads, "method": METHOD,
              "torch": torch.__version__, "loops": loops, "session_loops": sessions, "stores": stores,
              "loop_samples_per_s": args.samples / min(loops), "store_samples_per_s": args.samples / min(stores),
              "session_loop_samples_per_s": args.samples / min(sessions),
              "throughput_ratio_fastest": min(loops) / min(stores),
              "throughput_ratio_medians": statistics.median(loops) / statistics.median(stores),
              "session_ratio_medians": statistics.median(sessions) / statistics.median(stores),
              "store_mb": sum(p.stat().st_size for p in (folder / "s.zarr").rglob("*") if p.is_file()) / 2**20,
              "per_batch_ms": per_batch_costs(net, folder, xt, args.batch, 30 if args.quick else args.batch_repeats)}
    c = result["per_batch_ms"]
    result["throughput_ratio_per_batch"] = c["explain"] / (c["compute_chunk"] + c["read"] + c["write"])
    print(f"whole passes over {args.samples} samples (fastest of {args.repeats}): bare explain() loop "
          f"{result['loop_samples_per_s']:.0f} samples/s, explain_dataset {result['store_samples_per_s']:.0f} "
          f"samples/s, ratio {result['throughput_ratio_fastest']:.3f} (medians {result['throughput_ratio_medians']:.3f}); "
          f"store {result['store_mb']:.1f} MB; against a bare loop over one Explainer "
          f"({result['session_loop_samples_per_s']:.0f} samples/s): medians {result['session_ratio_medians']:.3f}")
    print("per batch of {} (fastest of {} calls): explain {explain:.2f} ms; explain_dataset's compute_chunk "
          "{compute_chunk:.2f} ms, read {read:.2f} ms, write {write:.2f} ms -> throughput ratio {ratio:.3f} "
          "with no overlap of writing and computing".format(args.batch, c["calls"], ratio=result[
              "throughput_ratio_per_batch"], **c))
    result["memory"] = [peak_memory(int(n), args.batch, args.threads) for n in args.memory.split(",") if n]
    for m in result["memory"]:
        print(f"peak memory growth writing {m['samples']} samples: {m['growth_mb']:.1f} MB "
              f"(resident set {m['before_mb']:.0f} -> {m['peak_mb']:.0f} MB)")
    if args.ray:
        result["ray"] = ray_overhead(net, folder / "x.npy", folder, args.batch)
        r = result["ray"]
        print(f"Ray (local, 2 one-CPU actors): ray.init {r['init_s']:.1f} s, first run {r['first_run_s']:.1f} s, "
              f"second run {r['second_run_s']:.1f} s vs local {r['local_s'][0]:.1f} and {r['local_s'][1]:.1f} s "
              f"(x{r['ratio_to_local']:.2f})")
    shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
