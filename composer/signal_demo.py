"""A time-series demo: a tiny 1-D CNN learns which of two tone bursts a noisy signal holds, and DFT-LRP
shows where its relevance lies in time, in frequency and in both.

Every signal carries a continuous *distractor* tone (same frequency in both classes) and a burst
of its class's tone at a random time: class 0 a low tone, class 1 a high one. A model that solved
the task should put its frequency relevance on its class's tone, none on the distractor, and its
time-frequency relevance on the burst. Synthetic, seeded, no downloads; training takes a few seconds.

    python -m composer.signal_demo docs/img      # writes the pictures of docs/timeseries.md
"""
from __future__ import annotations

import math
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from .explain import explain

LENGTH = 256
#: tone frequencies in cycles per signal (DFT bins of a 256-sample signal)
CLASS_TONES = (12, 40)
DISTRACTOR = 24
BURST = 96


def two_tone_signals(n: int, seed: int = 0, length: int = LENGTH) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(x, y)``: ``n`` signals ``(n, 1, length)`` and their classes; a distractor tone everywhere, a
    Hann-shaped burst of the class's tone at a random time, Gaussian noise.

    Example
    -------
    >>> x, y = two_tone_signals(4)
    >>> tuple(x.shape), y.tolist()
    ((4, 1, 256), [0, 1, 1, 0])
    """
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length, dtype=torch.float32)
    y = torch.randint(0, 2, (n,), generator=g)
    phase = lambda: 2 * math.pi * torch.rand(n, 1, generator=g)  # noqa: E731
    amplitude = 0.6 + 0.4 * torch.rand(n, 1, generator=g)
    distractor = amplitude * torch.cos(2 * math.pi * DISTRACTOR * t / length + phase())
    tone = torch.tensor(CLASS_TONES, dtype=torch.float32)[y][:, None]
    start = torch.randint(0, length - BURST + 1, (n, 1), generator=g)
    inside = ((t >= start) & (t < start + BURST)).float()
    envelope = inside * torch.sin(math.pi * (t - start).clamp(0, BURST) / BURST) ** 2
    burst = envelope * torch.cos(2 * math.pi * tone * t / length + phase())
    noise = 0.3 * torch.randn(n, length, generator=g)
    return (distractor + burst + noise)[:, None], y


def signal_cnn() -> nn.Sequential:
    """The demo's 1-D CNN for ``(batch, 1, 256)`` signals, two classes.

    Example
    -------
    >>> signal_cnn()(torch.zeros(3, 1, 256)).shape
    torch.Size([3, 2])
    """
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv1d(1, 8, 15, padding=7)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool1d(2)),
        ("conv2", nn.Conv1d(8, 16, 9, padding=4)), ("relu2", nn.ReLU()), ("pool2", nn.AdaptiveAvgPool1d(1)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(16, 2)),
    ]))


def train_signal_cnn(steps: int = 300, seed: int = 0) -> Tuple[nn.Module, float]:
    """Train :func:`signal_cnn` on fresh two-tone signals; returns the model (eval mode) and its accuracy
    on 512 held-out signals.

    Example
    -------
    >>> model, accuracy = train_signal_cnn(steps=2)
    >>> 0.0 <= accuracy <= 1.0
    True
    """
    torch.manual_seed(seed)
    model = signal_cnn()
    x, y = two_tone_signals(64 * steps, seed=seed + 1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for i in range(steps):
        batch = slice(64 * i, 64 * (i + 1))
        loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    xt, yt = two_tone_signals(512, seed=seed + 2)
    with torch.no_grad():
        accuracy = (model(xt).argmax(1) == yt).float().mean().item()
    return model, accuracy


def band_shares(explanation, index: int, bins: Dict[str, int], half_width: int = 2) -> Dict[str, float]:
    """Each named band's share (``bin +- half_width``) of sample ``index``'s absolute frequency relevance.

    Example
    -------
    >>> x, _ = two_tone_signals(1)
    >>> from composer.frequency import to_domain
    >>> round(sum(band_shares(to_domain(x, x * x, "frequency"), 0, {"all": 64}, 64).values()), 6)
    1.0
    """
    rel = explanation.relevance[index].reshape(-1, explanation.relevance.shape[-1]).sum(0).abs()
    total = rel.sum().item()
    return {name: rel[max(k - half_width, 0):k + half_width + 1].sum().item() / total for name, k in bins.items()}


def run_signal_demo(out: Path, method: str = "lrp_epsilon_0_1", steps: int = 300, seed: int = 0,
                    classes: Sequence[int] = (0, 1), n_test: int = 256) -> dict:
    """Train the CNN, explain a test signal of each of ``classes`` with ``method`` and write, per class,
    the time map with the spectrum (``timeseries_frequency_<c>.png``) and with the time-frequency
    heatmap (``timeseries_time_frequency_<c>.png``). Returns the accuracy and, over ``n_test`` test
    signals, the mean share of frequency relevance on the class tone and on the distractor.

    Example
    -------
    >>> import tempfile
    >>> result = run_signal_demo(Path(tempfile.mkdtemp()), steps=2, classes=(1,), n_test=8)
    >>> sorted(result), len(result["pictures"])
    (['accuracy', 'distractor_share', 'pictures', 'tone_share'], 2)
    """
    from .viz import save_domain_figure

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, accuracy = train_signal_cnn(steps, seed)
    x, y = two_tone_signals(n_test, seed=seed + 3)
    freq = explain(model, x, method, target=y, domain="frequency")
    tone = [band_shares(freq, i, {"tone": CLASS_TONES[int(c)], "distractor": DISTRACTOR}) for i, c in enumerate(y)]
    pictures = []
    for c in classes:
        i = int((y == c).nonzero()[0])
        tf = explain(model, x[i:i + 1], method, target=c, domain={"kind": "time_frequency", "window": "halfsine",
                                                                   "window_width": 32, "window_shift": 16})
        name = f"class {c} (tone at {CLASS_TONES[c]} cycles, distractor at {DISTRACTOR}), {method}"
        pictures.append(save_domain_figure(out / f"timeseries_frequency_{c}.png", freq, i, title=name,
                                           max_frequency=0.25))
        pictures.append(save_domain_figure(out / f"timeseries_time_frequency_{c}.png", tf, 0, title=name,
                                           max_frequency=0.25))
    return {"accuracy": accuracy, "tone_share": sum(s["tone"] for s in tone) / len(tone),
            "distractor_share": sum(s["distractor"] for s in tone) / len(tone), "pictures": pictures}


if __name__ == "__main__":  # pragma: no cover - writes the docs' pictures
    torch.set_num_threads(2)
    summary = run_signal_demo(Path(sys.argv[1] if len(sys.argv) > 1 else "composer-out"), classes=(1,))
    print({k: v for k, v in summary.items() if k != "pictures"})
    print("\n".join(map(str, summary["pictures"])))
