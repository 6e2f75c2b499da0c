"""The demo: a small CNN trained on scikit-learn's handwritten digits, explained with a spread of methods.

No downloads: the digits (8x8 images) ship with scikit-learn. Training takes a few seconds on a
CPU and its weights are cached (``~/.cache/composer`` or ``$COMPOSER_CACHE``).
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import torch
from torch import nn

from .explain import explain
from .extras import optional_import

#: the gallery's columns; x_sign is taken about mid-grey (mu = 0.5): digits are >= 0, so plain x_sign
#: (sgn 0 = +1) would equal the gradient
DEMO_METHODS = ("gradient", "gradient_x_sign_mu_0_5", "integrated_gradients", "guided_backprop", "lrp_epsilon_0_1",
                "lrp_alpha_2_beta_1", "lrpz_sequential_composite_a", "lrpsign_epsilon_0_25_std_x_mu_0_5",
                "w2lrp_sequential_composite_b", "grad_cam")


def digits_cnn() -> nn.Sequential:
    """The demo's CNN for 1x8x8 digit images.

    Example
    -------
    >>> digits_cnn()(torch.zeros(2, 1, 8, 8)).shape
    torch.Size([2, 10])
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(1, 16, 3, padding=1)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(16, 32, 3, padding=1)), ("relu2", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(32 * 4 * 4, 64)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(64, 10)),
    ]))


def load_digits(seed: int = 0):
    """(x_train, y_train, x_test, y_test): scikit-learn's digits scaled to [0, 1], a fixed 80/20 split."""
    sk_digits = optional_import("sklearn.datasets", "the digits demo").load_digits

    data = sk_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = int(0.8 * len(x))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def cache_dir() -> Path:
    return Path(os.environ.get("COMPOSER_CACHE", Path.home() / ".cache" / "composer"))


def train_digits_cnn(epochs: int = 12, seed: int = 0, cache: Optional[Path] = None,
                     progress: Optional[Callable[[int, int], None]] = None) -> nn.Sequential:
    """Train (or load from the cache) the demo CNN; returns it in eval mode."""
    cache = Path(cache) if cache is not None else cache_dir()
    path = cache / f"digits_cnn_e{epochs}_s{seed}.pt"
    model = digits_cnn()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    torch.manual_seed(seed)
    x, y, _, _ = load_digits(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            optimizer.step()
        if progress:
            progress(epoch + 1, epochs)
    cache.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


@dataclass
class DemoRow:
    method: str
    seconds: float
    relevance_sum: float
    logit: float


def run_demo(out: Path, n_samples: int = 6, epochs: int = 12, methods=DEMO_METHODS, cache: Optional[Path] = None,
             progress: Optional[Callable[[str, int, int], None]] = None,
             faithfulness_samples: int = 100) -> Dict[str, object]:
    """Train/load the CNN, explain ``n_samples`` test digits with each method, write the gallery; then rank the
    methods by faithfulness (SRG, 2x2 patches replaced by 0 in 8 steps) on ``faithfulness_samples`` other test
    digits and plot their curves (``faithfulness.png``; 0 skips it).

    Returns accuracy, the per-method rows, the maps (method -> tensor), the gallery path, the
    faithfulness evaluation and its plot (None when skipped).
    """
    from .viz import gallery

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = train_digits_cnn(epochs, cache=cache, progress=(lambda i, n: progress("train", i, n)) if progress else None)
    _, _, x_test, y_test = load_digits()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == y_test).float().mean().item()
        x = x_test[:n_samples]
        logits = model(x)
    target = logits.argmax(1)
    maps, rows = {}, []
    for i, method in enumerate(methods):
        start = time.perf_counter()
        relevance = explain(model, x, method, target=target)
        seconds = time.perf_counter() - start
        maps[method] = relevance
        rows.append(DemoRow(method, seconds, relevance.sum().item() / n_samples,
                            logits.gather(1, target[:, None]).mean().item()))
        if progress:
            progress("explain", i + 1, len(methods))
    titles = [f"{int(t)} (label {int(l)})" for t, l in zip(target, y_test[:n_samples])]
    path = gallery(out / "gallery.png", x, maps, row_titles=titles)
    faithful, plot = None, None
    if faithfulness_samples:
        from .evaluation import evaluate
        from .evaluation.plot import plot_curves

        held = x_test[n_samples:n_samples + faithfulness_samples]
        faithful = evaluate(model, held, list(methods), steps=8, patch=2, perturbation="baseline:0",
                            progress=(lambda _, i, n: progress("faithfulness", i, n)) if progress else None)
        plot = plot_curves(faithful, out / "faithfulness.png",
                           title=f"digits CNN: {held.shape[0]} test digits, 2x2 patches set to 0, ranked by SRG")
    return {"accuracy": accuracy, "rows": rows, "maps": maps, "gallery": path, "faithfulness": faithful,
            "faithfulness_plot": plot}
