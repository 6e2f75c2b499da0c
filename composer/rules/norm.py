"""The Norm rule for sums and average pooling, at the cost of the gradient."""
from __future__ import annotations

import torch

from .base import register_hook
from .epsilon import stabilized
from .rescale import RescaleHook, divide


@register_hook
class NormHook(RescaleHook):
    """``R_in,i = a_i ⊙ Jᵀ (R ⊘ (z + ε·sgn z))`` for every input ``a_i`` of a parameter-free linear module.

    For a residual sum ``z = a + b`` each operand gets its share ``a ⊙ R / z``; for average pooling
    each input its share of the window's mean. The numbers are zennit's ``Norm`` (stabiliser ε = 1e-6
    added with the sign of ``z``, ``sgn 0 = +1``), without copying its inputs: the module's own backward
    applies ``Jᵀ``, and its output is recomputed in the backward (one cheap pass), not kept.

    Example
    -------
    >>> from composer.graph.modules import Add
    >>> add = Add(); handles = NormHook().register(add)
    >>> a = torch.tensor([[3.]], requires_grad=True); b = torch.tensor([[1.]], requires_grad=True)
    >>> torch.autograd.grad(add(a, b), (a, b), torch.tensor([[4.]]))     # 3/4 and 1/4 of R = 4
    (tensor([[3.0000]]), tensor([[1.0000]]))
    >>> handles.remove()
    """

    keeps_output = False
    multi_input = True

    def __init__(self, epsilon: float = 1e-6):
        super().__init__(epsilon=epsilon)

    def output_gradient(self, state, module, relevance):
        with torch.no_grad():
            z = module.forward(*state["inputs"])   # the module's own function, without its hooks
        return divide(relevance, stabilized(z, self.kwargs["epsilon"]))

    def input_relevances(self, state, module, transposed):
        # out of place: a sum's backward hands every operand the same gradient tensor
        return tuple(None if grad is None else grad * a for grad, a in zip(transposed, state["inputs"]))
