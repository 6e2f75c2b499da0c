"""The on-disk store of a dataset's explanations: a zarr group of arrays, written a few MB at a time.

Layout (every array's first axis is the sample, except ``done``)::

    STORE.zarr/
      maps        (samples, *map shape)   float   the attributions, zstd-compressed
      logits      (samples, classes)      float   the output of the forward pass each map came from
      predicted   (samples,)              int64   its arg-max
      target      (samples,)              int64   the class each map explains
      label       (samples,)              int64   the dataset's label (only when the data has labels)
      index       (samples,)              int64   the sample's position in the data
      path        (samples,)              str     the image file (folders of images only)
      done        (batches,)              bool    batch b is complete (written after its arrays)
      attributes  composer: provenance (see composer.dataset.provenance)

A batch is what one ``explain()`` call saw. A store chunk (one file per array) holds a group of
consecutive batches, about :data:`GROUP_BYTES` of maps (at most 128 batches); a group is written when all its batches are
computed (or when a run ends or is interrupted), its ``done`` flags last. zarr replaces every file
atomically, so a store interrupted at any point holds complete batches and batches to redo.
:func:`open_store` reads a store back (numpy slices, dask, xarray); :func:`open_for_writing`
creates or continues one, and refuses a store written by another job.
"""
from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import ComposerError, ComposerWarning
from ..extras import optional_import
from .provenance import STORE_FORMAT, differences

#: per-sample arrays besides the maps, in the order they are written (``done`` comes last)
SAMPLE_ARRAYS = ("logits", "predicted", "target", "label", "index", "path")
#: a store chunk (one file per array) holds about this much of maps, from consecutive batches: each
#: write of a group costs the computing threads several times its own time, so groups are not small
GROUP_BYTES = 4 * 2**20
#: and at most this many batches (what a killed process may have to redo)
MAX_GROUP = 128


def _zarr():
    zarr = optional_import("zarr", "a dataset store")
    if int(zarr.__version__.split(".")[0]) < 3:
        raise ComposerError(f"a dataset store needs zarr 3 (zarr {zarr.__version__} is installed): "
                            "pip install 'zennit-composer[dataset]'")
    return zarr


def _map_dims(ndim: int) -> List[str]:
    named = {1: ["feature"], 2: ["channel", "time"], 3: ["channel", "height", "width"],
             4: ["channel", "depth", "height", "width"]}
    return ["sample"] + named.get(ndim, [f"dim_{i}" for i in range(ndim)])


class Store:
    """A dataset store: its arrays (zarr arrays, sliced like numpy) and its provenance.

    ``maps``, ``logits``, ``predicted``, ``target``, ``label``, ``index`` and ``paths`` are zarr arrays
    (or None where the store has none); ``store.maps[10:20]`` is a numpy array.
    """

    def __init__(self, group, path: Path):
        self.group, self.path = group, Path(path)
        self.provenance: Dict[str, Any] = dict(group.attrs.get("composer") or {})

    def _array(self, name: str):
        return self.group[name] if name in self.group else None

    maps = property(lambda self: self._array("maps"), doc="the attributions, (samples, *map shape)")
    logits = property(lambda self: self._array("logits"), doc="the model's outputs, (samples, classes)")
    predicted = property(lambda self: self._array("predicted"), doc="the arg-max of the logits, (samples,)")
    target = property(lambda self: self._array("target"), doc="the class each map explains, (samples,)")
    label = property(lambda self: self._array("label"), doc="the data's labels, (samples,), or None")
    index = property(lambda self: self._array("index"), doc="each sample's position in the data, (samples,)")
    paths = property(lambda self: self._array("path"), doc="each sample's image file (folders), or None")

    @property
    def method(self) -> str:
        """The method name the maps were computed with."""
        return self.provenance["method"]

    @property
    def preset_yaml(self) -> str:
        """The resolved preset (``extends`` folded in, parameters substituted), as YAML."""
        return self.provenance["preset_yaml"]

    @property
    def batch_size(self) -> int:
        """Samples per batch: what each ``explain()`` call saw (the last batch may have fewer)."""
        return int(self.provenance["batch_size"])

    def __len__(self) -> int:
        return int(self.provenance["samples"])

    @property
    def batches(self) -> int:
        """How many batches the store has."""
        return math.ceil(len(self) / self.batch_size)

    def batch_slice(self, batch: int) -> slice:
        """The samples (rows) of batch ``batch``."""
        return slice(batch * self.batch_size, min((batch + 1) * self.batch_size, len(self)))

    def done(self) -> np.ndarray:
        """A bool per batch: complete."""
        arr = self._array("done")
        return np.zeros(self.batches, dtype=bool) if arr is None else np.asarray(arr[:], dtype=bool)

    def completed(self) -> int:
        """The number of samples whose batch is complete."""
        done = self.done()
        return sum(self.batch_slice(c).stop - self.batch_slice(c).start for c in np.flatnonzero(done))

    @property
    def complete(self) -> bool:
        """Whether every batch is written."""
        return bool(self.done().all())

    def __repr__(self) -> str:
        shape = None if self.maps is None else tuple(self.maps.shape)
        return (f"<composer store {self.path.name}: {self.method}, {self.completed()}/{len(self)} samples, "
                f"maps {shape}>")


