"""SignXAI-style analyzer classes, for users coming from ``signxai.torch_signxai``.

Each is a thin entry point over :func:`composer.explain` with no logic of its own: the
constructor turns SignXAI's arguments into a method (a preset name or a small preset mapping),
and ``analyze`` returns a numpy array, as SignXAI documents.

    >>> import torch
    >>> from composer.analyzers import GradientAnalyzer, LRPAnalyzer
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> GradientAnalyzer(net).analyze(torch.ones(1, 4), target_class=0).shape
    (1, 4)
    >>> LRPAnalyzer(net, rule_name="epsilon", epsilon=0.1).analyze(torch.ones(1, 4)).shape
    (1, 4)
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from .errors import ComposerError
from .compiler import compile_preset
from .explain import explain
from .registry import rule_named

def _binding(select, rule_name: str, defaults: Dict[str, Any], given: Optional[Dict[str, Any]] = None) -> dict:
    """A binding for SignXAI's rule name (a rule's name or one of its spec's ``aliases``): of the analyzer's
    ``defaults`` those the rule takes, and every parameter the caller ``given`` (validated by the rule)."""
    rule = rule_named(rule_name).spec
    return {"select": select, "rule": rule.name,
            "with": {**{k: v for k, v in defaults.items() if k in rule.params}, **(given or {})}}


def _lrp_preset(name: str, *bindings: dict) -> dict:
    return {"name": name, "extends": "lrp_base", "layers": list(bindings)}


class AnalyzerBase:
    """Base class: ``analyze(input_tensor, target_class=None, **kwargs) -> np.ndarray``.

    ``kwargs`` of ``analyze`` are method parameters passed to :func:`composer.explain`.
    """

    method: Union[str, dict] = "gradient"

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.params: Dict[str, Any] = {}

    def analyze(self, input_tensor: torch.Tensor, target_class: Union[int, torch.Tensor, None] = None,
                **kwargs) -> np.ndarray:
        """The attribution of ``input_tensor`` (with batch axis) for ``target_class`` as numpy."""
        result = explain(self.model, input_tensor, self.method, target=target_class, **{**self.params, **kwargs})
        return result.detach().cpu().numpy()


class GradientAnalyzer(AnalyzerBase):
    """Vanilla gradient."""
    method = "gradient"


class GradientXInputAnalyzer(AnalyzerBase):
    """Gradient × input."""
    method = "gradient_x_input"


class GradientXSignAnalyzer(AnalyzerBase):
    """Gradient × sign(input), with threshold ``mu``."""

    def __init__(self, model: torch.nn.Module, mu: float = 0.0):
        super().__init__(model)
        self.method, self.params = "gradient_x_sign_mu", {"mu": mu}


class IntegratedGradientsAnalyzer(AnalyzerBase):
    """Integrated gradients (``baseline_type``: zero, black, white)."""

    def __init__(self, model: torch.nn.Module, steps: int = 50, baseline_type: str = "zero"):
        super().__init__(model)
        self.method, self.params = "integrated_gradients", {"steps": steps, "baseline": baseline_type}


class SmoothGradAnalyzer(AnalyzerBase):
    """SmoothGrad; ``stdev_spread`` is SignXAI's other name for ``noise_level``."""

    def __init__(self, model: torch.nn.Module, noise_level: float = 0.2, num_samples: int = 50, stdev_spread=None):
        super().__init__(model)
        level = noise_level if stdev_spread is None else stdev_spread
        self.method, self.params = "smoothgrad", {"noise_level": level, "num_samples": num_samples}


class VarGradAnalyzer(AnalyzerBase):
    """VarGrad."""

    def __init__(self, model: torch.nn.Module, noise_level: float = 0.2, num_samples: int = 50):
        super().__init__(model)
        self.method, self.params = "vargrad", {"noise_level": noise_level, "num_samples": num_samples}


class GuidedBackpropAnalyzer(AnalyzerBase):
    """Guided backpropagation (started from the target logit, as iNNvestigate)."""
    method = "guided_backprop"


class DeconvNetAnalyzer(AnalyzerBase):
    """DeconvNet (started from the target logit, as iNNvestigate)."""
    method = "deconvnet"


class GradCAMAnalyzer(AnalyzerBase):
    """Grad-CAM on ``target_layer`` (a module of the model; default: the last convolution)."""

    def __init__(self, model: torch.nn.Module, target_layer: Optional[torch.nn.Module] = None):
        super().__init__(model)
        self.method = "grad_cam"
        if target_layer is not None:
            names = [n for n, m in model.named_modules() if m is target_layer]
            if not names:
                raise ComposerError("target_layer is not a module of the model")
            self.params = {"layer": names[0]}


