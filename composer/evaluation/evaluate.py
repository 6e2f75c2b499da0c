"""``evaluate(model, data, methods)``: which method explains this model best, by region perturbation."""
from __future__ import annotations

import contextlib
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..errors import ComposerError
from ..explain import Explainer, model_guard
from .metrics import HIGHER_IS_BETTER, METRICS, ORDERS, faithfulness_scores, model_device, perturbation_curves
from .perturb import PatchSize, Perturbation

MethodSpec = Union[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Tuple[str, Mapping[str, Any]]]
Methods = Union[Sequence[Union[str, Callable]], Mapping[str, MethodSpec]]
Progress = Callable[[str, int, int], None]


def as_samples(data) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(inputs, labels or None) from a tensor, an ``(x, y)`` pair or an iterable of batches (a DataLoader
    of tensors or of ``(x, y, ...)`` tuples).

    Example
    -------
    >>> x, y = as_samples([(torch.zeros(2, 3), torch.tensor([0, 1])), (torch.ones(1, 3), torch.tensor([2]))])
    >>> x.shape, y.tolist()
    (torch.Size([3, 3]), [0, 1, 2])
    """
    if isinstance(data, torch.Tensor):
        return data, None
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(d, torch.Tensor) for d in data) \
            and data[1].dim() == 1 and data[0].shape[0] == data[1].shape[0] and data[0].dim() >= 2:
        return data[0], data[1]
    if not isinstance(data, Iterable):
        raise ComposerError(f"data is a tensor, an (x, y) pair or an iterable of batches, not {type(data).__name__}")
    xs, ys = [], []
    for batch in data:
        if isinstance(batch, torch.Tensor):
            xs.append(batch)
        elif isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
            xs.append(batch[0])
            if len(batch) > 1 and isinstance(batch[1], torch.Tensor):
                ys.append(batch[1].reshape(-1))
        else:
            raise ComposerError(f"a batch of data is a tensor or an (x, y) tuple, not {type(batch).__name__}")
    if not xs:
        raise ComposerError("data holds no samples")
    if ys and len(ys) != len(xs):
        raise ComposerError("some batches of data have labels and some do not")
    return torch.cat(xs), torch.cat(ys) if ys else None


def _methods(methods: Methods) -> Dict[str, MethodSpec]:
    if isinstance(methods, (str, Path)):
        methods = [str(methods)]
    if isinstance(methods, Mapping):
        named = dict(methods)
    else:
        named = {}
        for m in methods:
            label = m if isinstance(m, str) else getattr(m, "__name__", None)
            if not isinstance(label, str) or label in named:
                raise ComposerError(f"give methods as a mapping label -> method when they have no distinct names "
                                    f"({m!r})")
            named[label] = m
    if not named:
        raise ComposerError("no methods to evaluate")
    return named


def _explainer(model, spec: MethodSpec, params: Mapping[str, Any]) -> ContextManager[Callable]:
    """A ``with`` block giving the method as a function ``(x, target) -> map``: a preset's
    :class:`~composer.explain.Explainer` (set up once for every batch), or the user's function."""
    if callable(spec):
        return contextlib.nullcontext(spec)
    if isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Mapping):
        name, own = spec
        return Explainer(model, name, **{**params, **own})
    if isinstance(spec, (str, Path, Mapping)):
        return Explainer(model, spec, **params)
    raise ComposerError(f"a method is a name, a preset file, (name, parameters) or a function (x, target) -> map, "
                        f"not {type(spec).__name__}")


def confidence_interval(values: torch.Tensor, confidence: float = 0.95) -> Tuple[float, float, float]:
    """(mean, low, high): the mean with a normal-approximation interval, ``z * sd / sqrt(n)``.

    Example
    -------
    >>> [round(v, 3) for v in confidence_interval(torch.tensor([1.0, 2.0, 3.0, 4.0]))]
    [2.5, 1.235, 3.765]
    """
    if not 0 < confidence < 1:
        raise ComposerError(f"confidence must be in (0, 1), got {confidence!r}")
    v = values.detach().double().cpu()
    mean = v.mean().item()
    if v.numel() < 2:
        return mean, mean, mean
    half = statistics.NormalDist().inv_cdf(0.5 + confidence / 2) * v.std().item() / math.sqrt(v.numel())
    return mean, mean - half, mean + half


