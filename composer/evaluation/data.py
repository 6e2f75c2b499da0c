"""Samples for ``composer evaluate`` and ``composer tune``: a file, or the demo's digits."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import ComposerError


def _tensor(value, what: str) -> torch.Tensor:
    t = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if what == "x" and not t.is_floating_point():
        t = t.float()
    return t


def load_samples(spec: str, samples: Optional[int] = None,
                 offset: int = 0) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(inputs, labels or None) from ``spec``, samples ``offset .. offset + samples``.

    ``spec`` is ``digits`` (the demo's test split: scikit-learn's digits, 1x8x8, scaled to [0, 1]),
    a ``.npy`` file (inputs), a ``.npz`` file (``x`` and optionally ``y``) or a ``.pt`` file (a
    tensor, an ``(x, y)`` pair or a mapping with ``x`` and ``y``; read with ``weights_only=True``).

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, x=np.zeros((5, 1, 4, 4), np.float32), y=np.arange(5))
    >>> x, y = load_samples(path, samples=2, offset=1)
    >>> x.shape, y.tolist()
    (torch.Size([2, 1, 4, 4]), [1, 2])
    """
    y = None
    if spec == "digits":
        from ..demo import load_digits

        _, _, x, y = load_digits()
    else:
        path = Path(spec)
        if not path.is_file():
            raise ComposerError("no such data file (use .npy, .npz, .pt or 'digits')", source=spec)
        suffix = path.suffix.lower()
        if suffix == ".npy":
            x = _tensor(np.load(path, allow_pickle=False), "x")
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if "x" not in archive:
                    raise ComposerError(f"a .npz file needs an array 'x' (and optionally 'y'); it has "
                                        f"{', '.join(archive.files)}", source=spec)
                x = _tensor(archive["x"], "x")
                y = _tensor(archive["y"], "y") if "y" in archive else None
        elif suffix in (".pt", ".pth"):
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(obj, dict):
                if "x" not in obj:
                    raise ComposerError("a .pt mapping needs 'x' (and optionally 'y')", source=spec)
                x, y = obj["x"], obj.get("y")
            elif isinstance(obj, (tuple, list)) and len(obj) == 2:
                x, y = obj
            else:
                x = obj
            x = _tensor(x, "x")
            y = None if y is None else _tensor(y, "y")
        else:
            raise ComposerError(f"data must be .npy, .npz, .pt or 'digits', got {path.name}", source=spec)
    if x.dim() < 2:
        raise ComposerError(f"data must have a batch axis first, got shape {tuple(x.shape)}", source=spec)
    if y is not None and (y.dim() != 1 or y.shape[0] != x.shape[0]):
        raise ComposerError(f"labels must be one class per sample: {tuple(y.shape)} for {x.shape[0]} samples",
                            source=spec)
    if offset < 0 or offset >= x.shape[0]:
        raise ComposerError(f"offset {offset} outside the {x.shape[0]} samples", source=spec)
    end = x.shape[0] if samples is None else offset + samples
    x = x[offset:end]
    return x, None if y is None else y[offset:end].long()
