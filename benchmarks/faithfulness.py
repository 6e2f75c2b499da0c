"""Faithfulness evaluation speed: 5 methods on 1,000 digits, 20 perturbation steps, MoRF and LeRF.

    python -m benchmarks.faithfulness [--samples 1000] [--steps 20] [--patch 1] [--device cuda]
                                      [--loop-samples 20] [--json benchmarks/results_faithfulness.json]

One run measures, on the demo's digits CNN (1x8x8 inputs):

* ``composer.evaluate`` end to end (explaining + perturbing), and its perturbation part alone
  (``perturbation_curves`` on precomputed maps: 2 x (steps + 1) x samples forward passes, batched);
* the same number of forward passes of unperturbed inputs in the same batches (the floor: the ratio
  shows what building the perturbed inputs costs on top);
* the same curves computed by a per-sample, per-step Python loop (one forward per perturbed input, what
  a direct transcription of the definition does) on ``--loop-samples`` samples, scaled to ``--samples``;
  the ratio is the batching's gain. Both give the same curves (checked).

Not a test; the figures are quoted in README.md and docs/evaluation.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

METHODS = ("gradient", "gradient_x_input", "integrated_gradients", "lrp_epsilon_0_1", "lrpz_sequential_composite_a")


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def loop_curves(model, x, relevance, target, steps, perturbation="baseline:0", patch=1):
    """The definition, one sample and one step at a time (the reference for speed and values)."""
    from composer.evaluation.perturb import ranks, region_ids, region_scores, replacement, spatial_shape, step_counts

    ids, n = region_ids(spatial_shape(x), patch, device=x.device)
    counts = step_counts(n, steps)
    x_tilde = replacement(x, perturbation)
    out = {}
    with torch.no_grad():
        for order in ("morf", "lerf"):
            rank = ranks(region_scores(relevance, ids, n), order)
            rows = []
            for i in range(x.shape[0]):
                row = []
                for c in counts.tolist():
                    mask = (rank[i] < c)[ids].view(1, *spatial_shape(x))
                    xi = torch.where(mask, x_tilde[i], x[i])
                    row.append(model(xi[None])[0, target[i]].item())
                rows.append(row)
            out[order] = torch.tensor(rows, dtype=x.dtype)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--patch", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--loop-samples", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="benchmarks/results_faithfulness.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from composer.demo import load_digits, train_digits_cnn
    from composer import explain
    from composer.evaluation import evaluate, perturbation_curves

    model = train_digits_cnn().to(args.device)
    x_train, _, x_test, _ = load_digits()
    x = torch.cat([x_test, x_train])[:args.samples].to(args.device)
    settings = dict(steps=args.steps, patch=args.patch, perturbation="baseline:0")
    evaluate(model, x[:32], list(METHODS), **settings)                       # warm-up (compile, canonize)
    _sync(args.device)
    start = time.perf_counter()
    ev = evaluate(model, x, list(METHODS), **settings)
    _sync(args.device)
    total = time.perf_counter() - start

    target = model(x).argmax(1)
    maps = {m: explain(model, x, m, target=target) for m in METHODS}
    _sync(args.device)
    start = time.perf_counter()
    for m in METHODS:
        perturbation_curves(model, x, maps[m], target, **settings)
    _sync(args.device)
    batched = time.perf_counter() - start

    # the same number of forward passes on unperturbed copies, in the same batches: the floor for any method
    chunk = max(1, 1024 // (args.steps + 1))
    with torch.no_grad():
        start = time.perf_counter()
        for _ in range(2 * len(METHODS)):
            for i in range(0, x.shape[0], chunk):
                model(x[i:i + chunk].repeat_interleave(args.steps + 1, 0))
        _sync(args.device)
    plain = time.perf_counter() - start

    k = min(args.loop_samples, args.samples)
    start = time.perf_counter()
    looped = {m: loop_curves(model, x[:k], maps[m][:k], target[:k], args.steps, patch=args.patch) for m in METHODS}
    _sync(args.device)
    loop = (time.perf_counter() - start) * args.samples / k
    for m in METHODS:
        for order in ("morf", "lerf"):
            torch.testing.assert_close(looped[m][order], ev.curves[m][order][:k].cpu().to(looped[m][order].dtype),
                                       rtol=1e-4, atol=1e-4)
    forwards = 2 * (args.steps + 1) * args.samples * len(METHODS)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}",
        "device": args.device, "samples": args.samples, "steps": args.steps, "patch": args.patch,
        "methods": list(METHODS), "perturbed_forwards": forwards,
        "evaluate_s": round(total, 3), "perturbation_s": round(batched, 3), "plain_forwards_s": round(plain, 3),
        "perturbation_over_plain_forwards": round(batched / plain, 2),
        "per_sample_loop_s (scaled)": round(loop, 2), "loop_over_batched": round(loop / batched, 1),
        "srg": {m: round(s, 3) for m, s in ev.ranked("srg")},
    }
    print(json.dumps(result, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
