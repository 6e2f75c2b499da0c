"""Faithfulness of a relevance map: region-perturbation curves and the scores read from them.

Region perturbation (Samek et al. 2017, "Evaluating the visualization of what a deep neural network
has learned") removes the input's regions in the order a map ranks them and records the model's
output for the explained class after each step:

* **MoRF** (most relevant first): a faithful map makes the output fall fast;
* **LeRF** (least relevant first): a faithful map keeps the output up long.

Scores, per sample (``f_k`` is the output after step ``k``, ``k = 0..K``; ``t_k`` the fraction of
regions perturbed):

* ``aopc_morf = 1/(K+1) sum_k (f_0 - f^MoRF_k)`` — the area over the MoRF curve (higher is better);
* ``aopc_lerf`` — the same for LeRF (lower is better);
* ``auc_morf``, ``auc_lerf`` — trapezoidal areas under the curves over ``t`` in [0, fraction];
* ``srg = auc_lerf - auc_morf`` — the symmetric relevance gain, the area between the two curves
  (Blücher et al. 2024, "Decoupling pixel flipping and occlusion strategy for consistent XAI
  benchmarks"): higher is better, about 0 for a random map.

All in the units of the model's output (``output="logit"`` or ``"probability"``).
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import torch

from ..errors import ComposerError
from ..explain import model_guard
from .perturb import (PatchSize, Perturbation, perturbed_inputs, ranks, region_ids, region_scores, replacement,
                      spatial_shape, step_counts)

ORDERS = ("morf", "lerf")
METRICS = ("srg", "aopc_morf", "aopc_lerf", "auc_morf", "auc_lerf")
#: which way is better for each metric
HIGHER_IS_BETTER = {"srg": True, "aopc_morf": True, "aopc_lerf": False, "auc_morf": False, "auc_lerf": True}
OUTPUTS = ("logit", "probability")


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (the CPU for a model without any).

    Example
    -------
    >>> model_device(torch.nn.Linear(2, 2)).type
    'cpu'
    """
    for tensor in list(model.parameters())[:1] + list(model.buffers())[:1]:
        return tensor.device
    return torch.device("cpu")


def _scores_of(logits: torch.Tensor, target: torch.Tensor, output: str) -> torch.Tensor:
    if logits.dim() != 2:
        raise ComposerError(f"the model must return (batch, classes), got shape {tuple(logits.shape)}")
    values = logits.softmax(1) if output == "probability" else logits
    return values.gather(1, target[:, None])[:, 0]


