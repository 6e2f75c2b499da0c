"""Textbook z-box (bounded input) rule. The TF reference's version is defective; see the docs."""
from __future__ import annotations

from typing import Union

import torch
from zennit.rules import ClampMod, NoMod

from .base import SafeDivideHook, register_hook, safe_divide

Bound = Union[float, torch.Tensor]


def _bound_like(bound: Bound, x: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(bound, dtype=x.dtype, device=x.device)
    if value.dim() == x.dim() - 1:  # per-sample shape (C, H, W): add the batch axis
        value = value.unsqueeze(0)
    return value.expand_as(x)


@register_hook
class ZBoxHook(SafeDivideHook):
    """``R_in = a ⊙ Wᵀs − l ⊙ W⁺ᵀs − h ⊙ W⁻ᵀs``, ``s = R ⊘ (Wa − W⁺l − W⁻h)``, no bias.

    ``low``/``high`` are the input's bounds: floats, or tensors broadcastable to one sample
    (e.g. per-channel bounds of a normalised image, shape (C, 1, 1)).

    Example
    -------
    >>> layer = torch.nn.Linear(1, 1, bias=False); _ = layer.weight.data.fill_(1.)
    >>> handles = ZBoxHook(low=0., high=1.).register(layer)
    >>> x = torch.tensor([[0.5]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # all of R: (x - l) w / ((x - l) w)
    tensor([[1.]])
    >>> handles.remove()
    """

    def __init__(self, low: Bound = 0.0, high: Bound = 1.0):
        super().__init__(low=low, high=high)

    def modifiers(self, low, high):
        same, pos, neg = NoMod(zero_params="bias"), ClampMod(min=0., zero_params="bias"), \
            ClampMod(max=0., zero_params="bias")

        def gradient_mapper(relevance, outputs):
            s = safe_divide(relevance, outputs[0] - outputs[1] - outputs[2])
            return (s, s, s)

        return dict(
            input_modifiers=[torch.clone, lambda x: _bound_like(low, x), lambda x: _bound_like(high, x)],
            param_modifiers=[same, pos, neg],
            gradient_mapper=gradient_mapper,
            reducer=lambda ins, grads: ins[0] * grads[0] - ins[1] * grads[1] - ins[2] * grads[2],
        )
