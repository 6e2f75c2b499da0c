"""Gradient-family attributors: gradient, integrated gradients, SmoothGrad, VarGrad."""
from __future__ import annotations

from typing import Annotated, Any, Literal

import torch
from pydantic import Field

from .base import Backprop, _baseline, _per_sample, attributor

#: bounds (inclusive) that keep a preset from asking for unbounded work
NoiseLevel = Annotated[float, Field(ge=0, le=100)]
Samples = Annotated[int, Field(ge=1, le=4096)]


@attributor("gradient")
def gradient(backprop: Backprop, x: torch.Tensor, target: torch.Tensor, start: Literal["one", "logit"] = "one"):
    """The (composite-modified) gradient of the target output. LRP is this with a rule composite."""
    return backprop.gradient(x, target, start)


@attributor("integrated_gradients")
def integrated_gradients(backprop: Backprop, x: torch.Tensor, target: torch.Tensor,
                         steps: Annotated[int, Field(ge=2, le=4096)] = 50,
                         baseline: Any = "zero", points: Literal["both_ends", "right"] = "both_ends"):
    """``(x − b) ⊙ mean_k ∇f(b + α_k (x − b))`` over ``steps`` path points ``α_k``.

    ``points="both_ends"`` (the reference's, the default): ``α_k = k / (steps − 1)``, k = 0..steps−1,
    baseline and input included. ``points="right"`` (zennit's ``IntegratedGradients`` and Captum's
    ``riemann_right``): ``α_k = k / steps``, k = 1..steps. The two differ by a few percent at 32 steps.
    ``baseline``: ``zero``, ``black`` (each sample's minimum), ``white`` (its maximum), a number
    or a tensor. All path points of all samples run as one batch (chunked by ``batch_size``).
    """
    base = _baseline(x, baseline)
    target = backprop.resolve(x, target)
    alphas = (torch.arange(1, steps + 1, dtype=x.dtype, device=x.device) / steps if points == "right"
              else torch.linspace(0, 1, steps, dtype=x.dtype, device=x.device))
    alphas = alphas.view(-1, 1, *([1] * (x.dim() - 1)))
    path = (base[None] + alphas * (x - base)[None]).reshape(steps * x.shape[0], *x.shape[1:])
    grads = backprop.gradient(path, target.repeat(steps), "one").view(steps, *x.shape)
    return (x - base) * grads.mean(0)


def _noisy_gradients(backprop, x, target, noise_level, num_samples, generator):
    target = backprop.resolve(x, target)
    flat = x.flatten(1)
    sigma = _per_sample(x, noise_level * (flat.amax(1) - flat.amin(1)))
    noise = torch.randn((num_samples,) + tuple(x.shape), generator=generator, dtype=torch.float32)
    noisy = (x[None] + noise.to(x) * sigma[None]).reshape(num_samples * x.shape[0], *x.shape[1:])
    return backprop.gradient(noisy, target.repeat(num_samples), "one").view(num_samples, *x.shape)


@attributor("smoothgrad")
def smoothgrad(backprop: Backprop, x: torch.Tensor, target: torch.Tensor, noise_level: NoiseLevel = 0.2,
               num_samples: Samples = 50, generator: Any = None):
    """Mean gradient over ``x + N(0, σ²)``, σ = noise_level × (max(x) − min(x)) per sample."""
    return _noisy_gradients(backprop, x, target, noise_level, num_samples, generator).mean(0)


@attributor("vargrad")
def vargrad(backprop: Backprop, x: torch.Tensor, target: torch.Tensor, noise_level: NoiseLevel = 0.2,
            num_samples: Samples = 50, generator: Any = None):
    """Variance (population) of the gradient over ``x + N(0, σ²)``, σ as in SmoothGrad."""
    return _noisy_gradients(backprop, x, target, noise_level, num_samples, generator).var(0, unbiased=False)
