"""What every method shares: the attributor and modifier registries, their parameter checks, and
:class:`Backprop`, which runs the model with the preset's composite."""
from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Dict, Literal, Optional, Union

import torch

from ..errors import ComposerError, closest

ATTRIBUTORS: Dict[str, Callable] = {}
MODIFIERS: Dict[str, Callable] = {}
#: bounds of attributor and modifier parameters (inclusive): no preset may ask for unbounded work
BOUNDS = {"steps": (2, 4096), "num_samples": (1, 4096), "noise_level": (0.0, 100.0), "mu": (-1e12, 1e12),
          "tolerance": (0.0, 1.0)}


def attributor(name: str):
    """Decorator: register ``fn(backprop, x, target, **params) -> Tensor`` as an attributor.

    Example
    -------
    >>> @attributor("doubled_gradient")
    ... def doubled_gradient(backprop, x, target):
    ...     '''Twice the gradient.'''
    ...     return 2 * backprop.gradient(x, target, start="one")
    >>> "doubled_gradient" in ATTRIBUTORS
    True
    """
    def decorate(fn):
        ATTRIBUTORS[name] = fn
        return fn
    return decorate


def modifier(name: str):
    """Decorator: register ``fn(relevance, x, **params) -> Tensor`` as an output modifier.

    Example
    -------
    >>> @modifier("x_abs")
    ... def x_abs(relevance, x):
    ...     '''Multiply by |x|.'''
    ...     return relevance * x.abs()
    >>> "x_abs" in MODIFIERS
    True
    """
    def decorate(fn):
        MODIFIERS[name] = fn
        return fn
    return decorate


def _check_call(table: Dict[str, Callable], kind: str, name: str, params: Dict[str, Any], skip: int,
                source: str, field: str) -> Dict[str, Any]:
    fn = table.get(name)
    if fn is None:
        raise ComposerError(f"unknown {kind} '{name}'; known: {', '.join(sorted(table))}", source=source,
                            field=f"{field}.name", suggestions=closest(name, table))
    sig = list(inspect.signature(fn).parameters.values())[skip:]
    allowed = {p.name: p for p in sig if p.kind == p.KEYWORD_ONLY or p.kind == p.POSITIONAL_OR_KEYWORD}
    hints = typing.get_type_hints(fn)
    for key, value in params.items():
        if key not in allowed:
            raise ComposerError(f"{kind} '{name}' has no parameter '{key}' (parameters: {', '.join(allowed) or 'none'})",
                                source=source, field=f"{field}.with.{key}", suggestions=closest(key, allowed))
        _check_type(hints.get(key), value, source, f"{field}.with.{key}")
        if key in BOUNDS and isinstance(value, (int, float)) and not isinstance(value, bool):
            low, high = BOUNDS[key]
            if not low <= value <= high:
                raise ComposerError(f"{value!r} is out of range: must be within [{low:g}, {high:g}]", source=source,
                                    field=f"{field}.with.{key}")
    return dict(params)


def _check_type(hint, value, source, field):
    if hint is None or hint is Any:
        return
    origin = typing.get_origin(hint)
    if origin is Literal:
        if value not in typing.get_args(hint):
            raise ComposerError(f"{value!r} is not one of {list(typing.get_args(hint))}", source=source, field=field,
                                suggestions=closest(str(value), [str(a) for a in typing.get_args(hint)]))
        return
    if origin is Union:
        errors = []
        for arg in typing.get_args(hint):
            try:
                _check_type(arg, value, source, field)
                return
            except ComposerError as err:
                errors.append(err.message)
        raise ComposerError(f"{value!r} does not fit: " + "; ".join(errors), source=source, field=field)
    if hint is type(None):
        if value is not None:
            raise ComposerError("expected nothing (null)", source=source, field=field)
        return
    if hint is bool and not isinstance(value, bool):
        raise ComposerError(f"expected a boolean, got {value!r}", source=source, field=field)
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ComposerError(f"expected an integer, got {value!r}", source=source, field=field)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ComposerError(f"expected a number, got {value!r}", source=source, field=field)
        if value != value or value in (float("inf"), float("-inf")):
            raise ComposerError(f"expected a finite number, got {value!r}", source=source, field=field)
    if hint is str and not isinstance(value, str):
        raise ComposerError(f"expected a string, got {value!r}", source=source, field=field)
    if hint is torch.Tensor and not isinstance(value, torch.Tensor):
        raise ComposerError(f"expected a tensor, got {type(value).__name__}", source=source, field=field)


