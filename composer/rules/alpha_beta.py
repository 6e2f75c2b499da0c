"""Alpha-beta (and z-plus) as the reference computes it: the full bias in both denominators."""
from __future__ import annotations

from zennit.rules import ClampMod

from .base import SafeDivideHook, register_hook, safe_divide


def _pos(x):
    return x.clamp(min=0)


def _neg(x):
    return x.clamp(max=0)


@register_hook
class AlphaBetaHook(SafeDivideHook):
    """``R_in = α R_act − β R_inh`` with iNNvestigate's bias handling.

    ``z_act = W⁺a⁺ + W⁻a⁻ + b`` and ``z_inh = W⁻a⁺ + W⁺a⁻ + b`` (``b = b⁺ + b⁻`` in *both*, unlike
    textbook / zennit alpha-beta); ``R_act = a⁺ ⊙ W⁺ᵀ s_act + a⁻ ⊙ W⁻ᵀ s_act``,
    ``R_inh = a⁺ ⊙ W⁻ᵀ s_inh + a⁻ ⊙ W⁺ᵀ s_inh``, ``s = R ⊘ z`` (SafeDivide, no epsilon).
    ``bias=False`` drops the bias; alpha=1, beta=0, bias=False is the reference's Z-plus.

    Example
    -------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., -1.]]))
    >>> handles = AlphaBetaHook(alpha=1., beta=0.).register(layer)
    >>> x = torch.tensor([[2., 1.]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # only the positive path: 2*1 / 2
    tensor([[1., 0.]])
    >>> handles.remove()
    """

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
