"""What ``composer explain --data`` and ``composer gallery`` do, apart from printing (``composer/cli.py``)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ..errors import ComposerError
from .run import explain_dataset
from .store import Store


def store_path(out: Path, data: str, method: str) -> Path:
    """``out`` itself when it names a ``.zarr`` store, else ``out/<data>_<method>.zarr``.

    Example
    -------
    >>> store_path(Path("composer-out"), "val/images", "lrp_epsilon_0_1").as_posix()
    'composer-out/images_lrp_epsilon_0_1.zarr'
    >>> store_path(Path("runs/a.zarr"), "x.npy", "gradient").as_posix()
    'runs/a.zarr'
    """
    if out.suffix == ".zarr":
        return out
    label = Path(method).stem if method.endswith((".yaml", ".yml")) or "/" in method else method
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(data.rstrip('/')).stem}_{label}").strip("._") or "explained"
    return out / f"{stem}.zarr"


def target_option(text: Optional[str]) -> Union[None, str, int]:
    """``--target`` for a dataset: ``predicted`` (default), ``label`` or one class for every sample.

    Example
    -------
    >>> target_option("label"), target_option("3"), target_option(None)
    ('label', 3, None)
    """
    if text is None or text in ("predicted", "label"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ComposerError(f"--target with --data is 'predicted', 'label' or one class index, got {text!r}") from None


def explain_data(model, data: str, method: str, out: Path, *, labels: Optional[str] = None,
                 target: Optional[str] = None, batch_size: int = 64, backend: str = "local",
                 ray_address: Optional[str] = None, workers: Optional[int] = None, overwrite: bool = False,
                 image_mode: str = "RGB", canonizers: Optional[List[str]] = None,
                 params: Optional[Dict[str, Any]] = None) -> Store:
    """Explain the samples of ``data`` (a ``.npy`` file or a folder of images) into a store under ``out``.

    Example
    -------
    >>> import tempfile, os, numpy as np, torch
    >>> folder = Path(tempfile.mkdtemp())
    >>> np.save(folder / "x.npy", np.random.rand(6, 4).astype(np.float32))
    >>> store = explain_data(torch.nn.Linear(4, 2), str(folder / "x.npy"), "gradient", folder, batch_size=4)
    >>> store.path.name, store.complete
    ('x_gradient.zarr', True)
    """
    path = store_path(Path(out), data, method)
    path.parent.mkdir(parents=True, exist_ok=True)
    return explain_dataset(model, data, method, path, labels=labels, target=target_option(target),
                           batch_size=batch_size, backend=backend, ray_address=ray_address, workers=workers,
                           overwrite=overwrite, image_mode=image_mode, canonizers=canonizers or None,
                           progress=True, **(params or {}))