@dataclass
class Evaluation:
    """What :func:`evaluate` measured: per-sample scores and curves per method, and the settings.

    ``scores[method][metric]`` is a ``(samples,)`` tensor, ``curves[method]["morf" | "lerf"]`` a
    ``(samples, steps + 1)`` tensor, ``fractions`` the share of regions perturbed at each step.
    """

    scores: Dict[str, Dict[str, torch.Tensor]]
    curves: Dict[str, Dict[str, torch.Tensor]]
    fractions: torch.Tensor
    settings: Dict[str, Any] = field(default_factory=dict)
    confidence: float = 0.95

    @property
    def methods(self) -> List[str]:
        return list(self.scores)

    def table(self) -> List[Dict[str, Any]]:
        """One row per method and metric: mean, confidence interval and number of samples.

        Example
        -------
        >>> ev = Evaluation({"m": {"srg": torch.tensor([1.0, 3.0])}}, {}, torch.tensor([0.0, 1.0]))
        >>> ev.table()[0]["mean"], ev.table()[0]["n"]
        (2.0, 2)
        """
        rows = []
        for method, per_metric in self.scores.items():
            for metric, values in per_metric.items():
                mean, low, high = confidence_interval(values, self.confidence)
                rows.append({"method": method, "metric": metric, "mean": mean, "ci_low": low, "ci_high": high,
                             "n": int(values.numel()), "higher_is_better": HIGHER_IS_BETTER.get(metric, True)})
        return rows

    def mean(self, method: str, metric: str = "srg") -> float:
        """The mean of one metric for one method.

        Example
        -------
        >>> Evaluation({"m": {"srg": torch.tensor([1.0, 3.0])}}, {}, torch.tensor([0.0])).mean("m")
        2.0
        """
        try:
            return self.scores[method][metric].double().mean().item()
        except KeyError:
            raise ComposerError(f"no {metric!r} for method {method!r}; methods: {', '.join(self.scores)}") from None

    def ranked(self, metric: str = "srg") -> List[Tuple[str, float]]:
        """Methods best first by ``metric`` (its better direction), with their means.

        Example
        -------
        >>> ev = Evaluation({"a": {"srg": torch.tensor([1.0])}, "b": {"srg": torch.tensor([2.0])}}, {}, torch.zeros(1))
        >>> ev.ranked("srg")
        [('b', 2.0), ('a', 1.0)]
        """
        means = [(m, self.mean(m, metric)) for m in self.scores]
        return sorted(means, key=lambda item: item[1], reverse=HIGHER_IS_BETTER.get(metric, True))

    def mean_curves(self) -> Dict[str, Dict[str, List[float]]]:
        """Each method's curves averaged over the samples (for plots and JSON).

        Example
        -------
        >>> ev = Evaluation({}, {"m": {"morf": torch.tensor([[2.0, 0.0], [4.0, 2.0]])}}, torch.tensor([0.0, 1.0]))
        >>> ev.mean_curves()
        {'m': {'morf': [3.0, 1.0]}}
        """
        return {m: {o: c.double().mean(0).tolist() for o, c in per.items()} for m, per in self.curves.items()}

    def to_csv(self, path: Union[str, Path]) -> Path:
        """Write :meth:`table` as CSV.

        Example
        -------
        >>> import tempfile, os
        >>> ev = Evaluation({"m": {"srg": torch.tensor([1.0, 3.0])}}, {}, torch.tensor([0.0, 1.0]))
        >>> open(ev.to_csv(os.path.join(tempfile.mkdtemp(), "t.csv"))).readline().strip()
        'method,metric,mean,ci_low,ci_high,n,higher_is_better'
        """
        path = Path(path)
        rows = self.table()
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["method", "metric", "mean", "ci_low", "ci_high", "n",
                                                   "higher_is_better"])
            writer.writeheader()
            writer.writerows(rows)
        return path

    def to_json(self, path: Union[str, Path]) -> Path:
        """Write the table, the mean curves, the fractions and the settings as JSON.

        Example
        -------
        >>> import tempfile, os, json
        >>> ev = Evaluation({"m": {"srg": torch.tensor([1.0])}}, {"m": {"morf": torch.ones(1, 2)}}, torch.tensor([0.0, 1.0]))
        >>> sorted(json.load(open(ev.to_json(os.path.join(tempfile.mkdtemp(), "t.json")))))
        ['confidence', 'curves', 'fractions', 'settings', 'table']
        """
        path = Path(path)
        doc = {"table": self.table(), "curves": self.mean_curves(), "fractions": self.fractions.tolist(),
               "settings": self.settings, "confidence": self.confidence}
        path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        return path