class LRPAnalyzer(AnalyzerBase):
    """One rule on every layer: ``rule_name`` in epsilon, z, zplus, alphabeta, gamma, flat, wsquare, stdx..."""

    def __init__(self, model: torch.nn.Module, rule_name: str = "epsilon", epsilon: Optional[float] = None,
                 alpha: Optional[float] = None, beta: Optional[float] = None, **rule_kwargs):
        super().__init__(model)
        defaults = dict(epsilon=1e-6, alpha=1.0, beta=0.0)   # SignXAI's, for the rules that take them
        given = {k: v for k, v in dict(epsilon=epsilon, alpha=alpha, beta=beta).items() if v is not None}
        self.method = _lrp_preset(f"lrp_{rule_name}", _binding("all", rule_name, defaults, {**given, **rule_kwargs}))
        compile_preset(self.method)   # a parameter the rule does not take is an error now, not dropped


class LRPStdxEpsilonAnalyzer(AnalyzerBase):
    """StdX-epsilon on every layer."""

    def __init__(self, model: torch.nn.Module, stdfactor: float = 0.25, bias: bool = True, **kwargs):
        super().__init__(model)
        self.method = _lrp_preset("lrp_stdx", _binding("all", "stdx_epsilon", {"stdfactor": stdfactor, "bias": bias}))


class DirectLRPStdxEpsilonAnalyzer(LRPStdxEpsilonAnalyzer):
    """The seed's second StdX analyzer; identical here (no bypass of zennit is needed)."""

    def __init__(self, model: torch.nn.Module, stdfactor: float = 1.0, **kwargs):
        super().__init__(model, stdfactor=stdfactor)


class BoundedLRPAnalyzer(AnalyzerBase):
    """Z-box on the first layer (inputs in [low, high]), ``rule_name`` elsewhere."""

    def __init__(self, model: torch.nn.Module, low: float = 0.0, high: float = 1.0, rule_name: str = "epsilon",
                 **kwargs):
        super().__init__(model)
        kwargs.setdefault("epsilon", 0.1)
        self.method = _lrp_preset("bounded_lrp", _binding("first", "zbox", {"low": low, "high": high}),
                                  _binding("all", rule_name, kwargs))


class LRPSequential(AnalyzerBase):
    """Different rules for first, middle and last layers; ``variant='A'|'B'`` gives the sequential composites."""

    def __init__(self, model: torch.nn.Module, first_layer_rule_name: str = "zbox",
                 middle_layer_rule_name: str = "alphabeta", last_layer_rule_name: str = "epsilon",
                 variant: Optional[str] = None, **kwargs):
        super().__init__(model)
        if variant is not None:
            if str(variant).lower() not in ("a", "b"):
                raise ComposerError(f"variant must be 'A' or 'B', got {variant!r}")
            self.method = f"lrp_sequential_composite_{str(variant).lower()}"
            self.params = {k: v for k, v in kwargs.items() if k == "epsilon"}
            return
        params = {"epsilon": 0.1, "alpha": 1.0, "beta": 0.0, **kwargs}
        self.method = _lrp_preset("lrp_sequential", _binding("first", first_layer_rule_name, params),
                                  _binding("last", last_layer_rule_name, params),
                                  _binding("all", middle_layer_rule_name, params))


class AdvancedLRPAnalyzer(AnalyzerBase):
    """Any LRP method by name (``variant``: a preset or SignXAI method name), parameters as keywords."""

    def __init__(self, model: torch.nn.Module, variant: str = "epsilon", **kwargs):
        super().__init__(model)
        self.method = variant if variant.startswith(("lrp", "w2lrp", "flatlrp", "zblrp")) else f"lrp_{variant}"
        self.params = kwargs


class DeepTaylorAnalyzer(AnalyzerBase):
    """Deep Taylor decomposition (Z+ on every layer); ``epsilon`` is accepted for SignXAI compatibility."""

    def __init__(self, model: torch.nn.Module, epsilon: float = 1e-6):
        super().__init__(model)
        self.method = "deep_taylor"


class DeepLiftAnalyzer(AnalyzerBase):
    """DeepLIFT, Rescale rule (``baseline_type``: zero, black, white)."""

    def __init__(self, model: torch.nn.Module, baseline_type: str = "zero", **kwargs):
        super().__init__(model)
        self.method, self.params = "deeplift", {"baseline": baseline_type}


def calculate_relevancemap(model: torch.nn.Module, input_tensor: torch.Tensor, method: str,
                           target_class: Union[int, torch.Tensor, None] = None,
                           neuron_selection: Union[int, torch.Tensor, None] = None, **kwargs: Any) -> np.ndarray:
    """SignXAI's functional entry point: ``method`` by name, result as numpy.

    Example
    -------
    >>> net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    >>> calculate_relevancemap(net, torch.ones(1, 4), "lrpsign_epsilon_0_1", neuron_selection=1).shape
    (1, 4)
    """
    target = neuron_selection if neuron_selection is not None else target_class
    return explain(model, input_tensor, method, target=target, **kwargs).detach().cpu().numpy()