def open_store(path) -> Store:
    """Open a store written by :func:`composer.explain_dataset`, read-only.

    Example
    -------
    >>> import tempfile, os, torch, composer
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> out = os.path.join(tempfile.mkdtemp(), "s.zarr")
    >>> _ = composer.explain_dataset(net, torch.randn(10, 4), "gradient", out, batch_size=4, progress=False)
    >>> store = composer.open_store(out)
    >>> store.maps.shape, store.method, store.complete
    ((10, 4), 'gradient', True)
    >>> store.maps[:2].shape
    (2, 4)
    """
    zarr = _zarr()
    path = Path(path)
    if not path.exists():
        raise ComposerError("no such store", source=str(path))
    try:
        group = zarr.open_group(str(path), mode="r")
    except Exception as err:  # noqa: BLE001 - zarr raises several kinds for a folder that is not a group
        raise ComposerError(f"not a zarr store ({type(err).__name__}: {err})", source=str(path)) from None
    store = Store(group, path)
    if not store.provenance:
        raise ComposerError("a zarr group without composer's provenance: not written by explain_dataset",
                            source=str(path))
    if store.provenance.get("format", 0) > STORE_FORMAT:
        raise ComposerError(f"store format {store.provenance['format']} is newer than this composer reads "
                            f"({STORE_FORMAT}): update zennit-composer", source=str(path))
    return store


def _remove_partials(path: Path) -> None:
    """Temporary files of writes a killed process left (zarr writes to ``*.partial`` and renames)."""
    for partial in path.rglob("*.partial"):
        partial.unlink(missing_ok=True)


def open_for_writing(path, job: Dict[str, Any], overwrite: bool = False) -> Store:
    """Create the store for ``job``, or continue the one at ``path`` if it was written by the same job.

    A store of another job (method, preset, parameters, model, data, chunking, targets) is refused
    with a :class:`ComposerError` that lists what differs, unless ``overwrite`` is true (then it is
    deleted first). Something at ``path`` that is not a composer store is never deleted.
    """
    zarr = _zarr()
    path = Path(path)
    if path.exists():
        try:
            existing: Optional[Store] = open_store(path)
        except ComposerError:
            existing = None
        if existing is None:
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            else:
                raise ComposerError("exists and is not a composer store; choose another path (nothing was changed)",
                                    source=str(path))
        elif overwrite:
            shutil.rmtree(path)
        else:
            diff = differences(existing.provenance, job)
            if diff:
                raise ComposerError("the store was written by another job and is kept as it is; write to another "
                                    "path (or pass overwrite=True to replace it): " + "; ".join(diff),
                                    source=str(path))
            old, new = existing.provenance.get("versions", {}), job.get("versions", {})
            changed = {k: (old.get(k), v) for k, v in new.items() if old.get(k) != v}
            if changed:
                warnings.warn(f"{path}: continuing a store written with other versions ("
                              + ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changed.items())
                              + "); maps of the two may differ in the last bits", ComposerWarning, stacklevel=3)
            _remove_partials(path)
            return Store(zarr.open_group(str(path), mode="r+"), path)
    group = zarr.open_group(str(path), mode="w-")
    group.attrs["composer"] = job
    return Store(group, path)


