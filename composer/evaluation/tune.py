"""Tuning a preset: search its declared parameters for the values a faithfulness metric likes best.

A preset's *tunable* parameters are those its bindings pass to a rule's numeric (``float``/``int``)
parameter (``with: {gamma: $gamma}``); per-selector parameters (``$gamma_block1``,
``$gamma_block2``) are tuned one by one. Each search range comes from the rule spec's bounds
(``ge``/``gt``/``le``/``lt``, intersected when several rules take one parameter), narrowed around
the preset's value:

* a parameter whose bounds allow only non-negative values is searched on a log scale, from the
  preset's value / 100 to its value x 100 (1e-3 .. 1 when the value is 0), within the bounds;
* any other is searched on a linear scale, value +- max(|value|, 1), within the bounds.

``ranges={"gamma": (0.01, 10)}`` (or ``(low, high, "linear")``) replaces a range. The search is
random sampling then local refinement around the best point, ``budget`` evaluations in all (the
first is the untuned preset), driven by one seeded generator: the same seed gives the same result.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import yaml

from .. import registry
from ..errors import ComposerError
from ..explain import model_guard
from ..names import parse_method
from ..resolve import load_preset
from .evaluate import as_samples, evaluate
from .metrics import HIGHER_IS_BETTER, METRICS, model_device

Range = Tuple[float, float, str]


@dataclass(frozen=True)
class TunableParameter:
    """A preset parameter the search may change: its value in the preset, type and search range."""

    name: str
    value: float
    type: str
    low: float
    high: float
    scale: str                      # "log" or "linear"
    rules: Tuple[str, ...] = ()     # the rules that take it

    def from_unit(self, u: float) -> float:
        """The value at ``u`` in [0, 1] along the range (4 significant digits; integers rounded).

        Example
        -------
        >>> TunableParameter("g", 0.5, "float", 0.01, 1.0, "log").from_unit(0.5)
        0.1
        """
        if self.scale == "log":
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        v = min(max(float(f"{v:.4g}"), self.low), self.high)
        return int(round(v)) if self.type == "int" else v


def _bounds(spec) -> Tuple[Optional[float], Optional[float], bool]:
    low = spec.ge if spec.ge is not None else spec.gt
    high = spec.le if spec.le is not None else spec.lt
    return low, high, spec.gt is not None


def _range(value: float, low: Optional[float], high: Optional[float], open_low: bool) -> Range:
    """The default search range of a parameter with the value ``value`` and the bounds ``low``, ``high``."""
    if low is not None and low >= 0:
        center = value if value > 0 else None
        lo, hi = (center / 100, center * 100) if center else (1e-3, 1.0)
        lo = max(lo, low if low > 0 else 0.0) or lo
        hi = min(hi, high) if high is not None else hi
        if lo < hi:
            return _nice(lo), _nice(hi), "log"
    spread = max(abs(value), 1.0)
    lo, hi = value - spread, value + spread
    if low is not None:
        lo = max(lo, low + (1e-12 if open_low else 0.0))
    if high is not None:
        hi = min(hi, high)
    return _nice(lo), _nice(hi), "linear"


def _nice(value: float) -> float:
    """``value`` to 4 significant digits (ranges and values that read well in YAML)."""
    return float(f"{value:.4g}")


def tunable_parameters(preset, ranges: Optional[Mapping[str, Sequence]] = None,
                       names: Optional[Sequence[str]] = None) -> Dict[str, TunableParameter]:
    """The parameters of ``preset`` a search may change, with their ranges (see the module's docstring).

    ``names`` restricts the search to some of them; ``ranges`` overrides ranges.

    Example
    -------
    >>> p = tunable_parameters("lrp_gamma")["gamma"]
    >>> (p.value, p.low, p.high, p.scale, p.rules)
    (0.5, 0.005, 50.0, 'log', ('gamma',))
    >>> tunable_parameters("lrp_epsilon", ranges={"epsilon": (0.01, 1.0)})["epsilon"].high
    1.0
    """
    resolved = load_preset(preset)
    found: Dict[str, List[Tuple[str, Any]]] = {}
    for binding, _, _ in resolved.layers:
        rule = registry.get_rule(binding.rule).spec
        for key, ref in binding.with_.items():
            if isinstance(ref, str) and ref.startswith("$") and key in rule.params:
                found.setdefault(ref[1:], []).append((binding.rule, rule.params[key]))
    out: Dict[str, TunableParameter] = {}
    for name, uses in found.items():
        value = resolved.params.get(name)
        types = {spec.type for _, spec in uses}
        if not types <= {"float", "int"} or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        lows = [b for b in (_bounds(s)[0] for _, s in uses) if b is not None]
        highs = [b for b in (_bounds(s)[1] for _, s in uses) if b is not None]
        low, high = (max(lows) if lows else None), (min(highs) if highs else None)
        open_low = any(_bounds(s)[2] and _bounds(s)[0] == low for _, s in uses)
        lo, hi, scale = _range(float(value), low, high, open_low)
        out[name] = TunableParameter(name, value, "int" if types == {"int"} else "float", lo, hi, scale,
                                     tuple(dict.fromkeys(r for r, _ in uses)))
    if names is not None:
        unknown = [n for n in names if n not in out]
        if unknown:
            raise ComposerError(f"{', '.join(unknown)} not tunable in preset '{resolved.name}'; tunable: "
                                f"{', '.join(out) or 'none'}")
        out = {n: out[n] for n in names}
    for name, given in (ranges or {}).items():
        if name not in out:
            raise ComposerError(f"a range for '{name}', which preset '{resolved.name}' does not tune; tunable: "
                                f"{', '.join(out) or 'none'}")
        lo, hi, *rest = given
        scale = rest[0] if rest else out[name].scale
        if scale not in ("log", "linear") or not lo < hi or (scale == "log" and lo <= 0):
            raise ComposerError(f"range of '{name}' must be (low, high[, 'log' | 'linear']) with low < high "
                                f"(and low > 0 on a log scale), got {tuple(given)!r}")
        out[name] = TunableParameter(name, out[name].value, out[name].type, float(lo), float(hi), scale,
                                     out[name].rules)
    if not out:
        declared = ", ".join(f"{k}={v!r}" for k, v in resolved.params.items()) or "none"
        raise ComposerError(f"preset '{resolved.name}' has no tunable parameter: tune searches the parameters its "
                            f"bindings pass to a rule's numeric parameter (with: {{gamma: $gamma}}); its parameters: "
                            f"{declared}", source=resolved.source)
    return out


def fingerprint(x: torch.Tensor, target: Optional[torch.Tensor] = None) -> str:
    """A short SHA-256 of the samples (shape, dtype, values) and targets: which data a result was tuned on.

    Example
    -------
    >>> fingerprint(torch.zeros(2, 3)) == fingerprint(torch.zeros(2, 3)), fingerprint(torch.zeros(2, 3)) == fingerprint(torch.ones(2, 3))
    (True, False)
    """
    h = hashlib.sha256()
    x = x.detach().cpu().contiguous()
    h.update(f"{tuple(x.shape)} {x.dtype}".encode())
    h.update(x.numpy().tobytes())
    if target is not None:
        h.update(target.detach().cpu().long().contiguous().numpy().tobytes())
    return "sha256:" + h.hexdigest()[:16]


@dataclass
class TuneResult:
    """The outcome of :func:`tune`: the best parameters, their score and the untuned one, every trial, the
    search settings and the data fingerprint."""

    preset: str
    metric: str
    params: Dict[str, Any]
    score: float
    untuned_score: float
    trials: List[Tuple[Dict[str, Any], float]]
    settings: Dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""

    def summary(self) -> str:
        """One line: the score, the untuned score, the search settings and the data fingerprint.

        Example
        -------
        >>> r = TuneResult("lrp_gamma", "srg", {"gamma": 0.1}, 2.0, 1.5, [], {"budget": 8, "seed": 0}, "sha256:ab")
        >>> r.summary()
        'lrp_gamma tuned for srg = 2 (untuned 1.5); search budget=8, seed=0; data sha256:ab'
        """
        search = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        return (f"{self.preset} tuned for {self.metric} = {self.score:.6g} (untuned {self.untuned_score:.6g}); "
                f"search {search}; data {self.fingerprint}")

    def to_preset(self, name: Optional[str] = None) -> Dict[str, Any]:
        """The tuned preset as a mapping: it ``extends`` the original and sets the best parameters.

        Example
        -------
        >>> r = TuneResult("lrp_gamma", "srg", {"gamma": 0.1}, 2.0, 1.5, [], {"seed": 0}, "sha256:ab")
        >>> r.to_preset()["extends"], r.to_preset()["params"]
        ('lrp_gamma', {'gamma': 0.1})
        """
        base = Path(self.preset).stem if self.preset.endswith((".yaml", ".yml")) else self.preset
        return {"name": name or f"{base}_tuned", "summary": self.summary(), "extends": self.preset,
                "params": dict(self.params)}

    def write(self, path: Union[str, Path], name: Optional[str] = None) -> Path:
        """Write the tuned preset (:meth:`to_preset`) as YAML, with every trial in a comment.

        Example
        -------
        >>> import tempfile, os, composer
        >>> r = TuneResult("lrp_gamma", "srg", {"gamma": 0.1}, 2.0, 1.5, [({"gamma": 0.5}, 1.5)], {"seed": 0}, "x")
        >>> path = r.write(os.path.join(tempfile.mkdtemp(), "lrp_gamma_tuned.yaml"))
        >>> composer.compile_preset(str(path)).params["gamma"]
        0.1
        """
        path = Path(path)
        doc = self.to_preset(name or path.stem)
        original = Path(self.preset)
        if original.is_absolute() and original.parent == path.resolve().parent and \
                not registry.has_preset(original.stem):
            doc["extends"] = original.stem     # a file beside the original extends it by name (stays movable)
        trials = "\n".join(f"#   {self.metric} = {score:.6g}  {params}" for params, score in self.trials)
        header = f"# written by composer tune: {len(self.trials)} trials (the first is the untuned preset)\n{trials}\n"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=1000))
        return path


def _preset_ref(preset) -> str:
    if isinstance(preset, Path) or (isinstance(preset, str) and (preset.endswith((".yaml", ".yml")) or "/" in preset)):
        path = Path(preset)
        if not path.is_file():
            raise ComposerError("no such preset file", source=str(path))
        return str(path.resolve())
    if isinstance(preset, str):
        if not registry.has_preset(preset):
            try:
                parsed = parse_method(preset)
            except ComposerError:
                load_preset(preset)   # raises, naming the closest presets
                raise
            raise ComposerError(f"tune takes a preset (a registered name or a YAML file), not the method name "
                                f"'{preset}': tune its presets ({', '.join(parsed.extends)}) or a file that "
                                f"extends them")
        return preset
    raise ComposerError(f"tune takes a preset name or a preset YAML file, not {type(preset).__name__}")


def tune(model: torch.nn.Module, preset, data, *, metric: str = "srg", budget: int = 16, seed: int = 0,
         names: Optional[Sequence[str]] = None, ranges: Optional[Mapping[str, Sequence]] = None, target=None,
         steps: int = 10, patch=1, perturbation="baseline:0", fraction: float = 1.0, output: str = "logit",
         batch_size: int = 1024, progress: Optional[Callable[[int, int, float], None]] = None) -> TuneResult:
    """Search the tunable parameters of ``preset`` for the best ``metric`` on ``data`` (a validation sample).

    ``budget`` evaluations in all: the untuned preset, then random points in the ranges
    (:func:`tunable_parameters`), then local refinement around the best; one generator seeded with
    ``seed`` draws them all, so the same seed, model and data give the same result. ``metric`` is one
    of :data:`~composer.evaluation.metrics.METRICS` (its better direction is used); the perturbation
    settings are :func:`composer.evaluation.evaluate`'s. ``progress(done, budget, best)`` is called
    after each evaluation. Refuses a preset with no tunable parameter.

    Example
    -------
    >>> torch.manual_seed(0) and None
    >>> net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    >>> result = tune(net, "lrp_epsilon", torch.randn(16, 6), budget=4, steps=6)
    >>> sorted(result.params), result.score >= result.untuned_score, len(result.trials)
    (['epsilon'], True, 4)
    """
    if metric not in METRICS:
        raise ComposerError(f"unknown metric '{metric}'; metrics: {', '.join(METRICS)}")
    if not isinstance(budget, int) or budget < 2:
        raise ComposerError(f"budget (evaluations, the untuned preset included) must be an integer >= 2, got {budget!r}")
    ref = _preset_ref(preset)
    space = tunable_parameters(ref, ranges=ranges, names=names)
    x, labels = as_samples(data)
    device = model_device(model)
    x = x.to(device)
    if isinstance(target, str) and target == "labels":
        target = labels
    if target is None:
        with model_guard(model), torch.no_grad():
            target = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, x.shape[0], batch_size)])
    target = torch.as_tensor(target, device=device).long().reshape(-1).expand(x.shape[0]).contiguous()
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    settings = {"metric": metric, "budget": budget, "seed": seed, "steps": steps, "patch": patch,
                "perturbation": str(perturbation), "fraction": fraction, "output": output,
                "samples": int(x.shape[0]),
                "ranges": {p.name: [p.low, p.high, p.scale] for p in space.values()}}

    def score(params: Dict[str, Any]) -> float:
        try:
            ev = evaluate(model, x, {"candidate": (ref, params)}, target=target, steps=steps, patch=patch,
                          perturbation=perturbation, fraction=fraction, output=output, batch_size=batch_size)
        except ComposerError:
            return math.nan    # a combination the rules refuse (e.g. an ordering constraint)
        value = ev.mean("candidate", metric)
        return value if math.isfinite(value) else math.nan

    rng = np.random.default_rng(seed)
    params_list = list(space.values())
    untuned = {p.name: p.value for p in params_list}
    trials: List[Tuple[Dict[str, Any], float]] = []
    best_u, best_value = None, -math.inf
    n_random = max(1, (budget - 1) // 2)
    for i in range(budget):
        if i == 0:
            u, candidate = None, untuned
        else:
            if i <= n_random or best_u is None:
                u = rng.random(len(params_list))
            else:
                width = 0.2 * 0.7 ** (i - n_random - 1)
                u = np.clip(best_u + rng.normal(0.0, width, len(params_list)), 0.0, 1.0)
            candidate = {p.name: p.from_unit(float(v)) for p, v in zip(params_list, u)}
        raw = score(candidate)
        trials.append((candidate, raw))
        objective = sign * raw if math.isfinite(raw) else -math.inf
        if objective > best_value:
            best_value, best = objective, (candidate, raw)
            best_u = u if u is not None else np.array([_to_unit(p, p.value) for p in params_list])
        if progress:
            progress(i + 1, budget, best[1] if math.isfinite(best_value) else math.nan)
    if not math.isfinite(best_value):
        raise ComposerError(f"no parameter setting of '{ref}' could be evaluated")
    return TuneResult(ref, metric, dict(best[0]), best[1], trials[0][1], trials, settings, fingerprint(x, target))


def _to_unit(p: TunableParameter, value: float) -> float:
    value = min(max(float(value), p.low), p.high)
    if p.scale == "log":
        return (math.log(value) - math.log(p.low)) / (math.log(p.high) - math.log(p.low))
    return (value - p.low) / (p.high - p.low)
