"""Alpha-beta (and z-plus) as the reference computes it: the full bias in both denominators."""
from __future__ import annotations

import torch

from .base import register_hook, safe_divide
from .linear import linear_map, negative, positive, transposed_map
from .rescale import RescaleHook, bias_like, divide


@register_hook
class AlphaBetaHook(RescaleHook):
    """``R_in = α R_act − β R_inh`` with iNNvestigate's bias handling.

    ``z_act = W⁺a⁺ + W⁻a⁻ + b`` and ``z_inh = W⁻a⁺ + W⁺a⁻ + b`` (``b = b⁺ + b⁻`` in *both*, unlike
    textbook / zennit alpha-beta); ``R_act = a⁺ ⊙ W⁺ᵀ s_act + a⁻ ⊙ W⁻ᵀ s_act``,
    ``R_inh = a⁺ ⊙ W⁻ᵀ s_inh + a⁻ ⊙ W⁺ᵀ s_inh``, ``s = R ⊘ z`` (SafeDivide, no epsilon).
    ``bias=False`` drops the bias; alpha=1, beta=0, bias=False is the reference's Z-plus.

    For inputs without negative values (every layer after a ReLU) the same numbers come from one
    extra convolution: ``z_inh = z − W⁺a`` and ``R_in = a ⊙ (W⁺ᵀ(α s_act + β s_inh) − β Wᵀ s_inh)``,
    where the layer's own backward computes ``Wᵀ``. Other inputs take the four-term path. Linear
    layers and zero-padded convolutions use explicit transposes; any other layer (transposed or
    circular convolutions...) its own ``forward`` with modified weights and autograd.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., -1.]]))
    >>> handles = AlphaBetaHook(alpha=1., beta=0.).register(layer)
    >>> x = torch.tensor([[2., 1.]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # only the positive path: 2*1 / 2
    tensor([[1., 0.]])
    >>> handles.remove()
    """

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, bias: bool = True):
        super().__init__(alpha=alpha, beta=beta, bias=bias)

    def prepare(self, state, module, a, z):
        state["general"] = bool((a < 0).any())  # the two-term shortcut needs a >= 0

    def output_gradient(self, state, module, relevance):
        if state["general"]:
            state["relevance"] = relevance
            return torch.zeros_like(relevance)
        alpha, beta, bias = self.kwargs["alpha"], self.kwargs["beta"], self.kwargs["bias"]
        a, z = state.input(), state.output()
        b = bias_like(module, z)
        used_bias = b if (bias and b is not None) else None
        z_act = linear_map(module, a, positive)                                    # W⁺a, made when needed
        z_neg = (z - z_act) if (bias or b is None) else (z - b).sub_(z_act)   # W⁻a (+ b when bias)
        if used_bias is not None:
            z_act.add_(used_bias)                                              # W⁺a + b
        s_act = self._quotient(relevance, z_act, used_bias)                    # in z_act's buffer
        s_inh = self._quotient(relevance, z_neg, used_bias) if beta else None  # in z_neg's buffer
        if s_act is None or (beta and s_inh is None):  # an exact zero denominator with a bias: four terms
            state["general"], state["relevance"] = True, relevance
            return torch.zeros_like(relevance)
        state["through_positive"] = s_act.mul_(alpha) if not beta else s_act.mul_(alpha).add_(s_inh, alpha=beta)
        return torch.zeros_like(relevance) if not beta else s_inh.mul_(-beta)

    @staticmethod
    def _quotient(relevance, denominator, bias):
        """``R ⊘ z`` into ``z``'s buffer. An exactly-zero ``z`` without bias means every product a_i w_ji
        is 0: its SafeDivide quotient (R·1e7) moves no relevance, so 0 gives the same result without
        swamping the other terms of the shared transpose; where no relevance arrives the quotient is 0 anyway.
        None when a zero meets a nonzero bias and relevance."""
        zero = denominator == 0
        if not bool(zero.any()):
            return divide(relevance, denominator)
        if bias is not None and bool((zero & (bias != 0) & (relevance != 0)).any()):
            return None
        denominator.masked_fill_(zero, 1.0)
        return divide(relevance, denominator).masked_fill(zero, 0.0)

    def input_relevance(self, state, module, transposed):
        a = state.input()
        if not state["general"]:
            through = transposed_map(module, state.pop("through_positive"), positive, a.shape)
            return through.add_(transposed).mul_(a)
        return self._four_terms(module, a, state.pop("relevance"))

    def _four_terms(self, module, a, relevance):
        """iNNvestigate's four terms for inputs of both signs, one denominator at a time."""
        alpha, beta, bias = self.kwargs["alpha"], self.kwargs["beta"], self.kwargs["bias"]
        a_pos, a_neg = a.clamp(min=0), a.clamp(max=0)
        b = bias_like(module, relevance) if bias else None

        def part(w_for_pos, w_for_neg):
            z = linear_map(module, a_pos, w_for_pos).add_(linear_map(module, a_neg, w_for_neg))
            s = safe_divide(relevance, z if b is None else z.add_(b))
            return (transposed_map(module, s, w_for_pos, a.shape).mul_(a_pos)
                    .add_(transposed_map(module, s, w_for_neg, a.shape).mul_(a_neg)))

        out = part(positive, negative).mul_(alpha)
        if beta:
            out.sub_(part(negative, positive).mul_(beta))
        return out
