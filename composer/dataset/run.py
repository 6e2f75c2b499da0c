"""``explain_dataset``: a whole dataset explained into a store, resumable, locally or on Ray.

The job is cut into batches of ``batch_size`` samples (in the code: "chunks" of the job); each is
one ``explain()`` call. Only batches the store lacks are computed, so a rerun after Ctrl-C or a
killed process continues with what is missing and gives the same store as a run that was never
interrupted. One :class:`~composer.explain.Explainer` explains every batch; the computing thread keeps
the batches of a store chunk (a few consecutive batches per file) until the chunk is complete, and a
second thread writes complete chunks (at most two waiting), so memory holds a few chunks whatever the
dataset's size.
"""
from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..compiler import compile_preset
from ..errors import ComposerError
from ..extras import optional_import
from .compute import ChunkJob, TargetSpec, compute_chunk
from .provenance import STORE_FORMAT, model_fingerprint, plain, preset_yaml, versions
from .sources import Source, as_source
from .store import Store, StoreWriter, chunk_plan, open_for_writing

Positions = Sequence[int]


def _indices(indices, n: int) -> np.ndarray:
    """The data positions to explain, in store order (all by default)."""
    if indices is None:
        return np.arange(n, dtype=np.int64)
    idx = np.asarray(indices if not isinstance(indices, range) else np.arange(
        indices.start, indices.stop, indices.step))
    if idx.ndim != 1 or idx.size == 0 or idx.dtype.kind not in "iu":
        raise ComposerError("indices must be a non-empty sequence of integer positions")
    if idx.min() < 0 or idx.max() >= n:
        raise ComposerError(f"indices must lie in [0, {n}); got {int(idx.min())} .. {int(idx.max())}")
    return idx.astype(np.int64)


def _target_spec(target: TargetSpec, samples: int) -> Tuple[Any, Any]:
    """(the value compute_chunk uses, its description in the provenance)."""
    if target is None or isinstance(target, str):
        if target not in (None, "predicted", "label"):
            raise ComposerError(f"target is 'predicted', 'label', a class or one class per sample; got {target!r}")
        return target, target or "predicted"
    if isinstance(target, (bool, np.bool_)):
        raise ComposerError(f"target must be a class index, got {target!r}")
    if isinstance(target, (int, np.integer)):
        return int(target), {"class": int(target)}
    given = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)
    if given.ndim != 1 or given.dtype.kind not in "iu" or given.size != samples:
        raise ComposerError(f"target per sample must be {samples} integer classes (one per explained sample)")
    given = given.astype(np.int64)
    return given, {"per_sample_sha256": hashlib.sha256(given.tobytes()).hexdigest()[:16]}


def _job(model, source: Source, plan, method, idx: np.ndarray, chunk: int, target_desc, options, params,
         seed) -> Dict[str, Any]:
    """The store's provenance: what identifies the job, and the versions it ran with."""
    opts = {"params": {k: v for k, v in sorted(params.items())}, "seed": seed,
            **{k: v for k, v in sorted(options.items())}}
    return {"format": STORE_FORMAT, "method": method if isinstance(method, str) else plan.name,
            "preset_yaml": preset_yaml(plan), "options": plain(opts),
            "model": {"class": f"{type(model).__module__}.{type(model).__qualname__}",
                      "fingerprint": model_fingerprint(model)},
            "data": source.describe(), "samples": int(idx.size), "batch_size": chunk,
            "indices_sha256": hashlib.sha256(idx.tobytes()).hexdigest()[:16], "target": target_desc,
            "versions": versions()}


