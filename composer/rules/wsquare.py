"""W-square and Flat: relevance spread by the squared (or all-one) weights, independent of the input."""
from __future__ import annotations

import torch
from zennit.core import ParamMod

from .base import SafeDivideHook, register_hook, safe_divide


@register_hook
class WSquareHook(SafeDivideHook):
    """``R_in = (V)ᵀ (R ⊘ (V 1))`` with ``V = W²`` (``flat=False``) or ``V = 1`` (``flat=True``), no bias.

    ``V 1`` is the layer applied to an all-ones input of the input's shape, so a padded
    convolution's border outputs sum only their in-image taps, as the reference does.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., 3.]]))
    >>> handles = WSquareHook().register(layer)
    >>> x = torch.tensor([[5., -7.]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # 1/10 and 9/10 of R = 1
    tensor([[0.1000, 0.9000]])
    >>> handles.remove()
    """

    def __init__(self, flat: bool = False):
        super().__init__(flat=flat)

    def modifiers(self, flat):
        if flat:
            weight = ParamMod(lambda param, name: torch.ones_like(param), zero_params="bias", require_params=False)
        else:
            weight = ParamMod(lambda param, name: param ** 2, zero_params="bias")
        return dict(
            input_modifiers=[torch.ones_like],
            param_modifiers=[weight],
            gradient_mapper=lambda relevance, outputs: (safe_divide(relevance, outputs[0]),),
            reducer=lambda ins, grads: grads[0],
        )
