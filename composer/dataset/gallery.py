"""``composer gallery STORE``: a grid of stored maps, to look at a store without writing code."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from ..errors import ComposerError
from ..extras import optional_import
from .store import Store, open_store


def pick_samples(store: Store, count: int) -> np.ndarray:
    """``count`` rows of the store's complete batches, spread evenly from first to last.

    Example
    -------
    >>> import tempfile, os, torch, composer
    >>> out = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> store = composer.explain_dataset(torch.nn.Linear(4, 2), torch.randn(9, 4), "gradient", out, progress=False)
    >>> pick_samples(store, 3).tolist()
    [0, 4, 8]
    """
    done = store.done()
    rows = np.concatenate([np.arange(store.batch_slice(c).start, store.batch_slice(c).stop)
                           for c in np.flatnonzero(done)] or [np.zeros(0, dtype=np.int64)])
    if rows.size == 0:
        raise ComposerError("the store has no complete batch yet", source=str(store.path))
    if count >= rows.size:
        return rows
    return rows[np.round(np.linspace(0, rows.size - 1, count)).astype(np.int64)]


def store_gallery(store: Union[Store, str, Path], out: Union[str, Path], count: int = 16,
                  rows: Optional[Sequence[int]] = None, columns: Optional[int] = None, dpi: int = 110) -> Path:
    """Write a PNG grid of ``count`` stored maps (or the given ``rows``), titled with the sample's
    index, the class explained and the predicted class. Image maps are drawn as heatmaps (red for,
    blue against), 1-D maps as relevance over time.

    Example
    -------
    >>> import tempfile, os, torch, composer
    >>> folder = tempfile.mkdtemp()
    >>> store = composer.explain_dataset(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3)),
    ...                                  torch.rand(6, 1, 4, 4), "gradient", os.path.join(folder, "s.zarr"),
    ...                                  progress=False)
    >>> store_gallery(store, os.path.join(folder, "g.png"), count=4).exists()
    True
    """
    matplotlib = optional_import("matplotlib", "drawing a gallery")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..viz import heatmap, plot_timeseries

    store = store if isinstance(store, Store) else open_store(store)
    if count < 1:
        raise ComposerError(f"count must be at least 1, got {count}")
    picked = np.asarray(rows, dtype=np.int64) if rows is not None else pick_samples(store, count)
    if picked.size and (picked.min() < 0 or picked.max() >= len(store)):
        raise ComposerError(f"rows must lie in [0, {len(store)})")
    cols = columns or math.ceil(math.sqrt(picked.size))
    lines = math.ceil(picked.size / cols)
    fig, axes = plt.subplots(lines, cols, figsize=(1.9 * cols, 2.0 * lines + 0.3), squeeze=False)
    maps = store.maps
    for ax in axes.flat:
        ax.axis("off")
    for ax, row in zip(axes.flat, picked.tolist()):
        m = np.asarray(maps[row], dtype=np.float64)
        if m.ndim >= 2 and m.shape[-2] > 1:
            ax.imshow(heatmap(m if m.ndim <= 3 else m.reshape(-1, *m.shape[-2:])), interpolation="nearest")
        else:
            ax.axis("on")
            plot_timeseries(ax, None, m.reshape(-1))
            ax.set_xticks([]), ax.set_yticks([]), ax.set_xlabel("")
        title = f"#{int(store.index[row])}"
        if store.target is not None:
            title += f" t={int(store.target[row])} p={int(store.predicted[row])}"
        ax.set_title(title, fontsize=7)
    fig.suptitle(f"{store.method} ({store.completed()}/{len(store)} samples)", fontsize=8)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out