def perturbation_curves(model: torch.nn.Module, x: torch.Tensor, relevance: torch.Tensor, target: torch.Tensor, *,
                        steps: int = 20, patch: PatchSize = 1, perturbation="baseline:0", fraction: float = 1.0,
                        output: str = "logit", orders: Sequence[str] = ORDERS,
                        batch_size: int = 1024) -> Tuple[Dict[str, torch.Tensor], torch.Tensor]:
    """The model's output for ``target`` while regions are perturbed in each order.

    Returns ``({order: (batch, steps + 1)}, fractions)``: column 0 is the unperturbed input, column
    ``k`` the input with the first ``counts[k]`` regions replaced; ``fractions`` holds the share of
    regions perturbed at each step. The forward passes are batched: up to ``batch_size`` perturbed
    inputs per call, on the model's device, under ``torch.no_grad``. The model runs in the mode it is in
    (call ``model.eval()`` first, or dropout makes the curves random) and is left as it was: buffers
    such as a training-mode batch norm's statistics are restored.

    Example
    -------
    >>> net = torch.nn.Linear(4, 1, bias=False)
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.tensor([[1., 2., 3., 4.]]))
    >>> x = torch.ones(1, 4)
    >>> curves, t = perturbation_curves(net, x, net.weight * x, torch.tensor([0]), steps=4)
    >>> curves["morf"].tolist(), curves["lerf"].tolist(), t.tolist()
    ([[10.0, 6.0, 3.0, 1.0, 0.0]], [[10.0, 9.0, 7.0, 4.0, 0.0]], [0.0, 0.25, 0.5, 0.75, 1.0])
    """
    perturbation = Perturbation.parse(perturbation)
    if output not in OUTPUTS:
        raise ComposerError(f"output is 'logit' or 'probability', got {output!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ComposerError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = model_device(model)
    x = x.detach().to(device)
    relevance = torch.as_tensor(relevance).detach().to(device=device, dtype=x.dtype)
    if relevance.shape != x.shape:
        try:
            relevance = relevance.expand_as(x)
        except RuntimeError:
            raise ComposerError(f"the relevance map has shape {tuple(relevance.shape)}, the input "
                                f"{tuple(x.shape)}") from None
    if not torch.isfinite(relevance).all():
        raise ComposerError("the relevance map contains NaN or infinite values")
    target = torch.as_tensor(target, device=device).long().reshape(-1).expand(x.shape[0])
    ids, n_regions = region_ids(spatial_shape(x), patch, device=device)
    counts = step_counts(n_regions, steps, fraction)
    x_tilde = replacement(x, perturbation)
    scores = region_scores(relevance, ids, n_regions)
    chunk = max(1, batch_size // counts.numel())
    curves = {}
    with model_guard(model), torch.no_grad():   # a training-mode batch norm's statistics are restored
        for order in orders:
            rank = ranks(scores, order)
            parts = []
            for start in range(0, x.shape[0], chunk):
                part = slice(start, start + chunk)
                inputs = perturbed_inputs(x[part], x_tilde[part], rank[part], ids, counts)
                values = _scores_of(model(inputs), target[part].repeat_interleave(counts.numel()), output)
                parts.append(values.view(-1, counts.numel()))
            curves[order] = torch.cat(parts)
    return curves, counts.to(dtype=x.dtype, device=device) / n_regions


def _trapezoid(curve: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return ((curve[:, 1:] + curve[:, :-1]) * (t[1:] - t[:-1]) / 2).sum(1)


def faithfulness_scores(curves: Dict[str, torch.Tensor], fractions: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Per-sample scores from MoRF and LeRF curves (see the module's docstring for the formulas).

    Example
    -------
    >>> t = torch.tensor([0.0, 0.5, 1.0])
    >>> s = faithfulness_scores({"morf": torch.tensor([[4.0, 1.0, 0.0]]), "lerf": torch.tensor([[4.0, 3.0, 0.0]])}, t)
    >>> {k: round(v.item(), 4) for k, v in s.items()}
    {'srg': 1.0, 'aopc_morf': 2.3333, 'aopc_lerf': 1.6667, 'auc_morf': 1.5, 'auc_lerf': 2.5}
    """
    missing = [o for o in ORDERS if o not in curves]
    if missing:
        raise ComposerError(f"faithfulness scores need both curves; missing {', '.join(missing)}")
    morf, lerf = curves["morf"], curves["lerf"]
    out = {"auc_morf": _trapezoid(morf, fractions), "auc_lerf": _trapezoid(lerf, fractions)}
    out["srg"] = out["auc_lerf"] - out["auc_morf"]
    out["aopc_morf"] = (morf[:, :1] - morf).mean(1)
    out["aopc_lerf"] = (lerf[:, :1] - lerf).mean(1)
    return {name: out[name] for name in METRICS}


def faithfulness(model: torch.nn.Module, x: torch.Tensor, relevance: torch.Tensor,
                 target: Optional[torch.Tensor] = None, **settings) -> Dict[str, torch.Tensor]:
    """Per-sample faithfulness scores of one relevance map (``srg``, ``aopc_morf``, ``aopc_lerf``,
    ``auc_morf``, ``auc_lerf``); ``target`` defaults to each sample's arg-max. ``settings`` are
    :func:`perturbation_curves`'s (``steps``, ``patch``, ``perturbation``, ``fraction``, ``output``,
    ``batch_size``).

    Example
    -------
    >>> net = torch.nn.Linear(6, 2)
    >>> x = torch.randn(3, 6)
    >>> faithfulness(net, x, net.weight[0] * x, target=torch.zeros(3), steps=6)["srg"].shape
    torch.Size([3])
    """
    if target is None:
        with model_guard(model), torch.no_grad():
            target = model(x.to(model_device(model))).argmax(1)
    curves, fractions = perturbation_curves(model, x, relevance, target, **settings)
    return faithfulness_scores(curves, fractions)