class _Writer:
    """Keeps finished batches until their store chunk is complete, in the computing thread (no hand-off
    per batch), and writes complete chunks in a thread of its own; the queue bounds how many wait."""

    def __init__(self, store: Store, depth: int = 2):
        self.writer, self.queue, self.error = StoreWriter(store), queue.Queue(maxsize=depth), None
        self.thread = threading.Thread(target=self._run, name="composer-store-writer", daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            group = self.queue.get()
            if group is None:
                break
            if self.error is None:
                try:
                    self.writer.flush(group)
                except BaseException as err:  # noqa: BLE001 - handed to the computing thread
                    self.error = err

    def put(self, chunk: int, arrays: Dict[str, np.ndarray]) -> None:
        if self.error is not None:
            raise self.error
        group = self.writer.add(chunk, arrays)
        if group is not None:
            self.queue.put(group)

    def close(self) -> None:
        """Write the complete store chunks queued and then the batches of chunks still open (at the end of a
        run, or when it is interrupted), and stop; re-raises a write error."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.writer.close()


def _progress(enabled: bool, total: int, done: int, label: str):
    """A rich progress bar with samples/s and the time left, or a stand-in that does nothing."""
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed:,.0f} samples/s" if task.speed else "- samples/s", style="progress.data.speed")

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(),
                   TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not enabled, speed_estimate_period=60)
    task = bar.add_task(label, total=total, completed=done)
    return bar, lambda n: bar.advance(task, n)


def _local_chunks(source: Source, todo: List[Tuple[int, slice]], idx: np.ndarray,
                  workers: int) -> Iterator[Tuple[int, slice, Positions, Tuple]]:
    rows = {c: r for c, r in todo}
    wanted = ((c, idx[r].tolist()) for c, r in todo)   # lazily: positions of one batch at a time
    for chunk, batch in source.batches(wanted, workers=workers):
        positions = idx[rows[chunk]].tolist()
        yield chunk, rows[chunk], positions, batch


def explain_dataset(model: torch.nn.Module, data, method, out, *, target: TargetSpec = None,
                    batch_size: Optional[int] = None, labels=None, indices=None, backend: str = "local",
                    device: Optional[str] = None, workers: Optional[int] = None,
                    ray_address: Optional[str] = None, ray_cpus_per_worker: float = 1,
                    ray_gpus_per_worker: float = 0, progress: bool = True, overwrite: bool = False,
                    seed: Optional[int] = None, canonizers: Optional[Sequence[str]] = None,
                    canonize: Optional[bool] = None, on_uncovered: Optional[str] = None,
                    image_mode: str = "RGB", transform: Optional[Callable] = None, **params: Any) -> Store:
    """Explain every sample of ``data`` with ``method`` and stream the maps into a zarr store at ``out``.

    Parameters
    ----------
    model : torch.nn.Module
        A classifier returning ``(batch, classes)``, as for :func:`composer.explain`.
    data :
        A torch ``Dataset`` or ``DataLoader`` (items ``input`` or ``(input, label, ...)``), an array
        or tensor, a ``.npy`` file, a folder of images (class sub-folders give labels), or a pair
        ``(inputs, labels)``. See :mod:`composer.dataset.sources`.
    method : str, path or mapping
        Any method of :func:`composer.explain`; ``**params`` are its parameters.
    out : path
        The store (a folder, by convention ``NAME.zarr``). If it exists and was written by the same
        job (method, parameters, model, data, batch size, targets), only its missing batches are
        computed; a store of another job is refused with a :class:`ComposerError` (``overwrite=True``
        replaces it).
    target :
        ``None`` / ``"predicted"`` (each sample's arg-max), ``"label"`` (the data's labels), a class,
        or one class per explained sample.
    batch_size : int, optional
        Samples per ``explain()`` call (default: the DataLoader's, else 64).
    labels :
        Labels for array or ``.npy`` inputs (an array or a ``.npy`` file).
    indices : sequence of int, optional
        Explain only these positions of the data, in this order (the store's ``index`` keeps them).
    backend : ``"local"`` or ``"ray"``
        ``"ray"`` runs the chunks as Ray Data ``map_batches`` over an actor pool that holds the
        model (pip install 'zennit-composer[ray]'); the store is written by this process either way.
    device : str, optional
        Where the batches go. Local: the model must be there already (default: where its parameters
        are). Ray: each actor moves its copy of the model there (default ``"cuda"`` when
        ``ray_gpus_per_worker`` > 0, else ``"cpu"``).
    workers : int, optional
        Local: DataLoader worker processes reading ahead (default: the DataLoader's, else 0). Ray:
        actors in the pool (default: the cluster's CPUs / ``ray_cpus_per_worker``, or its GPUs).
    ray_address : str, optional
        A Ray cluster to join (``"auto"``, ``"ray://head:10001"``); default: the running Ray, else a
        local one started for this call (and stopped after it).
    ray_cpus_per_worker, ray_gpus_per_worker : float
        Resources each actor asks for; an actor runs torch with that many threads.
    progress : bool
        A progress bar on stderr (samples, samples/s, time left).
    seed : int, optional
        For stochastic methods (SmoothGrad, VarGrad): batch ``b`` uses ``seed + b``, so reruns agree.
    canonizers, canonize, on_uncovered :
        As for :func:`composer.explain` (canonizers by name only: they are part of the provenance).
    image_mode, transform :
        For a folder of images: ``"RGB"`` or ``"L"``, and an optional PIL image -> tensor function.

    Returns
    -------
    Store
        The store, read back (:func:`composer.open_store`).

    Example
    -------
    >>> import tempfile, os
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> x = torch.randn(20, 4)
    >>> out = os.path.join(tempfile.mkdtemp(), "maps.zarr")
    >>> store = explain_dataset(net, x, "lrp_epsilon_0_1", out, batch_size=8, progress=False)
    >>> store.maps.shape, store.batch_size, store.complete
    ((20, 4), 8, True)
    >>> import composer
    >>> bool((store.maps[8:16] == composer.explain(net, x[8:16], "lrp_epsilon_0_1").numpy()).all())
    True
    """
    if not isinstance(model, torch.nn.Module):
        raise ComposerError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if backend not in ("local", "ray"):
        raise ComposerError(f"backend is 'local' or 'ray', got {backend!r}")
    if backend == "ray":
        optional_import("ray.data", "the Ray backend")   # before anything is written
    if any(not isinstance(c, str) for c in canonizers or ()):
        raise ComposerError("explain_dataset takes canonizers by name (they are recorded in the store)")
    source = as_source(data, labels, image_mode=image_mode, transform=transform)
    if batch_size is None:
        batch_size = getattr(source, "batch_size", None) or 64
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ComposerError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(source) == 0:
        raise ComposerError("the data has no samples")
    idx = _indices(indices, len(source))
    options = {k: v for k, v in (("canonizers", list(canonizers) if canonizers else None), ("canonize", canonize),
                                 ("on_uncovered", on_uncovered)) if v is not None}
    plan = compile_preset(method, canonizers=options.get("canonizers"), **params)   # fails fast on a bad method
    target_value, target_desc = _target_spec(target, idx.size)
    job = _job(model, source, plan, method, idx, batch_size, target_desc, options, params, seed)
    store = open_for_writing(Path(out), job, overwrite=overwrite)
    done = store.done()
    todo = [(c, rows) for c, rows in chunk_plan(idx.size, batch_size) if not done[c]]
    if not todo:
        return store
    chunk_job = ChunkJob(method, dict(params), target_value, seed, options, device)
    bar, advance = _progress(progress, idx.size, store.completed(), f"{plan.name}")
    writer = _Writer(store)
    try:
        with bar, contextlib.ExitStack() as stack:
            if backend == "ray":
                from .ray_backend import ray_chunks

                results = ray_chunks(model, source, chunk_job, todo, idx, address=ray_address, workers=workers,
                                     cpus=ray_cpus_per_worker, gpus=ray_gpus_per_worker)
            else:
                explainer = stack.enter_context(chunk_job.explainer(model))   # set up once for every batch
                results = (
                    (chunk, compute_chunk(explainer, chunk_job, chunk, rows, x, y, positions, source.paths(positions)))
                    for chunk, rows, positions, (x, y) in _local_chunks(source, todo, idx, workers or 0))
            for chunk, arrays in results:
                writer.put(chunk, arrays)
                advance(arrays["maps"].shape[0])
    finally:
        writer.close()   # also after Ctrl-C: what was computed is complete and gets written
    return store
