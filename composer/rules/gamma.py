"""The reference's four-term LRP-gamma (SignXAI / iNNvestigate ``GammaRule``)."""
from __future__ import annotations

from zennit.rules import ClampMod, NoMod

from .base import SafeDivideHook, register_hook, safe_divide


def _pos(x):
    return x.clamp(min=0)


def _same(x):
    return x.clone()  # a distinct tensor per term: autograd would sum the gradients of aliased inputs


@register_hook
class ReferenceGammaHook(SafeDivideHook):
    """``R_in = γ A − B``, iNNvestigate's gamma (not textbook LRP-γ; use ``zennit_gamma`` for that).

    ``z1 = (W⁺a⁺ + b⁺) + (Wa + b)``, ``A = a⁺ ⊙ W⁺ᵀ(R⊘z1) + a ⊙ Wᵀ(R⊘z1)``;
    ``z2 = (Wa⁺ + b) + (W⁺a + b⁺)``, ``B = a⁺ ⊙ Wᵀ(R⊘z2) + a ⊙ W⁺ᵀ(R⊘z2)``.
    For ``a >= 0`` this is ``(γ − 1)`` times textbook LRP-γ with γ = 1.

    Example
    -------
    >>> import torch
    >>> layer = torch.nn.Linear(1, 1, bias=False); _ = layer.weight.data.fill_(2.)
    >>> handles = ReferenceGammaHook(gamma=0.5).register(layer)
    >>> x = torch.tensor([[1.]], requires_grad=True)
    >>> torch.autograd.grad(layer(x), x, torch.ones(1, 1))[0]   # (0.5 - 1) * 1
    tensor([[-0.5000]])
    >>> handles.remove()
    """

    def __init__(self, gamma: float = 0.5, bias: bool = True):
        super().__init__(gamma=gamma, bias=bias)

    def modifiers(self, gamma, bias):
        zero = None if bias else "bias"
        pos, same = ClampMod(min=0., zero_params=zero), NoMod(zero_params=zero)

        def gradient_mapper(relevance, outputs):
            s1 = safe_divide(relevance, outputs[0] + outputs[1])
            s2 = safe_divide(relevance, outputs[2] + outputs[3])
            return (s1, s1, s2, s2)

        def reducer(ins, grads):
            a_term = ins[0] * grads[0] + ins[1] * grads[1]
            b_term = ins[2] * grads[2] + ins[3] * grads[3]
            return gamma * a_term - b_term

        return dict(input_modifiers=[_pos, _same, _pos, _same], param_modifiers=[pos, same, same, pos],
                    gradient_mapper=gradient_mapper, reducer=reducer)
