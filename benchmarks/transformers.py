"""AttnLRP / CP-LRP on a GPT-2 language model: time and peak memory as ratios to a plain input gradient,
beside LXT (the AttnLRP authors' implementation) measured in the same run.

    python -m benchmarks.transformers [--quick] [--tokens 128] [--batch 8] [--repeats 3] [--threads 2]
                                      [--json benchmarks/results_transformers.json]

The model is GPT-2 small's architecture (12 layers, 768 wide, 12 heads, 50257 tokens) with random weights
(``from_config``, nothing downloaded); ``--quick`` uses 2 layers, 64 wide, 32 tokens. Each method runs in a
fresh process (LXT patches classes process-wide): a warm-up call, then the median time of ``--repeats``
calls, each beside a plain gradient in the same process (the time ratio is taken there, so both see the
same load), and the growth of the peak resident set during one call (the ratio to the gradient's process). Every method explains the logit of one next
token per sample at the last position, from the input embeddings:

* ``gradient``: the plain gradient of that logit with respect to the embeddings (weights need no gradient);
* ``attnlrp`` / ``cp_lrp``: ``composer.explain`` (twin borrowed from the pool, coverage check, hooks);
* ``lxt_attnlrp`` / ``lxt_cp_lrp``: LXT's patched model, ``embeddings * gradient``.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("gradient", "attnlrp", "cp_lrp", "lxt_attnlrp", "lxt_cp_lrp")


def _model(quick: bool):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    size = dict(n_layer=2, n_embd=64, n_head=4, vocab_size=1000) if quick else dict(
        n_layer=12, n_embd=768, n_head=12, vocab_size=50257)
    config = GPT2Config(**size, n_positions=1024, attn_implementation="eager", bos_token_id=0, eos_token_id=0)
    model = GPT2LMHeadModel(config).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _plain_gradient(model):
    def gradient(x, target):
        x = x.detach().requires_grad_()
        logits = model(inputs_embeds=x).logits[:, -1]
        return torch.autograd.grad(logits[torch.arange(x.shape[0]), target].sum(), x)[0]
    return gradient


def _method(name: str, model):
    import composer
    from composer.transformers import LogitsAt

    if name in ("attnlrp", "cp_lrp"):
        adapter = LogitsAt(model, -1)

        def run(x, target):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # transformers models are explained with module hooks (a warning)
                return composer.explain(adapter, x, name, target=target)
        return run
    if name.startswith("lxt_"):
        sys.path.insert(0, str(ROOT / "tests"))
        import lxt_reference

        lxt_reference._skip_lxt_bert()
        lxt_reference._patch_hf("gpt2", name[len("lxt_"):])   # process-wide: the plain gradient is gone now
        gradient = _plain_gradient(model)
        return lambda x, target: x.detach() * gradient(x, target)
    return _plain_gradient(model)


def _timed(fn, x, target) -> float:
    start = time.perf_counter()
    fn(x, target)
    return time.perf_counter() - start


def measure(name: str, quick: bool, tokens: int, batch: int, repeats: int, threads: int) -> dict:
    """Median seconds of the method and of the plain gradient in this process (alternating, so both see the
    same load; LXT's patches are process-wide, so for LXT the gradient's repeats come first) and the peak-RSS
    growth (bytes) of one call of the method."""
    from benchmarks.memory import _reset_peak, _status_bytes

    torch.set_num_threads(threads)
    model = _model(quick)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens), generator=generator)
    with torch.no_grad():
        x = model.get_input_embeddings()(ids)
    target = torch.randint(0, model.config.vocab_size, (batch,), generator=generator)
    gradient = _plain_gradient(model)
    gradient(x, target)  # warm-up
    plain = []
    if name.startswith("lxt_"):
        plain = [_timed(gradient, x, target) for _ in range(repeats)]
    fn = _method(name, model)
    fn(x, target)  # warm-up (composer: traces and keeps the twin)
    times = []
    for _ in range(repeats):
        times.append(_timed(fn, x, target))
        if not name.startswith("lxt_"):
            plain.append(_timed(gradient, x, target))
    gc.collect()
    _reset_peak()
    before = _status_bytes("VmRSS")
    fn(x, target)
    return {"seconds": statistics.median(times), "gradient_seconds": statistics.median(plain),
            "peak_bytes": max(_status_bytes("VmHWM") - before, 0)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--tokens", type=int, default=None)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--json", default=None)
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure one method, print JSON
    args = ap.parse_args(argv)
    tokens = args.tokens or (32 if args.quick else 128)
    if args.one:
        print(json.dumps(measure(args.one, args.quick, tokens, args.batch, args.repeats, args.threads)))
        return {}
    rows = {}
    for name in args.methods.split(","):
        cmd = [sys.executable, "-m", "benchmarks.transformers", "--one", name, "--tokens", str(tokens),
               "--batch", str(args.batch), "--repeats", str(args.repeats), "--threads", str(args.threads)]
        env = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
        import os

        done = subprocess.run(cmd + (["--quick"] if args.quick else []), capture_output=True, text=True, cwd=ROOT,
                              env=dict(os.environ, **env))
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
        rows[name] = json.loads(done.stdout.strip().splitlines()[-1])
    base = rows.get("gradient")
    print(f"GPT-2 {'quick' if args.quick else 'small (124M, random weights)'}, {tokens} tokens, batch {args.batch}, "
          f"CPU {args.threads} threads, torch {torch.__version__}")
    print("| method | time (s) | x gradient | peak MB | x gradient memory |\n|---|---|---|---|---|")
    for name, row in rows.items():
        row["time_ratio"] = row["seconds"] / row["gradient_seconds"]   # against the gradient of the same process
        if base:
            row["memory_ratio"] = row["peak_bytes"] / max(base["peak_bytes"], 1)
        print(f"| {name} | {row['seconds']:.3f} | {row.get('time_ratio', float('nan')):.2f} | "
              f"{row['peak_bytes'] / 2**20:.0f} | {row.get('memory_ratio', float('nan')):.2f} |")
    result = {"config": {"quick": args.quick, "tokens": tokens, "batch": args.batch, "threads": args.threads,
                         "repeats": args.repeats, "torch": torch.__version__}, "rows": rows}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
