"""Peak memory of one method call, measured in a fresh process (CPU: peak RSS growth; CUDA: allocator peak).

    python -m benchmarks.memory MODEL BATCH METHOD [--quick] [--device cuda]   -> prints bytes
"""
import argparse
import sys

import torch


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    """Linux: writing 5 to clear_refs resets the peak resident set (VmHWM) to the current one."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def measure(model_name: str, batch: int, method: str, quick: bool, device: str) -> int:
    from benchmarks.methods import COMPOSER_METHODS, ZENNIT, composer_method, plain_gradient
    from benchmarks.models import build

    torch.set_num_threads(2)
    model, shape, canonizers = build(model_name, quick)
    model = model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)  # as composer runs it: the baseline does not compute weight gradients either
    x = torch.randn(batch, *shape, device=device)
    target = torch.zeros(batch, dtype=torch.long, device=device)
    fn = plain_gradient if method == "gradient" else ZENNIT.get(method) or composer_method(method, canonizers)
    assert method == "gradient" or method in ZENNIT or method in COMPOSER_METHODS
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        fn(model, x, target)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    fn(model, x, target)  # warm-up: thread pools and allocator caches are not the method's memory
    import gc

    gc.collect()
    _reset_peak()
    before = _status_bytes("VmRSS")
    fn(model, x, target)
    return max(_status_bytes("VmHWM") - before, 0)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("model"), ap.add_argument("batch", type=int), ap.add_argument("method")
    ap.add_argument("--quick", action="store_true"), ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    print(measure(args.model, args.batch, args.method, args.quick, args.device))
    sys.stdout.flush()