def evaluate(model: torch.nn.Module, data, methods: Methods, *, target=None, steps: int = 20,
             patch: PatchSize = 1, perturbation: Union[str, Perturbation] = "baseline:0", fraction: float = 1.0,
             output: str = "logit", batch_size: int = 1024, explain_batch_size: int = 256,
             confidence: float = 0.95, progress: Optional[Progress] = None, **params: Any) -> Evaluation:
    """Score explanation methods by region perturbation on one model and data set.

    Each method explains every sample (for ``target``: labels, one class, or None for the model's
    arg-max), then the regions of each input are perturbed most relevant first (MoRF) and least
    relevant first (LeRF) in ``steps`` steps, and the model's output for the target is recorded
    (:mod:`composer.evaluation.metrics`). Forward passes are batched (``batch_size`` perturbed inputs
    per call) on the model's device; the model is not modified.

    Parameters
    ----------
    data : tensor, ``(x, y)`` or iterable of batches
        The samples. Labels in ``data`` are ignored unless ``target="labels"``.
    methods : names, or a mapping label -> method
        A method is a preset or method name, a preset file, ``(name, {parameters})``, or a function
        ``(x, target) -> map`` (a reference map, a random baseline).
    patch : int or tuple
        Region size: ``patch`` x ``patch`` pixels (images), ``patch`` steps (time series), ``patch``
        features (flat inputs); 1 is pixel flipping.
    perturbation : str or Perturbation
        ``baseline:0``, ``baseline:mean``, ``blur:SIGMA``, ``noise:SIGMA[:SEED]``.
    fraction : float
        Share of the regions perturbed at the last step.
    output : ``"logit"`` or ``"probability"``
        What the curves record.
    progress : callable, optional
        Called as ``progress(method, done, total)`` after each method.
    **params :
        Parameters for every named method (``epsilon=0.25``).

    Returns
    -------
    Evaluation
        ``.table()`` (methods x metrics: mean, confidence interval), ``.ranked("srg")``, ``.curves``,
        ``.to_csv()``, ``.to_json()``.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    >>> ev = evaluate(net, torch.randn(32, 8), ["gradient_x_input", "lrp_epsilon_0_1"], steps=8)
    >>> [row["metric"] for row in ev.table()][:2], ev.curves["gradient_x_input"]["morf"].shape
    (['srg', 'aopc_morf'], torch.Size([32, 9]))
    """
    named = _methods(methods)
    x, labels = as_samples(data)
    device = model_device(model)
    x = x.to(device)
    if isinstance(target, str):
        if target != "labels":
            raise ComposerError(f"target is None (arg-max), a class, a sequence of classes or 'labels', not {target!r}")
        if labels is None:
            raise ComposerError("target='labels' but the data has no labels")
        target = labels
    with model_guard(model), torch.no_grad():
        if target is None:
            target = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])
    target = torch.as_tensor(target, device=device).long().reshape(-1).expand(x.shape[0]).contiguous()
    settings = {"steps": steps, "patch": patch, "perturbation": Perturbation.parse(perturbation).describe(),
                "fraction": fraction, "output": output, "samples": int(x.shape[0]), "params": dict(params)}
    scores, curves, fractions = {}, {}, None
    for done, (label, spec) in enumerate(named.items(), start=1):
        with _explainer(model, spec, params) as fn:
            maps = torch.cat([torch.as_tensor(fn(x[i:i + explain_batch_size], target[i:i + explain_batch_size]))
                              for i in range(0, x.shape[0], explain_batch_size)])
        curves[label], fractions = perturbation_curves(
            model, x, maps, target, steps=steps, patch=patch, perturbation=perturbation, fraction=fraction,
            output=output, orders=ORDERS, batch_size=batch_size)
        scores[label] = faithfulness_scores(curves[label], fractions)
        if progress:
            progress(label, done, len(named))
    return Evaluation(scores, curves, fractions, settings, confidence)


__all__ = ["evaluate", "Evaluation", "as_samples", "confidence_interval", "METRICS"]
