"""What every method shares: the attributor and modifier registries, their parameter checks, and
:class:`Backprop`, which runs the model with the preset's composite."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

import torch

from ..catalog import Catalog
from ..errors import ComposerError, closest
from ..validation import signature_model, validate_params

#: attributor name -> ``fn(backprop, x, target, **params)``; its parameters are its signature's
ATTRIBUTORS: Catalog[Callable] = Catalog("attributor")
#: modifier name -> ``fn(relevance, x, **params)``
MODIFIERS: Catalog[Callable] = Catalog("modifier")


def attributor(name: str):
    """Decorator: register ``fn(backprop, x, target, **params) -> Tensor`` as an attributor.

    Its parameters are validated from its signature: type hints (``Literal`` choices, bounds as
    ``Annotated[int, Field(ge=2)]``) and defaults.

    Example
    -------
    >>> @attributor("doubled_gradient")
    ... def doubled_gradient(backprop, x, target):
    ...     '''Twice the gradient.'''
    ...     return 2 * backprop.gradient(x, target, start="one")
    >>> "doubled_gradient" in ATTRIBUTORS
    True
    """
    return lambda fn: ATTRIBUTORS.register(name, fn)


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
    return lambda fn: MODIFIERS.register(name, fn)


def check_attributor(name: str, params: Dict[str, Any], source: str = "<preset>") -> Dict[str, Any]:
    """Validate an attributor name and its parameters (unknown ones name the closest valid).

    Example
    -------
    >>> check_attributor("integrated_gradients", {"steps": 8})["steps"]
    8
    """
    fn = ATTRIBUTORS.entry(name, source, "attributor.name")
    return validate_params(signature_model(fn, 3), params, f"attributor '{name}'", source, "attributor.with")


def check_modifier(name: str, params: Dict[str, Any], source: str = "<preset>", field: str = "modifiers") -> Dict[str, Any]:
    """Validate a modifier name and its parameters.

    Example
    -------
    >>> check_modifier("x_sign", {"mu": -0.5})
    {'mu': -0.5}
    """
    fn = MODIFIERS.entry(name, source, f"{field}.name")
    return validate_params(signature_model(fn, 2), params, f"modifier '{name}'", source, f"{field}.with")


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
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            if isinstance(err, RuntimeError) and "modified inplace" in str(err):
                raise ComposerError("an in-place operation in the model's forward changes the output of a layer "
                                    "that an LRP rule needs (use inplace=False, or keep graph canonization on, "
                                    "which makes the model out-of-place)") from err
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
    if baseline == "zero":
        return torch.zeros_like(x)
    if baseline in ("black", "white"):   # each sample's minimum or maximum
        flat = x.flatten(1)
        return _per_sample(x, flat.amin(1) if baseline == "black" else flat.amax(1)).expand_as(x)
    raise ComposerError(f"unknown baseline {baseline!r}; use zero, black, white, a number or a tensor",
                        suggestions=closest(str(baseline), ["zero", "black", "white"]))
