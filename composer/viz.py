"""Heatmaps for images, relevance over time for 1-D signals, spectra and time-frequency maps (matplotlib).

Relevance is signed: red is evidence for the target class, blue against it. Maps are normalised
symmetrically (divided by their largest absolute value), so zero is always the centre colour.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import numpy as np

from .extras import optional_import

ArrayLike = Union[np.ndarray, "torch.Tensor"]  # noqa: F821


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float64)


def normalize_symmetric(relevance: ArrayLike) -> np.ndarray:
    """Divide by the largest absolute value, so the map lies in [-1, 1] with 0 kept at 0.

    Example
    -------
    >>> normalize_symmetric(np.array([-2.0, 1.0])).tolist()
    [-1.0, 0.5]
    """
    r = _numpy(relevance)
    peak = np.abs(r).max()
    return r / peak if peak > 0 else np.zeros_like(r)


def to_2d(relevance: ArrayLike) -> np.ndarray:
    """A (C, H, W) or (H, W) map as (H, W): channels are summed.

    Example
    -------
    >>> to_2d(np.ones((3, 2, 2))).tolist()
    [[3.0, 3.0], [3.0, 3.0]]
    """
    r = _numpy(relevance)
    if r.ndim == 3:
        r = r.sum(0)
    if r.ndim != 2:
        raise ValueError(f"expected a (C, H, W) or (H, W) map, got shape {r.shape}")
    return r


def heatmap(relevance: ArrayLike, cmap: str = "bwr") -> np.ndarray:
    """RGB image (H, W, 3) in [0, 1] of a relevance map, signed colours centred on zero.

    Example
    -------
    >>> heatmap(np.array([[-1.0, 0.0, 1.0]])).shape
    (1, 3, 3)
    """
    matplotlib = optional_import("matplotlib", "drawing heatmaps")

    r = normalize_symmetric(to_2d(relevance))
    return matplotlib.colormaps[cmap]((r + 1) / 2)[..., :3]


def overlay(relevance: ArrayLike, image: ArrayLike, alpha: float = 0.6, cmap: str = "bwr") -> np.ndarray:
    """The heatmap blended over a greyscale version of ``image`` ((C, H, W) or (H, W)).

    Example
    -------
    >>> overlay(np.ones((4, 4)), np.zeros((3, 4, 4))).shape
    (4, 4, 3)
    """
    img = _numpy(image)
    grey = img.mean(0) if img.ndim == 3 else img
    span = grey.max() - grey.min()
    grey = (grey - grey.min()) / span if span > 0 else np.zeros_like(grey)
    return (1 - alpha) * grey[..., None] + alpha * heatmap(relevance, cmap)


def save_heatmap(path: Union[str, Path], relevance: ArrayLike, image: Optional[ArrayLike] = None,
                 title: Optional[str] = None) -> Path:
    """Write one heatmap (or, for a 1-D signal, relevance over time) to a PNG file.

    Example
    -------
    >>> import tempfile, os
    >>> p = save_heatmap(os.path.join(tempfile.mkdtemp(), "h.png"), np.random.randn(3, 8, 8))
    >>> p.exists()
    True
    """
    matplotlib = optional_import("matplotlib", "drawing heatmaps")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    r = _numpy(relevance)
    fig, ax = plt.subplots(figsize=(4, 4) if r.ndim >= 2 and r.shape[-2] > 1 else (8, 2.5))
    if r.ndim == 1 or (r.ndim == 2 and r.shape[0] == 1 and image is not None and _numpy(image).ndim <= 2):
        plot_timeseries(ax, _numpy(image).reshape(-1) if image is not None else None, r.reshape(-1))
    else:
        ax.imshow(overlay(r, image) if image is not None else heatmap(r), interpolation="nearest")
        ax.axis("off")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_timeseries(ax, signal: Optional[ArrayLike], relevance: ArrayLike, cmap: str = "bwr"):
    """Draw a 1-D signal coloured by its relevance (or the relevance itself if no signal)."""
    r = normalize_symmetric(_numpy(relevance).reshape(-1))
    t = np.arange(len(r))
    y = _numpy(signal).reshape(-1) if signal is not None else r
    ax.plot(t, y, color="0.7", linewidth=0.8, zorder=1)
    ax.scatter(t, y, c=r, cmap=cmap, vmin=-1, vmax=1, s=6, zorder=2)
    ax.set_xlabel("time")
    return ax


def gallery(path: Union[str, Path], images: ArrayLike, maps: Dict[str, ArrayLike],
            row_titles: Optional[Sequence[str]] = None, dpi: int = 110) -> Path:
    """One PNG: a row per sample, the input then one column per method.

    Example
    -------
    >>> import tempfile, os
    >>> x = np.random.rand(2, 1, 8, 8)
    >>> gallery(os.path.join(tempfile.mkdtemp(), "g.png"), x, {"a": x, "b": -x}).exists()
    True
    """
    matplotlib = optional_import("matplotlib", "drawing heatmaps")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    imgs = _numpy(images)
    n, cols = imgs.shape[0], len(maps) + 1
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.6 * n + 0.4), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(to_2d(imgs[i]), cmap="gray", interpolation="nearest")
        axes[i, 0].set_ylabel(row_titles[i] if row_titles else "", fontsize=8)
        for j, (name, m) in enumerate(maps.items(), start=1):
            axes[i, j].imshow(heatmap(_numpy(m)[i]), interpolation="nearest")
            if i == 0:
                axes[i, j].set_title(name, fontsize=6)
        if i == 0:
            axes[i, 0].set_title("input", fontsize=7)
        for ax in axes[i]:
            ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def _signed_bars(ax, x: np.ndarray, r: np.ndarray, width: float, cmap: str = "bwr"):
    """Bars coloured by sign and size (the heatmaps' colours), centred on zero."""
    matplotlib = optional_import("matplotlib", "drawing spectra")
    colours = matplotlib.colormaps[cmap]((normalize_symmetric(r) + 1) / 2)
    ax.bar(x, r, width=width, color=colours, edgecolor="none")
    ax.axhline(0.0, color="0.5", linewidth=0.6)


def plot_spectrum(ax, frequencies: ArrayLike, relevance: ArrayLike, magnitude: Optional[ArrayLike] = None,
                  max_frequency: Optional[float] = None, unit: str = "cycles/sample"):
    """Draw signed relevance per frequency bin as bars (red for, blue against the target), with the
    signal's magnitude spectrum as a grey line on a second axis when given.

    Example
    -------
    >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_spectrum(ax, np.arange(5) / 8, np.array([0.0, 1.0, -0.5, 0.0, 0.1]), np.ones(5))
    >>> len(ax.patches), ax.get_xlabel()
    (5, 'frequency (cycles/sample)')
    >>> plt.close(fig)
    """
    f = _numpy(frequencies).reshape(-1)
    r = _numpy(relevance).reshape(-1)
    keep = f <= max_frequency if max_frequency is not None else np.ones_like(f, dtype=bool)
    step = f[1] - f[0] if len(f) > 1 else 1.0
    if magnitude is not None:
        twin = ax.twinx()
        twin.plot(f[keep], _numpy(magnitude).reshape(-1)[keep], color="0.6", linewidth=0.8)
        twin.set_ylabel("|signal|", color="0.5")
        twin.set_ylim(bottom=0)
        ax.set_zorder(twin.get_zorder() + 1)
        ax.patch.set_visible(False)
    _signed_bars(ax, f[keep], r[keep], width=0.9 * step)
    ax.set_xlabel(f"frequency ({unit})")
    ax.set_ylabel("relevance")
    return ax


def plot_time_frequency(ax, relevance: ArrayLike, frequencies: ArrayLike, window_starts: ArrayLike,
                        window_width: int, max_frequency: Optional[float] = None, unit: str = "cycles/sample",
                        cmap: str = "bwr"):
    """Draw relevance per (window, frequency bin) as a heatmap: time (window centres, in samples)
    across, frequency up, signed colours centred on zero.

    Example
    -------
    >>> import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots()
    >>> ax = plot_time_frequency(ax, np.random.randn(4, 9), np.arange(9) / 16, np.arange(4) * 4, 4)
    >>> ax.images[0].get_array().shape
    (9, 4)
    >>> plt.close(fig)
    """
    f = _numpy(frequencies).reshape(-1)
    r = _numpy(relevance)
    if r.ndim != 2:
        raise ValueError(f"expected a (windows, bins) map, got shape {r.shape}")
    keep = f <= max_frequency if max_frequency is not None else np.ones_like(f, dtype=bool)
    starts = _numpy(window_starts).reshape(-1)
    hop = starts[1] - starts[0] if len(starts) > 1 else window_width
    step = f[1] - f[0] if len(f) > 1 else 1.0
    centres = starts + window_width / 2
    extent = (centres[0] - hop / 2, centres[-1] + hop / 2, f[keep][0] - step / 2, f[keep][-1] + step / 2)
    ax.imshow(normalize_symmetric(r[:, keep]).T, origin="lower", aspect="auto", cmap=cmap, vmin=-1, vmax=1,
              extent=extent, interpolation="nearest")
    ax.set_xlabel("time (window centre)")
    ax.set_ylabel(f"frequency ({unit})")
    return ax


def save_domain_figure(path: Union[str, Path], explanation, index: int = 0, title: Optional[str] = None,
                       max_frequency: Optional[float] = None) -> Path:
    """One PNG for sample ``index`` of a :class:`~composer.frequency.DomainExplanation`: the time-domain
    map over the signal, and beneath it the spectrum (relevance per frequency) or the time-frequency
    heatmap. Channels are summed (the signal shown is their mean).

    Example
    -------
    >>> import tempfile, os, torch
    >>> from composer.frequency import to_domain
    >>> x = torch.randn(2, 1, 64)
    >>> e = to_domain(x, x * 0.5, {"kind": "time_frequency", "window_width": 16})
    >>> save_domain_figure(os.path.join(tempfile.mkdtemp(), "tf.png"), e, index=1).exists()
    True
    """
    matplotlib = optional_import("matplotlib", "drawing spectra")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    spec = explanation.spec
    unit = "Hz" if spec.sample_rate else "cycles/sample"
    signal, time_map = explanation.time_signal[index], explanation.time_relevance[index]
    signal = signal.reshape(-1, signal.shape[-1]).mean(0)
    time_map = time_map.reshape(-1, time_map.shape[-1]).sum(0)
    rel = explanation.relevance[index]
    signal_hat = explanation.signal[index]
    if explanation.kind == "time_frequency":
        rel = rel.reshape(-1, *rel.shape[-2:]).sum(0)
    else:
        rel = rel.reshape(-1, rel.shape[-1]).sum(0)
        signal_hat = signal_hat.reshape(-1, signal_hat.shape[-1]).abs().mean(0)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5.2), gridspec_kw={"height_ratios": [1, 1.3]})
    plot_timeseries(top, signal, time_map)
    top.set_title(title or "relevance over time", fontsize=9)
    if explanation.kind == "time_frequency":
        plot_time_frequency(bottom, rel, explanation.frequencies, explanation.window_starts, spec.window_width,
                            max_frequency, unit)
        bottom.set_title(f"relevance per time and frequency ({spec.window} windows of {spec.window_width}, "
                         f"shift {spec.shift})", fontsize=9)
        bottom.set_xlim(top.get_xlim())
    else:
        plot_spectrum(bottom, explanation.frequencies, rel, signal_hat, max_frequency, unit)
        bottom.set_title("relevance per frequency (bars), signal magnitude (grey)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def token_colors(relevance: ArrayLike) -> np.ndarray:
    """``(tokens, 4)`` RGBA: red for positive, blue for negative relevance, opacity ``|r| / max |r|``.

    Example
    -------
    >>> token_colors([2.0, -1.0, 0.0]).round(2).tolist()
    [[1.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.5], [1.0, 0.0, 0.0, 0.0]]
    """
    r = normalize_symmetric(np.asarray(_numpy(relevance)).reshape(-1))
    rgba = np.zeros((r.size, 4))
    rgba[:, 0], rgba[:, 2], rgba[:, 3] = r >= 0, r < 0, np.abs(r)
    return rgba


def token_html(tokens: Sequence[str], relevance: ArrayLike) -> str:
    """The tokens as HTML, each on a red (for the target) or blue (against) background; the title shows the
    relevance. Token text is escaped.

    Example
    -------
    >>> token_html(["a", "<b>"], [1.0, -0.5])
    '<span style="background:rgba(255,0,0,1.00)" title="1">a</span><span style="background:rgba(0,0,255,0.50)" title="-0.5">&lt;b&gt;</span>'
    """
    import html

    values = _numpy(relevance).reshape(-1)
    if len(tokens) != values.size:
        raise ValueError(f"{len(tokens)} tokens but {values.size} relevance values")
    return "".join(
        f'<span style="background:rgba({int(255 * c[0])},0,{int(255 * c[2])},{c[3]:.2f})" title="{v:.4g}">'
        f"{html.escape(t)}</span>" for t, v, c in zip(tokens, values, token_colors(values)))


def save_token_heatmap(path: Union[str, Path], tokens: Sequence[str], relevance: ArrayLike,
                       title: Optional[str] = None, width: float = 8.0) -> Path:
    """A PNG (or any matplotlib format) of the tokens on red / blue boxes, wrapped to ``width`` inches.

    Example
    -------
    >>> import tempfile, os
    >>> out = save_token_heatmap(os.path.join(tempfile.mkdtemp(), "t.png"), ["The", " cat"], [0.5, -1.0])
    >>> out.suffix
    '.png'
    """
    plt = optional_import("matplotlib.pyplot", "saving a token heatmap")
    values = _numpy(relevance).reshape(-1)
    if len(tokens) != values.size:
        raise ValueError(f"{len(tokens)} tokens but {values.size} relevance values")
    colors, line_height, char = token_colors(values), 0.3, 0.095
    x, y, boxes = 0.0, 0.0, []
    for token, color in zip(tokens, colors):   # monospace layout: a token is as wide as its characters
        text = token.replace("\n", "\\n") or " "
        if x > 0 and x + char * len(text) > width:
            x, y = 0.0, y + line_height
        boxes.append((x, y, text, color))
        x += char * len(text) + 0.02
    fig = plt.figure(figsize=(width + 0.2, (y + line_height) + 0.4 + (0.3 if title else 0)))
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-0.1, width + 0.1)
    ax.set_ylim(y + line_height + 0.1, -0.3 if title else -0.1)
    ax.axis("off")
    if title:
        ax.text(0, -0.2, title, fontsize=9, va="center")
    for bx, by, text, color in boxes:
        ax.text(bx, by + line_height / 2, text, family="monospace", fontsize=10, va="center",
                bbox=dict(boxstyle="square,pad=0.1", facecolor=tuple(color), edgecolor="none"))
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
