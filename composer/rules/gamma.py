"""The reference's four-term LRP-gamma (SignXAI / iNNvestigate ``GammaRule``)."""
from __future__ import annotations

import torch

from .linear import linear_map, positive, transposed_map
from .base import register_hook, safe_divide
from .rescale import RescaleHook, bias_like


def _same(w):
    return w


@register_hook
class ReferenceGammaHook(RescaleHook):
    """``R_in = γ A − B``, iNNvestigate's gamma (not textbook LRP-γ; use ``zennit_gamma`` for that).

    ``z1 = (W⁺a⁺ + b⁺) + (Wa + b)``, ``A = a⁺ ⊙ W⁺ᵀ(R⊘z1) + a ⊙ Wᵀ(R⊘z1)``;
    ``z2 = (Wa⁺ + b) + (W⁺a + b⁺)``, ``B = a⁺ ⊙ Wᵀ(R⊘z2) + a ⊙ W⁺ᵀ(R⊘z2)``.
    For ``a >= 0`` (after a ReLU) ``z1 = z2 = z + W⁺a + b⁺`` and ``A = B``, so
    ``R_in = (γ − 1) a ⊙ (Wᵀs + W⁺ᵀs)``: one extra convolution, and the layer's own backward
    computes ``Wᵀs``. Inputs of both signs take the four terms, one denominator at a time.

    Example
    -------
    >>> layer = torch.nn.Linear(1, 1, bias=False); _ = layer.weight.data.fill_(2.)
    >>> handles = ReferenceGammaHook(gamma=0.5).register(layer)
    >>> x = torch.tensor([[1.]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # (0.5 - 1) * 1
    tensor([[-0.5000]])
    >>> handles.remove()
    """

    def __init__(self, gamma: float = 0.5, bias: bool = True):
        super().__init__(gamma=gamma, bias=bias)

    def prepare(self, state, module, a, z):
        state["general"] = bool((a < 0).any())

    def _biases(self, module, z):
        b = bias_like(module, z) if self.kwargs["bias"] else None
        return b, (b.clamp(min=0) if b is not None else None)

    def output_gradient(self, state, module, relevance):
        if state["general"]:
            state["relevance"] = relevance
            return torch.zeros_like(relevance)
        a, z = state.input(), state.output()
        b, b_pos = self._biases(module, z)
        den = linear_map(module, a, positive).add_(z)                  # W⁺a + Wa + b
        if b is None and module.bias is not None:
            den.sub_(bias_like(module, z))                         # bias=False: drop it from z
        if b_pos is not None:
            den.add_(b_pos)
        state["s"] = safe_divide(relevance, den)
        return state["s"]                                          # the layer's backward makes Wᵀs

    def input_relevance(self, state, module, transposed):
        a = state.input()
        gamma = self.kwargs["gamma"]
        if not state["general"]:
            return transposed_map(module, state.pop("s"), positive, a.shape).add_(transposed).mul_(a).mul_(gamma - 1)
        relevance = state.pop("relevance")
        b, b_pos = self._biases(module, relevance)
        a_pos = a.clamp(min=0)

        def term(x1, w1, b1, x2, w2, b2):
            z = linear_map(module, x1, w1).add_(linear_map(module, x2, w2))
            for bias in (b1, b2):
                if bias is not None:
                    z.add_(bias)
            s = safe_divide(relevance, z)
            return transposed_map(module, s, w1, a.shape).mul_(x1).add_(transposed_map(module, s, w2, a.shape).mul_(x2))

        first = term(a_pos, positive, b_pos, a, _same, b)      # A
        second = term(a_pos, _same, b, a, positive, b_pos)     # B
        return first.mul_(gamma).sub_(second)
