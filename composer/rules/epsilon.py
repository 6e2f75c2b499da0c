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

Because the rule only rescales the gradient, the hook never re-runs the layer: it divides the
gradient arriving at the layer's output by the stabilised ``z`` (a pre-hook on the output's autograd
node), lets the layer's own backward apply ``Wᵀ``, and multiplies the result by ``m(a)``. That costs
two elementwise operations per layer on top of a plain backward pass.
"""
from __future__ import annotations

import weakref

import torch
from zennit.core import Hook

from .base import register_hook, safe_divide, sign_map


def _bias_shape(module, z):
    bias = getattr(module, "bias", None)
    if bias is None:
        return None
    shape = [1] * z.dim()
    channel_dim = z.dim() - 1 if isinstance(module, torch.nn.Linear) else 1
    shape[channel_dim] = -1
    return bias.detach().reshape(shape)


@register_hook
class EpsilonHook(Hook):
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
        super().__init__()
        self.kwargs = dict(epsilon=epsilon, stdfactor=stdfactor, sign=sign, mu=mu, bias=bias)

    def copy(self):
        return type(self)(**self.kwargs)

    def __repr__(self):
        return f"EpsilonHook({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"

    def forward(self, module, input, output):
        """Store ``m(a)`` and the stabilised denominator; hook the output's autograd node."""
        if output.grad_fn is None:
            return
        a = input[0].detach()
        z = output.detach()  # shares memory with the output: never store it unchanged
        k = self.kwargs
        if not k["bias"]:
            bias = _bias_shape(module, z)
            if bias is not None:
                z = z - bias
        eps = k["epsilon"]
        if k["stdfactor"]:
            std = a.flatten(1).std(dim=1, unbiased=False).view(-1, *([1] * (z.dim() - 1)))
            eps = eps + k["stdfactor"] * std
        if isinstance(eps, torch.Tensor) or eps != 0:
            z = z + eps * torch.where(z >= 0, 1.0, -1.0).to(z.dtype)
        if z.data_ptr() == output.data_ptr():
            z = z.clone()  # a later in-place op (ReLU(inplace=True)) must not change it
        self.stored_tensors["denominator"] = z
        self.stored_tensors["factor"] = sign_map(a, k["mu"]) if k["sign"] else a

        hook_ref = weakref.ref(self)

        def scale_output_gradient(grad_outputs):
            hook = hook_ref()
            if hook is None or not hook.active:
                return None
            return (safe_divide(grad_outputs[0], hook.stored_tensors["denominator"]),) + tuple(grad_outputs[1:])

        self.tensor_handles.append(output.grad_fn.register_prehook(scale_output_gradient))

    def backward(self, module, grad_input, grad_output):
        """``Wᵀ s`` arrives as the gradient at the layer input; multiply it by ``m(a)``."""
        return (grad_input[0] * self.stored_tensors["factor"],) + tuple(grad_input[1:])
