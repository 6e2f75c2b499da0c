"""Alpha-beta (and z-plus) as the reference computes it: the full bias in both denominators."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from zennit.rules import ClampMod

from .base import SafeDivideHook, register_hook, safe_divide
from .rescale import RescaleHook, bias_like


def _pos(x):
    return x.clamp(min=0)


def linear_map(module, x, weight):
    """The module's linear map (no bias) with another weight, without running its hooks; None if unknown."""
    if isinstance(module, torch.nn.Linear):
        return F.linear(x, weight)
    if isinstance(module, torch.nn.modules.conv._ConvNd) and not module.transposed:
        return module._conv_forward(x, weight, None)
    return None


def _neg(x):
    return x.clamp(max=0)


class AlphaBetaTerms(SafeDivideHook):
    """The four-term alpha-beta of iNNvestigate, one modified forward pass per term (any input sign)."""

    def __init__(self, alpha: float = 1.0, beta: float = 0.0, bias: bool = True):
        super().__init__(alpha=alpha, beta=beta, bias=bias)

    def modifiers(self, alpha, beta, bias):
        zero = None if bias else "bias"
        pos, neg = ClampMod(min=0., zero_params=zero), ClampMod(max=0., zero_params=zero)
        # outputs: (a+; W+, b+), (a-; W-, b-)  [activating],  (a+; W-, b-), (a-; W+, b+)  [inhibiting]
        inputs, params = [_pos, _neg], [pos, neg]
        if beta:
            inputs, params = inputs + [_pos, _neg], params + [neg, pos]

        def gradient_mapper(relevance, outputs):
            s_act = safe_divide(relevance, outputs[0] + outputs[1])
            if not beta:
                return (s_act, s_act)
            s_inh = safe_divide(relevance, outputs[2] + outputs[3])
            return (s_act, s_act, s_inh, s_inh)

        def reducer(ins, grads):
            active = ins[0] * grads[0] + ins[1] * grads[1]
            if not beta:
                return alpha * active
            return alpha * active - beta * (ins[2] * grads[2] + ins[3] * grads[3])

        return dict(input_modifiers=inputs, param_modifiers=params, gradient_mapper=gradient_mapper, reducer=reducer)


@register_hook
class AlphaBetaHook(RescaleHook):
    """``R_in = α R_act − β R_inh`` with iNNvestigate's bias handling.

    ``z_act = W⁺a⁺ + W⁻a⁻ + b`` and ``z_inh = W⁻a⁺ + W⁺a⁻ + b`` (``b = b⁺ + b⁻`` in *both*, unlike
    textbook / zennit alpha-beta); ``R_act = a⁺ ⊙ W⁺ᵀ s_act + a⁻ ⊙ W⁻ᵀ s_act``,
    ``R_inh = a⁺ ⊙ W⁻ᵀ s_inh + a⁻ ⊙ W⁺ᵀ s_inh``, ``s = R ⊘ z`` (SafeDivide, no epsilon).
    ``bias=False`` drops the bias; alpha=1, beta=0, bias=False is the reference's Z-plus.

    For inputs without negative values (every layer after a ReLU) the same numbers come from one
    extra convolution: ``z_inh = z − W⁺a`` and ``R_in = a ⊙ (W⁺ᵀ(α s_act + β s_inh) − β Wᵀ s_inh)``,
    where the layer's own backward computes ``Wᵀ``. Other inputs take the four-term path.

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

    def prepare(self, module, a, z):
        store = self.stored_tensors
        leaf = a.detach().requires_grad_(True)
        with torch.enable_grad():
            z_pos = None if bool((a < 0).any()) else linear_map(module, leaf, module.weight.detach().clamp(min=0))
        store["general"] = z_pos is None
        store["leaf"], store["z_pos"] = leaf, z_pos

    def output_gradient(self, module, relevance):
        store = self.stored_tensors
        if store["general"]:
            store["relevance"] = relevance
            return torch.zeros_like(relevance)
        alpha, beta, bias = self.kwargs["alpha"], self.kwargs["beta"], self.kwargs["bias"]
        z, z_pos = self.output_tensor(), store["z_pos"].detach()
        b = bias_like(module, z)
        used_bias = b if (bias and b is not None) else None
        z_neg = z - z_pos if (bias or b is None) else z - b - z_pos          # W⁻a (+ b when bias)
        z_act = z_pos + used_bias if used_bias is not None else z_pos        # W⁺a (+ b when bias)
        s_act = self._quotient(relevance, z_act, used_bias)
        s_inh = self._quotient(relevance, z_neg, used_bias) if beta else None
        if s_act is None or (beta and s_inh is None):  # an exact zero denominator with a bias: four terms
            store["general"], store["relevance"] = True, relevance
            return torch.zeros_like(relevance)
        if not beta:
            store["through_positive"] = alpha * s_act
            return torch.zeros_like(relevance)
        store["through_positive"] = alpha * s_act + beta * s_inh
        return -beta * s_inh

    @staticmethod
    def _quotient(relevance, denominator, bias):
        """``R ⊘ z`` where an exactly-zero ``z`` without bias means every product a_i w_ji is 0: its
        SafeDivide quotient (R·1e7) moves no relevance, so 0 gives the same result without swamping
        the other terms of the shared transpose. None when a zero meets a nonzero bias."""
        zero = denominator == 0
        if not bool(zero.any()):
            return relevance / denominator
        if bias is not None and bool((zero & (bias != 0)).any()):
            return None
        return torch.where(zero, 0.0, relevance / torch.where(zero, 1.0, denominator))

    def input_relevance(self, module, transposed):
        store = self.stored_tensors
        a = self.input_tensor()
        if store["general"]:
            store.pop("leaf", None), store.pop("z_pos", None)
            terms = AlphaBetaTerms(**self.kwargs)
            terms.stored_tensors["input"] = (a,)
            with torch.enable_grad():
                return terms.backward(module, (transposed,), (store.pop("relevance"),))[0]
        (positive,) = torch.autograd.grad(store.pop("z_pos"), store.pop("leaf"), store.pop("through_positive"))
        return a * (transposed + positive)
