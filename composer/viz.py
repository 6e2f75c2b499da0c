"""Heatmaps for images and relevance over time for 1-D signals (matplotlib).

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
