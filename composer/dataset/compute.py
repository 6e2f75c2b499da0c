"""One chunk of a dataset job (a batch, one ``explain()`` call): samples in, the store's arrays for them out.

Shared by the local loop and the Ray workers, so both write the same numbers: ``explain()`` on the
batch (through one :class:`~composer.explain.Explainer` for many batches: set up once), and the
logits of the forward pass it ran on the batch (composer's canonical twin of the model, recorded
with :func:`~composer.explain.recorded_outputs`; for methods that never run the batch itself, such
as SmoothGrad with given targets, one no-grad forward of the model in eval mode).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Union

import numpy as np
import torch

from ..errors import ComposerError
from ..explain import Explainer, model_guard, recorded_outputs

#: what ``target=`` may be: the arg-max, the data's labels, one class, or one class per sample
TargetSpec = Union[None, str, int, Sequence[int], np.ndarray, torch.Tensor]


@dataclass
class ChunkJob:
    """What every chunk of a job shares: the method, its options and how targets are chosen."""

    method: Any
    params: Dict[str, Any] = field(default_factory=dict)
    target: TargetSpec = None            # None / "predicted", "label", an int, or per-sample classes (numpy)
    seed: Optional[int] = None
    options: Dict[str, Any] = field(default_factory=dict)   # canonizers, canonize, on_uncovered
    device: Optional[str] = None

    def given_targets(self, chunk_rows: slice, n: int, labels: Optional[torch.Tensor],
                      device: torch.device) -> Optional[torch.Tensor]:
        """The class each sample of the chunk is explained for, or None for each sample's arg-max."""
        if self.target is None or (isinstance(self.target, str) and self.target == "predicted"):
            return None
        if isinstance(self.target, str):
            if self.target != "label":
                raise ComposerError(f"target is 'predicted', 'label', a class or one class per sample; got "
                                    f"{self.target!r}")
            if labels is None:
                raise ComposerError("target='label' but the data has no labels (items (input, label), "
                                    "labels=..., or class sub-folders)")
            return labels.to(device)
        if isinstance(self.target, (int, np.integer)):
            return torch.full((n,), int(self.target), dtype=torch.long, device=device)
        return torch.as_tensor(np.asarray(self.target)[chunk_rows], dtype=torch.long, device=device)

    def explainer(self, model: torch.nn.Module) -> Explainer:
        """The job's method on ``model``, set up once for all the chunks a ``with`` block explains."""
        return Explainer(model, self.method, **self.options, **self.params)


def _logits(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The model's output in eval mode, for methods whose passes never ran ``x`` itself."""
    with torch.no_grad(), model_guard(model):
        model.eval()
        out = model(x)
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ComposerError(f"the model's output must be (batch, classes); got {shape}")
    return out


def compute_chunk(explainer: Explainer, job: ChunkJob, chunk: int, rows: slice, x: torch.Tensor,
                  labels: Optional[torch.Tensor], positions: Sequence[int],
                  paths: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """The store arrays of one chunk (batch): ``maps``, ``logits``, ``predicted``, ``target``, ``index`` (and
    ``label``, ``path`` where the data has them), as numpy arrays; ``explainer`` is the job's, open.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3))
    >>> job = ChunkJob("gradient")
    >>> with job.explainer(net) as explainer:
    ...     out = compute_chunk(explainer, job, 0, slice(0, 2), torch.randn(2, 4), None, [0, 1])
    >>> sorted(out), out["maps"].shape
    (['index', 'logits', 'maps', 'predicted', 'target'], (2, 4))
    """
    model = explainer.model
    device = torch.device(job.device) if job.device else next(
        (p.device for p in model.parameters()), torch.device("cpu"))
    x = x.to(device, non_blocking=True)
    given = job.given_targets(rows, x.shape[0], labels, device)
    seed = None if job.seed is None else job.seed + chunk
    with recorded_outputs(x) as outputs:   # the logits of explain's own forward pass: no second one
        maps = explainer(x, given, seed=seed)
    if not isinstance(maps, torch.Tensor):
        raise ComposerError("explain_dataset stores maps in the input's domain; drop the method's 'domain'")
    logits = outputs[0] if outputs and outputs[0].shape[0] == x.shape[0] else _logits(model, x)
    target = given if given is not None else logits.argmax(1)
    out = {"maps": maps.cpu().numpy(), "logits": logits.detach().cpu().numpy(),
           "predicted": logits.argmax(1).cpu().numpy().astype(np.int64),
           "target": target.cpu().numpy().astype(np.int64),
           "index": np.asarray(positions, dtype=np.int64)}
    if labels is not None:
        out["label"] = labels.cpu().numpy().astype(np.int64)
    if paths is not None:
        out["path"] = np.asarray(paths, dtype=str)
    return out