def check_attributor(name: str, params: Dict[str, Any], source: str = "<preset>") -> Dict[str, Any]:
    """Validate an attributor name and its parameters (unknown ones name the closest valid)."""
    return _check_call(ATTRIBUTORS, "attributor", name, params, 3, source, "attributor")


def check_modifier(name: str, params: Dict[str, Any], source: str = "<preset>", field: str = "modifiers") -> Dict[str, Any]:
    """Validate a modifier name and its parameters."""
    return _check_call(MODIFIERS, "modifier", name, params, 2, source, field)


# --------------------------------------------------------------------------- the backward pass
@dataclass
class Backprop:
    """Runs ``model`` (with the preset's composite registered) forward and backward.

    ``start`` is the value the backward pass starts from at the target output: ``"one"`` (the
    gradient of the target logit) or ``"logit"`` (one-hot times the logit, as iNNvestigate's LRP,
    guided backprop and DeconvNet start). A target of ``None`` means each sample's arg-max, read
    from the same forward pass.
    """

    model: torch.nn.Module
    batch_size: Optional[int] = None

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The model's output for ``x``, checked to be ``(N, classes)``."""
        try:
            out = self.model(x)
        except RuntimeError as err:
            if "modified inplace" in str(err):
                raise ComposerError("an in-place operation in the model's forward changes the output of a layer "
                                    "that an LRP rule needs (use inplace=False, or keep graph canonization on, "
                                    "which makes the model out-of-place)") from err
            raise ComposerError(f"the model rejected an input of shape {tuple(x.shape)}: "
                                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
        except (ValueError, TypeError, IndexError) as err:
            raise ComposerError(f"the model rejected an input of shape {tuple(x.shape)}: "
                                f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != x.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ComposerError(f"the model's output must be (batch, classes); got {shape}")
        return out

    @staticmethod
    def checked(target: Optional[torch.Tensor], out: torch.Tensor) -> torch.Tensor:
        """``target`` validated against the output's classes, or the arg-max if None."""
        if target is None:
            return out.argmax(1)
        classes = out.shape[1]
        if bool(((target < 0) | (target >= classes)).any()):
            bad = sorted(set(target[(target < 0) | (target >= classes)].tolist()))
            raise ComposerError(f"target {', '.join(map(str, bad[:5]))}{' ...' if len(bad) > 5 else ''} out of range: "
                                f"the model has {classes} classes (0 to {classes - 1})")
        return target

    def resolve(self, x: torch.Tensor, target: Optional[torch.Tensor]) -> torch.Tensor:
        """Concrete per-sample targets (one no-grad forward when they are the arg-max)."""
        if target is not None:
            return target
        with torch.no_grad():
            return self.logits(x).argmax(1)

    def gradient(self, x: torch.Tensor, target: Optional[torch.Tensor], start: str = "one") -> torch.Tensor:
        """``d(start · out[target]) / dx`` for a batch, in chunks of ``batch_size`` samples."""
        step = self.batch_size or x.shape[0]
        parts = [self._gradient(x[i:i + step], None if target is None else target[i:i + step], start)
                 for i in range(0, x.shape[0], step)]
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _gradient(self, x, target, start):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = self.logits(x)
            target = self.checked(target, out)
            grad_out = torch.zeros_like(out).scatter_(1, target[:, None], 1.0)
            if start == "logit":
                grad_out = grad_out * out.detach()
            (grad,) = torch.autograd.grad(out, x, grad_out)
        return grad


def _per_sample(x: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (x.dim() - 1)))


# --------------------------------------------------------------------------- attributors


def _baseline(x: torch.Tensor, baseline) -> torch.Tensor:
    if isinstance(baseline, torch.Tensor):
        try:
            return baseline.to(x).expand_as(x)
        except RuntimeError:
            raise ComposerError(f"baseline of shape {tuple(baseline.shape)} does not fit inputs of shape "
                                f"{tuple(x.shape)}") from None
    if isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        return torch.full_like(x, float(baseline))
    flat = x.flatten(1)
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline == "black":
        return _per_sample(x, flat.amin(1)).expand_as(x)
    if baseline == "white":
        return _per_sample(x, flat.amax(1)).expand_as(x)
    raise ComposerError(f"unknown baseline {baseline!r}; use zero, black, white, a number or a tensor",
                        suggestions=closest(str(baseline), ["zero", "black", "white"]))
