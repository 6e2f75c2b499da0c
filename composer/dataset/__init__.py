"""Whole datasets: explained into a chunked zarr store, resumable, locally or on a Ray cluster.

* :func:`explain_dataset` explains every sample of a torch Dataset / DataLoader, an array, a ``.npy``
  file or a folder of images and streams maps, logits, targets and predictions into a store whose
  attributes record the provenance (:mod:`.provenance`); rerun, it computes only what is missing.
* :func:`open_store` reads a store back; :func:`store_gallery` draws a grid of its maps.

zarr is an optional extra (``pip install 'zennit-composer[dataset]'``), Ray another (``[ray]``);
importing this package needs neither. See ``docs/datasets.md``.

    >>> import tempfile, os, torch
    >>> from composer.dataset import explain_dataset, open_store
    >>> out = os.path.join(tempfile.mkdtemp(), "maps.zarr")
    >>> _ = explain_dataset(torch.nn.Linear(3, 2), torch.randn(5, 3), "gradient", out, progress=False)
    >>> open_store(out).maps.shape
    (5, 3)
"""
from .gallery import store_gallery
from .run import explain_dataset
from .sources import ArraySource, DatasetSource, FolderSource, NpySource, Source, as_source
from .store import Store, open_store

__all__ = ["explain_dataset", "open_store", "store_gallery", "Store", "Source", "ArraySource", "NpySource",
           "DatasetSource", "FolderSource", "as_source"]
