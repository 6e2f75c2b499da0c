"""The Ray backend: the batches of a job as Ray Data ``map_batches`` over an actor pool holding the model.

The dataset Ray sees is the list of batches ("chunks" of the job) still to do (one row, one block
each); every actor loads the model once, reads its batches' samples from the data source itself (a
``.npy`` file or a folder must be reachable from the workers; a torch Dataset travels pickled), and
runs the same
:func:`~composer.dataset.compute.compute_chunk` as the local loop. The results stream back to this
process, which writes the store, so the store is the same as a local run's.
"""
from __future__ import annotations

import contextlib
import copy
import io
import logging
import pickle
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..errors import ComposerError
from ..extras import optional_import
from .compute import ChunkJob, compute_chunk


class ChunkWorker:
    """A Ray Data actor: holds the model and the data source, explains one chunk per call."""

    def __init__(self, payload: bytes, threads: int, gpus: float):
        torch.set_num_threads(max(1, threads))
        self.model, self.source, self.job, self.rows, self.idx = pickle.loads(payload)
        self.model.to(self.job.device or ("cuda" if gpus else "cpu"))   # the actor's own copy

    def __call__(self, batch: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        results, errors = [], []
        with contextlib.ExitStack() as stack:
            explainer = None
            for chunk in batch["chunk"].tolist():
                rows = self.rows[chunk]
                positions = self.idx[rows].tolist()
                buffer = io.BytesIO()
                try:
                    explainer = explainer or stack.enter_context(self.job.explainer(self.model))
                    x, y = self.source.read(positions)
                    arrays = compute_chunk(explainer, self.job, chunk, rows, x, y, positions,
                                           self.source.paths(positions))
                except ComposerError as err:   # Ray would wrap it beyond recognition: it travels as a message
                    errors.append(str(err))
                else:
                    errors.append("")
                    np.savez(buffer, **arrays)   # one opaque value per chunk: Ray never reshapes or converts it
                results.append(buffer.getvalue())
        return {"chunk": batch["chunk"], "arrays": np.array(results, dtype=object),
                "error": np.array(errors, dtype=object)}


def _on_cpu(model: torch.nn.Module) -> torch.nn.Module:
    """The model, or a CPU copy of it when it lives elsewhere (the user's model is not moved)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return model if all(t.device.type == "cpu" for t in tensors) else copy.deepcopy(model).cpu()


def _init_ray(ray, address: Optional[str]) -> bool:
    """Join ``address``, or the Ray already running, or start a local one; True if this call started it."""
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return True


def ray_chunks(model: torch.nn.Module, source, job: ChunkJob, todo: List[Tuple[int, slice]], idx: np.ndarray, *,
               address: Optional[str] = None, workers: Optional[int] = None, cpus: float = 1,
               gpus: float = 0) -> Iterator[Tuple[int, Dict[str, np.ndarray]]]:
    """``(chunk, arrays)`` for every chunk of ``todo``, computed by a pool of Ray actors, as they finish."""
    ray = optional_import("ray", "the Ray backend")
    optional_import("ray.data", "the Ray backend")
    if cpus <= 0 or gpus < 0:
        raise ComposerError("ray_cpus_per_worker must be > 0 and ray_gpus_per_worker >= 0")
    started = _init_ray(ray, address)
    quiet = logging.getLogger("ray.data")
    level = quiet.level
    quiet.setLevel(logging.WARNING)   # the progress bar is ours; Ray Data's INFO lines would interleave with it
    context = ray.data.DataContext.get_current()
    bars, context.enable_progress_bars = context.enable_progress_bars, False
    try:
        resources = ray.cluster_resources()
        if workers is None:
            workers = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 1) // cpus)
        if workers < 1:
            raise ComposerError(f"the Ray cluster has no room for one worker of {cpus} CPUs and {gpus} GPUs "
                                f"(it has {resources.get('CPU', 0)} CPUs, {resources.get('GPU', 0)} GPUs)")
        # cloudpickle: a model class defined in a script travels by value; tensors go as CPU tensors
        payload = ray.cloudpickle.dumps((_on_cpu(model), source, job, dict(todo), idx))
        rows = ray.data.from_items([{"chunk": c} for c, _ in todo], override_num_blocks=len(todo))
        results = rows.map_batches(
            ChunkWorker, batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers),
            fn_constructor_kwargs={"payload": payload, "threads": max(1, int(cpus)), "gpus": gpus},
            num_cpus=cpus, num_gpus=gpus or None)
        for batch in results.iter_batches(batch_size=None, batch_format="numpy"):
            for chunk, blob, error in zip(batch["chunk"].tolist(), batch["arrays"], batch["error"]):
                if error:
                    raise ComposerError(f"chunk {chunk} (on a Ray worker): {error}")
                with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
                    yield int(chunk), {name: archive[name] for name in archive.files}
    finally:
        quiet.setLevel(level)
        context.enable_progress_bars = bars
        if started:
            ray.shutdown()