def group_size(batch_bytes: int) -> int:
    """Batches per store chunk: enough for about :data:`GROUP_BYTES` of maps (zarr works best with
    chunks of a MB or more; a file per small batch would cost about as much to write as to explain),
    at most :data:`MAX_GROUP`.

    Example
    -------
    >>> group_size(64 * 256), group_size(64 * 3 * 224 * 224 * 4)   # 64 digits, 64 ImageNet images
    (128, 1)
    """
    return max(1, min(MAX_GROUP, GROUP_BYTES // max(1, batch_bytes)))


def _batches_per_chunk(store: Store, arrays: Dict[str, np.ndarray]) -> int:
    """How many batches a store chunk holds: as the store's arrays were made, or for a new store, from the
    size of a batch's maps."""
    if "maps" in store.group:
        return store.group["maps"].chunks[0] // store.batch_size
    maps = arrays["maps"]
    return min(group_size(maps.nbytes * store.batch_size // max(1, maps.shape[0])), store.batches)


def _create_arrays(store: Store, arrays: Dict[str, np.ndarray], k: int) -> None:
    """Make the store's arrays, shaped by the first batch's results (the map shape, the classes), with
    ``k`` batches per chunk."""
    n, batch, group = len(store), store.batch_size, store.group
    for name, value in arrays.items():
        if name in group:
            continue
        shape, kwargs = (n, *value.shape[1:]), {}
        if name == "maps":
            dims = _map_dims(value.ndim - 1)
        elif name == "logits":
            dims = ["sample", "class"]
        else:
            dims = ["sample"]
        if value.dtype.kind in "US":
            kwargs["dtype"] = str
        else:
            kwargs.update(dtype=value.dtype, fill_value=-1 if value.dtype.kind == "i" else 0)
        group.create_array(name, shape=shape, chunks=(k * batch, *value.shape[1:]), dimension_names=dims, **kwargs)
    if "done" not in group:
        group.create_array("done", shape=(store.batches,), chunks=(k,), dtype=bool, fill_value=False,
                           compressors=None, dimension_names=["batch"])


def _runs(chunks: List[int]) -> List[Tuple[int, int]]:
    """Consecutive runs ``[first, last]`` of sorted batch ids."""
    runs: List[List[int]] = []
    for c in chunks:
        if runs and c == runs[-1][1] + 1:
            runs[-1][1] = c
        else:
            runs.append([c, c])
    return [(a, b) for a, b in runs]


class StoreWriter:
    """Writes finished batches, a store chunk (a group of batches) at a time.

    A batch's arrays wait in memory until every batch of its group is there (a group holds about
    :data:`GROUP_BYTES` of maps), then the group's arrays are written and, last, its ``done`` flags.
    :meth:`close` writes what incomplete groups have (at the end of a run, or when it is interrupted);
    after a crash at most the batches of the groups that were open are computed again.
    """

    def __init__(self, store: Store):
        self.store = store
        self.done = set(np.flatnonzero(store.done()).tolist())
        self.pending: Dict[int, Dict[int, Dict[str, np.ndarray]]] = {}   # group -> batch -> arrays
        self.arrays: Dict[str, Any] = {}   # name -> zarr array, opened once
        self.k: Optional[int] = None       # batches per store chunk

    def _open(self, arrays: Dict[str, np.ndarray]) -> None:
        """Create (first write of a new store) or open the store's arrays."""
        if not self.arrays:
            _create_arrays(self.store, arrays, self.k)
            group = self.store.group
            self.arrays = {name: group[name] for name in ("maps", "done") + SAMPLE_ARRAYS if name in group}

    def add(self, batch: int, arrays: Dict[str, np.ndarray]) -> Optional[int]:
        """Keep ``batch``'s arrays; the id of its group if that is now complete (for :meth:`flush`), else None."""
        rows = self.store.batch_slice(batch)
        for name, value in arrays.items():
            if value.shape[0] != rows.stop - rows.start:
                raise ComposerError(f"batch {batch}: {name} has {value.shape[0]} rows for {rows.stop - rows.start} "
                                    "samples")
        if self.k is None:   # the arrays are made by the first flush: in the writing thread, if there is one
            self.k = _batches_per_chunk(self.store, arrays)
        k = self.k
        group = batch // k
        waiting = self.pending.setdefault(group, {})
        waiting[batch] = arrays
        members = range(group * k, min((group + 1) * k, self.store.batches))
        return group if all(c in self.done or c in waiting for c in members) else None

    def write(self, batch: int, arrays: Dict[str, np.ndarray]) -> None:
        """Keep ``batch``'s arrays; write its group when the group is complete."""
        group = self.add(batch, arrays)
        if group is not None:
            self.flush(group)

    def flush(self, group: int) -> None:
        """Write a group's batches (its arrays, then its ``done`` flags)."""
        waiting = self.pending.pop(group, {})
        if waiting:
            self._open(next(iter(waiting.values())))
        for first, last in _runs(sorted(waiting)):
            rows = slice(self.store.batch_slice(first).start, self.store.batch_slice(last).stop)
            for name in ("maps",) + SAMPLE_ARRAYS:
                if name in waiting[first]:
                    self.arrays[name][rows] = np.concatenate([waiting[c][name] for c in range(first, last + 1)])
            self.arrays["done"][first:last + 1] = True
            self.done.update(range(first, last + 1))

    def close(self) -> None:
        """Write the batches still waiting for the rest of their group."""
        for group in sorted(self.pending):
            self.flush(group)


def chunk_plan(samples: int, chunk: int) -> List[Tuple[int, slice]]:
    """``(chunk id, rows)`` of every chunk of a store of ``samples`` samples.

    Example
    -------
    >>> chunk_plan(5, 2)
    [(0, slice(0, 2, None)), (1, slice(2, 4, None)), (2, slice(4, 5, None))]
    """
    return [(c, slice(c * chunk, min((c + 1) * chunk, samples))) for c in range(math.ceil(samples / chunk))]
