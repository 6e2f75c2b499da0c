"""The epsilon family as one hook: Z, Epsilon, StdX-Epsilon, SIGN and SIGN-mu.

All five are ``R_in = m(a) ⊙ Wᵀ (R ⊘ (z + ε·sgn z))`` with ``z = W a + b`` the layer's own output:

=============  ====================  =========================
rule           ε                     m(a)
=============  ====================  =========================
Z              0                     a
Epsilon        epsilon               a
StdX-Epsilon   stdfactor · std(a)    a
SIGN           0                     sign(a), sign(0) = +1
SIGN-mu        0                     +1 if a >= mu else -1
=============  ====================  =========================

Because the rule only rescales the gradient, the hook never re-runs the layer (see
:mod:`composer.rules.rescale`): it divides the relevance arriving at the layer's output by the
stabilised ``z``, lets the layer's own backward apply ``Wᵀ``, and multiplies the result by ``m(a)``.
That costs a few elementwise operations per layer on top of a plain backward pass.
"""
from __future__ import annotations

import torch

from .base import SAFE_DIVIDE_EPS, register_hook, sign_map
from .rescale import RescaleHook, bias_like, divide


def stabilized(z: torch.Tensor, eps) -> torch.Tensor:
    """``z + eps·sgn(z)`` (sgn 0 = +1), exact zeros replaced by SafeDivide's 1e-7; a new tensor.

    ``eps`` is a float or a per-sample tensor broadcastable to ``z``.

    Example
    -------
    >>> stabilized(torch.tensor([-1., 0., 2.]), 0.5)
    tensor([-1.5000,  0.5000,  2.5000])
    >>> stabilized(torch.tensor([0., 2.]), 0.0)
    tensor([1.0000e-07, 2.0000e+00])
    """
    if isinstance(eps, torch.Tensor):
        # copysign gives -eps only for z = -0.0, where every product a_i w_i is zero: no relevance moves
        den = torch.copysign(eps.to(z.dtype), z).add_(z)
        if bool((eps == 0).any()):
            den = torch.where(den == 0, SAFE_DIVIDE_EPS, den)
        return den
    if eps > 0:
        return torch.copysign(z.new_tensor(eps), z).add_(z)
    return torch.where(z == 0, SAFE_DIVIDE_EPS, z)


@register_hook
class EpsilonHook(RescaleHook):
    """``R_in = m(a) ⊙ Wᵀ (R ⊘ (z + ε·sgn z))``, ε = epsilon + stdfactor · std(a) per sample.

    Parameters
    ----------
    epsilon : float
        Absolute stabiliser, added with the sign of ``z`` (``sgn 0 = +1``); 0 gives the Z rule.
    stdfactor : float
        Adds ``stdfactor × std(a)``, the population std over all elements of this layer's input,
        computed per sample (iNNvestigate's StdxEpsilon).
    sign : bool
        Replace the input factor ``a`` by ``+1 if a >= mu else -1`` (the SIGN / SIGN-mu rules).
    mu : float
        Threshold of SIGN-mu; ``mu = 0`` is SIGN.
    bias : bool
        Keep the bias in ``z`` (the reference does); False uses ``z - b``.

    Exactly-zero denominators are guarded as iNNvestigate's SafeDivide does (+1e-7).

    Example
    -------
    >>> import torch
    >>> layer = torch.nn.Linear(2, 1, bias=False); _ = layer.weight.data.copy_(torch.tensor([[1., 2.]]))
    >>> hook = EpsilonHook(epsilon=0.0); handles = hook.register(layer)
    >>> x = torch.tensor([[1., 1.]], requires_grad=True); z = layer(x)
    >>> torch.autograd.grad(z, x, z)[0]   # Z rule: R_in = a * w * R / z, sums to R = z = 3
    tensor([[1., 2.]])
    >>> handles.remove()
    """

    def __init__(self, epsilon: float = 0.0, stdfactor: float = 0.0, sign: bool = False, mu: float = 0.0,
                 bias: bool = True):
        super().__init__(epsilon=epsilon, stdfactor=stdfactor, sign=sign, mu=mu, bias=bias)

    def prepare(self, state, module, a, z):
        eps = self.kwargs["epsilon"]
        if self.kwargs["stdfactor"]:
            std = a.flatten(1).std(dim=1, unbiased=False).view(-1, *([1] * (z.dim() - 1)))
            eps = eps + self.kwargs["stdfactor"] * std
        state["eps"] = eps

    def output_gradient(self, state, module, relevance):
        z = state.output()
        if not self.kwargs["bias"]:
            bias = bias_like(module, z)
            z = z - bias if bias is not None else z
        return divide(relevance, stabilized(z, state["eps"]))  # reuse the temporary: one buffer less

    def input_relevance(self, state, module, transposed):
        a = state.input()
        # the transpose is a fresh buffer private to this layer's Identity node: scale it in place
        factor = sign_map(a, self.kwargs["mu"]) if self.kwargs["sign"] else a
        return transposed * factor if transposed.requires_grad else transposed.mul_(factor)
